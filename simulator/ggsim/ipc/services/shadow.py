"""Local shadows (spec §4.8), as aws.greengrass.ShadowManager serves them: an in-memory shadow store."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from ..errors import ConflictError, InvalidArgumentsError, ResourceNotFoundError
from ..server import Call, IpcServer, Operation, Service

SERVICE_ID = "aws.greengrass.ShadowManager"
MAX_DOCUMENT = 8 * 1024  # IoT shadow document size limit for the state


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Shadow merge: objects merge, null deletes a key, other values replace."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _delta(desired: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    for key, value in desired.items():
        if isinstance(value, dict) and isinstance(reported.get(key), dict):
            sub = _delta(value, reported[key])
            if sub:
                delta[key] = sub
        elif reported.get(key) != value:
            delta[key] = value
    return delta


class ShadowStore:
    def __init__(self) -> None:
        self.shadows: dict[tuple[str, str], dict[str, Any]] = {}

    def document(self, thing: str, name: str) -> dict[str, Any] | None:
        shadow = self.shadows.get((thing, name))
        if shadow is None:
            return None
        state: dict[str, Any] = {}
        if shadow["desired"]:
            state["desired"] = shadow["desired"]
        if shadow["reported"]:
            state["reported"] = shadow["reported"]
        delta = _delta(shadow["desired"], shadow["reported"])
        if delta:
            state["delta"] = delta
        return {"state": state, "version": shadow["version"], "timestamp": shadow["timestamp"]}

    def update(self, thing: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        state = patch.get("state")
        if not isinstance(state, dict):
            raise InvalidArgumentsError("Invalid JSON: the shadow document must have a state object")
        shadow = self.shadows.get((thing, name)) or {"desired": {}, "reported": {}, "version": 0, "timestamp": 0}
        if "version" in patch and patch["version"] != shadow["version"]:
            raise ConflictError(f"Version conflict: the shadow is at version {shadow['version']}, "
                                f"the update names {patch['version']}")
        for part in ("desired", "reported"):
            value = state.get(part)
            if part in state and value is None:
                shadow[part] = {}
            elif isinstance(value, dict):
                shadow[part] = _merge(shadow[part], value)
            elif part in state:
                raise InvalidArgumentsError(f"state.{part} must be an object or null")
        shadow["version"] += 1
        shadow["timestamp"] = int(time.time())
        self.shadows[(thing, name)] = shadow
        accepted: dict[str, Any] = {"state": state, "version": shadow["version"], "timestamp": shadow["timestamp"]}
        if "clientToken" in patch:
            accepted["clientToken"] = patch["clientToken"]
        return accepted

    def delete(self, thing: str, name: str) -> bool:
        return self.shadows.pop((thing, name), None) is not None

    def names(self, thing: str) -> list[str]:
        return sorted(n for t, n in self.shadows if t == thing and n)


def _resource(thing: str, name: str) -> str:
    return f"$aws/things/{thing}/shadow" + (f"/name/{name}" if name else "")


class ShadowService(Service):
    def __init__(self, server: IpcServer) -> None:
        super().__init__(server)
        self.store = ShadowStore()

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
                                     _resource(thing, name))
        return thing, name

    def _missing(self, thing: str, name: str) -> ResourceNotFoundError:
        what = f"named shadow {name}" if name else "classic shadow"
        return ResourceNotFoundError(f"No shadow exists with name: {what} of thing {thing}",
                                     resourceType="Shadow", resourceName=_resource(thing, name))

    def get(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing, name = self._target(call, request, "GetThingShadow")
        document = self.store.document(thing, name)
        if document is None:
            raise self._missing(thing, name)
        return {"payload": base64.b64encode(json.dumps(document).encode()).decode()}

    def update(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing, name = self._target(call, request, "UpdateThingShadow")
        try:
            raw = base64.b64decode(request.get("payload") or "", validate=True)
            if len(raw) > MAX_DOCUMENT:
                raise InvalidArgumentsError(f"The shadow document is {len(raw)} bytes; the limit is {MAX_DOCUMENT}")
            patch = json.loads(raw)
        except (binascii.Error, ValueError):
            raise InvalidArgumentsError("Invalid JSON: payload must be a base64 JSON shadow document") from None
        if not isinstance(patch, dict):
            raise InvalidArgumentsError("Invalid JSON: the shadow document must be a JSON object")
        accepted = self.store.update(thing, name, patch)
        return {"payload": base64.b64encode(json.dumps(accepted).encode()).decode()}

    def delete(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing, name = self._target(call, request, "DeleteThingShadow")
        if not self.store.delete(thing, name):
            raise self._missing(thing, name)
        return {"payload": ""}

    def list_named(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        thing = request.get("thingName")
        if not thing:
            raise InvalidArgumentsError("ThingName is required")
        self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#ListNamedShadowsForThing", thing)
        page_size = int(request.get("pageSize") or 25)
        if not 1 <= page_size <= 100:
            raise InvalidArgumentsError(f"pageSize must be 1..100, got {page_size}")
        names = self.store.names(thing)
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
