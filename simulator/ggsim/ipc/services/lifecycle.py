"""Lifecycle over IPC (spec §4.6): UpdateState, component-update notices and deferrals."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import InvalidArgumentsError, ServiceError
from ..server import Call, Operation, Service

log = logging.getLogger("ggsim.ipc.lifecycle")


class UpdateHub:
    """Tells subscribed components about a deployment before and after it, and collects deferrals."""

    def __init__(self) -> None:
        self._subscribers: list[Call] = []
        self._deployment_id: str | None = None
        self._answers: dict[str, asyncio.Future[int]] = {}

    def add(self, call: Call) -> None:
        self._subscribers.append(call)
        call.on_close(lambda: self._subscribers.remove(call) if call in self._subscribers else None)

    def subscribed(self, component: str) -> bool:
        return any(c.component == component for c in self._subscribers)

    async def notify_pre_update(self, deployment_id: str, timeout: float = 60.0,
                                is_ggc_restarting: bool = False) -> None:
        """Send preUpdateEvent and wait until every subscriber is ready, deferrals honoured."""
        loop = asyncio.get_running_loop()
        while self._subscribers:
            self._deployment_id = deployment_id
            self._answers = {c.component: loop.create_future() for c in self._subscribers}
            event = {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": is_ggc_restarting}}
            for call in list(self._subscribers):
                call.send_event(event)
            done, pending = await asyncio.wait(self._answers.values(), timeout=timeout)
            self._deployment_id = None
            if pending:
                log.warning("deployment %s: no answer to the update notice from %s within %.0f s; going ahead",
                            deployment_id, ", ".join(c for c, f in self._answers.items() if f in pending), timeout)
            defer_ms = max((f.result() for f in done), default=0)
            if defer_ms <= 0:
                return
            log.info("deployment %s deferred by %d ms", deployment_id, defer_ms)
            await asyncio.sleep(defer_ms / 1000)

    def notify_post_update(self, deployment_id: str) -> None:
        for call in list(self._subscribers):
            call.send_event({"postUpdateEvent": {"deploymentId": deployment_id}})

    def defer(self, component: str, deployment_id: str, recheck_after_ms: int) -> None:
        if not self.subscribed(component):
            raise InvalidArgumentsError("Component is not subscribed to component update events")
        future = self._answers.get(component)
        if self._deployment_id != deployment_id or future is None or future.done():
            raise ServiceError("Time limit to respond to PreComponentUpdateEvent exceeded")
        future.set_result(max(0, recheck_after_ms))


class LifecycleService(Service):
    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.update_hub = UpdateHub()
        server.kernel.update_hub = self.update_hub

    def operations(self) -> list[Operation]:
        ops = [
            Operation("UpdateState", self.update_state),
            Operation("SubscribeToComponentUpdates", self.subscribe_updates,
                      event_shape="ComponentUpdatePolicyEvents"),
            Operation("DeferComponentUpdate", self.defer),
        ]
        if hasattr(self.kernel, "pause_component"):
            ops += [Operation("PauseComponent", self.pause), Operation("ResumeComponent", self.resume)]
        return ops

    def update_state(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        state = request.get("state")
        if state not in ("RUNNING", "ERRORED"):
            raise InvalidArgumentsError(f"state must be RUNNING or ERRORED, got {state!r}")
        self.kernel.report_state(call.component, state)
        return {}

    def subscribe_updates(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        self.update_hub.add(call)
        return {}

    def defer(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        deployment_id = request.get("deploymentId")
        if not deployment_id:
            raise InvalidArgumentsError("Deployment ID is required")
        self.update_hub.defer(call.component, deployment_id, int(request.get("recheckAfterMs") or 0))
        return {}

    def _target(self, call: Call, request: dict[str, Any], operation: str) -> str:
        name = request.get("componentName")
        if not name:
            raise InvalidArgumentsError("Component name is required.")
        self.server.authorizer.check(call.component, "aws.greengrass.ipc.lifecycle",
                                     f"aws.greengrass#{operation}", name)
        return name

    async def pause(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        await self.kernel.pause_component(self._target(call, request, "PauseComponent"))
        return {}

    async def resume(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        await self.kernel.resume_component(self._target(call, request, "ResumeComponent"))
        return {}
