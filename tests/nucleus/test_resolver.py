"""Dependency resolution over npm-style ranges (spec components §1.2, §5.3), on a real component store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import semantic_version
from ggsim.nucleus.resolver import ResolutionError, dependency_order, parse_version_range, resolve
from ggsim.nucleus.store import Store

LINUX = {"os": "linux", "architecture": "amd64"}


def store_with(tmp_path: Path, recipes: Any) -> Store:
    store = Store(tmp_path / "root")
    store.import_recipes(recipes.dir)
    return store


def run(store: Store, roots: dict[str, str], **kwargs) -> dict[str, str]:
    return resolve(roots, store.versions, lambda n, v: store.load(n, v, LINUX), **kwargs)


@pytest.mark.parametrize(
    ("requirement", "matching"),
    [
        ("1.2.3", ["1.2.3"]),
        (">=1.0.0 <2.0.0", ["1.0.0", "1.2.3", "1.9.9"]),
        (">= 1.0.0 < 2.0.0", ["1.0.0", "1.2.3", "1.9.9"]),  # spaces after operators, as people write them
        ("^1.1.0", ["1.2.3", "1.9.9"]),
        ("~2.1.0", ["2.1.0", "2.1.5"]),
        ("2.0.*", ["2.0.0"]),
        ("1.0.0 - 2.0.0", ["1.0.0", "1.2.3", "1.9.9", "2.0.0"]),
        ("^1.1.0 || ~2.1.0", ["1.2.3", "1.9.9", "2.1.0", "2.1.5"]),
    ],
)
def test_npm_ranges(requirement: str, matching: list[str]) -> None:
    versions = ["0.9.0", "1.0.0", "1.2.3", "1.9.9", "2.0.0", "2.1.0", "2.1.5", "3.0.0"]
    spec = parse_version_range(requirement)
    assert [v for v in versions if spec.match(semantic_version.Version(v))] == matching


def test_highest_satisfying_version_is_chosen_for_a_dependency(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"com.example.Base": "^1.0.0"})
    for version in ("1.0.0", "1.5.0", "1.10.0", "2.0.0"):
        recipes.add("com.example.Base", version)
    store = store_with(tmp_path, recipes)
    assert run(store, {"com.example.A": "1.0.0"}) == {"com.example.A": "1.0.0", "com.example.Base": "1.10.0"}


def test_active_version_is_preferred_when_it_satisfies(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"com.example.Base": "^1.0.0"})
    for version in ("1.0.0", "1.5.0", "2.0.0"):
        recipes.add("com.example.Base", version)
    store = store_with(tmp_path, recipes)
    assert run(store, {"com.example.A": "1.0.0"}, active={"com.example.Base": "1.0.0"})["com.example.Base"] == "1.0.0"
    assert run(store, {"com.example.A": "1.0.0"}, active={"com.example.Base": "2.0.0"})["com.example.Base"] == "1.5.0"


def test_ranges_of_all_dependents_are_intersected(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"com.example.Base": ">=1.0.0 <2.0.0"})
    recipes.add("com.example.B", "1.0.0", deps={"com.example.Base": "<1.5.0"})
    for version in ("1.0.0", "1.4.0", "1.5.0", "2.0.0"):
        recipes.add("com.example.Base", version)
    store = store_with(tmp_path, recipes)
    result = run(store, {"com.example.A": "1.0.0", "com.example.B": "1.0.0"})
    assert result["com.example.Base"] == "1.4.0"


def test_unsatisfiable_ranges_name_component_ranges_and_who_asked(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"com.example.Base": ">=1.5.0"})
    recipes.add("com.example.C", "2.0.0", deps={"com.example.Base": "<1.2.0"})
    for version in ("1.0.0", "1.5.0"):
        recipes.add("com.example.Base", version)
    store = store_with(tmp_path, recipes)
    with pytest.raises(ResolutionError) as err:
        run(store, {"com.example.A": "1.0.0", "com.example.C": "2.0.0"})
    assert str(err.value) == (
        "No local version of component com.example.Base satisfies the requirements '>=1.5.0' from "
        "com.example.A 1.0.0; '<1.2.0' from com.example.C 2.0.0; available versions: 1.0.0, 1.5.0"
    )


def test_unknown_component_and_unknown_root_version(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"com.example.Missing": "^1.0.0"})
    store = store_with(tmp_path, recipes)
    with pytest.raises(ResolutionError, match=r"No local version of component com.example.Missing is available .* "
                                              r"'\^1.0.0' from com.example.A 1.0.0"):
        run(store, {"com.example.A": "1.0.0"})
    with pytest.raises(ResolutionError, match=r"com.example.A satisfies the requirements '2.0.0' from group "
                                              r"LOCAL_DEPLOYMENT; available versions: 1.0.0"):
        run(store, {"com.example.A": "2.0.0"}, root_owner={"com.example.A": "group LOCAL_DEPLOYMENT"})


def test_changed_version_drops_the_old_versions_subtree(tmp_path: Path, recipes: Any) -> None:
    # Base 1.5.0 needs Util 2.x, Base 1.0.0 needs Util 1.x. A second root caps Base below 1.5.0, so the
    # first choice (Base 1.5.0, Util 2.0.0) must be revised to Base 1.0.0 with Util 1.1.0.
    recipes.add("com.example.A", "1.0.0", deps={"com.example.Base": "^1.0.0"})
    recipes.add("com.example.Z", "1.0.0", deps={"com.example.Cap": "1.0.0"})
    recipes.add("com.example.Cap", "1.0.0", deps={"com.example.Base": "<1.5.0"})
    recipes.add("com.example.Base", "1.0.0", deps={"com.example.Util": "^1.0.0"})
    recipes.add("com.example.Base", "1.5.0", deps={"com.example.Util": "^2.0.0", "com.example.Extra": "*"})
    recipes.add("com.example.Util", "1.1.0")
    recipes.add("com.example.Util", "2.0.0")
    recipes.add("com.example.Extra", "1.0.0")
    store = store_with(tmp_path, recipes)
    assert run(store, {"com.example.A": "1.0.0", "com.example.Z": "1.0.0"}) == {
        "com.example.A": "1.0.0",
        "com.example.Z": "1.0.0",
        "com.example.Cap": "1.0.0",
        "com.example.Base": "1.0.0",
        "com.example.Util": "1.1.0",
    }


def test_circular_dependencies_fail(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"com.example.B": "^1.0.0"})
    recipes.add("com.example.B", "1.0.0", deps={"com.example.A": "^1.0.0"})
    store = store_with(tmp_path, recipes)
    with pytest.raises(ResolutionError, match=r"Circular dependency among components: com.example.A -> "
                                              r"com.example.B -> com.example.A"):
        run(store, {"com.example.A": "1.0.0"})


def test_builtin_nucleus_satisfies_ranges_without_a_recipe(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"aws.greengrass.Nucleus": (">=2.0.0 <3.0.0", "SOFT")})
    recipes.add("com.example.New", "1.0.0", deps={"aws.greengrass.Nucleus": ">=3.0.0"})
    store = store_with(tmp_path, recipes)
    builtin = {"aws.greengrass.Nucleus": "2.14.0"}
    assert run(store, {"com.example.A": "1.0.0"}, builtin=builtin) == {"com.example.A": "1.0.0"}
    with pytest.raises(ResolutionError, match=r"aws.greengrass.Nucleus is provided by the simulator at version "
                                              r"2.14.0, which does not satisfy '>=3.0.0' from com.example.New 1.0.0"):
        run(store, {"com.example.New": "1.0.0"}, builtin=builtin)


def test_dependency_order_puts_dependencies_first(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.App", "1.0.0", deps={"com.example.B": "*", "com.example.A": "*"})
    recipes.add("com.example.A", "1.0.0", deps={"com.example.C": "*"})
    recipes.add("com.example.B", "1.0.0", deps={"com.example.C": "*"})
    recipes.add("com.example.C", "1.0.0")
    store = store_with(tmp_path, recipes)
    versions = run(store, {"com.example.App": "1.0.0"})
    order = dependency_order({n: store.load(n, v, LINUX) for n, v in versions.items()})
    assert order.index("com.example.C") < order.index("com.example.A") < order.index("com.example.App")
    assert order.index("com.example.B") < order.index("com.example.App")
