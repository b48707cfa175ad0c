"""The monolith: one process that decodes, preprocesses, infers, annotates and publishes in a loop (what a
DeepLens Lambda did; bench/monolith_worker.py), on the same clip, model and threads as the graph.

Two cases: unpaced (throughput: frames as fast as they can be read) and paced at 30 fps (latency: capture
— the decoded, letterboxed frame — to the result encoded). Each runs WARMUP s, then SECONDS s measured,
with the process's CPU % and RSS sampled every 0.5 s.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from .common import ProcSampler, load, python_process, sample_clip

WARMUP = 5.0
SECONDS = 20.0
THREADS = 1
PACED_FPS = 30.0


def run_case(pace: float, threads: int = THREADS, warmup: float = WARMUP, seconds: float = SECONDS) -> dict[str, Any]:
    proc = python_process(["-m", "bench.monolith_worker", str(sample_clip()), str(threads), str(pace), str(warmup),
                           str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sampler = ProcSampler({"monolith": proc.pid}).start()
    try:
        line = proc.stdout.readline()
        if line.strip() != "WARM":
            raise RuntimeError(f"the monolith worker did not warm up: {line!r} (exit {proc.wait(30)})")
        sampler.window()
        load_before = load()
        result = json.loads(proc.stdout.readline())
        processes = sampler.summary()
        machine = sampler.machine(processes)
    finally:
        sampler.stop()
        proc.wait(60)
    return {"pace_fps": pace or "unpaced", "threads": threads, **result, "processes": processes,
            "cpu_percent_total": processes["monolith"]["cpu_percent"], "machine": machine,
            "loadavg_before": load_before, "loadavg_after": load()}


def run(threads: int = THREADS) -> dict[str, Any]:
    return {"clip": sample_clip().name, "threads": threads,
            "unpaced": run_case(0.0, threads), "paced_30fps": run_case(PACED_FPS, threads)}
