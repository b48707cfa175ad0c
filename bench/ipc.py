"""Local pub/sub through ggsim (awsiotsdk clients) beside Mosquitto (paho clients), same workers, same run.

1 KB payloads, one publisher, 1 and 4 subscribers, each a separate process: delivered messages per
second with the publisher unpaced, and round-trip latency p50/p99 with it paced at 1,000 msgs/s. Also
ggsim's idle RSS (a fresh `ggsim up`).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ggsim.client import CLI_INFO

from .common import LoopThread, percentile, python_process, rss_mb

PAYLOAD = 1024
TOPIC = "bench/load"
THROUGHPUT_COUNT = 20_000
LATENCY_RATE = 1000.0
LATENCY_COUNT = 5_000


class GgsimTarget:
    name = "ggsim"

    def __init__(self, root: Path) -> None:
        from ggsim.core import Core

        self.thread = LoopThread()
        self.kernel = Core(root, thing_name="bench")
        self.thread.run(self.kernel.start())
        self._n = 0

    def env(self) -> dict[str, str]:
        self._n += 1
        name = f"bench.Worker{self._n}"
        policy = {"accessControl": {"aws.greengrass.ipc.pubsub": {"all": {"operations": ["*"], "resources": ["*"]}}}}

        async def register() -> str:
            self.kernel.config.merge(name, policy)
            return self.kernel.tokens.issue(name)

        token = self.thread.run(register())
        return {"SVCUID": token, "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(self.kernel.socket_path)}

    def close(self) -> None:
        self.thread.run(self.kernel.stop())
        self.thread.stop()


class MosquittoTarget:
    name = "mosquitto"

    def __init__(self, workdir: Path) -> None:
        from devsupport.mosquitto import Mosquitto

        self.broker = Mosquitto(workdir)

    def env(self) -> dict[str, str]:
        return {"BENCH_MQTT": f"127.0.0.1:{self.broker.port}"}

    def close(self) -> None:
        self.broker.stop()


def run_case(target: Any, subscribers: int, count: int, rate: float) -> dict[str, Any]:
    transport = "ggsim" if target.name == "ggsim" else "mqtt"
    subs = [python_process(["-m", "bench.ipc_worker", transport, "sub", TOPIC, str(count)], target.env(),
                           stdout=subprocess.PIPE, stdin=subprocess.PIPE) for _ in range(subscribers)]
    for sub in subs:
        line = sub.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"{target.name} subscriber did not start: {line!r}")
    pub = python_process(["-m", "bench.ipc_worker", transport, "pub", TOPIC, str(count), str(PAYLOAD), str(rate)],
                         target.env(), stdout=subprocess.PIPE)
    pub_result = json.loads(pub.stdout.readline())
    pub.wait(30)
    results = []
    for sub in subs:
        sub.stdin.close()
        results.append(json.loads(sub.stdout.readline()))
        sub.wait(30)
    received = sum(r["count"] for r in results)
    first = min((r["first"] for r in results if r["count"]), default=0)
    last = max((r["last"] for r in results if r["count"]), default=0)
    latencies = [x * 1000 for r in results for x in r["latencies"]]
    return {
        "subscribers": subscribers,
        "published": pub_result["sent"],
        "publish_seconds": round(pub_result["elapsed"], 3),
        "delivered": received,
        "dropped": count * subscribers - received,
        "delivered_per_s": round(received / (last - first), 1) if last > first else None,
        "latency_ms_p50": round(percentile(latencies, 50) or 0, 3),
        "latency_ms_p99": round(percentile(latencies, 99) or 0, 3),
    }


def idle_rss(workdir: Path) -> float:
    root = workdir / "idle-root"
    proc = python_process(["-m", "ggsim.cli", "--root", str(root), "up"], stderr=subprocess.DEVNULL)
    info = root / CLI_INFO
    deadline = time.monotonic() + 30
    while not info.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let start-up garbage settle before reading memory
    try:
        return round(rss_mb(proc.pid), 1)
    finally:
        proc.terminate()
        proc.wait(30)


def run() -> dict[str, Any]:
    report: dict[str, Any] = {"payload_bytes": PAYLOAD, "cases": []}
    with tempfile.TemporaryDirectory(prefix="ggsim-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # `ggsim up` as root refuses a root its component user cannot reach
        for make in (lambda: GgsimTarget(workdir / "ggsim-root"), lambda: MosquittoTarget(workdir)):
            target = make()
            try:
                for subscribers in (1, 4):
                    throughput = run_case(target, subscribers, THROUGHPUT_COUNT, 0)
                    latency = run_case(target, subscribers, LATENCY_COUNT, LATENCY_RATE)
                    report["cases"].append({
                        "target": target.name, "subscribers": subscribers,
                        "unpaced": throughput, "paced_1000_per_s": latency})
            finally:
                target.close()
        report["ggsim_idle_rss_mb"] = idle_rss(workdir)
    by = {(c["target"], c["subscribers"]): c for c in report["cases"]}
    for subscribers in (1, 4):
        g, m = by.get(("ggsim", subscribers)), by.get(("mosquitto", subscribers))
        if g and m and g["unpaced"]["delivered_per_s"] and m["unpaced"]["delivered_per_s"]:
            report[f"ggsim_vs_mosquitto_throughput_{subscribers}sub"] = round(
                g["unpaced"]["delivered_per_s"] / m["unpaced"]["delivered_per_s"], 3)
    return report
