"""The fleet section of `make bench`: many ggsim cores on this machine as fleet members of the control plane.

20 `ggsim up --fleet` processes on one Mosquitto and one in-process control plane at clock scale 60 (a
roll-out minute lasts 1 s). Each round deploys a new version of a no-op component (one small S3 artifact,
digest checked, so each core resolves, downloads with a SigV4-signed GetObject and runs it) to the group.

Measured:
- RSS and USS (private memory, what one more core really costs) per core, idle and after the deployments,
  and how many such cores this machine's available memory holds (by RSS, the conservative figure, and by
  USS, shared pages counted once);
- seconds from CreateDeployment to every execution SUCCEEDED (ListJobExecutionsForJob polled every 20 ms,
  then confirmed with ListEffectiveDeployments), per round and their median/min/max, split into what the
  roll-out rate dictates (default maximumPerMinute 1000: nothing for 20 cores), the nucleus's own health
  wait (its DeploymentConfigMerger looks at the deployed components every second, and the first look
  comes before they have started: a deployment takes at least that second on a real core too) and the
  overhead beyond both;
- control-plane requests during each roll-out and requests/s (ListEffectiveDeployments in a loop, one
  client, the cores idle);
- the machine's load average and CPU use while it ran (other work on this 2-core machine skews every figure).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from devsupport.roots import python_component_user

from .common import load, machine_ticks, rss_mb

CORES = 20
ROUNDS = 3
CLOCK_SCALE = 60.0
REGION = "us-east-1"
BUCKET = "bench-fleet"
COMPONENT = "bench.FleetNoOp"
TARGET_RSS_MB = 40.0
TARGET_OVERHEAD_S = 2.0
#: the nucleus's DeploymentConfigMerger.WAIT_SVC_START_POLL_INTERVAL_MILLISEC
NUCLEUS_HEALTH_POLL_S = 1.0
DEFAULT_MAXIMUM_PER_MINUTE = 1000


def _wait(condition: Any, timeout: float, what: str, period: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fleet bench: no {what} after {timeout} s")
        time.sleep(period)  # polling the control plane's API


def _mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _uss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_full_info().uss / 2**20


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2)}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (those still alive)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def seconds_dictated_by_rate(cores: int, per_minute: int, minute_s: float) -> float:
    """A fixed rate notifies ``per_minute`` things per roll-out minute: the last wave starts after this."""
    return (math.ceil(cores / per_minute) - 1) * minute_s


def run(cores: int = CORES, rounds: int = ROUNDS) -> dict[str, Any]:
    import boto3
    from botocore.exceptions import ClientError
    from ggcloud.clock import Clock
    from ggcloud.server import ControlPlane
    from ggsim.fleet.launcher import Fleet, register

    from devsupport.mosquitto import Mosquitto

    load_at_start = load()
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

        gg, iot, s3 = client("greengrassv2"), client("iot"), client("s3")
        s3.create_bucket(Bucket=BUCKET)
        versions = [f"1.0.{i}" for i in range(rounds)]
        for version in versions:
            artifact = f"no-op {version}\n".encode()
            key = f"{COMPONENT}/{version}/noop.txt"
            s3.put_object(Bucket=BUCKET, Key=key, Body=artifact)
            gg.create_component_version(inlineRecipe=json.dumps({
                "RecipeFormatVersion": "2020-01-25", "ComponentName": COMPONENT, "ComponentVersion": version,
                "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "test -f {artifacts:path}/noop.txt"},
                               "Artifacts": [{"Uri": f"s3://{BUCKET}/{key}", "Algorithm": "SHA-256",
                                              "Digest": base64.b64encode(hashlib.sha256(artifact).digest()).decode()}]}]
            }).encode())
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
        time.sleep(1.0)  # let the cores settle after their start (a measurement pause, not synchronisation)
        idle_rss = [rss_mb(pid) for pid in pids]
        idle_uss = [_uss_mb(pid) for pid in pids]

        dictated = seconds_dictated_by_rate(cores, DEFAULT_MAXIMUM_PER_MINUTE, clock.minute)
        per_round: list[dict[str, Any]] = []
        for version in versions:
            requests_before = plane.requests
            busy0, total0 = machine_ticks()
            ours0 = _cpu_seconds([os.getpid(), *pids])
            t0 = time.monotonic()
            dep = gg.create_deployment(targetArn=group, components={COMPONENT: {"componentVersion": version}})
            job_id = gg.get_deployment(deploymentId=dep["deploymentId"])["iotJobId"]

            def all_succeeded(job: str = job_id) -> bool:
                summaries = iot.list_job_executions_for_job(jobId=job, maxResults=250)["executionSummaries"]
                return (len(summaries) == cores
                        and all(s["jobExecutionSummary"]["status"] == "SUCCEEDED" for s in summaries))

            _wait(all_succeeded, 120, f"{cores} SUCCEEDED", period=0.02)
            seconds = time.monotonic() - t0
            busy1, total1 = machine_ticks()
            ours = (_cpu_seconds([os.getpid(), *pids]) - ours0) / seconds * 100
            machine = (busy1 - busy0) / max(1, total1 - total0) * 100 * (os.cpu_count() or 1)
            requests = plane.requests - requests_before
            statuses = {e["coreDeviceExecutionStatus"] for t in fleet.things for e in
                        gg.list_effective_deployments(coreDeviceThingName=t)["effectiveDeployments"]
                        if e["deploymentId"] == dep["deploymentId"]}
            if statuses != {"SUCCEEDED"}:
                raise RuntimeError(f"fleet bench: ListEffectiveDeployments says {statuses}, not all SUCCEEDED")
            per_round.append({
                "version": version, "seconds_create_to_all_succeeded": round(seconds, 2),
                "overhead_beyond_rate_s": round(seconds - dictated, 2),
                "overhead_beyond_rate_and_nucleus_health_wait_s": round(seconds - dictated - NUCLEUS_HEALTH_POLL_S, 2),
                "control_plane_requests": requests,
                # 100 % = one core; "ours": the control plane (this process) and the cores, not their components
                "machine_cpu_percent": round(machine, 1), "our_cpu_percent": round(ours, 1),
                "others_cpu_percent": round(max(0.0, machine - ours), 1),
            })
        after_rss = [rss_mb(pid) for pid in pids]
        after_uss = [_uss_mb(pid) for pid in pids]
        n, t1 = 0, time.monotonic()
        while time.monotonic() - t1 < 3.0:
            gg.list_effective_deployments(coreDeviceThingName=fleet.things[n % cores])
            n += 1
        seconds = [r["seconds_create_to_all_succeeded"] for r in per_round]
        median_s = statistics.median(seconds)
        per_core_rss = statistics.median(after_rss)
        per_core_uss = statistics.median(after_uss)
        shared = max(0.0, per_core_rss - per_core_uss)
        overhead = median_s - dictated
        return {
            "cores": cores, "clock": clock.describe(), "rounds": rounds,
            "seconds_to_all_reporting": round(start_s, 2),
            "rss_mb_per_core_idle_median": round(statistics.median(idle_rss), 1),
            "uss_mb_per_core_idle_median": round(statistics.median(idle_uss), 1),
            "rss_mb_per_core_after_deployment_median": round(per_core_rss, 1),
            "rss_mb_per_core_after_deployment_max": round(max(after_rss), 1),
            "uss_mb_per_core_after_deployment_median": round(per_core_uss, 1),
            "rss_target_mb": TARGET_RSS_MB, "rss_target_met": max(after_rss) <= TARGET_RSS_MB,
            "cores_that_fit_in_available_memory": int(_mem_available_mb() / per_core_rss),
            "cores_that_fit_in_available_memory_by_uss": int((_mem_available_mb() - shared) / per_core_uss),
            "rollout_rounds": per_round,
            "rollout_seconds_create_to_all_succeeded": round(median_s, 2),
            "rollout_seconds_spread": _spread(seconds),
            "rollout_seconds_dictated_by_rate": round(dictated, 2),
            "rollout_seconds_nucleus_health_wait": NUCLEUS_HEALTH_POLL_S,
            "rollout_overhead_s": round(overhead, 2),
            "rollout_overhead_beyond_nucleus_health_wait_s": round(overhead - NUCLEUS_HEALTH_POLL_S, 2),
            "rollout_overhead_target_s": TARGET_OVERHEAD_S,
            "rollout_overhead_target_met": overhead <= TARGET_OVERHEAD_S,
            "control_plane_requests_per_s": round(n / (time.monotonic() - t1), 1),
            "load_average_at_start": load_at_start, "load_average_at_end": load(),
        }
    finally:
        fleet.stop()
        plane.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
