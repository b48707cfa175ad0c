"""Component configuration over IPC (spec §4.5): read, update, watch, and validate deployments."""

from __future__ import annotations

import asyncio
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


class ValidationHub:
    """Deployments ask subscribed components to accept or reject a new configuration."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Call]] = {}
        self._waiting: dict[tuple[str, str], asyncio.Future[tuple[str, str | None]]] = {}

    def add(self, call: Call) -> None:
        self._subscribers.setdefault(call.component, []).append(call)
        call.on_close(lambda: self._subscribers.get(call.component, []).remove(call)
                      if call in self._subscribers.get(call.component, []) else None)

    def subscribed(self, component: str) -> bool:
        return bool(self._subscribers.get(component))

    async def validate(self, component: str, configuration: dict[str, Any], deployment_id: str,
                       timeout: float = 60.0) -> tuple[str, str | None] | None:
        """(status, message) from the component, or None when it does not validate configurations."""
        calls = self._subscribers.get(component)
        if not calls:
            return None
        future: asyncio.Future[tuple[str, str | None]] = asyncio.get_running_loop().create_future()
        self._waiting[(component, deployment_id)] = future
        event = {"validateConfigurationUpdateEvent": {"configuration": configuration,
                                                      "deploymentId": deployment_id}}
        for call in list(calls):
            call.send_event(event)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            log.warning("%s did not answer the configuration validation of deployment %s within %.0f s",
                        component, deployment_id, timeout)
            return ("REJECTED", f"no validity report within {timeout:.0f} s")
        finally:
            self._waiting.pop((component, deployment_id), None)

    def report(self, component: str, deployment_id: str, status: str, message: str | None) -> bool:
        future = self._waiting.get((component, deployment_id))
        if future is None or future.done():
            return False
        future.set_result((status, message))
        return True


class ConfigService(Service):
    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.validation_hub = ValidationHub()
        server.kernel.validation_hub = self.validation_hub

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
            value = self.kernel.config.get(component, path)
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
            self.kernel.config.update(call.component, _key_path(request), request["valueToMerge"], float(timestamp))
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
            unsubscribe = self.kernel.config.subscribe(component, path, changed)
        except KeyError:
            raise ResourceNotFoundError("Key not found", resourceType="Configuration",
                                        resourceName=component) from None
        call.on_close(unsubscribe)
        return {}

    def subscribe_validate(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        self.validation_hub.add(call)
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
        if not self.validation_hub.report(call.component, deployment_id, status, report.get("message")):
            raise InvalidArgumentsError("Validation request either timed out or was never made")
        return {}
