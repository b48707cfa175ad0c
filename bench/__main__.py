"""`make bench`: run the benchmark sections, write build/bench/report.json and print a table.

    python -m bench [--only ipc,deploy] [--out build/bench/report.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import REPO


def sections() -> dict[str, Callable[[], dict[str, Any]]]:
    from . import deploy, ipc

    return {"ipc": ipc.run, "deploy": deploy.run}


def table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ipc = report.get("ipc")
    if ipc:
        t = Table(title=f"Local pub/sub, {ipc['payload_bytes']} B payloads (ggsim: awsiotsdk; Mosquitto: paho)")
        for col in ("target", "subs", "delivered/s (unpaced)", "dropped", "p50 ms @1000/s", "p99 ms @1000/s"):
            t.add_column(col)
        for case in ipc["cases"]:
            un, pa = case["unpaced"], case["paced_1000_per_s"]
            t.add_row(case["target"], str(case["subscribers"]), f"{un['delivered_per_s']:,.0f}",
                      str(un["dropped"] + pa["dropped"]), f"{pa['latency_ms_p50']:.2f}", f"{pa['latency_ms_p99']:.2f}")
        console.print(t)
        console.print(f"ggsim idle RSS: {ipc['ggsim_idle_rss_mb']} MB")
    deploy = report.get("deploy")
    if deploy:
        console.print(f"Deployment of {deploy['components']} no-op components, create → all RUNNING: "
                      f"first {deploy['create_to_all_running_s_first']} s, median "
                      f"{deploy['create_to_all_running_s_median']} s; ggsim RSS with them "
                      f"{deploy['ggsim_rss_mb_with_components']} MB")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", help="comma-separated sections (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "report.json")
    args = parser.parse_args()
    available = sections()
    chosen = args.only.split(",") if args.only else list(available)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {sorted(available)}")
    report: dict[str, Any] = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                                          "platform": platform.platform()},
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name in chosen:
        print(f"bench: {name} ...", flush=True)
        report[name] = available[name]()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    table(report)
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
