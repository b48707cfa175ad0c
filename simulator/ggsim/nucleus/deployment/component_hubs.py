"""What a deployment tells and asks the components (spec IPC §4.5, §4.6; components §5.4 steps 3-4).

* `UpdateHub`: components that subscribed to component updates get a preUpdateEvent before a cloud
  deployment changes anything and may defer it; a postUpdateEvent after it succeeded.
* `ValidationHub`: components that subscribed to configuration validation are sent the configuration a
  deployment would give them and answer ACCEPTED or REJECTED.

A subscriber is anything that can receive events and say when it goes away (`EventSubscriber`); the IPC
server's `Call` is one. The IPC services only add subscribers and pass answers on; the deployment service
drives the hubs. Nothing here knows about sockets or the wire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

__all__ = [
    "DeferralRefusedError",
    "EventSubscriber",
    "NotSubscribedError",
    "UpdateHub",
    "ValidationHub",
]

log = logging.getLogger(__name__)


class EventSubscriber(Protocol):
    """One component's subscription: events go to it until it closes."""

    @property
    def component(self) -> str: ...

    def send_event(self, body: dict[str, Any]) -> bool:
        """Deliver one event; False if it could not be delivered (closed or dropped)."""
        ...

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the subscription ends."""
        ...


class NotSubscribedError(Exception):
    """DeferComponentUpdate from a component that did not subscribe to component updates."""


class DeferralRefusedError(Exception):
    """DeferComponentUpdate for a notice that is not waiting for an answer (late, or another deployment)."""


class UpdateHub:
    """Tells subscribed components about a deployment before and after it, and collects deferrals."""

    def __init__(self) -> None:
        self._subscribers: list[EventSubscriber] = []
        self._deployment_id: str | None = None
        self._answers: dict[str, asyncio.Future[int]] = {}

    def add(self, subscriber: EventSubscriber) -> None:
        self._subscribers.append(subscriber)
        subscriber.on_close(lambda: self._subscribers.remove(subscriber) if subscriber in self._subscribers
                            else None)

    def subscribed(self, component: str) -> bool:
        return any(s.component == component for s in self._subscribers)

    async def notify_pre_update(self, deployment_id: str, timeout: float = 60.0,
                                is_ggc_restarting: bool = False) -> None:
        """Send preUpdateEvent and wait until every subscriber is ready, deferrals honoured."""
        loop = asyncio.get_running_loop()
        while self._subscribers:
            self._deployment_id = deployment_id
            self._answers = {s.component: loop.create_future() for s in self._subscribers}
            event = {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": is_ggc_restarting}}
            for subscriber in list(self._subscribers):
                subscriber.send_event(event)
            try:
                done, pending = await asyncio.wait(self._answers.values(), timeout=timeout)
            finally:  # answered, timed out or the deployment cancelled: no deferral is awaited any more
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
        for subscriber in list(self._subscribers):
            subscriber.send_event({"postUpdateEvent": {"deploymentId": deployment_id}})

    def defer(self, component: str, deployment_id: str, recheck_after_ms: int) -> None:
        """The component's answer to the notice: ready (0) or check again after ``recheck_after_ms``."""
        if not self.subscribed(component):
            raise NotSubscribedError("Component is not subscribed to component update events")
        future = self._answers.get(component)
        if self._deployment_id != deployment_id or future is None or future.done():
            raise DeferralRefusedError("Time limit to respond to PreComponentUpdateEvent exceeded")
        future.set_result(max(0, recheck_after_ms))


class ValidationHub:
    """Deployments ask subscribed components to accept or reject a new configuration."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[EventSubscriber]] = {}
        self._waiting: dict[tuple[str, str], asyncio.Future[tuple[str, str | None]]] = {}

    def add(self, subscriber: EventSubscriber) -> None:
        subscribers = self._subscribers.setdefault(subscriber.component, [])
        subscribers.append(subscriber)
        subscriber.on_close(lambda: subscribers.remove(subscriber) if subscriber in subscribers else None)

    def subscribed(self, component: str) -> bool:
        return bool(self._subscribers.get(component))

    async def validate(self, component: str, configuration: dict[str, Any], deployment_id: str,
                       timeout: float = 60.0) -> tuple[str, str | None] | None:
        """(status, message) from the component, or None when it does not validate configurations."""
        subscribers = self._subscribers.get(component)
        if not subscribers:
            return None
        future: asyncio.Future[tuple[str, str | None]] = asyncio.get_running_loop().create_future()
        self._waiting[(component, deployment_id)] = future
        event = {"validateConfigurationUpdateEvent": {"configuration": configuration,
                                                      "deploymentId": deployment_id}}
        for subscriber in list(subscribers):
            subscriber.send_event(event)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            log.warning("%s did not answer the configuration validation of deployment %s within %.0f s",
                        component, deployment_id, timeout)
            return ("REJECTED", f"no validity report within {timeout:.0f} s")
        finally:
            self._waiting.pop((component, deployment_id), None)

    def report(self, component: str, deployment_id: str, status: str, message: str | None) -> bool:
        """The component's answer; False when no validation of that deployment is waiting for it."""
        future = self._waiting.get((component, deployment_id))
        if future is None or future.done():
            return False
        future.set_result((status, message))
        return True
