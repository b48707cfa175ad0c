"""Real ggsim cores (``ggsim up --fleet`` processes) on a real Mosquitto, ``ggcloud up`` at clock scale 6
(a roll-out minute lasts 10 s, long enough for a core to fail before the next wave), and boto3 clients
pointed at it with endpoint_url. Components are published through boto3 like any user's: the artifact
into S3, the recipe (with the artifact's SHA-256 digest) by CreateComponentVersion."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ggsim.fleet.launcher import Fleet, register

from devsupport.ports import free_port
from devsupport.roots import python_component_user
from tests.cloud.conftest import client  # boto3 with endpoint_url=plane.url and dummy credentials
from tests.cloud.fake_fleet import wait_until
from tests.support.mosquitto import Mosquitto

CLOCK_SCALE = 6.0
MINUTE = 60.0 / CLOCK_SCALE
REGION = "us-east-1"
BUCKET = "fleet-artifacts"
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("fleet-mosquitto"))
    yield mosquitto
    mosquitto.stop()


@dataclass
class Plane:
    url: str


@pytest.fixture(scope="session")
def plane(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """``ggcloud up`` in its own process (moto's state is one per process: tests/cloud's stays apart)."""
    port = free_port()
    log = tmp_path_factory.mktemp("ggcloud") / "ggcloud.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "ggcloud", "up", "--port", str(port), "--mqtt", broker.url,
                                    "--clock-scale", str(CLOCK_SCALE), "-v"], stdout=out, stderr=subprocess.STDOUT)
    plane = Plane(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: process.poll() is not None or _answers(plane.url), 30, "ggcloud listening")
        assert process.poll() is None, log.read_text()
        yield plane
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def gg(plane: Plane) -> Any:
    return client(plane, "greengrassv2")


@pytest.fixture(scope="session")
def iot(plane: Plane) -> Any:
    return client(plane, "iot")


@pytest.fixture(scope="session")
def s3(plane: Plane) -> Any:
    s3 = client(plane, "s3")
    s3.create_bucket(Bucket=BUCKET)
    return s3


def publish(gg: Any, s3: Any, name: str, version: str, run: str, *, dependencies: dict[str, str] | None = None,
            artifact: bytes = b"hello fleet\n", digest: str | None = None) -> None:
    """A component version with one artifact (hello.txt) in S3 and a Run step."""
    key = f"{name}/{version}/hello.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=artifact)
    recipe: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": run},
                       "Artifacts": [{"Uri": f"s3://{BUCKET}/{key}", "Algorithm": "SHA-256",
                                      "Digest": digest or base64.b64encode(hashlib.sha256(artifact).digest()).decode()}]}]}
    if dependencies:
        recipe["ComponentDependencies"] = {n: {"VersionRequirement": r} for n, r in dependencies.items()}
    done = gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    assert done["status"]["componentState"] == "DEPLOYABLE", done["status"]


def core_device(gg: Any, thing: str) -> dict[str, Any] | None:
    try:
        return gg.get_core_device(coreDeviceThingName=thing)
    except ClientError:
        return None


def execution_status(gg: Any, thing: str, deployment_id: str) -> str | None:
    return next((e["coreDeviceExecutionStatus"]
                 for e in gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"]
                 if e["deploymentId"] == deployment_id), None)


def installed(gg: Any, thing: str) -> dict[str, str]:
    """component -> version, every installed component the core reported."""
    return {c["componentName"]: c["componentVersion"] for c in gg.list_installed_components(
        coreDeviceThingName=thing, topologyFilter="ALL")["installedComponents"]}


@pytest.fixture
def fleet(plane: Plane, broker: Mosquitto, iot: Any, gg: Any,
          tmp_path: Path) -> Iterator[Callable[..., tuple[list[str], Fleet]]]:
    """``fleet(n, groups=[...])``: n ggsim cores registered in a new group (and ``groups``), started, and
    reporting to the control plane; returns (group ARNs, the Fleet)."""
    made: list[Fleet] = []

    def make(count: int, groups: list[str] | None = None) -> tuple[list[str], Fleet]:
        group = unique("group")
        cores = Fleet(tmp_path / unique("fleet"), broker.url, plane.url, count=count, prefix=unique("core"),
                      region=REGION, status_interval=2.0, component_user=python_component_user())
        arns = register(iot, cores.things, [group, *(groups or [])])
        made.append(cores)
        cores.start()
        for thing in cores.things:
            wait_until(lambda t=thing: core_device(gg, t), 60, f"{thing}'s first fleet status")
        return [arns[g] for g in [group, *(groups or [])]], cores

    yield make
    for cores in made:
        cores.stop()
