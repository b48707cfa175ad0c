"""Recipe loading, validation messages, manifest and Selections choice (spec components §1)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ggsim.nucleus.recipe import (
    LifecycleStep,
    PlatformMismatchError,
    Recipe,
    RecipeDocument,
    RecipeError,
    RecipeMetadata,
    load_recipe,
    load_recipe_document,
    parse_recipe,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recipes"
AMD64 = {"os": "linux", "architecture": "amd64"}
AARCH64 = {"os": "linux", "architecture": "aarch64"}

MINIMAL: dict[str, Any] = {
    "RecipeFormatVersion": "2020-01-25",
    "ComponentName": "com.example.A",
    "ComponentVersion": "1.0.0",
    "ComponentDependencies": {"com.example.Base": {"VersionRequirement": "^1.0.0"}},
    "Manifests": [
        {
            "Platform": {"os": "linux"},
            "Artifacts": [{"Uri": "s3://b/com.example.A/1.0.0/a.zip", "Unarchive": "ZIP"}],
            "Lifecycle": {"Run": {"Script": "echo hi", "Timeout": 5}},
        }
    ],
}


def write(tmp_path: Path, doc: Any, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(doc))
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------- valid recipes


def test_yaml_fixture_with_mixed_case_keys_selects_the_amd64_manifest_and_its_selection() -> None:
    recipe = load_recipe(FIXTURES / "com.example.Hello-1.0.0.yaml", AMD64)

    assert recipe.name == "com.example.Hello"
    assert recipe.version == "1.0.0"
    assert recipe.description == "Says hello."
    assert recipe.publisher == "GreenLens"
    assert recipe.component_type == "aws.greengrass.generic"
    assert recipe.dependencies["com.example.Base"].version_requirement == ">=1.0.0 <2.0.0"
    assert recipe.dependencies["com.example.Base"].dependency_type == "HARD"
    assert recipe.dependencies["aws.greengrass.Nucleus"].dependency_type == "SOFT"
    assert recipe.default_configuration == {
        "Message": "hello",
        "Interval": "10",
        "Nested": {"Topic": "example/hello", "Levels": [1, 2]},
    }
    assert set(recipe.lifecycle) == {"install", "run"}
    assert recipe.lifecycle["install"] == LifecycleStep(
        script="pip install -r {artifacts:decompressedPath}/hello/requirements.txt",
        timeout=600.0,
        requires_privilege=True,
        setenv={},
        skipif="exists {work:path}/venv",
    )
    assert recipe.lifecycle["run"].script.startswith("python3 ")
    assert recipe.lifecycle["run"].timeout is None
    assert recipe.lifecycle_setenv == {"GREETING": "{configuration:/Message}", "COUNT": "3"}
    zip_artifact, script = recipe.artifacts
    assert (zip_artifact.filename, zip_artifact.unarchive, zip_artifact.read, zip_artifact.execute) == (
        "hello.zip", "ZIP", "ALL", "OWNER")
    assert (script.filename, script.unarchive, script.read, script.execute) == ("run.sh", "NONE", "OWNER", "NONE")
    assert recipe.raw["RecipeFormatVersion"] == "2020-01-25"


def test_first_matching_manifest_wins() -> None:
    recipe = load_recipe(FIXTURES / "com.example.Hello-1.0.0.yaml", AARCH64)
    assert recipe.lifecycle == {"run": LifecycleStep(script="echo arm")}
    assert recipe.artifacts == []


def test_manifest_without_lifecycle_uses_the_global_lifecycle_filtered_by_all() -> None:
    recipe = load_recipe(FIXTURES / "com.example.Hello-1.0.0.yaml", {"os": "darwin", "architecture": "amd64"})
    assert recipe.lifecycle == {"run": LifecycleStep(script="echo generic")}


def test_json_recipe_lowercase_keys() -> None:
    recipe = load_recipe(FIXTURES / "com.example.Base-1.2.0.json", AMD64)
    assert recipe.lifecycle["startup"] == LifecycleStep(script="true", timeout=30.0)
    assert recipe.default_configuration == {"Port": 8080}
    assert recipe.dependencies == {}


def test_no_matching_manifest_names_component_and_device() -> None:
    doc = copy.deepcopy(MINIMAL)
    with pytest.raises(PlatformMismatchError) as err:
        parse_recipe(doc, "mem.yaml", {"os": "windows", "architecture": "amd64"})
    message = str(err.value)
    assert "com.example.A 1.0.0 does not claim platform compatibility" in message
    assert "os=windows" in message and message.startswith("mem.yaml: Manifests:")


def test_platform_os_and_architecture_keys_are_case_insensitive() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["Manifests"][0]["Platform"] = {"OS": "linux", "Architecture": "aarch64"}
    assert parse_recipe(doc, "mem", AARCH64).manifest_platform == {"os": "linux", "architecture": "aarch64"}
    with pytest.raises(PlatformMismatchError):
        parse_recipe(doc, "mem", AMD64)


def test_component_type_is_case_insensitive_and_unknown_keys_are_ignored() -> None:
    doc = copy.deepcopy(MINIMAL) | {"ComponentType": "AWS.GreenGrass.Plugin", "SomethingNew": 1}
    assert parse_recipe(doc, "mem", AMD64).component_type == "aws.greengrass.plugin"


# --------------------------------------------------------------------------- validation errors


def _mutate(path: list[str | int], value: Any = "__delete__") -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    if value == "__delete__":
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


BAD_RECIPES = [
    (_mutate(["ComponentName"]), "ComponentName: missing (required)"),
    (_mutate(["ComponentName"], "com example"), "ComponentName: component name 'com example' may contain only"),
    (_mutate(["ComponentName"], "a" * 129), "ComponentName: component name is 129 characters; at most 128"),
    (_mutate(["ComponentVersion"], "1.0"), "ComponentVersion: '1.0' is not a semantic version"),
    (_mutate(["ComponentVersion"], "NEXT_PATCH"), "ComponentVersion: 'NEXT_PATCH' is a placeholder, not a version"),
    (_mutate(["ComponentVersion"], 1.5), "ComponentVersion: 1.5 is a number, not a version"),
    (_mutate(["ComponentVersion"], "1000000.0.0"), "ComponentVersion: major version 1000000 is larger than 999999"),
    (_mutate(["ComponentVersion"], "1.0.0-" + "a" * 60), "ComponentVersion: version is 66 characters; at most 64"),
    (_mutate(["RecipeFormatVersion"], "2021-01-01"), "RecipeFormatVersion: unsupported recipe format version"),
    (_mutate(["RecipeFormatVersion"]), "RecipeFormatVersion: missing (required)"),
    (_mutate(["Manifests"]), "Manifests: missing manifests"),
    (_mutate(["Manifests"], []), "Manifests: missing manifests"),
    (_mutate(["Manifests", 0], "linux"), "Manifests[0]: expected a mapping (object), got string 'linux'"),
    (_mutate(["ComponentType"], "aws.greengrass.docker"), "ComponentType: 'aws.greengrass.docker' is not one of"),
    (_mutate(["ComponentDependencies", "com.example.Base", "VersionRequirement"]),
     "ComponentDependencies.com.example.Base.VersionRequirement: missing (required)"),
    (_mutate(["ComponentDependencies", "com.example.Base", "VersionRequirement"], "banana"),
     "ComponentDependencies.com.example.Base.VersionRequirement: 'banana' is not an npm-style version range"),
    (_mutate(["ComponentDependencies", "com.example.Base", "DependencyType"], "WEAK"),
     "ComponentDependencies.com.example.Base.DependencyType: 'WEAK' is not one of HARD, SOFT"),
    (_mutate(["Manifests", 0, "Artifacts", 0, "Unarchive"], "TAR"),
     "Manifests[0].Artifacts[0].Unarchive: 'TAR' is not one of NONE, ZIP"),
    (_mutate(["Manifests", 0, "Artifacts", 0, "Uri"]), "Manifests[0].Artifacts[0].Uri: missing (required)"),
    (_mutate(["Manifests", 0, "Artifacts", 0, "Uri"], "s3://bucket/dir/"),
     "Manifests[0].Artifacts[0].Uri: URI 's3://bucket/dir/' has no file name"),
    (_mutate(["Manifests", 0, "Artifacts"], [{"Uri": "s3://x/a.zip"}, {"Uri": "s3://y/a.zip"}]),
     "Manifests[0].Artifacts[1].Uri: file name 'a.zip' is already used by artifact [0]"),
    (_mutate(["Manifests", 0, "Artifacts", 0, "Permission"], {"Read": "EVERYONE"}),
     "Manifests[0].Artifacts[0].Permission.Read: 'EVERYONE' is not one of NONE, OWNER, ALL"),
    (_mutate(["Manifests", 0, "Platform", "architecture"], "/(amd/"),
     "Manifests[0].Platform.architecture: invalid regular expression '/(amd/'"),
    (_mutate(["Manifests", 0, "Platform", "os"], "-linux"),
     "Manifests[0].Platform.os: '-linux' must be '*', a /regular expression/, or a value starting with a letter"),
    (_mutate(["Manifests", 0, "Lifecycle", "Run"], {"Timeout": 5}),
     "Manifests[0].Lifecycle.Run.Script: missing: a lifecycle step object needs a Script"),
    (_mutate(["Manifests", 0, "Lifecycle", "Run", "Timeout"], "soon"),
     "Manifests[0].Lifecycle.Run.Timeout: expected a number of seconds, got string 'soon'"),
    (_mutate(["Manifests", 0, "Lifecycle", "Run", "Timeout"], -5),
     "Manifests[0].Lifecycle.Run.Timeout: a timeout must be a positive number of seconds"),
    (_mutate(["Manifests", 0, "Lifecycle", "Run", "RequiresPrivilege"], "yes"),
     "Manifests[0].Lifecycle.Run.RequiresPrivilege: expected true or false, got string 'yes'"),
    (_mutate(["Manifests", 0, "Lifecycle", "Run", "Skipif"], "maybe /tmp"),
     "Manifests[0].Lifecycle.Run.Skipif: 'maybe /tmp' is not 'onpath <executable>' or 'exists <file>'"),
    # Java's trim strips only characters up to U+0020: a no-break space before the keyword is no keyword
    (_mutate(["Manifests", 0, "Lifecycle", "Run", "Skipif"], "\u00a0onpath sh"),
     "Manifests[0].Lifecycle.Run.Skipif: '\\xa0onpath sh' is not 'onpath <executable>' or 'exists <file>'"),
    (_mutate(["Manifests", 0, "Lifecycle", "Run", "Setenv"], {"A": ["x"]}),
     "Manifests[0].Lifecycle.Run.Setenv.A: an environment value must be a string, number or boolean, got a list"),
    (_mutate(["Manifests", 0, "Lifecycle", "Install"], ["echo", "hi"]),
     "Manifests[0].Lifecycle.Install: a lifecycle step is a script string or an object with Script, got a list"),
    (_mutate(["componentname"], "com.example.B"),
     "componentname: duplicate key (also written as 'ComponentName'); keys are case-insensitive"),
]


@pytest.mark.parametrize(("doc", "expected"), BAD_RECIPES, ids=[e for _, e in BAD_RECIPES])
def test_bad_recipe_message_names_file_key_path_and_reason(tmp_path: Path, doc: dict, expected: str) -> None:
    path = write(tmp_path, doc, "com.example.A.json")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, AMD64)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match=r"list.yaml: a recipe must be a mapping \(object\) at the top level"):
        load_recipe(path, AMD64)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("ComponentName: a\nManifests: [\n  - {Platform: \n")
    with pytest.raises(RecipeError, match=r"broken.yaml: invalid YAML at line \d+, column \d+"):
        load_recipe(path, AMD64)


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"ComponentName": "a",\n "x": }')
    with pytest.raises(RecipeError, match=r"broken.json: invalid JSON at line 2, column 7: Expecting value"):
        load_recipe(path, AMD64)


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    txt = tmp_path / "recipe.txt"
    txt.write_text("{}")
    with pytest.raises(RecipeError, match=r"unknown recipe file extension '.txt'; expected .json, .yaml or .yml"):
        load_recipe(txt, AMD64)
    with pytest.raises(RecipeError, match=r"nothere.yaml: cannot read the recipe file"):
        load_recipe(tmp_path / "nothere.yaml", AMD64)


def test_recipe_larger_than_16000_bytes_is_refused(tmp_path: Path) -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["ComponentDescription"] = "x" * 16_100
    path = write(tmp_path, doc, "big.json")
    with pytest.raises(RecipeError, match=r"big.json: the recipe is \d+ bytes; Greengrass accepts at most 16000"):
        load_recipe(path, AMD64)


def test_document_keeps_all_manifests_until_a_platform_is_chosen() -> None:
    document = load_recipe_document(FIXTURES / "com.example.Hello-1.0.0.yaml")
    assert len(document.manifests) == 3
    assert document.for_platform(AARCH64).manifest_index == 0
    assert document.for_platform(AMD64).manifest_index == 1


# --------------------------------------------------------------------------- selections


def test_selections_pick_the_first_listed_selector_per_manifest() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["Manifests"] = [
        {"Platform": {"architecture": "aarch64"}, "Selections": ["big", "small"]},
        {"Platform": {"architecture": "amd64"}, "Selections": ["small"]},
        {"Platform": {"os": "darwin"}},
    ]
    doc["Lifecycle"] = {
        "small": {"Run": "run small"},
        "big": {"Run": {"Script": "run big", "Timeout": 9}},
        "all": {"Run": "run all"},
    }
    assert parse_recipe(doc, "m", AARCH64).lifecycle["run"] == LifecycleStep(script="run big", timeout=9.0)
    assert parse_recipe(doc, "m", AMD64).lifecycle["run"].script == "run small"
    assert parse_recipe(doc, "m", {"os": "darwin"}).lifecycle["run"].script == "run all"


def test_non_empty_manifest_lifecycle_wins_over_global() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["Lifecycle"] = {"all": {"Run": "global"}}
    assert parse_recipe(doc, "m", AMD64).lifecycle["run"].script == "echo hi"
    doc["Manifests"][0]["Lifecycle"] = {}
    assert parse_recipe(doc, "m", AMD64).lifecycle["run"].script == "global"


def test_a_recipe_is_its_documents_metadata_plus_the_selected_manifest() -> None:
    document = load_recipe_document(FIXTURES / "com.example.Hello-1.0.0.yaml")
    recipe = document.for_platform(AMD64)
    assert isinstance(document, RecipeMetadata) and isinstance(recipe, RecipeMetadata)
    assert recipe.metadata() == document.metadata()
    assert recipe.source == str(FIXTURES / "com.example.Hello-1.0.0.yaml")
    assert str(recipe.semver) == "1.0.0"
    assert not isinstance(recipe, RecipeDocument) and not hasattr(recipe, "manifests")
    assert not isinstance(document, Recipe) and not hasattr(document, "lifecycle")


MINIMAL_YAML_HEAD = ('RecipeFormatVersion: "2020-01-25"\nComponentName: com.example.Yaml\nComponentVersion: 1.0.0\n'
                     "Manifests:\n  - Lifecycle:\n      Run: echo hi\n")


def test_an_alias_is_refused_naming_it_because_the_nucleus_reads_it_as_a_string(tmp_path: Path) -> None:
    path = tmp_path / "alias.yaml"
    path.write_text(MINIMAL_YAML_HEAD + "ComponentConfiguration:\n  DefaultConfiguration:\n"
                    "    base: &shared {level: 1}\n    copy: *shared\n")
    with pytest.raises(RecipeError, match=r"alias.yaml: YAML alias \*shared is not supported: .* would read \*shared "
                                          r"as the string 'shared'.* at line 10, column 11"):
        load_recipe(path, AMD64)


def test_a_merge_key_is_refused_because_the_nucleus_merges_nothing(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(MINIMAL_YAML_HEAD + "ComponentConfiguration:\n  DefaultConfiguration:\n"
                    "    copy:\n      <<: {level: 1}\n")
    with pytest.raises(RecipeError, match=r"merge.yaml: YAML merge key << is not supported.* at line 10, column 7"):
        load_recipe(path, AMD64)


def test_an_anchor_without_alias_reads_the_same_on_both(tmp_path: Path) -> None:
    path = tmp_path / "anchor.yaml"
    path.write_text(MINIMAL_YAML_HEAD + "ComponentConfiguration:\n  DefaultConfiguration: &defaults\n    level: 1\n")
    assert load_recipe(path, AMD64).default_configuration == {"level": 1}


def test_nesting_beyond_the_limit_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(MINIMAL_YAML_HEAD + "ComponentDescription: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(RecipeError, match=r"deep.yaml: the recipe nests mappings and lists more than 100 deep"):
        load_recipe(path, AMD64)
