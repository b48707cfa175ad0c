"""Recipe variables (spec components §2.1): ``{kernel:rootPath}``, ``{iot:thingName}``, ``{artifacts:path}``,
``{artifacts:decompressedPath}``, ``{work:path}``, ``{configuration:/json/pointer}`` and, for direct
dependencies, ``{<dependency>:artifacts:path}`` and the like.

The nucleus interpolates a recipe's lifecycle when a deployment applies it (§2.2). Anything unknown, a
missing configuration value or a component that is not a direct dependency is left as written (and
reported through ``on_unresolved``, as the nucleus logs it). One pass: replacement text is not re-scanned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ggsim.nucleus.layout import RootLayout
from ggsim.nucleus.pointer import resolve_pointer
from ggsim.nucleus.recipe import LifecycleStep, Recipe, scalar_text

__all__ = [
    "VariableContext",
    "configuration_reader",
    "interpolate",
    "interpolate_setenv",
    "interpolate_step",
]


def configuration_reader(get_tree: Callable[[str], Any]) -> Callable[[str, str], Any]:
    """Adapt `component -> whole configuration` into `(component, json_pointer) -> value`."""

    def read(component: str, pointer: str) -> Any:
        return resolve_pointer(get_tree(component), pointer)

    return read


@dataclass(frozen=True)
class VariableContext:
    """What recipe variables resolve against, for one component."""

    component: str
    kernel_root: Path
    thing_name: str
    versions: Mapping[str, str]
    read_configuration: Callable[[str, str], Any]
    direct_dependencies: frozenset[str] = frozenset()
    on_unresolved: Callable[[str, str], None] | None = None

    @classmethod
    def for_component(
        cls,
        recipe: Recipe,
        root: Path,
        thing_name: str,
        read_configuration: Callable[[str, str], Any],
        versions: Mapping[str, str],
        on_unresolved: Callable[[str, str], None] | None = None,
    ) -> VariableContext:
        deps = frozenset(recipe.dependencies)
        own = {name: v for name, v in versions.items() if name in deps}
        own[recipe.name] = recipe.version
        return cls(component=recipe.name, kernel_root=Path(root), thing_name=thing_name, versions=own,
                   read_configuration=read_configuration, direct_dependencies=deps, on_unresolved=on_unresolved)

    @property
    def layout(self) -> RootLayout:
        return RootLayout(self.kernel_root)


_VARIABLE = re.compile(r"\{([.\w-]+):(?:([.\w-]+):)?([^:}]*)\}")


def _format_value(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return scalar_text(value) if not isinstance(value, str) else value


def _resolve_namespace(ctx: VariableContext, component: str, namespace: str, key: str) -> str | None:
    if namespace == "configuration":
        try:
            return _format_value(ctx.read_configuration(component, key))
        except LookupError:
            return None
    if namespace == "artifacts" and key == "path":
        return str(ctx.layout.artifacts_path(component, ctx.versions[component]))
    if namespace == "artifacts" and key == "decompressedPath":
        return str(ctx.layout.decompressed_path(component, ctx.versions[component]))
    if namespace == "work" and key == "path":
        return str(ctx.layout.work_path(component))
    return None


def interpolate(text: str, ctx: VariableContext) -> str:
    """Replace recipe variables in `text` (spec components §2.1); unknown ones stay as written."""

    def substitute(match: re.Match[str]) -> str:
        first, second, key = match.group(1), match.group(2), match.group(3)
        placeholder = match.group(0)
        if second is None:
            namespace = first
            if namespace == "kernel" and key == "rootPath":
                return str(ctx.kernel_root)
            if namespace == "iot" and key == "thingName":
                return ctx.thing_name
            value = _resolve_namespace(ctx, ctx.component, namespace, key)
        else:
            component, namespace = first, second
            if component != ctx.component and component not in ctx.direct_dependencies:
                _unresolved(ctx, placeholder, f"{component} is not a direct dependency of {ctx.component}")
                return placeholder
            if component not in ctx.versions and namespace != "configuration" and not (
                namespace == "work" and key == "path"
            ):
                _unresolved(ctx, placeholder, f"the version of {component} is not known")
                return placeholder
            value = _resolve_namespace(ctx, component, namespace, key)
        if value is None:
            _unresolved(ctx, placeholder, "unknown variable or missing configuration value")
            return placeholder
        return value

    return _VARIABLE.sub(substitute, text)


def _unresolved(ctx: VariableContext, placeholder: str, reason: str) -> None:
    if ctx.on_unresolved is not None:
        ctx.on_unresolved(placeholder, reason)


def interpolate_setenv(env: Mapping[str, str], ctx: VariableContext) -> dict[str, str]:
    return {key: interpolate(value, ctx) for key, value in env.items()}


def interpolate_step(step: LifecycleStep, ctx: VariableContext) -> LifecycleStep:
    """The step with its script, Skipif and Setenv values interpolated."""
    return replace(
        step,
        script=interpolate(step.script, ctx),
        setenv=interpolate_setenv(step.setenv, ctx),
        skipif=interpolate(step.skipif, ctx) if step.skipif is not None else None,
    )
