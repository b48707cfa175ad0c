"""Recipe variables (spec components §2.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ggsim.nucleus.recipe import LifecycleStep, parse_recipe
from ggsim.nucleus.variables import VariableContext, configuration_reader, interpolate, interpolate_step

RECIPE: dict[str, Any] = {
    "RecipeFormatVersion": "2020-01-25",
    "ComponentName": "com.example.A",
    "ComponentVersion": "1.0.0",
    "ComponentDependencies": {"com.example.Base": {"VersionRequirement": "^1.0.0"}},
    "Manifests": [{"Lifecycle": {"Run": "echo hi"}}],
}

CONFIG = {
    "com.example.A": {
        "Message": "hello",
        "Port": 8080,
        "Ratio": 0.5,
        "On": True,
        "Nothing": None,
        "Obj": {"b": 2, "a": [1, "x"]},
        "a/b": "slash",
        "Literal": "{artifacts:path}",
    },
    "com.example.Base": {"Port": 9000},
    "com.example.Other": {"Secret": "s"},
}


def context(unresolved: list[tuple[str, str]] | None = None) -> VariableContext:
    recipe = parse_recipe(RECIPE, "m", {"os": "linux", "architecture": "amd64"})
    return VariableContext.for_component(
        recipe,
        Path("/gg"),
        "my-thing",
        configuration_reader(lambda component: CONFIG[component]),
        {"com.example.Base": "1.4.0", "com.example.Other": "3.0.0"},
        on_unresolved=(lambda p, r: unresolved.append((p, r))) if unresolved is not None else None,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{artifacts:path}/a.py", "/gg/packages/artifacts/com.example.A/1.0.0/a.py"),
        ("{artifacts:decompressedPath}/a", "/gg/packages/artifacts-unarchived/com.example.A/1.0.0/a"),
        ("cd {work:path}", "cd /gg/work/com.example.A"),
        ("{kernel:rootPath}", "/gg"),
        ("{iot:thingName}", "my-thing"),
        ("say {configuration:/Message}", "say hello"),
        ("{configuration:/Port} {configuration:/Ratio} {configuration:/On} {configuration:/Nothing}",
         "8080 0.5 true null"),
        ("{configuration:/Obj}", '{"a":[1,"x"],"b":2}'),
        ("{configuration:/Obj/a/1}", "x"),
        ("{configuration:/a~1b}", "slash"),
        ("{com.example.Base:configuration:/Port}", "9000"),
        ("{com.example.Base:artifacts:path}", "/gg/packages/artifacts/com.example.Base/1.4.0"),
        ("{com.example.Base:artifacts:decompressedPath}", "/gg/packages/artifacts-unarchived/com.example.Base/1.4.0"),
        ("{com.example.Base:work:path}", "/gg/work/com.example.Base"),
        # left as written: missing value, not a direct dependency, unknown namespace or key
        ("{configuration:/Missing}", "{configuration:/Missing}"),
        ("{com.example.Other:configuration:/Secret}", "{com.example.Other:configuration:/Secret}"),
        ("{com.example.Other:artifacts:path}", "{com.example.Other:artifacts:path}"),
        ("{foo:bar}", "{foo:bar}"),
        ("{artifacts:elsewhere}", "{artifacts:elsewhere}"),
        ("${HOME} {not a variable}", "${HOME} {not a variable}"),
        # one pass: a configuration value that looks like a variable stays literal
        ("{configuration:/Literal}", "{artifacts:path}"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, context()) == expected


def test_unresolved_variables_are_reported_for_logging() -> None:
    seen: list[tuple[str, str]] = []
    interpolate("{com.example.Other:configuration:/Secret} {configuration:/Missing}", context(seen))
    assert seen[0] == ("{com.example.Other:configuration:/Secret}",
                       "com.example.Other is not a direct dependency of com.example.A")
    assert seen[1][0] == "{configuration:/Missing}"


def test_interpolate_step_covers_script_setenv_and_skipif() -> None:
    step = LifecycleStep(script="run {configuration:/Message}", timeout=3.0, setenv={"P": "{configuration:/Port}"},
                         skipif="exists {work:path}/done")
    assert interpolate_step(step, context()) == LifecycleStep(
        script="run hello", timeout=3.0, setenv={"P": "8080"}, skipif="exists /gg/work/com.example.A/done")
