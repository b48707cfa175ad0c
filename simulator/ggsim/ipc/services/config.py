"""Component configuration over IPC (spec §4.5): read, update, watch, and validate deployments.

The validation itself (a deployment asking its components) is the nucleus's ValidationHub; this module
subscribes the caller's stream to it and passes validity reports on."""

from __future__ import annotations

import logging
from typing import Any

from ...nucleus.config import InvalidUpdateError, StaleUpdateError
from ..errors import FailedUpdateConditionCheckError, InvalidArgumentsError, ResourceNotFoundError
from ..server import Call, Operation, Service

log = logging.getLogger("ggsim.ipc.config")


def _key_path(request: dict[str, Any]) -> list[str]:
    path = request.get("keyPath") or []
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise InvalidArgumentsError(f"keyPath must be a list of strings, got {path!r}")
    return path


class ConfigService(Service):
    def operations(self) -> list[Operation]:
        return [
            Operation("GetConfiguration", self.get),
            Operation("UpdateConfiguration", self.update),
            Operation("SubscribeToConfigurationUpdate", self.subscribe, event_shape="ConfigurationUpdateEvents"),
            Operation("SubscribeToValidateConfigurationUpdates", self.subscribe_validate,
                      event_shape="ValidateConfigurationUpdateEvents"),
            Operation("SendConfigurationValidityReport", self.report),
        ]

    def get(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        component = request.get("componentName") or call.component
        path = _key_path(request)
        try:
            value = self.backend.config.get(component, path)
        except KeyError:
            raise ResourceNotFoundError("Key not found", resourceType="Configuration",
                                        resourceName=component) from None
        if not isinstance(value, dict):
            value = {path[-1]: value}
        return {"componentName": component, "value": value}

    def update(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        timestamp = request.get("timestamp")
        if timestamp is None:
            raise InvalidArgumentsError("Timestamp is required")
        if request.get("valueToMerge") is None:
            raise InvalidArgumentsError("ValueToMerge is required")
        try:
            self.backend.config.update(call.component, _key_path(request), request["valueToMerge"], float(timestamp))
        except InvalidUpdateError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        except StaleUpdateError:
            raise FailedUpdateConditionCheckError(
                "Proposed timestamp is older than the config's latest modified timestamp") from None
        return {}

    def subscribe(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        component = request.get("componentName") or call.component
        path = _key_path(request)

        def changed(key_path: list[str]) -> None:
            call.send_event({"configurationUpdateEvent": {"componentName": component, "keyPath": key_path}})

        try:
            unsubscribe = self.backend.config.subscribe(component, path, changed)
        except KeyError:
            raise ResourceNotFoundError("Key not found", resourceType="Configuration",
                                        resourceName=component) from None
        call.on_close(unsubscribe)
        return {}

    def subscribe_validate(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        self.backend.validation_hub.add(call)
        return {}

    def report(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        report = request.get("configurationValidityReport")
        if not isinstance(report, dict):
            raise InvalidArgumentsError("configurationValidityReport is required")
        deployment_id = report.get("deploymentId")
        if not deployment_id:
            raise InvalidArgumentsError("Cannot accept configuration validity report, the deployment ID provided "
                                        "was null")
        status = report.get("status")
        if status not in ("ACCEPTED", "REJECTED"):
            raise InvalidArgumentsError(f"status must be ACCEPTED or REJECTED, got {status!r}")
        if not self.backend.validation_hub.report(call.component, deployment_id, status, report.get("message")):
            raise InvalidArgumentsError("Validation request either timed out or was never made")
        return {}
