"""Deployments: the queue, root-component bookkeeping, configuration MERGE/RESET, activation, rollback.

Reference: spec components §4.1 (configuration resolution) and §5 (deployments). Two request shapes:

* local (greengrass-cli / IPC CreateLocalDeployment): `recipeDirectoryPath`, `artifactsDirectoryPath`,
  `rootComponentVersionsToAdd`, `rootComponentsToRemove`, `componentToConfiguration`
  (`{name: {"MERGE": {...}, "RESET": ["/ptr"]}}`), `groupName` (default LOCAL_DEPLOYMENT),
  `failureHandlingPolicy` ROLLBACK | DO_NOTHING (default DO_NOTHING). It starts from the group's roots
  at their running versions, removes, then adds.
* cloud (CreateDeployment body): `targetArn`, `components: {name: {componentVersion, configurationUpdate:
  {merge: "<JSON string>", reset: [...]}, runWith}}`, `deploymentPolicies` (failureHandlingPolicy default
  ROLLBACK, componentUpdatePolicy, configurationValidationPolicy). Its component set replaces the target's.
  Recipes come from the component store (or an optional `recipeDirectoryPath`/`artifactsDirectoryPath`,
  a ggsim extension: it never downloads).

The pure planning functions (`parse_request`, `next_group_roots`, `resolve_configuration`,
`plan_deployment`) do not need a kernel; `DeploymentManager` runs them one deployment at a time and
drives the kernel.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import semantic_version

from ggsim.nucleus.java_numbers import as_java_numbers
from ggsim.nucleus.platform import detect_platform
from ggsim.nucleus.pointer import PointerError, parse_pointer
from ggsim.nucleus.recipe import Recipe, RecipeError
from ggsim.nucleus.resolver import ResolutionError, resolve
from ggsim.nucleus.store import Store, StoreError

log = logging.getLogger(__name__)

LOCAL_GROUP = "LOCAL_DEPLOYMENT"
NUCLEUS_COMPONENT = "aws.greengrass.Nucleus"
CLI_COMPONENT = "aws.greengrass.Cli"  # ggsim serves the CLI's IPC operations itself
DEFAULT_NUCLEUS_VERSION = "2.14.0"
FAILURE_POLICIES = ("ROLLBACK", "DO_NOTHING")
HEALTHY_STATES = ("RUNNING", "FINISHED")
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "CANCELED")
HISTORY_LIMIT = 50
STATE_FILE = "ggsim-state.json"
HISTORY_FILE = "ggsim-history.json"
CONFIG_SNAPSHOT_FILE = "ggsim-config-snapshot.json"


class DeploymentRequestError(ValueError):
    """A deployment request that is malformed; the message names the field, the value and what is expected."""

    field_name: str = ""

    def __init__(self, field_name: str, reason: str) -> None:
        self.field_name = field_name
        super().__init__(f"{field_name}: {reason}" if field_name else reason)


class InvalidRecipeDirectoryPathError(DeploymentRequestError):
    """`recipeDirectoryPath` does not name a readable directory."""


class InvalidArtifactsDirectoryPathError(DeploymentRequestError):
    """`artifactsDirectoryPath` does not name a readable directory."""


class DeploymentError(Exception):
    """A deployment that cannot be applied; `error_type` is a short code for deploymentErrorTypes."""

    def __init__(self, message: str, error_type: str = "DEPLOYMENT_ERROR") -> None:
        super().__init__(message)
        self.error_type = error_type


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class ConfigurationUpdate:
    merge: dict[str, Any] | None = None
    reset: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeploymentDocument:
    """A deployment request, validated and normalised."""

    deployment_id: str
    kind: str  # "LOCAL" or "CLOUD"
    group: str
    created_on: float  # seconds since the epoch; the configuration timestamp
    failure_policy: str
    add: dict[str, str] = field(default_factory=dict)  # local: roots to add/update
    remove: tuple[str, ...] = ()  # local: roots to remove
    components: dict[str, str] | None = None  # cloud: the target's complete root set
    config_updates: dict[str, ConfigurationUpdate] = field(default_factory=dict)
    run_with: dict[str, dict[str, Any]] = field(default_factory=dict)
    recipe_dir: Path | None = None
    artifact_dir: Path | None = None
    notify_components: bool = False
    update_timeout: float = 60.0
    validation_timeout: float = 20.0


def _expect_mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DeploymentRequestError(name, f"expected an object, got {type(value).__name__} {value!r}")
    return dict(value)


def _expect_string(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise DeploymentRequestError(name, f"expected a non-empty string, got {value!r}")
    return value


def _expect_version(value: Any, name: str) -> str:
    text = _expect_string(value, name)
    try:
        semantic_version.Version(text)
    except ValueError:
        raise DeploymentRequestError(
            name, f"{text!r} is not a component version; expected major.minor.patch such as '1.0.0'"
        ) from None
    return text


def _expect_pointers(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise DeploymentRequestError(name, f"expected a list of JSON pointers like ['/a/b', ''], got {value!r}")
    for pointer in value:
        try:
            parse_pointer(pointer)
        except PointerError as exc:
            raise DeploymentRequestError(name, str(exc)) from None
    return tuple(value)


def _expect_directory(value: Any, name: str, error: type[DeploymentRequestError]) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise error(name, f"expected a directory path string, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise error(name, f"{value!r} is not an existing directory")
    return path.resolve()


def _expect_timeout(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise DeploymentRequestError(name, f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def is_cloud_request(request: Mapping[str, Any]) -> bool:
    return "components" in request or "targetArn" in request


def parse_request(request: Mapping[str, Any], deployment_id: str | None = None,
                  now: float | None = None) -> DeploymentDocument:
    """Validate a local or cloud deployment request (see the module docstring)."""
    if not isinstance(request, Mapping):
        raise DeploymentRequestError("", f"a deployment request is an object, got {type(request).__name__}")
    deployment_id = deployment_id or str(uuid.uuid4())
    now = time.time() if now is None else now
    if is_cloud_request(request):
        return _parse_cloud(request, deployment_id, now)
    return _parse_local(request, deployment_id, now)


_LOCAL_FIELDS = {
    "groupName", "rootComponentVersionsToAdd", "rootComponentsToRemove", "componentToConfiguration",
    "configurationUpdate", "componentToRunWithInfo", "recipeDirectoryPath", "artifactsDirectoryPath",
    "failureHandlingPolicy",
}


def _parse_local(request: Mapping[str, Any], deployment_id: str, now: float) -> DeploymentDocument:
    unknown = sorted(set(request) - _LOCAL_FIELDS)
    if unknown:
        raise DeploymentRequestError(
            unknown[0], f"unknown field in a local deployment request; expected some of {sorted(_LOCAL_FIELDS)}"
        )
    group = request.get("groupName") or LOCAL_GROUP
    group = _expect_string(group, "groupName")
    add = {}
    for name, version in _expect_mapping(request.get("rootComponentVersionsToAdd"), "rootComponentVersionsToAdd").items():
        add[name] = _expect_version(version, f"rootComponentVersionsToAdd.{name}")
    remove_value = request.get("rootComponentsToRemove") or []
    if not isinstance(remove_value, list) or not all(isinstance(n, str) and n for n in remove_value):
        raise DeploymentRequestError("rootComponentsToRemove", f"expected a list of component names, got {remove_value!r}")
    updates: dict[str, ConfigurationUpdate] = {}
    for key in ("componentToConfiguration", "configurationUpdate"):
        for name, update in _expect_mapping(request.get(key), key).items():
            where = f"{key}.{name}"
            update = _expect_mapping(update, where)
            extra = sorted(set(update) - {"MERGE", "RESET"})
            if extra:
                raise DeploymentRequestError(
                    f"{where}.{extra[0]}", "unknown key; a configuration update has MERGE (an object) and/or RESET "
                    "(a list of JSON pointers), upper-case"
                )
            merge = update.get("MERGE")
            if merge is not None and not isinstance(merge, Mapping):
                raise DeploymentRequestError(f"{where}.MERGE", f"expected an object, got {merge!r}")
            updates[name] = ConfigurationUpdate(
                merge=as_java_numbers(dict(merge)) if merge is not None else None,
                reset=_expect_pointers(update.get("RESET"), f"{where}.RESET"),
            )
    policy = request.get("failureHandlingPolicy") or "DO_NOTHING"
    if policy not in FAILURE_POLICIES:
        raise DeploymentRequestError("failureHandlingPolicy", f"{policy!r} is not ROLLBACK or DO_NOTHING (upper-case)")
    run_with = {
        name: _expect_mapping(info, f"componentToRunWithInfo.{name}")
        for name, info in _expect_mapping(request.get("componentToRunWithInfo"), "componentToRunWithInfo").items()
    }
    return DeploymentDocument(
        deployment_id=deployment_id,
        kind="LOCAL",
        group=group,
        created_on=now,
        failure_policy=policy,
        add=add,
        remove=tuple(remove_value),
        config_updates=updates,
        run_with=run_with,
        recipe_dir=_expect_directory(request.get("recipeDirectoryPath"), "recipeDirectoryPath",
                                     InvalidRecipeDirectoryPathError),
        artifact_dir=_expect_directory(request.get("artifactsDirectoryPath"), "artifactsDirectoryPath",
                                       InvalidArtifactsDirectoryPathError),
        notify_components=False,
        validation_timeout=20.0,
    )


def group_from_target_arn(arn: str) -> str:
    """`arn:aws:iot:<r>:<acct>:thing/<name>` -> `thing/<name>`; `...:thinggroup/<name>` -> `thinggroup/<name>`."""
    resource = arn.split(":", 5)[-1] if arn.startswith("arn:") else arn
    if not (resource.startswith("thing/") or resource.startswith("thinggroup/")) or resource.endswith("/"):
        raise DeploymentRequestError(
            "targetArn", f"{arn!r} is not a thing or thing group ARN (arn:aws:iot:<region>:<account>:thing/<name> "
            "or ...:thinggroup/<name>)"
        )
    return resource


def _parse_cloud(request: Mapping[str, Any], deployment_id: str, now: float) -> DeploymentDocument:
    arn = request.get("targetArn")
    group = group_from_target_arn(_expect_string(arn, "targetArn")) if arn is not None else "thing/ggsim-core"
    components: dict[str, str] = {}
    updates: dict[str, ConfigurationUpdate] = {}
    run_with: dict[str, dict[str, Any]] = {}
    for name, spec in _expect_mapping(request.get("components"), "components").items():
        where = f"components.{name}"
        spec = _expect_mapping(spec, where)
        components[name] = _expect_version(spec.get("componentVersion"), f"{where}.componentVersion")
        if spec.get("configurationUpdate") is not None:
            cu = _expect_mapping(spec["configurationUpdate"], f"{where}.configurationUpdate")
            merge = None
            if cu.get("merge") is not None:
                raw = cu["merge"]
                if not isinstance(raw, str):
                    raise DeploymentRequestError(
                        f"{where}.configurationUpdate.merge",
                        f"expected a JSON object serialised as a string, got {type(raw).__name__}",
                    )
                try:
                    merge = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DeploymentRequestError(f"{where}.configurationUpdate.merge", f"invalid JSON: {exc}") from exc
                if not isinstance(merge, dict):
                    raise DeploymentRequestError(f"{where}.configurationUpdate.merge", "the JSON must be an object")
            updates[name] = ConfigurationUpdate(
                merge=merge, reset=_expect_pointers(cu.get("reset"), f"{where}.configurationUpdate.reset")
            )
        if spec.get("runWith") is not None:
            run_with[name] = _expect_mapping(spec["runWith"], f"{where}.runWith")
    policies = _expect_mapping(request.get("deploymentPolicies"), "deploymentPolicies")
    policy = policies.get("failureHandlingPolicy") or "ROLLBACK"
    if policy not in FAILURE_POLICIES:
        raise DeploymentRequestError(
            "deploymentPolicies.failureHandlingPolicy", f"{policy!r} is not ROLLBACK or DO_NOTHING (upper-case)"
        )
    update_policy = _expect_mapping(policies.get("componentUpdatePolicy"), "deploymentPolicies.componentUpdatePolicy")
    action = update_policy.get("action") or "NOTIFY_COMPONENTS"
    if action not in ("NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"):
        raise DeploymentRequestError(
            "deploymentPolicies.componentUpdatePolicy.action",
            f"{action!r} is not NOTIFY_COMPONENTS or SKIP_NOTIFY_COMPONENTS",
        )
    validation = _expect_mapping(policies.get("configurationValidationPolicy"),
                                 "deploymentPolicies.configurationValidationPolicy")
    return DeploymentDocument(
        deployment_id=deployment_id,
        kind="CLOUD",
        group=group,
        created_on=now,
        failure_policy=policy,
        components=components,
        config_updates=updates,
        run_with=run_with,
        recipe_dir=_expect_directory(request.get("recipeDirectoryPath"), "recipeDirectoryPath",
                                     InvalidRecipeDirectoryPathError),
        artifact_dir=_expect_directory(request.get("artifactsDirectoryPath"), "artifactsDirectoryPath",
                                       InvalidArtifactsDirectoryPathError),
        notify_components=action == "NOTIFY_COMPONENTS",
        update_timeout=_expect_timeout(update_policy.get("timeoutInSeconds"),
                                       "deploymentPolicies.componentUpdatePolicy.timeoutInSeconds", 60.0),
        validation_timeout=_expect_timeout(validation.get("timeoutInSeconds"),
                                           "deploymentPolicies.configurationValidationPolicy.timeoutInSeconds", 30.0),
    )


# --------------------------------------------------------------------------- planning


def next_group_roots(
    groups: Mapping[str, Mapping[str, str]], doc: DeploymentDocument, running: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """The root components of every group after `doc` (spec §5.1, §5.2).

    Local: the group's roots at their running versions, minus `remove`, plus `add`.
    Cloud: the target's roots become exactly `components`. An emptied group disappears.
    """
    out = {g: dict(roots) for g, roots in groups.items()}
    if doc.kind == "CLOUD":
        roots = dict(doc.components or {})
    else:
        roots = {name: running.get(name, version) for name, version in out.get(doc.group, {}).items()}
        for name in doc.remove:
            roots.pop(name, None)
        roots.update(doc.add)
    if roots:
        out[doc.group] = roots
    else:
        out.pop(doc.group, None)
    return out


def merged_roots(groups: Mapping[str, Mapping[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Union of the groups' roots: name -> version and name -> who pinned it. Two groups pinning different
    versions of one component is an error naming both."""
    roots: dict[str, str] = {}
    owners: dict[str, str] = {}
    first_group: dict[str, str] = {}
    for group in sorted(groups):
        for name, version in groups[group].items():
            if name in roots and roots[name] != version:
                raise DeploymentError(
                    f"Component {name} is a root of group {first_group[name]} at version {roots[name]} "
                    f"and of group {group} at version {version}; no version satisfies both",
                    "NO_AVAILABLE_COMPONENT_VERSION",
                )
            roots[name] = version
            first_group.setdefault(name, group)
            owners.setdefault(name, f"deployment group {group}")
    return roots, owners


def _remove_pointer(tree: dict[str, Any], pointer: str, component: str) -> dict[str, Any]:
    if pointer == "":
        return {}
    parts = parse_pointer(pointer)
    node: Any = tree
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            if isinstance(node, list):
                log.error("reset of %s: pointer %r goes into a list; only whole lists can be reset", component, pointer)
            return tree
        node = node[part]
    if isinstance(node, dict):
        node.pop(parts[-1], None)
    elif isinstance(node, list):
        log.error("reset of %s: pointer %r goes into a list; only whole lists can be reset", component, pointer)
    return tree


def _fill_missing(tree: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, value in defaults.items():
        if key not in tree:
            tree[key] = copy.deepcopy(value)
        elif isinstance(tree[key], dict) and isinstance(value, Mapping):
            _fill_missing(tree[key], value)


def _merge(tree: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = copy.deepcopy(value) if not isinstance(value, Mapping) else copy.deepcopy(dict(value))


def resolve_configuration(
    current: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    update: ConfigurationUpdate | None = None,
    component: str = "",
) -> dict[str, Any]:
    """Spec components §4.1: current configuration → remove `reset` pointers → fill what is missing from the
    recipe defaults → merge `merge` (objects recursively; lists and scalars replace)."""
    tree: dict[str, Any] = copy.deepcopy(dict(current)) if current else {}
    if update is not None:
        for pointer in update.reset:
            tree = _remove_pointer(tree, pointer, component)
    _fill_missing(tree, defaults)
    if update is not None and update.merge:
        _merge(tree, update.merge)
    return tree


@dataclass
class DeploymentPlan:
    """What a deployment will do, computed before anything changes."""

    groups: dict[str, dict[str, str]]
    target: dict[str, Recipe]
    configurations: dict[str, dict[str, Any]]
    added: list[str]
    removed: list[str]
    updated: list[str]  # version changed
    unchanged: list[str]

    @property
    def versions(self) -> dict[str, str]:
        return {name: recipe.version for name, recipe in self.target.items()}


def plan_deployment(
    doc: DeploymentDocument,
    groups: Mapping[str, Mapping[str, str]],
    current: Mapping[str, Recipe],
    current_configurations: Mapping[str, Mapping[str, Any]],
    store: Store,
    platform: Mapping[str, str],
    builtin: Mapping[str, str] | None = None,
) -> DeploymentPlan:
    """Import the request's recipes and artifacts into `store`, resolve versions, load recipes for `platform`,
    prepare artifacts and compute every component's new configuration. Raises `DeploymentError`."""
    builtin = dict(builtin or {})
    try:
        if doc.recipe_dir is not None:
            store.import_recipes(doc.recipe_dir)
        if doc.artifact_dir is not None:
            store.import_artifacts(doc.artifact_dir)
    except RecipeError as exc:
        raise DeploymentError(str(exc), "COMPONENT_RECIPE_ERROR") from exc
    except StoreError as exc:
        raise DeploymentError(str(exc), "ARTIFACT_ERROR") from exc

    running = {name: recipe.version for name, recipe in current.items()}
    new_groups = next_group_roots(groups, doc, running)
    for group_name in list(new_groups):
        for name in [n for n in new_groups[group_name] if n in builtin]:
            # Real deployment documents often list the nucleus (and the CLI); ggsim is both.
            log.warning("deployment %s: %s %s is provided by ggsim itself (version %s); ignored",
                        doc.deployment_id, name, new_groups[group_name][name], builtin[name])
            del new_groups[group_name][name]
        if not new_groups[group_name]:
            del new_groups[group_name]
    roots, owners = merged_roots(new_groups)

    loaded: dict[tuple[str, str], Recipe] = {}

    def load(name: str, version: str) -> Recipe:
        key = (name, version)
        if key not in loaded:
            loaded[key] = store.load(name, version, platform)
        return loaded[key]

    try:
        versions = resolve(roots, store.versions, load, active=running, builtin=builtin, root_owner=owners)
        target = {name: load(name, version) for name, version in versions.items()}
    except ResolutionError as exc:
        raise DeploymentError(str(exc), "NO_AVAILABLE_COMPONENT_VERSION") from exc
    except RecipeError as exc:
        raise DeploymentError(str(exc), "COMPONENT_RECIPE_ERROR") from exc
    except StoreError as exc:
        raise DeploymentError(str(exc), "COMPONENT_RECIPE_ERROR") from exc

    try:
        for recipe in target.values():
            store.prepare_artifacts(recipe, doc.artifact_dir)
    except StoreError as exc:
        raise DeploymentError(str(exc), "ARTIFACT_ERROR") from exc

    own_roots = new_groups.get(doc.group, {})
    configurations: dict[str, dict[str, Any]] = {}
    for name, recipe in target.items():
        update = doc.config_updates.get(name) if name in own_roots else None
        configurations[name] = resolve_configuration(
            current_configurations.get(name), recipe.default_configuration, update, name
        )
    ignored = sorted(set(doc.config_updates) - set(own_roots))
    if ignored:
        log.warning("deployment %s: configuration updates for %s ignored: only root components of group %s "
                    "receive configuration updates", doc.deployment_id, ", ".join(ignored), doc.group)

    added = sorted(set(target) - set(current))
    removed = sorted(set(current) - set(target))
    updated = sorted(n for n in set(target) & set(current) if target[n].version != current[n].version)
    unchanged = sorted(n for n in set(target) & set(current) if target[n].version == current[n].version)
    return DeploymentPlan(groups=new_groups, target=target, configurations=configurations, added=added,
                          removed=removed, updated=updated, unchanged=unchanged)


# --------------------------------------------------------------------------- the manager


def _now_ms_text(seconds: float) -> str:
    return str(int(seconds * 1000))


class DeploymentManager:
    """`kernel.deployments`: one deployment at a time from a queue, with persisted state and history."""

    def __init__(self, kernel: Any, *, health_timeout: float = 600.0, store: Store | None = None) -> None:
        self._kernel = kernel
        self.store = store or getattr(kernel, "store", None) or Store(kernel.root)
        self.health_timeout = health_timeout
        self._groups: dict[str, dict[str, str]] = {}
        self._target: dict[str, Recipe] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._done: dict[str, asyncio.Event] = {}
        self._queue: asyncio.Queue[DeploymentDocument] | None = None
        self._worker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- public API

    @property
    def groups(self) -> dict[str, dict[str, str]]:
        """Root components per deployment group (group -> name -> version)."""
        return copy.deepcopy(self._groups)

    @property
    def target(self) -> dict[str, Recipe]:
        """The components the last deployment left running (name -> recipe)."""
        return dict(self._target)

    def create(self, request: Mapping[str, Any]) -> str:
        """Validate and queue a deployment; returns its id. Raises `DeploymentRequestError` for a bad request."""
        doc = parse_request(request)
        self._ensure_worker()
        record = {
            "deploymentId": doc.deployment_id,
            "status": "QUEUED",
            "createdOn": _now_ms_text(doc.created_on),
            "groupName": doc.group,
        }
        self._records[doc.deployment_id] = record
        self._order.append(doc.deployment_id)
        self._done[doc.deployment_id] = asyncio.Event()
        self._trim_history()
        assert self._queue is not None
        self._queue.put_nowait(doc)
        return doc.deployment_id

    def status(self, deployment_id: str) -> dict[str, Any] | None:
        record = self._records.get(deployment_id)
        return copy.deepcopy(record) if record is not None else None

    def list(self) -> list[dict[str, Any]]:
        """Every remembered deployment, oldest first."""
        return [copy.deepcopy(self._records[i]) for i in self._order]

    async def wait(self, deployment_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the deployment has finished (SUCCEEDED or FAILED); returns its status."""
        event = self._done.get(deployment_id)
        if event is None:
            raise KeyError(f"no deployment with id {deployment_id!r}")
        await asyncio.wait_for(event.wait(), timeout)
        return self.status(deployment_id) or {}

    async def restore(self) -> None:
        """At start-up: load persisted groups, target, configuration and history; re-apply the target."""
        state = self._read_json(self.store.layout.deployments_dir / STATE_FILE, {})
        history = self._read_json(self.store.layout.deployments_dir / HISTORY_FILE, [])
        for record in history if isinstance(history, list) else []:
            if not isinstance(record, dict) or "deploymentId" not in record:
                continue
            if record.get("status") not in TERMINAL_STATUSES:
                record["status"] = "FAILED"
                record["failureCause"] = "ggsim stopped before the deployment finished"
                record["deploymentStatusDetails"] = {
                    "detailedDeploymentStatus": "FAILED_NO_STATE_CHANGE",
                    "deploymentFailureCause": record["failureCause"],
                    "deploymentErrorStack": ["DEPLOYMENT_INTERRUPTED"],
                    "deploymentErrorTypes": ["DEPLOYMENT_INTERRUPTED"],
                }
            self._records[record["deploymentId"]] = record
            self._order.append(record["deploymentId"])
            event = asyncio.Event()
            event.set()
            self._done[record["deploymentId"]] = event
        if not isinstance(state, dict):
            return
        groups = state.get("groups", {})
        if isinstance(groups, dict):
            self._groups = {str(g): {str(n): str(v) for n, v in roots.items()}
                            for g, roots in groups.items() if isinstance(roots, dict)}
        config = self._read_json(self.store.layout.config_dir / CONFIG_SNAPSHOT_FILE, None)
        if isinstance(config, dict) and not self._kernel.config.components():
            self._kernel.config.restore(config)
        target: dict[str, Recipe] = {}
        for name, version in (state.get("target") or {}).items():
            try:
                target[name] = self.store.load(name, version, self._platform())
            except (RecipeError, StoreError) as exc:
                log.error("cannot restore %s %s: %s", name, version, exc)
        self._target = target
        if target:
            try:
                await self._kernel.apply(dict(target))
            except Exception:  # one bad component must not stop the simulator from starting
                log.exception("re-applying the persisted deployment failed")

    def persist(self) -> None:
        """Write groups, target, configuration snapshot and history under the root (also after each deployment)."""
        state = {
            "groups": self._groups,
            "target": {name: recipe.version for name, recipe in self._target.items()},
        }
        self._write_json(self.store.layout.deployments_dir / STATE_FILE, state)
        self._write_json(self.store.layout.config_dir / CONFIG_SNAPSHOT_FILE, self._kernel.config.snapshot())
        self._write_json(self.store.layout.deployments_dir / HISTORY_FILE, self.list())

    async def close(self) -> None:
        """Stop the worker (a running deployment is cancelled) and persist."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        self.persist()

    # ----------------------------------------------------------------- worker

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(), name="ggsim-deployments")

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            doc = await self._queue.get()
            try:
                await self._run(doc)
            except asyncio.CancelledError:
                self._finish(doc.deployment_id, "FAILED", "FAILED_NO_STATE_CHANGE",
                             "the deployment was cancelled because ggsim is stopping", "DEPLOYMENT_INTERRUPTED")
                raise
            except Exception as exc:  # a bug must not kill the queue
                log.exception("deployment %s failed unexpectedly", doc.deployment_id)
                self._finish(doc.deployment_id, "FAILED", "FAILED_NO_STATE_CHANGE",
                             f"internal error: {type(exc).__name__}: {exc}", "INTERNAL_ERROR")
            finally:
                self._queue.task_done()

    def _platform(self) -> dict[str, str]:
        platform = getattr(self._kernel, "platform", None)
        return dict(platform) if platform else detect_platform()

    def _builtin(self) -> dict[str, str]:
        version = str(getattr(self._kernel, "nucleus_version", DEFAULT_NUCLEUS_VERSION))
        builtin = {NUCLEUS_COMPONENT: version, CLI_COMPONENT: version}
        builtin.update(getattr(self._kernel, "builtin_components", None) or {})
        return builtin

    def _current_configurations(self) -> dict[str, dict[str, Any]]:
        config = self._kernel.config
        out: dict[str, dict[str, Any]] = {}
        for name in config.components():
            try:
                value = config.get(name, [])
            except KeyError:
                continue
            if isinstance(value, dict):
                out[name] = value
        return out

    async def _run(self, doc: DeploymentDocument) -> None:
        record = self._records[doc.deployment_id]
        record["status"] = "IN_PROGRESS"
        kernel = self._kernel
        previous_target = dict(self._target)
        previous_groups = copy.deepcopy(self._groups)
        current_configs = self._current_configurations()
        try:
            plan = await asyncio.to_thread(
                plan_deployment, doc, previous_groups, previous_target, current_configs, self.store,
                self._platform(), self._builtin(),
            )
        except DeploymentError as exc:
            self._finish(doc.deployment_id, "FAILED", "FAILED_NO_STATE_CHANGE", str(exc), exc.error_type)
            return
        record["components"] = plan.versions

        if doc.kind == "CLOUD":
            rejection = await self._cloud_checks(doc, plan)
            if rejection is not None:
                self._finish(doc.deployment_id, "FAILED", "FAILED_NO_STATE_CHANGE", rejection,
                             "COMPONENT_CONFIGURATION_INVALID")
                return

        config_before = kernel.config.snapshot()
        self._write_configurations(plan, doc.created_on)
        self._groups = plan.groups
        self._target = dict(plan.target)
        failure = await self._activate(plan.target)
        if failure is None:
            for name in plan.removed:
                kernel.config.remove(name)
            self._finish(doc.deployment_id, "SUCCEEDED", "SUCCESSFUL", None, None)
            hub = getattr(kernel, "update_hub", None)
            if doc.kind == "CLOUD" and doc.notify_components and hub is not None:
                hub.notify_post_update(doc.deployment_id)
            return

        if doc.failure_policy == "DO_NOTHING":
            for name in plan.removed:
                kernel.config.remove(name)
            self._finish(doc.deployment_id, "FAILED", "FAILED_ROLLBACK_NOT_REQUESTED", failure, "COMPONENT_BROKEN")
            return
        # ROLLBACK: the previous target and configuration, exactly.
        kernel.config.restore(config_before)
        self._groups = previous_groups
        self._target = previous_target
        rollback_failure = await self._activate(previous_target)
        if rollback_failure is None:
            self._finish(doc.deployment_id, "FAILED", "FAILED_ROLLBACK_COMPLETE",
                         f"{failure}; rolled back to the previous deployment", "COMPONENT_BROKEN")
        else:
            self._finish(doc.deployment_id, "FAILED", "FAILED_UNABLE_TO_ROLLBACK",
                         f"{failure}; the rollback also failed: {rollback_failure}", "COMPONENT_BROKEN")

    async def _cloud_checks(self, doc: DeploymentDocument, plan: DeploymentPlan) -> str | None:
        """Component update notification and configuration validation (cloud deployments only)."""
        kernel = self._kernel
        hub = getattr(kernel, "update_hub", None)
        if doc.notify_components and hub is not None:
            await hub.notify_pre_update(doc.deployment_id, doc.update_timeout)
        validator = getattr(kernel, "validation_hub", None)
        if validator is None:
            return None
        for name in sorted(plan.target):
            answer = await validator.validate(name, plan.configurations[name], doc.deployment_id,
                                              doc.validation_timeout)
            if answer is None:
                continue
            status, message = answer
            if str(status).upper() == "REJECTED":
                return f"Component {name} rejected the configuration: {message}"
        return None

    def _write_configurations(self, plan: DeploymentPlan, timestamp: float) -> None:
        config = self._kernel.config
        for name in sorted(plan.target):
            config.replace(name, plan.configurations[name], timestamp)

    async def _activate(self, target: dict[str, Recipe]) -> str | None:
        """Apply `target` and wait for health; returns None when healthy, else why not."""
        kernel = self._kernel
        try:
            await kernel.apply(dict(target))
            if not target:
                return None
            states = await kernel.wait_healthy(sorted(target), self.health_timeout)
        except Exception as exc:
            log.exception("activation failed")
            return f"activation failed: {type(exc).__name__}: {exc}"
        bad = {name: state for name, state in states.items() if state not in HEALTHY_STATES}
        missing = sorted(set(target) - set(states))
        if not bad and not missing:
            return None
        parts = [f"{name} is {state}" for name, state in sorted(bad.items())]
        parts += [f"{name} has no state" for name in missing]
        broken = [name for name, state in bad.items() if state == "BROKEN"]
        if broken:
            return "Service(s) broken after the deployment: " + ", ".join(parts)
        return f"Service(s) not RUNNING or FINISHED after {self.health_timeout:g} s: " + ", ".join(parts)

    def _finish(self, deployment_id: str, status: str, detailed: str, cause: str | None,
                error_type: str | None) -> None:
        record = self._records.get(deployment_id)
        if record is None:
            return
        record["status"] = status
        details: dict[str, Any] = {"detailedDeploymentStatus": detailed}
        if cause is not None:
            record["failureCause"] = cause
            details["deploymentFailureCause"] = cause
            details["deploymentErrorStack"] = [error_type or "DEPLOYMENT_FAILURE"]
            details["deploymentErrorTypes"] = [error_type or "DEPLOYMENT_FAILURE"]
        record["deploymentStatusDetails"] = details
        if cause:
            log.error("deployment %s %s (%s): %s", deployment_id, status, detailed, cause)
        else:
            log.info("deployment %s %s", deployment_id, status)
        try:
            self.persist()
        except OSError as exc:
            log.error("cannot persist the deployment state: %s", exc)
        event = self._done.get(deployment_id)
        if event is not None:
            event.set()

    def _trim_history(self) -> None:
        while len(self._order) > HISTORY_LIMIT:
            oldest = self._order[0]
            if self._records[oldest].get("status") not in TERMINAL_STATUSES:
                break
            self._order.pop(0)
            self._records.pop(oldest, None)
            self._done.pop(oldest, None)

    # -------------------------------------------------------------- files

    @staticmethod
    def _read_json(path: Path, default: Any) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s); ignoring it", path, exc)
            return default

    @staticmethod
    def _write_json(path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


__all__ = [
    "ConfigurationUpdate",
    "DeploymentDocument",
    "DeploymentError",
    "DeploymentManager",
    "DeploymentPlan",
    "DeploymentRequestError",
    "InvalidArtifactsDirectoryPathError",
    "InvalidRecipeDirectoryPathError",
    "LOCAL_GROUP",
    "merged_roots",
    "next_group_roots",
    "parse_request",
    "plan_deployment",
    "resolve_configuration",
]
