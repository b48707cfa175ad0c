"""aws.greengrass.ShadowManager: local shadows, the topics it publishes, and its sync with IoT Core.

Local shadows (classic and named) live in ``<root>/work/aws.greengrass.ShadowManager/shadows.json``,
rewritten (atomically) on every change, so they survive a restart as the real component's database does.
Every Get/Update/Delete publishes its outcome on local pub/sub as ShadowManager does:
``$aws/things/<thing>/shadow[/name/<name>]/{get,update,delete}/{accepted,rejected}``, plus
``update/delta`` and ``update/documents`` after an update.

Synchronisation follows the component's ``synchronize`` configuration (``coreThing`` classic /
``namedShadows``, ``shadowDocuments``, ``direction``): a local change of a synced shadow is published to IoT
Core on the cloud's ``.../update`` topic (``delete`` for a deletion), and a cloud change arriving on
``.../update/documents`` replaces the local state (the local shadow's version goes up by one, as the local
store numbers its own versions). What it does not do is listed in docs/ggsim.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ggsim.files import write_atomically

from ..iotcore import IotCore, MqttMessage, Subscription

__all__ = ["ShadowConflictError", "ShadowError", "ShadowManager", "ShadowNotFoundError", "SyncTargets",
           "shadow_topic"]

log = logging.getLogger(__name__)

MAX_DOCUMENT = 8 * 1024  # IoT shadow document size limit for the state
STORE_FILE = "shadows.json"
STOP_GRACE = 2.0  # seconds stop() waits for sync publishes under way
DIRECTIONS = ("betweenDeviceAndCloud", "deviceToCloud", "cloudToDevice")
#: Where IoT Core announces a cloud shadow's change (classic and named).
CLOUD_DOCUMENT_TOPICS = ("$aws/things/+/shadow/update/documents",
                         "$aws/things/+/shadow/name/+/update/documents")

LocalPublisher = Callable[[str, bytes], None]


class ShadowError(ValueError):
    """A request the shadow service rejects (code 400)."""

    code = 400


class ShadowConflictError(ShadowError):
    code = 409


class ShadowNotFoundError(ShadowError):
    code = 404


def shadow_topic(thing: str, name: str) -> str:
    """The shadow's topic prefix (also its resource name in accessControl)."""
    return f"$aws/things/{thing}/shadow" + (f"/name/{name}" if name else "")


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


@dataclass(frozen=True)
class SyncTargets:
    """The shadows ``synchronize`` names, and in which direction they flow."""

    shadows: frozenset[tuple[str, str]] = frozenset()  # (thing, name); "" is the classic shadow
    direction: str = "betweenDeviceAndCloud"

    @classmethod
    def from_configuration(cls, configuration: Any, core_thing: str) -> SyncTargets:
        """Read ``synchronize``; a malformed part is logged and ignored, as the component ignores it."""
        sync = configuration.get("synchronize") if isinstance(configuration, Mapping) else None
        if not isinstance(sync, Mapping):
            return cls()
        shadows: set[tuple[str, str]] = set()

        def add(thing: str, entry: Any) -> None:
            if not isinstance(entry, Mapping):
                return
            if entry.get("classic", True) in (True, "true"):
                shadows.add((thing, ""))
            for name in entry.get("namedShadows") or []:
                if isinstance(name, str) and name:
                    shadows.add((thing, name))

        add(core_thing, sync.get("coreThing"))
        for entry in sync.get("shadowDocuments") or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("thingName"), str):
                add(entry["thingName"], entry)
        direction = sync.get("direction", "betweenDeviceAndCloud")
        if direction not in DIRECTIONS:
            log.warning("ShadowManager: synchronize.direction %r is not one of %s; using betweenDeviceAndCloud",
                        direction, ", ".join(DIRECTIONS))
            direction = "betweenDeviceAndCloud"
        return cls(frozenset(shadows), direction)

    def to_cloud(self, key: tuple[str, str]) -> bool:
        return key in self.shadows and self.direction != "cloudToDevice"

    def from_cloud(self, key: tuple[str, str]) -> bool:
        return key in self.shadows and self.direction != "deviceToCloud"


@dataclass
class _Shadow:
    desired: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    timestamp: int = 0

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.desired:
            state["desired"] = self.desired
        if self.reported:
            state["reported"] = self.reported
        return state

    def document(self) -> dict[str, Any]:
        state = self.state()
        delta = _delta(self.desired, self.reported)
        if delta:
            state["delta"] = delta
        return {"state": state, "version": self.version, "timestamp": self.timestamp}


class ConfigurationSource(Protocol):
    def get(self, component: str, key_path: list[str] | None = None) -> Any: ...



class ShadowManager:
    """The local shadow store with its topics and cloud sync. Call `start` on the loop that runs IoT Core."""

    COMPONENT = "aws.greengrass.ShadowManager"

    def __init__(self, folder: Path | None, core_thing: str, iotcore: IotCore | None = None,
                 config: ConfigurationSource | None = None) -> None:
        self._file = folder / STORE_FILE if folder is not None else None
        self._core_thing = core_thing
        self._iotcore = iotcore
        self._config = config
        self._shadows: dict[tuple[str, str], _Shadow] = self._load()
        self._publish_local: LocalPublisher | None = None
        self._cloud_subscriptions: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- wiring

    def attach_local_pubsub(self, publish: LocalPublisher) -> None:
        """Where the topics go (the IPC pub/sub service attaches itself)."""
        self._publish_local = publish

    async def start(self) -> None:
        """Listen for cloud shadow changes (which of them count is read from the configuration each time)."""
        self._loop = asyncio.get_running_loop()
        if self._iotcore is None:
            return
        for topic in CLOUD_DOCUMENT_TOPICS:
            self._cloud_subscriptions.append(await self._iotcore.subscribe(topic, 1, self._on_cloud_documents))

    async def stop(self) -> None:
        for subscription in self._cloud_subscriptions:
            subscription.cancel()
        self._cloud_subscriptions.clear()
        if self._tasks:  # let the cloud publishes under way finish, briefly
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sync(self) -> SyncTargets:
        """The component's current ``synchronize`` configuration (deployments change it at any time)."""
        configuration: Any = {}
        if self._config is not None:
            with contextlib.suppress(KeyError):
                configuration = self._config.get(self.COMPONENT, [])
        return SyncTargets.from_configuration(configuration, self._core_thing)

    # ---------------------------------------------------------------- operations

    def get(self, thing: str, name: str) -> dict[str, Any]:
        shadow = self._shadows.get((thing, name))
        if shadow is None:
            error = self._missing(thing, name)
            self._publish(thing, name, "get/rejected", self._rejection(error, None))
            raise error
        document = shadow.document()
        self._publish(thing, name, "get/accepted", document)
        return document

    def update(self, thing: str, name: str, request: Any) -> dict[str, Any]:
        """Apply an UpdateThingShadow document; returns the accepted document. Raises `ShadowError`."""
        token = request.get("clientToken") if isinstance(request, dict) else None
        try:
            accepted, previous, current = self._apply(thing, name, request)
        except ShadowError as error:
            self._publish(thing, name, "update/rejected", self._rejection(error, token))
            raise
        self._after_update(thing, name, accepted, previous, current)
        if self._sync().to_cloud((thing, name)):
            self._to_cloud(shadow_topic(thing, name) + "/update",
                           {"state": {k: v for k, v in accepted["state"].items() if k in ("desired", "reported")}})
        return accepted

    def delete(self, thing: str, name: str) -> dict[str, Any]:
        shadow = self._shadows.pop((thing, name), None)
        if shadow is None:
            error = self._missing(thing, name)
            self._publish(thing, name, "delete/rejected", self._rejection(error, None))
            raise error
        self._save()
        answer = {"version": shadow.version, "timestamp": int(time.time())}
        self._publish(thing, name, "delete/accepted", answer)
        if self._sync().to_cloud((thing, name)):
            self._to_cloud(shadow_topic(thing, name) + "/delete", {})
        return answer

    def names(self, thing: str) -> list[str]:
        return sorted(n for t, n in self._shadows if t == thing and n)

    # ---------------------------------------------------------------- internals

    def _apply(self, thing: str, name: str, request: Any
               ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
        if not isinstance(request, dict):
            raise ShadowError("Invalid JSON: the shadow document must be a JSON object")
        state = request.get("state")
        if not isinstance(state, dict):
            raise ShadowError("Invalid JSON: the shadow document must have a state object")
        existing = self._shadows.get((thing, name))
        shadow = existing or _Shadow()
        if "version" in request and request["version"] != shadow.version:
            raise ShadowConflictError(f"Version conflict: the shadow is at version {shadow.version}, "
                                      f"the update names {request['version']}")
        previous = existing.document() if existing is not None else None
        desired, reported = dict(shadow.desired), dict(shadow.reported)
        for part in ("desired", "reported"):
            if part not in state:
                continue
            value = state[part]
            if value is not None and not isinstance(value, dict):
                raise ShadowError(f"state.{part} must be an object or null")
            base = desired if part == "desired" else reported
            merged = {} if value is None else _merge(base, value)
            if part == "desired":
                desired = merged
            else:
                reported = merged
        updated = _Shadow(desired, reported, shadow.version + 1, int(time.time()))
        if len(json.dumps(updated.state())) > MAX_DOCUMENT:
            raise ShadowError(f"The shadow state would exceed {MAX_DOCUMENT} bytes")
        self._shadows[(thing, name)] = updated
        self._save()
        accepted: dict[str, Any] = {"state": state, "version": updated.version, "timestamp": updated.timestamp}
        if "clientToken" in request:
            accepted["clientToken"] = request["clientToken"]
        return accepted, previous, updated.document()

    def _after_update(self, thing: str, name: str, accepted: dict[str, Any], previous: dict[str, Any] | None,
                      current: dict[str, Any]) -> None:
        self._publish(thing, name, "update/accepted", accepted)
        delta = current["state"].get("delta")
        if delta and "desired" in accepted["state"]:
            self._publish(thing, name, "update/delta", {"state": delta, "version": current["version"],
                                                        "timestamp": current["timestamp"]})
        documents: dict[str, Any] = {"previous": _without_delta(previous), "current": _without_delta(current),
                                     "timestamp": current["timestamp"]}
        if "clientToken" in accepted:
            documents["clientToken"] = accepted["clientToken"]
        self._publish(thing, name, "update/documents", documents)

    def _on_cloud_documents(self, message: MqttMessage) -> None:
        """A cloud change: its current state replaces the local one (unless it is what the device has)."""
        key = _shadow_of_documents_topic(message.topic)
        if key is None or not self._sync().from_cloud(key):
            return
        try:
            body = json.loads(message.payload)
            state = body["current"]["state"]
        except (ValueError, KeyError, TypeError):
            log.warning("ShadowManager: ignored a cloud shadow message on %s that is not an update/documents "
                        "document", message.topic)
            return
        existing = self._shadows.get(key)
        desired = state.get("desired") or {}
        reported = state.get("reported") or {}
        if existing is not None and existing.desired == desired and existing.reported == reported:
            return
        request = {"state": {"desired": desired or None, "reported": reported or None}}
        try:
            accepted, previous, current = self._apply(key[0], key[1], request)
        except ShadowError as exc:
            log.warning("ShadowManager: could not apply the cloud shadow from %s: %s", message.topic, exc)
            return
        self._after_update(key[0], key[1], accepted, previous, current)

    def _to_cloud(self, topic: str, body: dict[str, Any]) -> None:
        if self._iotcore is None or self._loop is None:
            return
        message = MqttMessage(topic, json.dumps(body).encode(), qos=1, timestamp=time.time())
        self._spawn(self._publish_cloud(message))

    async def _publish_cloud(self, message: MqttMessage) -> None:
        assert self._iotcore is not None
        try:
            await self._iotcore.publish(message)
        except Exception as exc:  # the real component queues and retries; ggsim logs the loss
            log.warning("ShadowManager: could not sync %s to IoT Core: %s", message.topic, exc)

    def _publish(self, thing: str, name: str, suffix: str, body: dict[str, Any]) -> None:
        if self._publish_local is not None:
            self._publish_local(f"{shadow_topic(thing, name)}/{suffix}", json.dumps(body).encode())

    @staticmethod
    def _rejection(error: ShadowError, token: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"code": error.code, "message": str(error), "timestamp": int(time.time())}
        if token is not None:
            body["clientToken"] = token
        return body

    @staticmethod
    def _missing(thing: str, name: str) -> ShadowNotFoundError:
        what = f"named shadow {name}" if name else "classic shadow"
        return ShadowNotFoundError(f"No shadow exists with name: {what} of thing {thing}")

    def _load(self) -> dict[tuple[str, str], _Shadow]:
        if self._file is None or not self._file.exists():
            return {}
        try:
            entries = json.loads(self._file.read_text(encoding="utf-8"))
            return {(e["thingName"], e["shadowName"]): _Shadow(e["desired"], e["reported"], e["version"],
                                                               e["timestamp"]) for e in entries}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self._file}: cannot read the local shadows: {exc}") from exc

    def _save(self) -> None:
        if self._file is None:
            return
        entries = [{"thingName": t, "shadowName": n, "desired": s.desired, "reported": s.reported,
                    "version": s.version, "timestamp": s.timestamp} for (t, n), s in sorted(self._shadows.items())]
        write_atomically(self._file, json.dumps(entries))


def _without_delta(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if document is None:
        return None
    state = {k: v for k, v in document["state"].items() if k != "delta"}
    return {"state": state, "version": document["version"]}


def _shadow_of_documents_topic(topic: str) -> tuple[str, str] | None:
    """(thing, name) of a ``.../update/documents`` topic; name "" for the classic shadow."""
    levels = topic.split("/")
    if levels[:2] != ["$aws", "things"] or levels[3:4] != ["shadow"] or levels[-2:] != ["update", "documents"]:
        return None
    if len(levels) == 6:
        return levels[2], ""
    if len(levels) == 8 and levels[4] == "name":
        return levels[2], levels[5]
    return None
