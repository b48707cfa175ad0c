"""A deployment request, validated: the document a deployment runs from (spec components §5).

Two request shapes:

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

`parse_request` is pure: it turns either shape into a `DeploymentDocument` or raises
`DeploymentRequestError`, whose message names the field.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import semantic_version

from ggsim.nucleus.java_numbers import as_java_numbers
from ggsim.nucleus.pointer import PointerError, parse_pointer
from ggsim.nucleus.run_with import RunWithError, check_run_with

__all__ = [
    "ConfigurationUpdate",
    "DeploymentDocument",
    "DeploymentRequestError",
    "FAILURE_POLICIES",
    "InvalidArtifactsDirectoryPathError",
    "InvalidRecipeDirectoryPathError",
    "LOCAL_GROUP",
    "group_from_target_arn",
    "is_cloud_request",
    "parse_request",
]

LOCAL_GROUP = "LOCAL_DEPLOYMENT"
FAILURE_POLICIES = ("ROLLBACK", "DO_NOTHING")


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


def _checked_run_with(value: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return check_run_with(value, where)
    except RunWithError as exc:
        raise DeploymentRequestError(exc.field, exc.reason) from None


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
    fields = _parse_cloud(request) if is_cloud_request(request) else _parse_local(request)
    return DeploymentDocument(
        deployment_id=deployment_id or str(uuid.uuid4()),
        created_on=time.time() if now is None else now,
        recipe_dir=_expect_directory(request.get("recipeDirectoryPath"), "recipeDirectoryPath",
                                     InvalidRecipeDirectoryPathError),
        artifact_dir=_expect_directory(request.get("artifactsDirectoryPath"), "artifactsDirectoryPath",
                                       InvalidArtifactsDirectoryPathError),
        **fields,
    )


_LOCAL_FIELDS = {
    "groupName", "rootComponentVersionsToAdd", "rootComponentsToRemove", "componentToConfiguration",
    "configurationUpdate", "componentToRunWithInfo", "recipeDirectoryPath", "artifactsDirectoryPath",
    "failureHandlingPolicy",
}


def _parse_local(request: Mapping[str, Any]) -> dict[str, Any]:
    """The DeploymentDocument fields of a local request but its id, time and folders."""
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
        name: _checked_run_with(_expect_mapping(info, f"componentToRunWithInfo.{name}"),
                                f"componentToRunWithInfo.{name}")
        for name, info in _expect_mapping(request.get("componentToRunWithInfo"), "componentToRunWithInfo").items()
    }
    return {
        "kind": "LOCAL",
        "group": group,
        "failure_policy": policy,
        "add": add,
        "remove": tuple(remove_value),
        "config_updates": updates,
        "run_with": run_with,
        "notify_components": False,
        "validation_timeout": 20.0,
    }


def group_from_target_arn(arn: str) -> str:
    """`arn:aws:iot:<r>:<acct>:thing/<name>` -> `thing/<name>`; `...:thinggroup/<name>` -> `thinggroup/<name>`."""
    resource = arn.split(":", 5)[-1] if arn.startswith("arn:") else arn
    if not (resource.startswith("thing/") or resource.startswith("thinggroup/")) or resource.endswith("/"):
        raise DeploymentRequestError(
            "targetArn", f"{arn!r} is not a thing or thing group ARN (arn:aws:iot:<region>:<account>:thing/<name> "
            "or ...:thinggroup/<name>)"
        )
    return resource


def _parse_cloud(request: Mapping[str, Any]) -> dict[str, Any]:
    """The DeploymentDocument fields of a cloud request but its id, time and folders."""
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
            run_with[name] = _checked_run_with(_expect_mapping(spec["runWith"], f"{where}.runWith"), f"{where}.runWith")
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
    return {
        "kind": "CLOUD",
        "group": group,
        "failure_policy": policy,
        "components": components,
        "config_updates": updates,
        "run_with": run_with,
        "notify_components": action == "NOTIFY_COMPONENTS",
        "update_timeout": _expect_timeout(update_policy.get("timeoutInSeconds"),
                                          "deploymentPolicies.componentUpdatePolicy.timeoutInSeconds", 60.0),
        "validation_timeout": _expect_timeout(validation.get("timeoutInSeconds"),
                                              "deploymentPolicies.configurationValidationPolicy.timeoutInSeconds",
                                              30.0),
    }

