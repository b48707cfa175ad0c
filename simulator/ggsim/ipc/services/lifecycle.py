"""Lifecycle over IPC (spec §4.6): UpdateState, pause/resume, component-update notices and deferrals.

The notices are the nucleus's UpdateHub (a deployment tells its components); this module subscribes the
caller's stream to it and passes deferrals on."""

from __future__ import annotations

from typing import Any

from ...nucleus.deployment.component_hubs import DeferralRefusedError, NotSubscribedError
from ..errors import InvalidArgumentsError, ServiceError
from ..server import Call, Operation, Service


class LifecycleService(Service):
    def operations(self) -> list[Operation]:
        return [
            Operation("UpdateState", self.update_state),
            Operation("SubscribeToComponentUpdates", self.subscribe_updates,
                      event_shape="ComponentUpdatePolicyEvents"),
            Operation("DeferComponentUpdate", self.defer),
            Operation("PauseComponent", self.pause),
            Operation("ResumeComponent", self.resume),
        ]

    def update_state(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        state = request.get("state")
        if state not in ("RUNNING", "ERRORED"):
            raise InvalidArgumentsError(f"state must be RUNNING or ERRORED, got {state!r}")
        self.backend.components.report_state(call.component, state)
        return {}

    def subscribe_updates(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        self.backend.update_hub.add(call)
        return {}

    def defer(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        deployment_id = request.get("deploymentId")
        if not deployment_id:
            raise InvalidArgumentsError("Deployment ID is required")
        try:
            self.backend.update_hub.defer(call.component, deployment_id, int(request.get("recheckAfterMs") or 0))
        except NotSubscribedError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        except DeferralRefusedError as exc:
            raise ServiceError(str(exc)) from None
        return {}

    def _target(self, call: Call, request: dict[str, Any], operation: str) -> str:
        name = request.get("componentName")
        if not name:
            raise InvalidArgumentsError("Component name is required.")
        self.server.authorizer.check(call.component, "aws.greengrass.ipc.lifecycle",
                                     f"aws.greengrass#{operation}", name)
        return name

    async def pause(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        await self.backend.components.pause_component(self._target(call, request, "PauseComponent"))
        return {}

    async def resume(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        await self.backend.components.resume_component(self._target(call, request, "ResumeComponent"))
        return {}
