"""The README's policies for the core, tested as printed: a real ggsim core takes a deployment whose
component has an S3 artifact; of the requests made to the control plane meanwhile (GET /_ggcloud/calls),
its S3 ones (signed with the token exchange role's credentials: its own access key) must be allowed by the
token exchange role's policy, and its Greengrass data-plane ones (unsigned: on AWS the device's certificate
authenticates them) by the core's AWS IoT policy."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from ggsim.fleet.launcher import Fleet, register

from devsupport.roots import python_component_user
from tests.cloud.fake_fleet import wait_until
from tests.fleet.conftest import BUCKET, REGION, Plane, core_device, execution_status, publish, unique
from tests.support.readme_iam import not_allowed, readme_policies

CORE_KEY = "AKIACORE000000000001"
ACCOUNT = "123456789012"


def _calls(plane: Plane) -> list[dict]:
    with urllib.request.urlopen(f"{plane.url}/_ggcloud/calls", timeout=10) as answer:
        return json.loads(answer.read())


def test_the_readme_core_policies_allow_what_a_core_does(gg, s3, iot, plane: Plane, broker, tmp_path: Path) -> None:
    name = unique("test.Downloaded")
    publish(gg, s3, name, "1.0.0", "test -f {artifacts:path}/hello.txt")
    cores = Fleet(tmp_path / "fleet", broker.url, plane.url, count=1, prefix=unique("iam-core"), region=REGION,
                  status_interval=2.0, component_user=python_component_user(), env={"AWS_ACCESS_KEY_ID": CORE_KEY})
    group = unique("iam-group")
    arn = register(iot, cores.things, [group])[group]
    before = len(_calls(plane))  # the tests before this one stopped their cores: what follows is this core's
    cores.start()
    try:
        [thing] = cores.things
        wait_until(lambda: core_device(gg, thing), 60, f"{thing}'s first fleet status")
        dep = gg.create_deployment(targetArn=arn, components={name: {"componentVersion": "1.0.0"}})
        wait_until(lambda: execution_status(gg, thing, dep["deploymentId"]) == "SUCCEEDED", 60, "SUCCEEDED")
    finally:
        cores.stop()
    since = _calls(plane)[before:]
    made = [c for c in since if c["access_key"] == CORE_KEY]
    s3_calls = [c for c in made if c["service"] == "s3"]
    other = [c for c in made if c["service"] != "s3"] + [c for c in since if c["access_key"] is None]
    assert ("s3", "GetObject") in {(c["service"], c["operation"]) for c in s3_calls}, made
    assert {(c["service"], c["operation"]) for c in other} == {("greengrassv2", "ResolveComponentCandidates")}, made
    policies = readme_policies()
    where = {"BUCKET": BUCKET, "REGION": REGION, "ACCOUNT": ACCOUNT}
    missing = not_allowed(policies["token-exchange-role"], s3_calls, where)
    assert not missing, "the README's token exchange role policy does not allow:\n" + "\n".join(missing)
    missing = not_allowed(policies["core-iot-policy"], other, where)
    assert not missing, "the README's core IoT policy does not allow:\n" + "\n".join(missing)
