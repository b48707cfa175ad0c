"""The README's operator policy, tested as printed: the real GDK CLI publishes every GreenLens component to
the control plane and the README's create-deployment step runs against it (as the AWS CLI would send it,
through botocore), each request signed with the operator's own access key; the control plane records which
operation each request invoked (GET /_ggcloud/calls), and the operator policy must allow the IAM action
(and resource) of every one. Every action a README policy names must exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from ggcloud.clock import Clock
from ggcloud.request_log import S3_ACTIONS
from ggcloud.server import ControlPlane

from tests.cloud.conftest import ACCOUNT, REGION
from tests.cloud.test_gdk_publish import gdk  # noqa: F401 - the fixture: GDK installed into build/gdk-venv
from tests.support.readme_iam import README, not_allowed, policy_actions, readme_policies

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ["components/model", "components/capture", "components/inference", "components/publisher", "."]
OPERATOR_KEY = "AKIAOPERATOR00000001"
BUCKET = "readme-iam-test"
THING = "readme-iam-core"


@pytest.fixture
def plane() -> Iterator[ControlPlane]:
    """A control plane of its own: its Greengrass v2 state starts empty (GDK publishes 1.0.0 afresh)."""
    with ControlPlane(region=REGION, clock=Clock(60.0)) as cp:
        yield cp


def readme_create_deployment() -> dict[str, Any]:
    """The README's `aws greengrassv2 create-deployment` command as CreateDeployment parameters."""
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```\n(.*?)```", text, re.S) if "aws greengrassv2 create-deployment" in b)
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:3] == ["aws", "greengrassv2", "create-deployment"], words
    params: dict[str, Any] = {}
    for option, value in zip(words[3::2], words[4::2], strict=True):
        name = re.sub(r"-(\w)", lambda m: m.group(1).upper(), option.removeprefix("--"))
        params[name] = json.loads(value) if value.lstrip().startswith("{") else value
    return params


def calls(plane: ControlPlane) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{plane.url}/_ggcloud/calls", timeout=10) as answer:
        return json.loads(answer.read())


def test_the_readme_operator_policy_allows_every_call_of_gdk_publish_and_the_create_deployment_step(
        gdk: Path, plane: ControlPlane) -> None:  # noqa: F811 - the gdk fixture
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=plane.url, AWS_ACCESS_KEY_ID=OPERATOR_KEY, AWS_SECRET_ACCESS_KEY="operator",
               AWS_DEFAULT_REGION=REGION, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    try:
        for folder in FOLDERS:
            for args in (["component", "build"], ["component", "publish", "-r", REGION, "-b", BUCKET]):
                done = subprocess.run([str(gdk), *args], cwd=REPO / folder, env=env, capture_output=True,
                                      text=True, timeout=300)
                assert done.returncode == 0, f"gdk {' '.join(args)} in {folder}:\n{done.stdout}\n{done.stderr}"
    finally:
        for folder in FOLDERS:
            subprocess.run(["rm", "-rf", str(REPO / folder / "greengrass-build"), str(REPO / folder / "zip-build")],
                           check=False)
    boto3.client("iot", endpoint_url=plane.url, region_name=REGION, aws_access_key_id="setup",
                 aws_secret_access_key="setup").create_thing(thingName=THING)
    params = readme_create_deployment()
    params["targetArn"] = (params["targetArn"].replace("REGION", REGION).replace("ACCOUNT", ACCOUNT)
                           .replace("NAME", THING))
    operator = boto3.client("greengrassv2", endpoint_url=plane.url, region_name=REGION,
                            aws_access_key_id=OPERATOR_KEY, aws_secret_access_key="operator")
    deployment = operator.create_deployment(**params)
    operator.get_deployment(deploymentId=deployment["deploymentId"])

    made = [c for c in calls(plane) if c["access_key"] == OPERATOR_KEY]
    operations = {(c["service"], c["operation"]) for c in made}
    assert ("s3", "PutObject") in operations and ("greengrassv2", "CreateComponentVersion") in operations
    assert ("greengrassv2", "CreateDeployment") in operations, operations
    assert all(op != "?" for _, op in operations), made
    policy = readme_policies()["operator"]
    missing = not_allowed(policy, made, {"BUCKET": BUCKET, "REGION": REGION, "ACCOUNT": ACCOUNT})
    assert not missing, "the README's operator policy does not allow:\n" + "\n".join(missing)


def test_every_action_the_readme_policies_name_exists() -> None:
    session = botocore.session.get_session()
    known = {"greengrass": set(session.get_service_model("greengrassv2").operation_names),
             "iot": set(session.get_service_model("iot").operation_names)
             | set(session.get_service_model("iot-data").operation_names),  # shadows: iot-data, prefix iot
             "sts": set(session.get_service_model("sts").operation_names),
             "s3": {a.split(":")[1] for a in S3_ACTIONS.values()} | set(session.get_service_model("s3").operation_names)}
    # actions that are permissions only (no API operation of that name)
    known["greengrass"] |= {"GetComponentVersionArtifact", "GetDeploymentConfiguration"}
    known["iot"] |= {"Connect", "Publish", "Subscribe", "Receive"}
    for name, policy in readme_policies().items():
        for action in policy_actions(policy):
            prefix, _, operation = action.partition(":")
            assert prefix in known and (operation in known[prefix] or "*" in operation), \
                f"the README's {name} policy names {action}, which {prefix} does not have"
