"""Greengrass v2 on the control plane as boto3 sees it: every response fits botocore's output shape, bad
input is refused with the field named and changes nothing."""

from __future__ import annotations

import json

import pytest
import yaml
from botocore.exceptions import ClientError

from tests.cloud.conftest import ACCOUNT, REGION, assert_shape, unique


def recipe(name: str, version: str, uris: list[str], deps: dict[str, str] | None = None) -> dict:
    doc = {"RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
           "ComponentPublisher": "tests", "ComponentDescription": "a test component",
           "Manifests": [{"Platform": {"os": "linux"}, "Artifacts": [{"URI": u} for u in uris]}]}
    if deps:
        doc["ComponentDependencies"] = {d: {"VersionRequirement": r} for d, r in deps.items()}
    return doc


def component_arn(name: str, version: str | None = None) -> str:
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:{name}"
    return f"{arn}:versions:{version}" if version else arn


def errors_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, list[str]]:
    response = exc.value.response
    return response["Error"]["Code"], [f["name"] for f in response.get("fields", [])]


def test_component_versions_from_yaml_and_json_recipes(gg, s3) -> None:
    name, bucket = unique("test.Comp"), unique("bucket-")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=f"{name}/1.0.0/app.zip", Body=b"zip")
    uri = f"s3://{bucket}/{name}/1.0.0/app.zip"

    created = assert_shape("CreateComponentVersion", gg.create_component_version(
        inlineRecipe=yaml.safe_dump(recipe(name, "1.0.0", [uri])).encode()))
    assert created["arn"] == component_arn(name, "1.0.0")
    assert created["status"]["componentState"] == "DEPLOYABLE"
    second = assert_shape("CreateComponentVersion", gg.create_component_version(
        inlineRecipe=json.dumps(recipe(name, "1.10.0", [uri])).encode()))
    assert second["status"]["componentState"] == "DEPLOYABLE"

    described = assert_shape("DescribeComponent", gg.describe_component(arn=component_arn(name, "1.0.0")))
    assert (described["publisher"], described["platforms"][0]["attributes"]) == ("tests", {"os": "linux"})
    as_yaml = assert_shape("GetComponent", gg.get_component(arn=component_arn(name, "1.0.0"),
                                                            recipeOutputFormat="YAML"))
    assert yaml.safe_load(as_yaml["recipe"])["ComponentVersion"] == "1.0.0"
    as_json = assert_shape("GetComponent", gg.get_component(arn=component_arn(name, "1.10.0")))
    assert json.loads(as_json["recipe"])["ComponentName"] == name

    versions = assert_shape("ListComponentVersions", gg.list_component_versions(arn=component_arn(name)))
    assert [v["componentVersion"] for v in versions["componentVersions"]] == ["1.10.0", "1.0.0"]
    listed = assert_shape("ListComponents", gg.list_components())
    mine = [c for c in listed["components"] if c["componentName"] == name]
    assert mine[0]["latestVersion"]["componentVersion"] == "1.10.0"

    assert_shape("DeleteComponent", gg.delete_component(arn=component_arn(name, "1.10.0")))
    with pytest.raises(ClientError) as exc:
        gg.describe_component(arn=component_arn(name, "1.10.0"))
    assert errors_of(exc)[0] == "ResourceNotFoundException"


def test_a_missing_artifact_makes_the_version_failed_with_the_reason(gg) -> None:
    name = unique("test.Missing")
    uri = f"s3://{unique('nobucket-')}/{name}/art.zip"
    created = assert_shape("CreateComponentVersion", gg.create_component_version(
        inlineRecipe=json.dumps(recipe(name, "1.0.0", [uri])).encode()))
    assert created["status"]["componentState"] == "FAILED"
    assert uri in created["status"]["message"] and uri in created["status"]["errors"]


@pytest.mark.parametrize("bad, field", [
    (b"::: not yaml [", "inlineRecipe"),
    (json.dumps({"RecipeFormatVersion": "2020-01-25", "ComponentName": "x", "ComponentVersion": "one",
                 "Manifests": [{}]}).encode(), "inlineRecipe"),
])
def test_a_bad_recipe_is_refused_naming_the_field_and_nothing_changes(gg, bad: bytes, field: str) -> None:
    before = gg.list_components()["components"]
    with pytest.raises(ClientError) as exc:
        gg.create_component_version(inlineRecipe=bad)
    assert errors_of(exc) == ("ValidationException", [field])
    assert gg.list_components()["components"] == before


def test_the_same_version_twice_is_a_conflict(gg, s3) -> None:
    name = unique("test.Twice")
    body = json.dumps(recipe(name, "1.0.0", [])).encode()
    gg.create_component_version(inlineRecipe=body)
    with pytest.raises(ClientError) as exc:
        gg.create_component_version(inlineRecipe=body)
    assert errors_of(exc)[0] == "ConflictException"


def test_a_malformed_create_deployment_names_the_field_and_creates_nothing(gg, iot) -> None:
    group = unique("group")
    arn = iot.create_thing_group(thingGroupName=group)["thingGroupArn"]
    name = unique("test.Dep")
    gg.create_component_version(inlineRecipe=json.dumps(recipe(name, "1.0.0", [])).encode())
    before = gg.list_deployments(historyFilter="ALL")["deployments"]
    cases = [
        ({"targetArn": arn, "components": {name: {"componentVersion": "9.9.9"}}},
         [f"components.{name}.componentVersion"]),
        ({"targetArn": arn, "components": {name: {"componentVersion": "1.0.0",
                                                  "configurationUpdate": {"merge": "{not json"}}}},
         [f"components.{name}.configurationUpdate.merge"]),
        ({"targetArn": arn, "components": {name: {"componentVersion": "1.0.0"}},
          "deploymentPolicies": {"failureHandlingPolicy": "SOMETIMES"}},
         ["deploymentPolicies.failureHandlingPolicy"]),
        ({"targetArn": arn, "components": {name: {"componentVersion": "1.0.0"}},
          "iotJobConfiguration": {"jobExecutionsRolloutConfig": {"exponentialRate": {
              "baseRatePerMinute": 1, "incrementFactor": 9, "rateIncreaseCriteria": {"numberOfNotifiedThings": 1}}}}},
         ["iotJobConfiguration.jobExecutionsRolloutConfig.exponentialRate.incrementFactor"]),
        ({"targetArn": "arn:aws:iot:us-east-1:123456789012:device/x", "components": {}}, ["targetArn"]),
    ]
    for request, fields in cases:
        with pytest.raises(ClientError) as exc:
            gg.create_deployment(**request)
        assert errors_of(exc) == ("ValidationException", fields), request
    with pytest.raises(ClientError) as exc:
        gg.create_deployment(targetArn=arn.replace(group, unique("nogroup")), components={})
    assert errors_of(exc)[0] == "ResourceNotFoundException"
    assert gg.list_deployments(historyFilter="ALL")["deployments"] == before


def test_resolve_component_candidates_picks_the_highest_version_every_requirement_allows(gg) -> None:
    name = unique("test.Resolve")
    for version in ("1.0.0", "1.5.0", "2.0.0"):
        gg.create_component_version(inlineRecipe=json.dumps(recipe(name, version, [])).encode())
    platform = {"name": "linux", "attributes": {"os": "linux", "architecture": "amd64"}}
    resolved = assert_shape("ResolveComponentCandidates", gg.resolve_component_candidates(
        platform=platform, componentCandidates=[{
            "componentName": name, "componentVersion": "1.0.0",
            "versionRequirements": {"thinggroup/a": ">=1.0.0 <2.0.0", "thinggroup/b": "^1.2.0"}}]))
    [only] = resolved["resolvedComponentVersions"]
    assert (only["componentVersion"], only["arn"]) == ("1.5.0", component_arn(name, "1.5.0"))
    assert json.loads(only["recipe"])["ComponentVersion"] == "1.5.0"
    with pytest.raises(ClientError) as exc:
        gg.resolve_component_candidates(platform=platform, componentCandidates=[{
            "componentName": name, "componentVersion": "1.0.0",
            "versionRequirements": {"thinggroup/a": ">=3.0.0"}}])
    assert errors_of(exc)[0] == "ResourceNotFoundException"
    assert "thinggroup/a requires >=3.0.0" in exc.value.response["Error"]["Message"]
