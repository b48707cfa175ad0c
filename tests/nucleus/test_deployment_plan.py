"""Deployment planning without a kernel: request shapes, group roots, configuration MERGE/RESET (spec §4.1, §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ggsim.nucleus.deployment import (
    LOCAL_GROUP,
    ConfigurationUpdate,
    DeploymentError,
    DeploymentRequestError,
    InvalidArtifactsDirectoryPathError,
    InvalidRecipeDirectoryPathError,
    merged_roots,
    next_group_roots,
    parse_request,
    plan_deployment,
    resolve_configuration,
)
from ggsim.nucleus.recipe import Recipe
from ggsim.nucleus.store import Store

LINUX = {"os": "linux", "architecture": "amd64"}
BUILTIN = {"aws.greengrass.Nucleus": "2.14.0"}

# --------------------------------------------------------------------------- request shapes


def test_local_request_defaults_and_config_update(tmp_path: Path) -> None:
    doc = parse_request(
        {
            "recipeDirectoryPath": str(tmp_path),
            "rootComponentVersionsToAdd": {"com.example.A": "1.0.0"},
            "rootComponentsToRemove": ["com.example.Old"],
            "componentToConfiguration": {"com.example.A": {"MERGE": {"n": 1, "s": "x"}, "RESET": ["/a", ""]}},
        },
        deployment_id="d1",
        now=1000.0,
    )
    assert (doc.kind, doc.group, doc.failure_policy, doc.deployment_id, doc.created_on) == (
        "LOCAL", LOCAL_GROUP, "DO_NOTHING", "d1", 1000.0)
    assert doc.add == {"com.example.A": "1.0.0"} and doc.remove == ("com.example.Old",)
    assert doc.recipe_dir == tmp_path.resolve() and doc.artifact_dir is None
    # the IPC path turns JSON numbers into doubles, as the Java nucleus does
    assert doc.config_updates["com.example.A"] == ConfigurationUpdate(merge={"n": 1.0, "s": "x"}, reset=("/a", ""))
    assert isinstance(doc.config_updates["com.example.A"].merge["n"], float)
    assert not doc.notify_components


@pytest.mark.parametrize(
    ("request_body", "error", "message"),
    [
        ({"rootComponentVersionsToAdd": {"com.example.A": "1.0"}}, DeploymentRequestError,
         "rootComponentVersionsToAdd.com.example.A: '1.0' is not a component version"),
        ({"rootComponentVersionsToAdd": ["com.example.A=1.0.0"]}, DeploymentRequestError,
         "rootComponentVersionsToAdd: expected an object, got list"),
        ({"rootComponentsToRemove": "com.example.A"}, DeploymentRequestError,
         "rootComponentsToRemove: expected a list of component names"),
        ({"componentToConfiguration": {"com.example.A": {"merge": {"a": 1}}}}, DeploymentRequestError,
         "componentToConfiguration.com.example.A.merge: unknown key; a configuration update has MERGE"),
        ({"componentToConfiguration": {"com.example.A": {"MERGE": "{\"a\": 1}"}}}, DeploymentRequestError,
         "componentToConfiguration.com.example.A.MERGE: expected an object"),
        ({"componentToConfiguration": {"com.example.A": {"RESET": ["a"]}}}, DeploymentRequestError,
         "componentToConfiguration.com.example.A.RESET: 'a' is not a JSON pointer"),
        ({"failureHandlingPolicy": "rollback"}, DeploymentRequestError,
         "failureHandlingPolicy: 'rollback' is not ROLLBACK or DO_NOTHING (upper-case)"),
        ({"recipeDir": "/x"}, DeploymentRequestError, "recipeDir: unknown field in a local deployment request"),
        ({"recipeDirectoryPath": "/nonexistent/recipes"}, InvalidRecipeDirectoryPathError,
         "recipeDirectoryPath: '/nonexistent/recipes' is not an existing directory"),
        ({"artifactsDirectoryPath": "/nonexistent/artifacts"}, InvalidArtifactsDirectoryPathError,
         "artifactsDirectoryPath: '/nonexistent/artifacts' is not an existing directory"),
        ({"targetArn": "arn:aws:iot:us-east-1:123:policy/x", "components": {}}, DeploymentRequestError,
         "targetArn: 'arn:aws:iot:us-east-1:123:policy/x' is not a thing or thing group ARN"),
        ({"components": {"com.example.A": {"componentVersion": "1.0.0",
                                           "configurationUpdate": {"merge": {"a": 1}}}}}, DeploymentRequestError,
         "components.com.example.A.configurationUpdate.merge: expected a JSON object serialised as a string"),
        ({"components": {"com.example.A": {"componentVersion": "1.0.0",
                                           "configurationUpdate": {"merge": "{a: 1}"}}}}, DeploymentRequestError,
         "components.com.example.A.configurationUpdate.merge: invalid JSON"),
        ({"components": {"com.example.A": {}}}, DeploymentRequestError,
         "components.com.example.A.componentVersion: expected a non-empty string, got None"),
    ],
)
def test_bad_requests_name_the_field(request_body: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as err:
        parse_request(request_body)
    assert message in str(err.value)


def test_cloud_request_shape() -> None:
    doc = parse_request(
        {
            "targetArn": "arn:aws:iot:eu-west-1:123456789012:thinggroup/cameras",
            "deploymentName": "models",
            "components": {
                "com.example.A": {"componentVersion": "2.0.0",
                                  "configurationUpdate": {"merge": '{"Interval": 60, "Obj": {"x": true}}',
                                                          "reset": ["/Old"]}},
                "com.example.B": {"componentVersion": "1.0.0"},
            },
        }
    )
    assert (doc.kind, doc.group, doc.failure_policy) == ("CLOUD", "thinggroup/cameras", "ROLLBACK")
    assert doc.components == {"com.example.A": "2.0.0", "com.example.B": "1.0.0"}
    assert doc.config_updates["com.example.A"] == ConfigurationUpdate(
        merge={"Interval": 60, "Obj": {"x": True}}, reset=("/Old",))
    assert (doc.notify_components, doc.update_timeout, doc.validation_timeout) == (True, 60.0, 30.0)
    skip = parse_request({"targetArn": "arn:aws:iot:eu-west-1:1:thing/core", "components": {},
                          "deploymentPolicies": {"failureHandlingPolicy": "DO_NOTHING",
                                                 "componentUpdatePolicy": {"action": "SKIP_NOTIFY_COMPONENTS"}}})
    assert (skip.group, skip.failure_policy, skip.notify_components) == ("thing/core", "DO_NOTHING", False)


# --------------------------------------------------------------------------- group roots


def test_local_deployment_starts_from_running_versions_then_removes_then_adds() -> None:
    groups = {LOCAL_GROUP: {"A": "1.0.0", "B": "1.0.0", "C": "1.0.0"}, "thinggroup/g": {"X": "3.0.0"}}
    running = {"A": "1.1.0", "B": "1.0.0", "C": "1.0.0"}
    doc = parse_request({"rootComponentVersionsToAdd": {"C": "2.0.0", "D": "1.0.0"},
                         "rootComponentsToRemove": ["B"]})
    assert next_group_roots(groups, doc, running) == {
        LOCAL_GROUP: {"A": "1.1.0", "C": "2.0.0", "D": "1.0.0"},
        "thinggroup/g": {"X": "3.0.0"},
    }
    emptied = parse_request({"rootComponentsToRemove": ["A", "B", "C"]})
    assert next_group_roots(groups, emptied, running) == {"thinggroup/g": {"X": "3.0.0"}}


def test_cloud_deployment_replaces_its_targets_roots() -> None:
    groups = {LOCAL_GROUP: {"A": "1.0.0"}, "thinggroup/g": {"X": "3.0.0", "Y": "1.0.0"}}
    doc = parse_request({"targetArn": "arn:aws:iot:r:1:thinggroup/g", "components": {"Z": {"componentVersion": "1.0.0"}}})
    assert next_group_roots(groups, doc, {}) == {LOCAL_GROUP: {"A": "1.0.0"}, "thinggroup/g": {"Z": "1.0.0"}}


def test_two_groups_pinning_different_versions_is_an_error_naming_both() -> None:
    roots, owners = merged_roots({LOCAL_GROUP: {"A": "1.0.0"}, "thinggroup/g": {"A": "1.0.0", "B": "2.0.0"}})
    assert roots == {"A": "1.0.0", "B": "2.0.0"}
    with pytest.raises(DeploymentError, match=r"Component A is a root of group LOCAL_DEPLOYMENT at version 1.0.0 "
                                              r"and of group thinggroup/g at version 2.0.0"):
        merged_roots({LOCAL_GROUP: {"A": "1.0.0"}, "thinggroup/g": {"A": "2.0.0"}})


# --------------------------------------------------------------------------- configuration (spec §4.1)

DEFAULTS = {"Interval": "10", "Topic": "a/b", "Obj": {"x": 1, "y": [1, 2]}, "List": [1, 2]}


def test_new_component_gets_defaults_then_merge() -> None:
    result = resolve_configuration(None, DEFAULTS, ConfigurationUpdate(merge={"Interval": "60", "Obj": {"z": 3}}))
    assert result == {"Interval": "60", "Topic": "a/b", "Obj": {"x": 1, "y": [1, 2], "z": 3}, "List": [1, 2]}


def test_existing_values_survive_changed_defaults_and_missing_keys_are_filled() -> None:
    current = {"Interval": "60", "Topic": "a/b", "Obj": {"x": 1}}
    new_defaults = {"Interval": "5", "Topic": "new/topic", "Obj": {"x": 9, "y": []}, "Added": True}
    assert resolve_configuration(current, new_defaults) == {
        "Interval": "60", "Topic": "a/b", "Obj": {"x": 1, "y": []}, "Added": True}


def test_reset_puts_back_the_default_and_removes_keys_without_one() -> None:
    current = {"Interval": "60", "Topic": "mine", "Extra": 1, "Obj": {"x": 5, "y": [9]}}
    update = ConfigurationUpdate(reset=("/Interval", "/Extra", "/Obj/x", "/NotThere"))
    assert resolve_configuration(current, DEFAULTS, update) == {
        "Interval": "10", "Topic": "mine", "Obj": {"x": 1, "y": [9]}, "List": [1, 2]}


def test_reset_everything_then_merge() -> None:
    current = {"Interval": "60", "Topic": "mine", "Extra": 1}
    update = ConfigurationUpdate(merge={"Topic": "merged"}, reset=("",))
    assert resolve_configuration(current, DEFAULTS, update) == dict(DEFAULTS, Topic="merged")


def test_merge_replaces_lists_and_scalars_allows_type_changes_and_null() -> None:
    current = {"Interval": "60", "Topic": "a/b", "Obj": {"x": 1, "y": [1, 2]}, "List": [1, 2]}
    update = ConfigurationUpdate(merge={"List": [3], "Obj": {"y": [7]}, "Interval": {"seconds": 60}, "Topic": None})
    assert resolve_configuration(current, DEFAULTS, update) == {
        "Interval": {"seconds": 60}, "Topic": None, "Obj": {"x": 1, "y": [7]}, "List": [3]}


def test_reset_into_a_list_element_is_ignored() -> None:
    current = {"List": [5, 6, 7]}
    assert resolve_configuration(current, {}, ConfigurationUpdate(reset=("/List/0",))) == {"List": [5, 6, 7]}


def test_resolution_does_not_modify_its_inputs() -> None:
    current = {"Obj": {"x": 1}}
    defaults = {"Obj": {"y": 2}}
    resolve_configuration(current, defaults, ConfigurationUpdate(merge={"Obj": {"z": 3}}))
    assert current == {"Obj": {"x": 1}} and defaults == {"Obj": {"y": 2}}


# --------------------------------------------------------------------------- plans over a real store


def plan(store: Store, request: dict[str, Any], groups: dict | None = None, current: dict | None = None,
         configs: dict | None = None):
    return plan_deployment(parse_request(request), groups or {}, current or {}, configs or {}, store, LINUX, BUILTIN)


def test_plan_adds_dependencies_and_gives_config_updates_to_roots_only(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.App", "1.0.0", deps={"com.example.Lib": "^1.0.0",
                                                  "aws.greengrass.Nucleus": (">=2.0.0 <3.0.0", "SOFT")},
                defaults={"Mode": "fast"})
    recipes.add("com.example.Lib", "1.2.0", defaults={"Level": 1})
    store = Store(tmp_path / "gg")
    result = plan(store, {
        "recipeDirectoryPath": str(recipes.dir),
        "rootComponentVersionsToAdd": {"com.example.App": "1.0.0"},
        "componentToConfiguration": {"com.example.App": {"MERGE": {"Mode": "slow"}},
                                     "com.example.Lib": {"MERGE": {"Level": 5}}},
    })
    assert result.versions == {"com.example.App": "1.0.0", "com.example.Lib": "1.2.0"}
    assert result.added == ["com.example.App", "com.example.Lib"] and result.removed == []
    assert result.groups == {LOCAL_GROUP: {"com.example.App": "1.0.0"}}
    assert result.configurations == {"com.example.App": {"Mode": "slow"}, "com.example.Lib": {"Level": 1}}


def test_the_nucleus_in_a_deployment_is_ggsim_itself(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"aws.greengrass.Nucleus": ">=2.0.0"})
    store = Store(tmp_path / "gg")
    result = plan(store, {"recipeDirectoryPath": str(recipes.dir), "targetArn": "arn:aws:iot:r:1:thing/core",
                          "components": {"aws.greengrass.Nucleus": {"componentVersion": "2.12.0"},
                                         "com.example.A": {"componentVersion": "1.0.0"}}})
    assert result.versions == {"com.example.A": "1.0.0"}
    assert result.groups == {"thing/core": {"com.example.A": "1.0.0"}}


def test_plan_of_an_update_and_a_removal(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", deps={"com.example.Shared": "*"})
    recipes.add("com.example.A", "2.0.0", deps={"com.example.Shared": "*"})
    recipes.add("com.example.B", "1.0.0", deps={"com.example.Shared": "*", "com.example.OnlyB": "*"})
    recipes.add("com.example.Shared", "1.0.0")
    recipes.add("com.example.OnlyB", "1.0.0")
    store = Store(tmp_path / "gg")
    store.import_recipes(recipes.dir)
    current: dict[str, Recipe] = {n: store.load(n, "1.0.0", LINUX) for n in
                                  ("com.example.A", "com.example.B", "com.example.Shared", "com.example.OnlyB")}
    groups = {LOCAL_GROUP: {"com.example.A": "1.0.0", "com.example.B": "1.0.0"}}
    result = plan(store, {"rootComponentVersionsToAdd": {"com.example.A": "2.0.0"},
                          "rootComponentsToRemove": ["com.example.B"]}, groups, current)
    assert result.versions == {"com.example.A": "2.0.0", "com.example.Shared": "1.0.0"}
    assert result.updated == ["com.example.A"]
    assert result.removed == ["com.example.B", "com.example.OnlyB"]
    assert result.unchanged == ["com.example.Shared"]


NO_VERSION = ("NO_AVAILABLE_COMPONENT_VERSION", "COMPONENT_VERSION_REQUIREMENTS_NOT_MET")
RECIPE_INVALID = ("COMPONENT_PACKAGE_LOADING_ERROR", "RECIPE_PARSE_ERROR")
ARTIFACT_MISSING = ("ARTIFACT_DOWNLOAD_ERROR", "IO_ERROR")


@pytest.mark.parametrize(
    ("setup", "request_body", "codes", "message"),
    [
        ("nextpatch", {"rootComponentVersionsToAdd": {"com.example.A": "1.0.0"}}, RECIPE_INVALID,
         "ComponentVersion: 'NEXT_PATCH' is a placeholder"),
        ("artifact", {"rootComponentVersionsToAdd": {"com.example.A": "1.0.0"}}, ARTIFACT_MISSING,
         "artifact 'app.zip' of com.example.A 1.0.0 (s3://bucket/app.zip) is missing"),
        ("range", {"rootComponentVersionsToAdd": {"com.example.A": "1.0.0"}}, NO_VERSION,
         "No local version of component com.example.Lib satisfies the requirements '^2.0.0' from com.example.A 1.0.0"),
        ("platform", {"rootComponentVersionsToAdd": {"com.example.A": "1.0.0"}}, RECIPE_INVALID,
         "com.example.A 1.0.0 does not claim platform compatibility"),
        ("ok", {"rootComponentVersionsToAdd": {"com.example.A": "3.0.0"}}, NO_VERSION,
         "No local version of component com.example.A satisfies the requirements '3.0.0' from deployment group "
         "LOCAL_DEPLOYMENT; available versions: 1.0.0"),
    ],
)
def test_plan_failures_are_clear(tmp_path: Path, recipes: Any, setup: str, request_body: dict,
                                 codes: tuple[str, ...], message: str) -> None:
    if setup == "nextpatch":
        (recipes.dir / "bad.yaml").write_text(
            'RecipeFormatVersion: "2020-01-25"\nComponentName: com.example.A\nComponentVersion: NEXT_PATCH\n'
            "Manifests: [{}]\n")
    elif setup == "artifact":
        recipes.add("com.example.A", "1.0.0", artifacts=[{"Uri": "s3://bucket/app.zip"}])
    elif setup == "range":
        recipes.add("com.example.A", "1.0.0", deps={"com.example.Lib": "^2.0.0"})
        recipes.add("com.example.Lib", "1.0.0")
    elif setup == "platform":
        recipes.add("com.example.A", "1.0.0", platform={"os": "windows"})
    else:
        recipes.add("com.example.A", "1.0.0")
    store = Store(tmp_path / "gg")
    with pytest.raises(DeploymentError) as err:
        plan(store, dict(request_body, recipeDirectoryPath=str(recipes.dir)))
    assert err.value.codes == codes
    assert message in str(err.value)


def test_a_configuration_nested_too_deep_fails_the_plan_before_anything_is_written(tmp_path: Path,
                                                                                  recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", defaults={"Mode": "fast"})
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    store = Store(tmp_path / "gg")
    with pytest.raises(DeploymentError) as err:
        plan(store, {"recipeDirectoryPath": str(recipes.dir), "rootComponentVersionsToAdd": {"com.example.A": "1.0.0"},
                     "componentToConfiguration": {"com.example.A": {"MERGE": {"deep": deep}}}})
    assert err.value.codes == ("COMPONENT_CONFIGURATION_NOT_VALID",)
    assert "configuration of com.example.A: nested deeper than 128 levels" in str(err.value)
