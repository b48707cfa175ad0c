"""CancelDeployment of a thing-group roll-out while it is on its way, with real ggsim cores: the deployment's
IoT job is cancelled with force, so

- a core not yet notified never gets it;
- a core still waiting for its components' answer to the update notice (componentUpdatePolicy
  NOTIFY_COMPONENTS) stops it: nothing changes on it;
- a core already applying it runs to its end (its components change) but IoT Jobs refuses its final
  update, so its execution stays CANCELED, as with the nucleus.

Asserted from GetDeployment, ListEffectiveDeployments, ListInstalledComponents and IoT's DescribeJob."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.fake_fleet import wait_until
from tests.fleet.conftest import BUCKET, MINUTE, execution_status, installed, unique
from tests.fleet.test_fleet_abort import wait_until_any

READY = "test -f {artifacts:path}/hello.txt"
#: subscribes to component update notices through the real awsiotsdk IPC client and never answers them
LISTENER = ("from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2 as C; import pathlib, time; "
            "c = C(); c.subscribe_to_component_updates(on_stream_event=lambda e: None); "
            "pathlib.Path('{markers}/listening').touch(); time.sleep(3600)")


@pytest.fixture
def markers() -> Iterator[Path]:
    """A folder the component user can write to (components run as another user than the tests)."""
    folder = Path(tempfile.mkdtemp(prefix="fleet-cancel-"))
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def create(gg: Any, s3: Any, name: str, version: str, lifecycle: dict[str, str]) -> None:
    artifact = b"hello fleet\n"
    key = f"{name}/{version}/hello.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=artifact)
    recipe = {"RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
              "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle,
                             "Artifacts": [{"Uri": f"s3://{BUCKET}/{key}", "Algorithm": "SHA-256",
                                            "Digest": base64.b64encode(hashlib.sha256(artifact).digest()).decode()}]}]}
    done = gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    assert done["status"]["componentState"] == "DEPLOYABLE", done["status"]


def effective(gg: Any, thing: str, deployment_id: str) -> dict[str, Any]:
    return next(e for e in gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"]
                if e["deploymentId"] == deployment_id)


def test_cancel_deployment_stops_waiting_cores_lets_applying_ones_finish_and_reaches_no_other(
        gg, s3, iot, fleet, markers) -> None:
    listener, slow = unique("test.Listener"), unique("test.Slow")
    create(gg, s3, listener, "1.0.0", {"Run": f'{sys.executable} -c "{LISTENER.format(markers=markers)}"'})
    create(gg, s3, slow, "1.0.0", {"Install": f"touch {markers}/$AWS_IOT_THING_NAME && sleep 6", "Run": READY})
    [group], cores = fleet(3)
    waiting, applying, later = cores.things
    # the first core runs a component that listens for update notices (a deployment to the thing itself)
    mine = gg.create_deployment(targetArn=iot.describe_thing(thingName=waiting)["thingArn"],
                                components={listener: {"componentVersion": "1.0.0"}})
    wait_until(lambda: execution_status(gg, waiting, mine["deploymentId"]) == "SUCCEEDED", 60, "the listener")
    wait_until(lambda: (markers / "listening").exists(), 30, "the listener subscribed to update notices")

    # two cores a roll-out minute; the update notice waits up to 2 roll-out minutes for an answer
    dep = gg.create_deployment(
        targetArn=group, deploymentName="slow",
        components={slow: {"componentVersion": "1.0.0"}},
        deploymentPolicies={"componentUpdatePolicy": {"action": "NOTIFY_COMPONENTS",
                                                      "timeoutInSeconds": int(2 * MINUTE)}},
        iotJobConfiguration={"jobExecutionsRolloutConfig": {"maximumPerMinute": 2}})
    wait_until(lambda: (markers / applying).exists(), MINUTE, f"{applying} installing {slow}")
    wait_until(lambda: execution_status(gg, waiting, dep["deploymentId"]) == "IN_PROGRESS", MINUTE,
               f"{waiting} taking the deployment")
    assert execution_status(gg, later, dep["deploymentId"]) is None

    answer = gg.cancel_deployment(deploymentId=dep["deploymentId"])
    assert answer["message"]
    assert gg.get_deployment(deploymentId=dep["deploymentId"])["deploymentStatus"] == "CANCELED"
    for thing in (waiting, applying):
        assert effective(gg, thing, dep["deploymentId"])["coreDeviceExecutionStatus"] == "CANCELED"

    # the core that was applying finishes: its component is installed (its SUCCEEDED is refused)
    wait_until(lambda: installed(gg, applying).get(slow) == "1.0.0", 60, f"{slow} installed on {applying}")
    # the waiting core would apply once the notice's time limit passed; cancelled, it never does
    assert not wait_until_any(lambda: slow in installed(gg, waiting) or (markers / waiting).exists(),
                              3 * MINUTE)
    assert installed(gg, waiting).get(listener) == "1.0.0"
    # the third core was never notified, and never will be
    assert execution_status(gg, later, dep["deploymentId"]) is None
    assert slow not in installed(gg, later)

    for thing in (waiting, applying):
        assert effective(gg, thing, dep["deploymentId"])["coreDeviceExecutionStatus"] == "CANCELED"
    job = iot.describe_job(jobId=dep["iotJobId"])["job"]
    assert job["status"] == "CANCELED"
    assert job["jobProcessDetails"]["numberOfCanceledThings"] == 2
    with pytest.raises(gg.exceptions.ConflictException):
        gg.cancel_deployment(deploymentId=dep["deploymentId"])
