"""A component process for tests: drives the real awsiotsdk IPC client from JSON lines on stdin.

It connects exactly as a Greengrass component does (SVCUID and the socket path variable from its
environment) and answers each command line `{"id", "op", "request", "api"}` with one line
`{"id", "ok": <response payload>}` or `{"id", "error": {"type", "message"}}`. `op` is the SDK's operation
name in snake case (`publish_to_topic`); `request` is the request shape's JSON payload (camelCase, as on
the wire); `api` is "v2" (GreengrassCoreIPCClientV2) or "v1" (connect() and new_<op>()). Stream events
come as `{"stream": id, "event": <payload>}`, `{"stream": id, "error": {...}}` and `{"stream": id,
"closed": true}`. `{"op": "close_stream", "stream": id}` closes one; `{"op": "exit"}` ends the process.
"""

from __future__ import annotations

import inspect
import json
import sys
import threading
import traceback
from typing import Any

from awsiot.greengrasscoreipc import client as v1client
from awsiot.greengrasscoreipc import connect, model
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

_out = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    with _out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def error_of(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": getattr(exc, "message", None) or str(exc)}


def camel(op: str) -> str:
    return "".join(part.title() for part in op.split("_")).replace("IotCore", "IoTCore")


class Agent:
    def __init__(self) -> None:
        self._v2: GreengrassCoreIPCClientV2 | None = None
        self._v1: v1client.GreengrassCoreIPCClient | None = None
        self.streams: dict[int, Any] = {}
        self._next_stream = 0

    @property
    def v2(self) -> GreengrassCoreIPCClientV2:
        if self._v2 is None:
            # Stream events are queued from the client's own thread, in the order they arrive (the default
            # thread pool could reorder them, and tests check the order the nucleus keeps).
            self._v2 = GreengrassCoreIPCClientV2(executor=None)
        return self._v2

    @property
    def v1(self) -> v1client.GreengrassCoreIPCClient:
        if self._v1 is None:
            self._v1 = connect()
        return self._v1

    def _stream_id(self) -> int:
        self._next_stream += 1
        return self._next_stream

    def handlers(self, sid: int) -> dict[str, Any]:
        def on_event(event: Any) -> None:
            emit({"stream": sid, "event": event._to_payload()})

        def on_error(exc: Exception) -> bool:
            emit({"stream": sid, "error": error_of(exc)})
            return True

        def on_closed() -> None:
            emit({"stream": sid, "closed": True})

        return {"on_stream_event": on_event, "on_stream_error": on_error, "on_stream_closed": on_closed}

    def call(self, op: str, payload: dict[str, Any], api: str) -> dict[str, Any]:
        shape = camel(op)
        request = getattr(model, f"{shape}Request")._from_payload(payload)
        streaming = op.startswith("subscribe_to")  # every streaming operation, and only those
        result: dict[str, Any] = {}
        if api == "v2":
            method = getattr(self.v2, op)
            params = inspect.signature(method).parameters
            kwargs = {name: getattr(request, name) for name in params if hasattr(request, name)}
            if streaming:
                sid = self._stream_id()
                kwargs.update(self.handlers(sid))
                response, operation = method(**kwargs)
                self.streams[sid] = operation
                result["stream"] = sid
            else:
                response = method(**kwargs)
        else:
            if streaming:
                sid = self._stream_id()
                callbacks = self.handlers(sid)

                class Handler(getattr(v1client, f"{shape}StreamHandler")):  # type: ignore[misc]
                    def on_stream_event(self, event: Any) -> None:
                        callbacks["on_stream_event"](event)

                    def on_stream_error(self, error: Exception) -> bool:
                        return callbacks["on_stream_error"](error)

                    def on_stream_closed(self) -> None:
                        callbacks["on_stream_closed"]()

                operation = getattr(self.v1, f"new_{op}")(Handler())
                self.streams[sid] = operation
                result["stream"] = sid
            else:
                operation = getattr(self.v1, f"new_{op}")()
            operation.activate(request).result(10)
            response = operation.get_response().result(10)
        result["response"] = response._to_payload() if response is not None else None
        return result

    def run(self) -> None:
        emit({"ready": True})
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            cid = command.get("id")
            op = command["op"]
            if op == "exit":
                break
            try:
                if op == "close_stream":
                    self.streams.pop(command["stream"]).close()
                    emit({"id": cid, "ok": {}})
                    continue
                emit({"id": cid, "ok": self.call(op, command.get("request") or {}, command.get("api", "v2"))})
            except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
                if not hasattr(exc, "message") and not type(exc).__module__.startswith("awsiot"):
                    traceback.print_exc(file=sys.stderr)
                emit({"id": cid, "error": error_of(exc)})
        for client in (self._v2, self._v1):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001
                    pass


if __name__ == "__main__":
    try:
        Agent().run()
    except Exception as exc:  # noqa: BLE001 - e.g. a rejected connection
        emit({"fatal": error_of(exc)})
        sys.exit(1)
