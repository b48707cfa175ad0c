"""ConfigStore: every component's ``configuration`` tree, with a timestamp on every node.

Containers are dicts; everything else (str, number, bool, None, list) is a leaf. Each node carries the
time (float seconds since the epoch) it was last modified; a container's time is the newest time of
anything written below it.

Writes:

* :meth:`ConfigStore.update` — IPC ``UpdateConfiguration`` (spec IPC §4.5): each leaf of
  ``value_to_merge`` is written only if its value differs and the request timestamp is not older than the
  leaf's; afterwards, if the node at ``key_path`` is newer than the request, :class:`StaleUpdateError` is
  raised (leaves that were not stale stay written, as on the Java nucleus).
* :meth:`replace` — a deployment's write of a whole configuration (spec components §4.1), computed with
  the MERGE/RESET rules of :mod:`ggsim.nucleus.config_merge`; :meth:`merge` applies one MERGE that way.

Subscribers (:meth:`subscribe`) are plain synchronous callables, called on the caller's thread (the
loop) after a write has completed, once per changed or removed leaf, with the leaf's path relative to
``configuration``. Unchanged values and timestamp-only touches fire nothing.

Numbers: the Java nucleus parses the JSON of an IPC request with Gson into ``Map<String, Object>``, which
turns every JSON number into a double, so a component that sends ``{"x": 1}`` with UpdateConfiguration
reads back ``{"x": 1.0}``. ggsim mimics that in :meth:`update` (the IPC path) only, when the store is
created with ``java_numbers=True`` (the default): integers there are stored as floats (bools are left
alone). Deployment-time writes keep the values they are given; a deployment that arrived over IPC (a
local deployment) can pass its values through :func:`as_java_numbers` first.

Keys are compared case-sensitively (the Java nucleus folds case for its own keys; components' own keys
are returned in the case they were written, which is what ggsim does too).

When created with ``effective_config`` (``<root>/config/effectiveConfig.yaml``), the store keeps that file
current: a write schedules a rewrite on the running asyncio loop (debounced), or writes at once when no
loop runs; :meth:`flush` writes now.

When created with a ``journal`` (:class:`ggsim.nucleus.config_journal.ConfigJournal`), every change is also
persisted before the write returns, so that a kill of ggsim loses none: an UpdateConfiguration appends its
request to the journal's log, any other write (deployments, rollbacks, removals) writes a new snapshot.
:meth:`load_persisted` reads it back at start-up.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ggsim.files import write_atomically
from ggsim.nucleus import config_merge
from ggsim.nucleus.config_journal import ConfigJournal
from ggsim.nucleus.java_numbers import as_java_numbers
from ggsim.nucleus.nesting import MAX_NESTING_DEPTH, nesting_depth_exceeds

__all__ = [
    "ConfigStore",
    "InvalidUpdateError",
    "StaleUpdateError",
]

log = logging.getLogger(__name__)

KeyPath = list[str]
Callback = Callable[[KeyPath], None]

ACCESS_CONTROL = "accessControl"
# Timestamp given to recipe defaults, so that any later write wins over them (spec components §4.1 step 3).
DEFAULTS_TIMESTAMP = 1.0


class StaleUpdateError(Exception):
    """UpdateConfiguration's timestamp is older than the configuration it targets (IPC §4.5)."""

    def __init__(self, component: str, key_path: KeyPath, timestamp: float, modified: float) -> None:
        super().__init__("Proposed timestamp is older than the config's latest modified timestamp")
        self.component = component
        self.key_path = key_path
        self.timestamp = timestamp
        self.modified = modified


class InvalidUpdateError(ValueError):
    """An UpdateConfiguration request the nucleus refuses (maps to IPC InvalidArgumentsError)."""


@dataclass
class _Leaf:
    value: Any
    ts: float


@dataclass
class _Container:
    ts: float
    children: dict[str, _Leaf | _Container] = field(default_factory=dict)


_Node = _Leaf | _Container


def _same(a: Any, b: Any) -> bool:
    """Equal JSON value: ``1`` and ``1.0`` are the same number; ``True``, ``1`` and ``"1"`` all differ."""
    if a is b:
        return True
    try:
        return json.dumps(as_java_numbers(a), sort_keys=True, default=str) == json.dumps(
            as_java_numbers(b), sort_keys=True, default=str
        )
    except (TypeError, ValueError):
        return a == b


def _check_key_path(key_path: Iterable[str] | None, what: str = "key_path") -> KeyPath:
    if key_path is None:
        return []
    if isinstance(key_path, str):
        raise TypeError(f"{what} must be a list of strings, got the string {key_path!r}")
    path = list(key_path)
    for part in path:
        if not isinstance(part, str):
            raise TypeError(f"{what} must be a list of strings, got element {part!r} in {path!r}")
    return path


def _build(value: Any, ts: float) -> _Node:
    if isinstance(value, Mapping):
        return _Container(ts, {str(k): _build(v, ts) for k, v in value.items()})
    return _Leaf(copy.deepcopy(value), ts)


def _plain(node: _Node) -> Any:
    if isinstance(node, _Leaf):
        return copy.deepcopy(node.value)
    return {k: _plain(child) for k, child in node.children.items()}


def _leaf_paths(node: _Node, prefix: KeyPath) -> list[KeyPath]:
    """Paths of all leaves under ``node`` (an empty container counts as one node)."""
    if isinstance(node, _Leaf) or not node.children:
        return [prefix]
    out: list[KeyPath] = []
    for k, child in node.children.items():
        out.extend(_leaf_paths(child, [*prefix, k]))
    return out


def _dump(node: _Node) -> dict[str, Any]:
    if isinstance(node, _Leaf):
        return {"ts": node.ts, "value": copy.deepcopy(node.value)}
    return {"ts": node.ts, "children": {k: _dump(c) for k, c in node.children.items()}}


def _load(data: Mapping[str, Any], where: str) -> _Node:
    if not isinstance(data, Mapping) or "ts" not in data:
        raise ValueError(f"configuration snapshot at {where}: expected a mapping with 'ts', got {data!r}")
    ts = float(data["ts"])
    if "children" in data:
        children = data["children"]
        if not isinstance(children, Mapping):
            raise ValueError(f"configuration snapshot at {where}: 'children' must be a mapping")
        return _Container(ts, {str(k): _load(v, f"{where}/{k}") for k, v in children.items()})
    if "value" in data:
        return _Leaf(copy.deepcopy(data["value"]), ts)
    raise ValueError(f"configuration snapshot at {where}: expected 'value' or 'children'")


def _diff(old: _Node | None, new: _Node | None, prefix: KeyPath, out: list[KeyPath]) -> None:
    """Append the paths of leaves that differ between two trees (values only, not timestamps)."""
    if old is None and new is None:
        return
    if old is None:
        out.extend(_leaf_paths(new, prefix))  # type: ignore[arg-type]
        return
    if new is None:
        out.extend(_leaf_paths(old, prefix))
        return
    if isinstance(old, _Container) and isinstance(new, _Container):
        for k in old.children:
            _diff(old.children[k], new.children.get(k), [*prefix, k], out)
        for k in new.children:
            if k not in old.children:
                _diff(None, new.children[k], [*prefix, k], out)
        return
    if isinstance(old, _Leaf) and isinstance(new, _Leaf):
        if not _same(old.value, new.value):
            out.append(prefix)
        return
    # a leaf became a container or the other way round
    removed = _leaf_paths(old, prefix)
    added = _leaf_paths(new, prefix)
    out.extend(removed + [p for p in added if p not in removed])


class ConfigStore:
    """Per-component configuration trees; see the module docstring for the rules."""

    def __init__(
        self,
        effective_config: Path | None = None,
        *,
        java_numbers: bool = True,
        debounce: float = 0.2,
        journal: ConfigJournal | None = None,
    ) -> None:
        self._trees: dict[str, _Container] = {}
        self._subs: dict[str, list[tuple[KeyPath, Callback]]] = {}
        self._service_info: dict[str, dict[str, Any]] = {}
        self._effective_config = effective_config
        self._java_numbers = java_numbers
        self._debounce = debounce
        self._write_handle: asyncio.TimerHandle | None = None
        self._written: asyncio.Event | None = None
        #: Increases on every change of any configuration; cheap staleness check for caches.
        self.revision = 0
        self._journal = journal
        self._journal_paused = False

    # ------------------------------------------------------------------ reads

    def components(self) -> list[str]:
        """Names of the components that have a configuration."""
        return sorted(self._trees)

    def has(self, component: str, key_path: Iterable[str] | None = None) -> bool:
        try:
            self._find(component, _check_key_path(key_path))
        except KeyError:
            return False
        return True

    def get(self, component: str, key_path: Iterable[str] | None = None) -> Any:
        """A deep copy of the container (as a dict) or the leaf value; ``KeyError`` if missing."""
        return _plain(self._find(component, _check_key_path(key_path)))

    def timestamp(self, component: str, key_path: Iterable[str] | None = None) -> float:
        """The modification time of a node; ``KeyError`` if missing."""
        return self._find(component, _check_key_path(key_path)).ts

    def access_control(self) -> dict[str, dict]:
        """Component → its ``accessControl`` value (only components that have a mapping there)."""
        out: dict[str, dict] = {}
        for name, tree in self._trees.items():
            node = tree.children.get(ACCESS_CONTROL)
            if isinstance(node, _Container):
                out[name] = _plain(node)
        return out

    def snapshot(self) -> dict:
        """Values and timestamps of every component, as plain JSON/YAML-serialisable data."""
        return {name: _dump(tree) for name, tree in self._trees.items()}

    # ----------------------------------------------------------------- writes

    def update(
        self,
        component: str,
        key_path: Iterable[str] | None,
        value_to_merge: Mapping[str, Any],
        timestamp: float,
    ) -> None:
        """IPC UpdateConfiguration (spec IPC §4.5) on ``component``'s own configuration.

        Raises :class:`InvalidUpdateError` for a request the nucleus refuses and :class:`StaleUpdateError`
        when the node at ``key_path`` is newer than ``timestamp`` after the merge.
        """
        path = _check_key_path(key_path)
        request_path = list(path)
        if timestamp is None:
            raise InvalidUpdateError("Timestamp is required")
        if value_to_merge is None:
            raise InvalidUpdateError("ValueToMerge is required")
        if not isinstance(value_to_merge, Mapping):
            raise InvalidUpdateError(f"valueToMerge must be a JSON object, got {type(value_to_merge).__name__}")
        if (path and path[0] == ACCESS_CONTROL) or (not path and ACCESS_CONTROL in value_to_merge):
            raise InvalidUpdateError(f"Config update is not allowed for following fields [{ACCESS_CONTROL}]")
        if nesting_depth_exceeds(value_to_merge, MAX_NESTING_DEPTH - len(path)):
            raise InvalidUpdateError(f"valueToMerge of {component} at keyPath {path!r} nests deeper than the "
                                     f"limit of {MAX_NESTING_DEPTH} levels of configuration")
        ts = float(timestamp)
        value = as_java_numbers(value_to_merge) if self._java_numbers else value_to_merge
        tree = self._trees.setdefault(component, _Container(DEFAULTS_TIMESTAMP))
        changes: list[KeyPath] = []
        target_path = list(path)

        # Walk to (or create) the container at key_path. A key_path that names a leaf takes
        # {leafName: value}, symmetric with GetConfiguration's answer for a leaf.
        parents: list[_Container] = [tree]
        node: _Container = tree
        for i, part in enumerate(path):
            child = node.children.get(part)
            if isinstance(child, _Leaf):
                if i == len(path) - 1 and set(value) <= {part}:
                    value = dict(value)
                    path = path[:-1]
                    break
                raise InvalidUpdateError(
                    f"keyPath {path!r} of {component}: {'/'.join(path[: i + 1])} is a value, not a container"
                )
            if child is None:
                child = _Container(ts)
                node.children[part] = child
            node = child
            parents.append(node)
        self._merge_into(node, path, value, ts, changes, parents)
        self._log_update(component, request_path, value_to_merge, ts)
        self._changed(component, changes)
        modified = self._find(component, target_path).ts
        if modified > ts:
            raise StaleUpdateError(component, target_path, ts, modified)

    def merge(self, component: str, value: Mapping[str, Any], timestamp: float | None = None) -> None:
        """Deployment MERGE of ``value`` into ``component``'s configuration (the rule of
        :func:`ggsim.nucleus.config_merge.merge_configuration`), written as :meth:`replace` writes: a
        leaf with a newer timestamp than ``timestamp`` (default now) is kept."""
        if not isinstance(value, Mapping):
            raise ValueError(f"configuration merge for {component}: expected a mapping, got {type(value).__name__}")
        tree = self._trees.get(component)
        current = _plain(tree) if tree is not None else {}
        self.replace(component, config_merge.merge_configuration(current, value), timestamp)

    def replace(self, component: str, tree: Mapping[str, Any], timestamp: float | None = None) -> None:
        """Deployment REPLACE: ``configuration`` becomes ``tree``; keys not in it vanish; leaves take
        ``timestamp`` (default now) unless the device holds a newer value, which is kept."""
        if not isinstance(tree, Mapping):
            raise ValueError(f"configuration of {component}: expected a mapping, got {type(tree).__name__}")
        if nesting_depth_exceeds(tree):
            raise ValueError(f"configuration of {component}: nests deeper than the limit of "
                             f"{MAX_NESTING_DEPTH} levels")
        ts = time.time() if timestamp is None else float(timestamp)
        old = self._trees.get(component)

        def build(value: Any, existing: _Node | None) -> _Node:
            if isinstance(value, Mapping):
                prev = existing if isinstance(existing, _Container) else None
                children = {
                    str(k): build(v, prev.children.get(str(k)) if prev else None) for k, v in value.items()
                }
                newest = max([ts, *(c.ts for c in children.values())])
                return _Container(newest, children)
            if isinstance(existing, _Leaf) and existing.ts > ts:
                return _Leaf(copy.deepcopy(existing.value), existing.ts)
            return _Leaf(copy.deepcopy(value), ts)

        self._swap(component, old, build(tree, old))  # type: ignore[arg-type]

    def remove(self, component: str) -> None:
        """Drop a component's configuration (a removed component); subscribers see every leaf removed."""
        old = self._trees.get(component)
        if old is None:
            return
        self._service_info.pop(component, None)
        self._swap(component, old, None)

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Put back a :meth:`snapshot` (values and timestamps); subscribers see the leaves that differ."""
        if not isinstance(snapshot, Mapping):
            raise ValueError(f"configuration snapshot: expected a mapping, got {type(snapshot).__name__}")
        loaded: dict[str, _Container] = {}
        for name, data in snapshot.items():
            node = _load(data, str(name))
            if not isinstance(node, _Container):
                raise ValueError(f"configuration snapshot of {name}: the root must be a container")
            loaded[str(name)] = node
        self._journal_paused = True
        try:
            for name in set(self._trees) | set(loaded):
                self._swap(name, self._trees.get(name), loaded.get(name))
        finally:
            self._journal_paused = False
        self._write_snapshot()

    # ------------------------------------------------------------ persistence

    def load_persisted(self) -> bool:
        """Read the journal's snapshot and replay its log (at start-up); True if there was anything."""
        if self._journal is None:
            return False
        snapshot, entries = self._journal.load()
        if snapshot is None and not entries:
            return False
        self._journal_paused = True
        try:
            if snapshot is not None:
                self.restore(snapshot)
            for entry in entries:
                try:
                    self.update(str(entry["c"]), entry.get("k") or [], entry["v"], float(entry["ts"]))
                except StaleUpdateError:
                    pass  # the leaves that were not stale are written, as when the request came
                except (KeyError, TypeError, ValueError) as exc:
                    log.error("configuration log entry %r cannot be replayed: %s", entry, exc)
        finally:
            self._journal_paused = False
        self._write_snapshot()
        return True

    def _log_update(self, component: str, key_path: KeyPath, value: Mapping[str, Any], ts: float) -> None:
        if self._journal is None or self._journal_paused:
            return
        try:
            self._journal.append({"c": component, "k": key_path, "v": value, "ts": ts})
        except OSError as exc:
            log.error("cannot persist the configuration to %s: %s", self._journal.log_path, exc)
            return
        if self._journal.needs_snapshot():
            self._write_snapshot()

    def _write_snapshot(self) -> None:
        if self._journal is None or self._journal_paused:
            return
        try:
            self._journal.write_snapshot(self.snapshot())
        except OSError as exc:
            log.error("cannot persist the configuration to %s: %s", self._journal.snapshot_path, exc)

    # ---------------------------------------------------------- subscriptions

    def subscribe(self, component: str, key_path: Iterable[str] | None, callback: Callback) -> Callable[[], None]:
        """Call ``callback(changed_path)`` for every changed/removed leaf at or under ``key_path``.

        ``KeyError`` if the node does not exist now. Returns a function that unsubscribes.
        """
        path = _check_key_path(key_path)
        self._find(component, path)
        entry = (path, callback)
        self._subs.setdefault(component, []).append(entry)

        def unsubscribe() -> None:
            subs = self._subs.get(component, [])
            if entry in subs:
                subs.remove(entry)

        return unsubscribe

    # ------------------------------------------------------ effective config

    def set_service_info(self, component: str, info: Mapping[str, Any] | None) -> None:
        """Other ``services.<name>`` fields (version, lifecycle, dependencies…) for effectiveConfig.yaml."""
        if info is None:
            self._service_info.pop(component, None)
        else:
            self._service_info[component] = copy.deepcopy(dict(info))
        self._schedule_write()

    def effective_config(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for name in sorted(set(self._service_info) | set(self._trees)):
            entry = dict(self._service_info.get(name, {}))
            if name in self._trees:
                entry["configuration"] = _plain(self._trees[name])
            services[name] = entry
        return {"services": services}

    def flush(self) -> None:
        """Write effectiveConfig.yaml now (if the store has a path)."""
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
            if self._written is not None:
                self._written.set()
        if self._effective_config is None:
            return
        write_atomically(self._effective_config,
                         yaml.safe_dump(self.effective_config(), sort_keys=False, default_flow_style=False))

    # --------------------------------------------------------------- private

    def _find(self, component: str, path: KeyPath) -> _Node:
        tree = self._trees.get(component)
        if tree is None:
            raise KeyError(component)
        node: _Node = tree
        for part in path:
            if not isinstance(node, _Container) or part not in node.children:
                raise KeyError("/".join([component, *path]))
            node = node.children[part]
        return node

    def _merge_into(
        self,
        node: _Container,
        prefix: KeyPath,
        value: Mapping[str, Any],
        ts: float,
        changes: list[KeyPath],
        parents: list[_Container],
    ) -> None:
        """Merge ``value`` into container ``node``; ``parents`` are the containers from the root down to
        ``node`` (their timestamps advance when something below them changes)."""
        touched = False
        for raw_key, v in value.items():
            k = str(raw_key)
            path = [*prefix, k]
            existing = node.children.get(k)
            if isinstance(v, Mapping):
                if isinstance(existing, _Container):
                    self._merge_into(existing, path, v, ts, changes, [*parents, existing])
                    continue
                if isinstance(existing, _Leaf):
                    if existing.ts > ts:
                        continue
                    changes.append(path)
                new = _Container(ts)
                node.children[k] = new
                touched = True
                self._merge_into(new, path, v, ts, changes, [*parents, new])
                continue
            if isinstance(existing, _Leaf):
                if _same(existing.value, v) or existing.ts > ts:
                    continue
                existing.value = copy.deepcopy(v)
                existing.ts = ts
            elif isinstance(existing, _Container):
                if existing.ts > ts:
                    continue
                changes.extend(p for p in _leaf_paths(existing, path) if p != path)
                node.children[k] = _Leaf(copy.deepcopy(v), ts)
            else:
                node.children[k] = _Leaf(copy.deepcopy(v), ts)
            changes.append(path)
            touched = True
        if touched:
            for container in parents:
                container.ts = max(container.ts, ts)

    def _swap(self, component: str, old: _Container | None, new: _Container | None) -> None:
        changes: list[KeyPath] = []
        _diff(old, new, [], changes)
        if new is None:
            self._trees.pop(component, None)
        else:
            self._trees[component] = new
        self._write_snapshot()
        self._schedule_write()
        self._changed(component, [p for p in changes if p])

    def _changed(self, component: str, changes: list[KeyPath]) -> None:
        if not changes:
            return
        self._schedule_write()
        for path in changes:
            for sub_path, callback in list(self._subs.get(component, [])):
                if path[: len(sub_path)] == sub_path:
                    try:
                        callback(list(path))
                    except Exception:  # one subscriber's bug must not break the write or the others
                        log.exception("configuration subscriber of %s raised for %s", component, path)

    def _schedule_write(self) -> None:
        self.revision += 1  # every write passes here: readers (the IPC authorizer) cache on it
        if self._effective_config is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._write_handle is None:
            self._written = asyncio.Event()
            self._write_handle = loop.call_later(self._debounce, self._write_scheduled)

    def _write_scheduled(self) -> None:
        self._write_handle = None
        try:
            self.flush()
        except OSError:
            log.exception("could not write %s", self._effective_config)
        if self._written is not None:
            self._written.set()

    async def wait_written(self, timeout: float = 5.0) -> None:
        """Wait until a debounced write of effectiveConfig.yaml that is pending has happened."""
        if self._write_handle is not None and self._written is not None:
            await asyncio.wait_for(self._written.wait(), timeout)
