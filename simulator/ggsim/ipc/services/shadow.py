"""Local shadow operations (spec §4.8) over aws.greengrass.ShadowManager's stand-in (ggsim.aws.shadows).

Parse, authorize on the shadow's topic, call the ShadowManager, serialise. The service also gives the
ShadowManager its way to publish on local pub/sub (binary messages, as the component publishes them).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from ...aws.shadows import MAX_DOCUMENT, ShadowConflictError, ShadowError, ShadowNotFoundError, shadow_topic
from ..errors import ConflictError, InvalidArgumentsError, ResourceNotFoundError
from ..server import Call, IpcServer, Operation, Service

SERVICE_ID = "aws.greengrass.ShadowManager"


class ShadowService(Service):
    def __init__(self, server: IpcServer) -> None:
        super().__init__(server)
        self.backend.shadows.attach_local_pubsub(self._publish_local)

    def _publish_local(self, topic: str, payload: bytes) -> None:
        bus = self.server.services["pubsub"].bus  # type: ignore[attr-defined]
        context = {"topic": topic}

        def body() -> bytes:
            return json.dumps({"binaryMessage": {"message": base64.b64encode(payload).decode(), "context": context}},
                              separators=(",", ":")).encode()

        bus.publish(topic, SERVICE_ID, body)

    def operations(self) -> list[Operation]:
        return [
            Operation("GetThingShadow", self.get),
            Operation("UpdateThingShadow", self.update),
            Operation("DeleteThingShadow", self.delete),
            Operation("ListNamedShadowsForThing", self.list_named),
        ]

    def _target(self, call: Call, request: dict[str, Any], operation: str) -> tuple[str, str]:
        thing = request.get("thingName")
        if not thing:
            raise InvalidArgumentsError("ThingName is required")
        name = request.get("shadowName") or ""
        self.server.authorizer.check(call.component, SERVICE_ID, f"aws.greengrass#{operation}",
                                     shadow_topic(thing, name))
        return thing, name

    def get(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing, name = self._target(call, request, "GetThingShadow")
        with _as_ipc_errors(thing, name):
            document = self.backend.shadows.get(thing, name)
        return {"payload": _encode(document)}

    def update(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing, name = self._target(call, request, "UpdateThingShadow")
        try:
            raw = base64.b64decode(request.get("payload") or "", validate=True)
            if len(raw) > MAX_DOCUMENT:
                raise InvalidArgumentsError(f"The shadow document is {len(raw)} bytes; the limit is {MAX_DOCUMENT}")
            patch = json.loads(raw)
        except (binascii.Error, ValueError):
            raise InvalidArgumentsError("Invalid JSON: payload must be a base64 JSON shadow document") from None
        with _as_ipc_errors(thing, name):
            accepted = self.backend.shadows.update(thing, name, patch)
        return {"payload": _encode(accepted)}

    def delete(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing, name = self._target(call, request, "DeleteThingShadow")
        with _as_ipc_errors(thing, name):
            self.backend.shadows.delete(thing, name)
        return {"payload": ""}

    def list_named(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing = request.get("thingName")
        if not thing:
            raise InvalidArgumentsError("ThingName is required")
        self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#ListNamedShadowsForThing", thing)
        page_size = int(request.get("pageSize") or 25)
        if not 1 <= page_size <= 100:
            raise InvalidArgumentsError(f"pageSize must be 1..100, got {page_size}")
        names = self.backend.shadows.names(thing)
        start = 0
        if request.get("nextToken"):
            try:
                start = int(base64.b64decode(request["nextToken"]).decode())
            except (binascii.Error, ValueError):
                raise InvalidArgumentsError("nextToken is not one this service returned") from None
        page = names[start : start + page_size]
        response: dict[str, Any] = {"results": page, "timestamp": time.time()}
        if start + page_size < len(names):
            response["nextToken"] = base64.b64encode(str(start + page_size).encode()).decode()
        return response


def _encode(document: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


@contextlib.contextmanager
def _as_ipc_errors(thing: str, name: str) -> Iterator[None]:
    """The ShadowManager's errors as the IPC errors the real component answers with."""
    try:
        yield
    except ShadowNotFoundError as exc:
        raise ResourceNotFoundError(str(exc), resourceType="Shadow", resourceName=shadow_topic(thing, name)) from None
    except ShadowConflictError as exc:
        raise ConflictError(str(exc)) from None
    except ShadowError as exc:
        raise InvalidArgumentsError(str(exc)) from None
