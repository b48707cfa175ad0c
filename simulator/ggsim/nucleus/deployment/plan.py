"""Deployment planning, pure: from a document and the current state to what the deployment will do.

`next_group_roots` and `merged_roots` compute the root components (spec components §5.1, §5.2),
`resolve_configuration` each component's configuration (§4.1, with the MERGE/RESET rules of
ggsim.nucleus.config_merge), and `plan_deployment` puts them together over a component store: import the
request's recipes and artifacts, resolve versions, load recipes for the platform, prepare artifacts. Nothing
here runs a component or touches the kernel; `DeploymentManager` (service.py) does that with the plan.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ggsim.nucleus.config_merge import fill_defaults, merge_configuration, reset_configuration
from ggsim.nucleus.nesting import MAX_NESTING_DEPTH, nesting_depth_exceeds
from ggsim.nucleus.recipe import Recipe, RecipeError
from ggsim.nucleus.resolver import ResolutionError, resolve
from ggsim.nucleus.run_with import next_run_with
from ggsim.nucleus.store import Store, StoreError

from .document import ConfigurationUpdate, DeploymentDocument
from .errors import FailureKind

__all__ = [
    "DeploymentError",
    "DeploymentPlan",
    "merged_roots",
    "next_group_roots",
    "plan_deployment",
    "resolve_configuration",
]

log = logging.getLogger(__name__)


class DeploymentError(Exception):
    """A deployment that cannot be applied; `codes` are the nucleus's error codes for it (errors.py)."""

    def __init__(self, message: str, codes: tuple[str, ...] = FailureKind.INTERNAL) -> None:
        super().__init__(message)
        self.codes = codes

    @property
    def error_type(self) -> str:
        """The most specific error code."""
        return self.codes[-1] if self.codes else "DEPLOYMENT_FAILURE"


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
                    FailureKind.NO_VERSION,
                )
            roots[name] = version
            first_group.setdefault(name, group)
            owners.setdefault(name, f"deployment group {group}")
    return roots, owners


def resolve_configuration(
    current: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    update: ConfigurationUpdate | None = None,
    component: str = "",
) -> dict[str, Any]:
    """Spec components §4.1: current configuration → remove `reset` pointers → fill what is missing from the
    recipe defaults → merge `merge` (objects recursively; lists and scalars replace)."""
    tree: dict[str, Any] = dict(current) if current else {}
    if update is not None:
        tree = reset_configuration(tree, update.reset, component)
    tree = fill_defaults(tree, defaults)
    if update is not None and update.merge:
        tree = merge_configuration(tree, update.merge)
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
    #: ``services.<name>.runWith`` after the deployment (components that have one)
    run_with: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def versions(self) -> dict[str, str]:
        return {name: recipe.version for name, recipe in self.target.items()}


def _planned_configuration(name: str, current: Mapping[str, Any] | None, defaults: Mapping[str, Any],
                           update: ConfigurationUpdate | None) -> dict[str, Any]:
    """A component's configuration after the deployment, checked before anything is written: a bad RESET
    pointer or a value nested deeper than configurations may nest fails the whole deployment."""
    try:
        configuration = resolve_configuration(current, defaults, update, name)
    except ValueError as exc:
        raise DeploymentError(f"configuration of {name}: {exc}", FailureKind.CONFIGURATION_INVALID) from exc
    if nesting_depth_exceeds(configuration):
        raise DeploymentError(f"configuration of {name}: nested deeper than {MAX_NESTING_DEPTH} levels",
                              FailureKind.CONFIGURATION_INVALID)
    return configuration


def plan_deployment(
    doc: DeploymentDocument,
    groups: Mapping[str, Mapping[str, str]],
    current: Mapping[str, Recipe],
    current_configurations: Mapping[str, Mapping[str, Any]],
    store: Store,
    platform: Mapping[str, str],
    builtin: Mapping[str, str] | None = None,
    current_run_with: Mapping[str, Mapping[str, Any]] | None = None,
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
        raise DeploymentError(str(exc), FailureKind.RECIPE_INVALID) from exc
    except StoreError as exc:
        raise DeploymentError(str(exc), FailureKind.ARTIFACT_MISSING) from exc

    running = {name: recipe.version for name, recipe in current.items()}
    new_groups = next_group_roots(groups, doc, running)
    builtin_roots = sorted(set(new_groups.get(doc.group, {})) & set(builtin))
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
        raise DeploymentError(str(exc), FailureKind.NO_VERSION) from exc
    except RecipeError as exc:
        raise DeploymentError(str(exc), FailureKind.RECIPE_INVALID) from exc
    except StoreError as exc:
        raise DeploymentError(str(exc), FailureKind.RECIPE_NOT_FOUND) from exc

    try:
        for recipe in target.values():
            store.prepare_artifacts(recipe, doc.artifact_dir)
    except StoreError as exc:
        raise DeploymentError(str(exc), FailureKind.ARTIFACT_MISSING) from exc

    own_roots = new_groups.get(doc.group, {})
    configurations: dict[str, dict[str, Any]] = {}
    for name, recipe in target.items():
        update = doc.config_updates.get(name) if name in own_roots else None
        configurations[name] = _planned_configuration(
            name, current_configurations.get(name), recipe.default_configuration, update)
    for name in builtin:
        # ggsim's built-in components keep their configuration like any other (the stand-ins read it).
        update = doc.config_updates.get(name) if name in builtin_roots else None
        if update is not None or name in current_configurations:
            configurations[name] = _planned_configuration(name, current_configurations.get(name), {}, update)
    ignored = sorted(set(doc.config_updates) - set(own_roots) - set(builtin_roots))
    if ignored:
        log.warning("deployment %s: configuration updates for %s ignored: only root components of group %s "
                    "receive configuration updates", doc.deployment_id, ", ".join(ignored), doc.group)

    added = sorted(set(target) - set(current))
    removed = sorted(set(current) - set(target))
    updated = sorted(n for n in set(target) & set(current) if target[n].version != current[n].version)
    unchanged = sorted(n for n in set(target) & set(current) if target[n].version == current[n].version)
    run_with = next_run_with(target, current_run_with or {}, doc.run_with, own_roots)
    return DeploymentPlan(groups=new_groups, target=target, configurations=configurations, added=added,
                          removed=removed, updated=updated, unchanged=unchanged, run_with=run_with)
