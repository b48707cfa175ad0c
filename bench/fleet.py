"""The fleet section of `make bench`: many ggsim cores on this machine as fleet members of the control plane.

20 `ggsim up --fleet` processes (one no-op component each deployment) on one Mosquitto and one control plane
at clock scale 60 (a roll-out minute lasts 1 s). Measured: RSS per core idle and after its first
deployment (boto3 is loaded then), how many such cores this machine's available memory holds, seconds from
CreateDeployment to every core SUCCEEDED (with the default maximumPerMinute 1000 the roll-out rate
dictates no wait for 20 cores, so all of it is overhead), and the control plane's requests per second
(ListEffectiveDeployments in a loop, one client).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from devsupport.roots import python_component_user

from .common import rss_mb

CORES = 20
CLOCK_SCALE = 60.0
REGION = "us-east-1"
TARGET_RSS_MB = 40.0
TARGET_OVERHEAD_S = 2.0


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fleet bench: no {what} after {timeout} s")
        time.sleep(0.1)  # polling the control plane's API


def _mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(cores: int = CORES) -> dict[str, Any]:
    import boto3
    from botocore.exceptions import ClientError
    from ggcloud.clock import Clock
    from ggcloud.server import ControlPlane
    from ggsim.fleet.launcher import Fleet, register

    from devsupport.mosquitto import Mosquitto

    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    broker = Mosquitto(work)
    clock = Clock(CLOCK_SCALE)
    plane = ControlPlane(region=REGION, clock=clock, broker_url=broker.url).start()
    fleet = Fleet(work / "cores", broker.url, plane.url, count=cores, prefix="bench", region=REGION,
                  status_interval=30.0, component_user=python_component_user())
    try:
        def client(service: str) -> Any:
            return boto3.client(service, endpoint_url=plane.url, region_name=REGION,
                                aws_access_key_id="testing", aws_secret_access_key="testing")

        gg, iot = client("greengrassv2"), client("iot")
        gg.create_component_version(inlineRecipe=json.dumps({
            "RecipeFormatVersion": "2020-01-25", "ComponentName": "bench.FleetNoOp", "ComponentVersion": "1.0.0",
            "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "true"}}]}).encode())
        group = register(iot, fleet.things, ["BenchFleet"])["BenchFleet"]
        started = time.monotonic()
        fleet.start(log_dir=work)

        def reported(thing: str) -> bool:
            try:
                gg.get_core_device(coreDeviceThingName=thing)
                return True
            except ClientError:
                return False

        for thing in fleet.things:
            _wait(lambda t=thing: reported(t), 120, f"fleet status from {thing}")
        start_s = time.monotonic() - started
        pids = [m.process.pid for m in fleet.members if m.process is not None]
        idle = [rss_mb(pid) for pid in pids]
        requests_before = plane.requests
        t0 = time.monotonic()
        dep = gg.create_deployment(targetArn=group, components={"bench.FleetNoOp": {"componentVersion": "1.0.0"}})

        def all_succeeded() -> bool:
            statuses = [next((e["coreDeviceExecutionStatus"] for e in gg.list_effective_deployments(
                coreDeviceThingName=t)["effectiveDeployments"] if e["deploymentId"] == dep["deploymentId"]), None)
                for t in fleet.things]
            return all(s == "SUCCEEDED" for s in statuses)

        _wait(all_succeeded, 120, "20 SUCCEEDED")
        rollout_s = time.monotonic() - t0
        rollout_requests = plane.requests - requests_before
        after = [rss_mb(pid) for pid in pids]
        n, t1 = 0, time.monotonic()
        while time.monotonic() - t1 < 3.0:
            gg.list_effective_deployments(coreDeviceThingName=fleet.things[n % cores])
            n += 1
        per_core = statistics.median(after)
        return {
            "cores": cores, "clock": clock.describe(),
            "seconds_to_all_reporting": round(start_s, 2),
            "rss_mb_per_core_idle_median": round(statistics.median(idle), 1),
            "rss_mb_per_core_after_deployment_median": round(per_core, 1),
            "rss_mb_per_core_after_deployment_max": round(max(after), 1),
            "rss_target_mb": TARGET_RSS_MB, "rss_target_met": per_core <= TARGET_RSS_MB,
            "cores_that_fit_in_available_memory": int(_mem_available_mb() / per_core),
            "rollout_seconds_create_to_all_succeeded": round(rollout_s, 2),
            "rollout_seconds_dictated_by_rate": 0.0,
            "rollout_overhead_target_s": TARGET_OVERHEAD_S,
            "rollout_overhead_target_met": rollout_s <= TARGET_OVERHEAD_S,
            "control_plane_requests_during_rollout": rollout_requests,
            "control_plane_requests_per_s": round(n / (time.monotonic() - t1), 1),
        }
    finally:
        fleet.stop()
        plane.stop()
        broker.stop()


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
