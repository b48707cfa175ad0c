"""aws.greengrass.TokenExchangeService and the other built-ins, as a recipe that depends on them sees them."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from tests.support.ggsim_cli import deploy, recipe, running_ggsim, wait_for_lines, write_recipes

BOTO_COMPONENT = textwrap.dedent("""\
    import json, os, sys, urllib.request, urllib.error
    import boto3
    out = open(sys.argv[1], "a")
    credentials = boto3.Session().get_credentials()
    frozen = credentials.get_frozen_credentials()
    out.write(json.dumps({"method": credentials.method, "key": frozen.access_key, "secret": frozen.secret_key,
                          "token": frozen.token, "uri": os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]}) + "\\n")
    try:  # without the component's token the endpoint refuses
        urllib.request.urlopen(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
    except urllib.error.HTTPError as exc:
        out.write(json.dumps({"anonymous": exc.code}) + "\\n")
    out.close()
""")


def test_boto3_in_a_component_gets_the_credentials_the_user_gave_ggsim(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("AccessKeyId: AKIDGGSIMTEST\nSecretAccessKey: not-a-real-secret\nToken: session-1\n")
    with running_ggsim(tmp_path / "root", "--aws-credentials", str(credentials)) as ggsim:
        script = tmp_path / "boto_component.py"
        script.write_text(BOTO_COMPONENT)
        seen = tmp_path / "seen.jsonl"
        doc = recipe("test.Boto", "1.0.0", {"Run": f"{sys.executable} -u {script} {seen}"})
        doc["ComponentDependencies"] = {
            "aws.greengrass.TokenExchangeService": {"VersionRequirement": "^2.0.0", "DependencyType": "HARD"},
            "aws.greengrass.LogManager": {"VersionRequirement": ">=2.0.0 <3.0.0"},
            "aws.greengrass.Nucleus": {"VersionRequirement": ">=2.0.0", "DependencyType": "SOFT"},
        }
        uploader = {"logsUploaderConfiguration": {"systemLogsConfiguration": {"uploadToCloudWatch": "true"}}}
        status = deploy(ggsim, write_recipes(tmp_path / "recipes", doc), "--merge", "test.Boto=1.0.0",
                        "--merge", "aws.greengrass.LogManager=2.3.9",
                        "--update-config", json.dumps({"aws.greengrass.LogManager": {"MERGE": uploader}}))
        assert status["status"] == "SUCCEEDED", status
        got, anonymous = wait_for_lines(seen, 2)
        assert got["method"] == "container-role"
        assert (got["key"], got["secret"], got["token"]) == ("AKIDGGSIMTEST", "not-a-real-secret", "session-1")
        assert got["uri"].startswith("http://localhost:") and got["uri"].endswith("/2016-11-01/credentialprovider/")
        assert anonymous == {"anonymous": 403}

        listed = {c["componentName"]: c for c in ggsim.json("component", "list")}
        for name in ("aws.greengrass.Nucleus", "aws.greengrass.Cli", "aws.greengrass.TokenExchangeService",
                     "aws.greengrass.ShadowManager", "aws.greengrass.SecretManager", "aws.greengrass.LogManager"):
            assert listed[name]["state"] == "RUNNING", name
        assert listed["aws.greengrass.TokenExchangeService"]["version"] == "2.0.3"
        log_manager = ggsim.json("component", "details", "--name", "aws.greengrass.LogManager")
        assert log_manager["configuration"] == uploader


def test_a_range_the_built_in_version_does_not_satisfy_fails_naming_it(tmp_path: Path) -> None:
    with running_ggsim(tmp_path / "root") as ggsim:
        doc = recipe("test.NeedsNew", "1.0.0", {"Run": "exec sleep 600"})
        doc["ComponentDependencies"] = {"aws.greengrass.ShadowManager": {"VersionRequirement": ">=3.0.0"}}
        status = deploy(ggsim, write_recipes(tmp_path / "recipes", doc), "--merge", "test.NeedsNew=1.0.0")
        assert status["status"] == "FAILED"
        assert ("aws.greengrass.ShadowManager is provided by the simulator at version 2.3.9, which does not satisfy "
                "'>=3.0.0' from test.NeedsNew 1.0.0") in str(status), status
