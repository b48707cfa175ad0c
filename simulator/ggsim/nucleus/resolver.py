"""Dependency resolution over npm-style version ranges (spec components §1.2, §5.3).

Every dependent adds its range for a dependency; the ranges of all dependents are intersected.
The candidate for a component is its active version if that satisfies every range, else the highest
version in the local store that does. Roots are pinned to exact versions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import semantic_version

if TYPE_CHECKING:
    from ggsim.nucleus.recipe import Recipe

_OPERATOR_SPACE = re.compile(r"(>=|<=|>|<|=|~|\^)\s+(?=[0-9vVxX*])")
_MAX_ROUNDS = 100


class VersionRangeError(ValueError):
    """A version requirement that is not an npm-style range."""


class ResolutionError(Exception):
    """No consistent set of component versions exists; the message says who asked for what."""


def parse_version_range(text: str) -> semantic_version.NpmSpec:
    """Parse an npm-style range (`1.2.3`, `>=1.0.0 <2.0.0`, `^1.1.0`, `~2.1.0`, `2.0.*`, `a - b`, `||`)."""
    if not isinstance(text, str) or not text.strip():
        raise VersionRangeError(f"{text!r} is not a version range; expected an npm-style range such as '^1.0.0'")
    normalized = _OPERATOR_SPACE.sub(r"\1", text.strip())
    try:
        return semantic_version.NpmSpec(normalized)
    except ValueError as exc:
        raise VersionRangeError(
            f"{text!r} is not an npm-style version range (like '1.2.3', '>=1.0.0 <2.0.0', '^1.1.0', '~2.1.0', "
            f"'2.0.*', '1.0.0 - 2.0.0', 'a || b'): {exc}"
        ) from exc


@dataclass(frozen=True)
class Constraint:
    """A range for a component, and who asked for it (a dependent `name version`, or a deployment group)."""

    component: str
    requirement: str
    required_by: str
    exact: bool = False

    def allows(self, version: str) -> bool:
        parsed = semantic_version.Version(version)
        if self.exact:
            return parsed == semantic_version.Version(self.requirement)
        return parse_version_range(self.requirement).match(parsed)

    def describe(self) -> str:
        return f"{self.requirement!r} from {self.required_by}"


def satisfies(version: str, constraints: Iterable[Constraint]) -> bool:
    return all(c.allows(version) for c in constraints)


def _sorted_versions(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=semantic_version.Version)


def choose_version(
    component: str,
    constraints: list[Constraint],
    available: Iterable[str],
    active: str | None = None,
) -> str:
    """The active version if it satisfies every constraint, else the highest available that does."""
    if active is not None and satisfies(active, constraints):
        return active
    versions = _sorted_versions(available)
    for version in reversed(versions):
        if satisfies(version, constraints):
            return version
    asked = "; ".join(c.describe() for c in constraints)
    if not versions:
        raise ResolutionError(
            f"No local version of component {component} is available (no recipe in the recipe directory or the "
            f"component store) to satisfy: {asked}"
        )
    raise ResolutionError(
        f"No local version of component {component} satisfies the requirements {asked}; "
        f"available versions: {', '.join(versions)}"
    )


def resolve(
    roots: Mapping[str, str],
    available: Callable[[str], Iterable[str]],
    load: Callable[[str, str], Recipe],
    *,
    active: Mapping[str, str] | None = None,
    builtin: Mapping[str, str] | None = None,
    root_owner: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Resolve the versions of `roots` (name -> exact version) and everything they depend on.

    `available(name)` lists the versions in the local store, `load(name, version)` gives a recipe,
    `active` the versions currently running (preferred when they fit), `builtin` components the simulator
    provides itself (e.g. the nucleus: checked against ranges, never loaded). `root_owner` names who pinned
    each root (for messages; default "the deployment"). Returns name -> version, builtins excluded.
    """
    active = dict(active or {})
    builtin = dict(builtin or {})
    owners = dict(root_owner or {})
    chosen: dict[str, str] = {}
    for _ in range(_MAX_ROUNDS):
        constraints, edges = _gather(roots, chosen, load, builtin, owners)
        new: dict[str, str] = {}
        for name, cs in constraints.items():
            if name in builtin:
                if not satisfies(builtin[name], cs):
                    asked = "; ".join(c.describe() for c in cs)
                    raise ResolutionError(
                        f"Component {name} is provided by the simulator at version {builtin[name]}, which does not "
                        f"satisfy {asked}"
                    )
                continue
            previous = chosen.get(name)
            if previous is not None and satisfies(previous, cs):
                new[name] = previous
            else:
                new[name] = choose_version(name, cs, available(name), active.get(name))
        if new == chosen:
            _check_cycles(chosen, edges)
            return chosen
        chosen = new
    raise ResolutionError(f"Dependency resolution did not settle after {_MAX_ROUNDS} rounds (roots: {dict(roots)})")


def _gather(
    roots: Mapping[str, str],
    chosen: Mapping[str, str],
    load: Callable[[str, str], Recipe],
    builtin: Mapping[str, str],
    owners: Mapping[str, str],
) -> tuple[dict[str, list[Constraint]], dict[str, list[str]]]:
    """Constraints induced by the roots and the recipes of the currently chosen versions reachable from them."""
    constraints: dict[str, list[Constraint]] = {}
    edges: dict[str, list[str]] = {}
    queue: list[str] = []
    for name, version in roots.items():
        constraints.setdefault(name, []).append(
            Constraint(name, version, owners.get(name, "the deployment"), exact=True)
        )
        queue.append(name)
    seen: set[str] = set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name in builtin or name not in chosen:
            continue
        recipe = load(name, chosen[name])
        edges[name] = list(recipe.dependencies)
        for dep_name, dep in recipe.dependencies.items():
            constraints.setdefault(dep_name, []).append(
                Constraint(dep_name, dep.version_requirement, f"{name} {chosen[name]}")
            )
            queue.append(dep_name)
    return constraints, edges


def _check_cycles(chosen: Mapping[str, str], edges: Mapping[str, list[str]]) -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if nxt not in chosen:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise ResolutionError(f"Circular dependency among components: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(chosen):
        if node not in state:
            visit(node)


def dependency_order(target: Mapping[str, Recipe]) -> list[str]:
    """Names of `target` ordered so that every component comes after its dependencies."""
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        done.add(name)
        for dep in sorted(target[name].dependencies):
            if dep in target:
                visit(dep)
        order.append(name)

    for name in sorted(target):
        visit(name)
    return order
