"""Component management and local deployments, as the Greengrass CLI component serves them (spec §4.7)."""

from __future__ import annotations

from typing import Any

from ...nucleus.deployment import document
from ..errors import (
    InvalidArgumentsError,
    InvalidArtifactsDirectoryPathError,
    InvalidRecipeDirectoryPathError,
    ResourceNotFoundError,
)
from ..server import Call, Operation, Service

SERVICE_ID = "aws.greengrass.Cli"


def without_nulls(value: Any) -> Any:
    """Absent members are left out, never sent as null (the SDK cannot parse a null shape)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


class ComponentsService(Service):
    def operations(self) -> list[Operation]:
        return [
            Operation("ListComponents", self.list_components),
            Operation("GetComponentDetails", self.get_details),
            Operation("RestartComponent", self.restart),
            Operation("StopComponent", self.stop),
            Operation("CreateLocalDeployment", self.create_deployment),
            Operation("GetLocalDeploymentStatus", self.deployment_status),
            Operation("ListLocalDeployments", self.list_deployments),
        ]

    def _check(self, call: Call, operation: str, resource: str) -> None:
        self.server.authorizer.check(call.component, SERVICE_ID, f"aws.greengrass#{operation}", resource)

    def _name(self, call: Call, request: dict[str, Any], operation: str) -> str:
        name = request.get("componentName")
        if not name:
            raise InvalidArgumentsError("Component name cannot be empty")
        self._check(call, operation, name)
        return name

    def list_components(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        self._check(call, "ListComponents", "*")
        return {"components": without_nulls(self.backend.components.list_components())}

    def get_details(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        name = self._name(call, request, "GetComponentDetails")
        details = self.backend.components.component_details(name)
        if details is None:
            raise ResourceNotFoundError(f"Component with name {name} not found in Greengrass",
                                        resourceType="Component", resourceName=name)
        return {"componentDetails": without_nulls(details)}

    def _lifecycle(self, call: Call, request: dict[str, Any], operation: str, key: str) -> dict[str, Any]:
        name = self._name(call, request, operation)
        if self.backend.components.component_details(name) is None:
            raise ResourceNotFoundError(f"Component with name {name} not found in Greengrass",
                                        resourceType="Component", resourceName=name)
        components = self.backend.components
        method = components.restart_component if operation == "RestartComponent" else components.stop_component
        if method(name):
            return {key: "SUCCEEDED"}
        return {key: "FAILED", "message": f"{operation} of {name} was not accepted"}

    def restart(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        return self._lifecycle(call, request, "RestartComponent", "restartStatus")

    def stop(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        return self._lifecycle(call, request, "StopComponent", "stopStatus")

    def create_deployment(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        self._check(call, "CreateLocalDeployment", "*")
        try:
            deployment_id = self.backend.deployments.create(request)
        except document.InvalidRecipeDirectoryPathError:
            raise InvalidRecipeDirectoryPathError(
                f"recipe directory {request.get('recipeDirectoryPath')} does not exist or is not a folder") from None
        except document.InvalidArtifactsDirectoryPathError:
            raise InvalidArtifactsDirectoryPathError(
                f"artifacts directory {request.get('artifactsDirectoryPath')} does not exist or is not a folder"
            ) from None
        except ValueError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        return {"deploymentId": deployment_id}

    def deployment_status(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        deployment_id = request.get("deploymentId")
        if not deployment_id:
            raise InvalidArgumentsError("Deployment ID is required")
        self._check(call, "GetLocalDeploymentStatus", deployment_id)
        status = self.backend.deployments.status(deployment_id)
        if status is None:
            raise ResourceNotFoundError(f"Cannot find deployment: {deployment_id}", resourceType="LocalDeployment",
                                        resourceName=deployment_id)
        return {"deployment": without_nulls(status)}

    def list_deployments(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        self._check(call, "ListLocalDeployments", "*")
        return {"localDeployments": without_nulls(self.backend.deployments.list())}
