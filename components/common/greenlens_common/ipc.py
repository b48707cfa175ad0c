"""A thin helper over awsiotsdk's GreengrassCoreIPCClientV2 with a timeout on every call.

The V2 client's synchronous calls wait forever for an answer (design §9); every call here uses the
``*_async`` form and waits on its future with a timeout, raising IpcError that names the operation.

Stream callbacks (subscriptions, configuration updates) run on the client's own networking thread, in the
order the nucleus sent the events, not on a thread pool: that saves a thread hand-off per message and keeps
order. A callback must therefore only hand its work off (a mailbox, a queue, an event, call_soon_threadsafe)
and never block or make an IPC call and wait for it: that would stall the connection.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
TOKEN_ENV = "SVCUID"
DEFAULT_TIMEOUT = 10.0


class IpcError(Exception):
    """An IPC call that failed or got no answer in time; the text names the operation and the reason."""


class Subscription(Protocol):
    def close(self) -> Any: ...


def ipc_available() -> bool:
    """True when the process runs under a nucleus (the socket path and token are in its environment)."""
    return bool(os.environ.get(SOCKET_ENV)) and bool(os.environ.get(TOKEN_ENV))


class Ipc:
    """One connection to the nucleus. Create it with :meth:`connect`."""

    #: Publishes sent by publish_json_nowait and not yet answered, at most.
    MAX_UNANSWERED = 16

    def __init__(self, client: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._client = client
        self.timeout = timeout
        self._unanswered = threading.BoundedSemaphore(self.MAX_UNANSWERED)
        self._nowait_error: IpcError | None = None

    @classmethod
    def connect(
        cls, *, timeout: float = DEFAULT_TIMEOUT, socket_path: str | None = None, token: str | None = None
    ) -> Ipc:
        """Connect (and authenticate) within ``timeout`` seconds."""
        from awsiot import greengrasscoreipc
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

        socket_path = socket_path or os.environ.get(SOCKET_ENV)
        token = token or os.environ.get(TOKEN_ENV)
        if not socket_path or not token:
            missing = SOCKET_ENV if not socket_path else TOKEN_ENV
            raise IpcError(f"IPC connect: ${missing} is not set: this process is not running under a "
                           "Greengrass nucleus (for development run the component with --no-ipc)")
        try:
            raw = greengrasscoreipc.connect(ipc_socket=socket_path, authtoken=token, timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise IpcError(f"IPC connect: no answer from the nucleus at {socket_path} within {timeout:g} s") from None
        except Exception as exc:
            raise IpcError(f"IPC connect to {socket_path} failed: {type(exc).__name__}: {exc}") from exc
        return cls(GreengrassCoreIPCClientV2(client=raw, executor=None), timeout)

    def _wait(self, operation: str, future: concurrent.futures.Future[Any], timeout: float | None) -> Any:
        t = self.timeout if timeout is None else timeout
        try:
            return future.result(t)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise IpcError(f"IPC {operation}: no answer from the nucleus within {t:g} s") from None
        except Exception as exc:
            msg = getattr(exc, "message", None) or str(exc)
            raise IpcError(f"IPC {operation} failed: {type(exc).__name__}: {msg}") from exc

    def publish_json(self, topic: str, message: Mapping[str, Any], timeout: float | None = None) -> None:
        """PublishToTopic with a JSON message."""
        self._wait(f"PublishToTopic {topic}", self._publish_json_async(topic, message), timeout)

    def _publish_json_async(self, topic: str, message: Mapping[str, Any]) -> concurrent.futures.Future[Any]:
        from awsiot.greengrasscoreipc import model

        return self._client.publish_to_topic_async(
            topic=topic, publish_message=model.PublishMessage(json_message=model.JsonMessage(message=dict(message)))
        )

    def publish_json_nowait(self, topic: str, message: Mapping[str, Any]) -> None:
        """PublishToTopic without waiting for the answer, for a hot loop: at most MAX_UNANSWERED in flight
        (then it waits, up to the timeout, for one to be answered). Messages still go out in order on the
        one connection. A failed publish is raised as IpcError by the next call, naming the operation."""
        if self._nowait_error is not None:
            raise self._nowait_error
        if not self._unanswered.acquire(timeout=self.timeout):
            raise IpcError(f"IPC PublishToTopic {topic}: {self.MAX_UNANSWERED} publishes unanswered for "
                           f"{self.timeout:g} s")
        try:
            fut = self._publish_json_async(topic, message)
        except Exception:
            self._unanswered.release()
            raise

        def answered(done: concurrent.futures.Future[Any]) -> None:
            self._unanswered.release()
            exc = done.exception()
            if exc is not None and self._nowait_error is None:
                msg = getattr(exc, "message", None) or str(exc)
                self._nowait_error = IpcError(f"IPC PublishToTopic {topic} failed: {type(exc).__name__}: {msg}")

        fut.add_done_callback(answered)

    def publish_to_iot_core(self, topic: str, payload: bytes, qos: int = 0, timeout: float | None = None) -> None:
        """PublishToIoTCore (the nucleus's MQTT connection); ``qos`` 0 (at most once) or 1 (at least once)."""
        from awsiot.greengrasscoreipc import model

        if qos not in (0, 1):
            raise IpcError(f"IPC PublishToIoTCore {topic}: qos {qos!r} is not valid: expected 0 or 1")
        fut = self._client.publish_to_iot_core_async(
            topic_name=topic, qos=model.QOS.AT_MOST_ONCE if qos == 0 else model.QOS.AT_LEAST_ONCE,
            payload=payload, content_type="application/json",
        )
        self._wait(f"PublishToIoTCore {topic}", fut, timeout)

    def subscribe_json(
        self, topic: str, on_message: Callable[[dict[str, Any], str], None], timeout: float | None = None
    ) -> Subscription:
        """SubscribeToTopic; ``on_message(message, topic)`` gets JSON messages (binary ones parsed as JSON)."""

        def on_event(event: Any) -> None:
            if event.json_message is not None:
                ctx = event.json_message.context
                on_message(event.json_message.message, ctx.topic if ctx else topic)
            elif event.binary_message is not None:
                ctx = event.binary_message.context
                on_message(json.loads(event.binary_message.message), ctx.topic if ctx else topic)

        fut, op = self._client.subscribe_to_topic_async(topic=topic, on_stream_event=on_event)
        self._wait(f"SubscribeToTopic {topic}", fut, timeout)
        return op

    def get_configuration(
        self, key_path: list[str] | None = None, component_name: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """GetConfiguration: the component's configuration (or the part under ``key_path``)."""
        fut = self._client.get_configuration_async(component_name=component_name, key_path=key_path or [])
        resp = self._wait("GetConfiguration " + "/".join(key_path or []), fut, timeout)
        return dict(resp.value or {})

    def subscribe_to_configuration_update(
        self, on_update: Callable[[list[str]], None], key_path: list[str] | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """SubscribeToConfigurationUpdate; ``on_update(key_path)`` is called for every changed key."""

        def on_event(event: Any) -> None:
            update = event.configuration_update_event
            if update is not None:
                on_update(list(update.key_path or []))

        fut, op = self._client.subscribe_to_configuration_update_async(
            key_path=key_path or [], on_stream_event=on_event
        )
        self._wait("SubscribeToConfigurationUpdate", fut, timeout)
        return op

    def subscribe_to_validate_configuration_updates(
        self, on_validate: Callable[[dict[str, Any], str], None], timeout: float | None = None,
    ) -> Subscription:
        """SubscribeToValidateConfigurationUpdates; ``on_validate(configuration, deployment_id)`` for each
        deployment that proposes a configuration (answer with :meth:`send_configuration_validity_report`)."""

        def on_event(event: Any) -> None:
            proposed = event.validate_configuration_update_event
            if proposed is not None:
                on_validate(dict(proposed.configuration or {}), str(proposed.deployment_id or ""))

        fut, op = self._client.subscribe_to_validate_configuration_updates_async(on_stream_event=on_event)
        self._wait("SubscribeToValidateConfigurationUpdates", fut, timeout)
        return op

    def send_configuration_validity_report(self, deployment_id: str, accepted: bool, message: str,
                                           timeout: float | None = None) -> None:
        """SendConfigurationValidityReport: ACCEPTED or REJECTED (with why) for a proposed configuration."""
        from awsiot.greengrasscoreipc.model import ConfigurationValidityReport

        report = ConfigurationValidityReport(status="ACCEPTED" if accepted else "REJECTED",
                                             deployment_id=deployment_id, message=message)
        fut = self._client.send_configuration_validity_report_async(configuration_validity_report=report)
        self._wait("SendConfigurationValidityReport", fut, timeout)

    def update_state(self, state: str, timeout: float | None = None) -> None:
        """UpdateState: ``RUNNING`` or ``ERRORED``."""
        if state not in ("RUNNING", "ERRORED"):
            raise IpcError(f"IPC UpdateState: state {state!r} is not valid: expected RUNNING or ERRORED")
        self._wait(f"UpdateState {state}", self._client.update_state_async(state=state), timeout)

    def close(self) -> None:
        try:
            self._client.close(executor_wait=False)
        except Exception:  # closing a connection that already failed
            pass
