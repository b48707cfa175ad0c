"""Several cameras on the graph: two cameras at 15 frames/s each beside one camera at 30 frames/s.

The same set-up as bench/graph.py (ggsim up, greenlens.App deployed from build/deploy, the sample clip as the
source, results read by bench/observer.py): one case deploys greenlens.Capture with a single camera at 30
frames/s, the other with ``cameras`` = two cameras, each the sample clip at 15 frames/s with its own ring.
Per case and per camera, after a warm-up, for a fixed window: results/s, capture-to-result latency p50/p99 as
the observer sees it, frames skipped by greenlens.Inference (the results' per-camera ``skipped``); CPU % and
RSS of every process. Targets (reported, not asserted): two cameras deliver ≥ 0.95× the single camera's
results/s in total, with p50 latency ≤ 1.3× the single camera's, and neither camera below 45 % of the total.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .common import ProcSampler, load, sample_clip
from .graph import COMPONENT_NAMES, DEPLOY, MAX_IN_FLIGHT, SECONDS, WARMUP, Graph, Observer, analyse, versions

TOTAL_FPS = 30.0
TARGETS = {"results_ratio_min": 0.95, "latency_p50_ratio_max": 1.3, "camera_share_min": 0.45}


class CamerasGraph(Graph):
    """The bench graph, deployed with a list of cameras (or one camera)."""

    def deploy_cameras(self, cameras: list[dict[str, Any]] | None, fps: float) -> None:
        found = versions()
        clip = str(sample_clip())
        capture: dict[str, Any] = {"source": clip, "fps": fps, "sourceFps": fps, "cameraId": "bench",
                                   "ringName": self.ring, "maxFramesInFlight": MAX_IN_FLIGHT,
                                   "inFlightTimeoutSeconds": 1, "cameras": cameras or []}
        config = {"greenlens.Capture": {"MERGE": capture},
                  "greenlens.Inference": {"MERGE": {"threads": self.threads}},
                  "greenlens.StreamPublisher": {"MERGE": {"port": self.port}}}
        args = ["deployment", "create", "-r", str(DEPLOY / "recipes"), "-a", str(DEPLOY / "artifacts")]
        for name in ("greenlens.App", "greenlens.Capture", "greenlens.Inference", "greenlens.StreamPublisher"):
            args += ["-m", f"{name}={found[name]}"]
        self.ggsim(*args, "-c", json.dumps(config), "--wait", "--timeout", "900", timeout=960)
        if self.observer is None:  # as Graph.configure: run the artifacts just deployed
            self.ggsim("component", "restart", "-n", ",".join(COMPONENT_NAMES))
            self.observer = Observer(self.root, "greenlens/results")
        if not self.observer.wait_result(120):
            raise RuntimeError(f"no result on greenlens/results within 120 s (see `ggsim --root {self.root} logs`)")


def run_case(graph: CamerasGraph, cameras: list[dict[str, Any]] | None, fps: float) -> dict[str, Any]:
    graph.deploy_cameras(cameras, fps)
    assert graph.observer is not None
    sampler = ProcSampler(graph.pids).start()
    try:
        time.sleep(WARMUP)
        graph.observer.drain()
        sampler.window()
        load_before = load()
        time.sleep(SECONDS)
        received = graph.observer.drain()
        processes = sampler.summary()
        machine = sampler.machine(processes)
    finally:
        sampler.stop()
    results = [(t, m) for t, m in received if str(m.get("schema", "")).startswith("greenlens.result/")]
    sources = sorted({str(m.get("source")) for _, m in results})
    per_camera = {}
    for source in sources:
        mine = [(t, m) for t, m in results if m.get("source") == source]
        case = analyse(mine, SECONDS)
        per_camera[source] = {
            "results": case.get("results"), "results_per_s": case.get("results_per_s"),
            "share_of_results": round(len(mine) / len(results), 3) if results else None,
            "latency_ms_observed": case.get("latency_ms_observed"),
            "capture_to_result_ms_reported": (case.get("stage_ms") or {}).get("capture_to_result"),
            "skipped_by_inference": case.get("skipped_by_inference"),
            "dropped_by_capture": case.get("dropped_by_capture"),
            "frames_published_by_capture_per_s": case.get("frames_published_by_capture_per_s"),
        }
    total = sum(c["results_per_s"] or 0 for c in per_camera.values())
    return {"cameras": len(cameras) if cameras else 1, "fps_per_camera": fps, "results_per_s_total": round(total, 2),
            "per_camera": per_camera, "processes": processes,
            "cpu_percent_total_graph": round(sum(p["cpu_percent"] or 0 for n, p in processes.items()
                                                 if not n.startswith("observer")), 1),
            "rss_mb_total_graph": round(sum(p["rss_mb_max"] for n, p in processes.items()
                                            if not n.startswith("observer")), 1),
            "machine": machine, "loadavg_before": load_before, "loadavg_after": load(), "window_s": SECONDS}


def compare(single: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    """The two-camera case against the single camera, and the targets."""
    out: dict[str, Any] = {"targets": TARGETS}
    one_rate, two_rate = single["results_per_s_total"], two["results_per_s_total"]
    if one_rate:
        out["results_ratio"] = round(two_rate / one_rate, 3)
        out["results_target_met"] = out["results_ratio"] >= TARGETS["results_ratio_min"]
    one_p50 = next(iter(single["per_camera"].values()), {}).get("latency_ms_observed", {}).get("p50")
    two_p50 = [c["latency_ms_observed"]["p50"] for c in two["per_camera"].values()
               if (c.get("latency_ms_observed") or {}).get("p50") is not None]
    if one_p50 and two_p50:
        out["latency_p50_ratio"] = round(max(two_p50) / one_p50, 3)  # the worse camera
        out["latency_target_met"] = out["latency_p50_ratio"] <= TARGETS["latency_p50_ratio_max"]
    shares = [c["share_of_results"] for c in two["per_camera"].values() if c["share_of_results"] is not None]
    if len(shares) == 2:
        out["smallest_camera_share"] = min(shares)
        out["share_target_met"] = min(shares) >= TARGETS["camera_share_min"]
    return out


def run() -> dict[str, Any]:
    graph = CamerasGraph()
    try:
        single = run_case(graph, None, TOTAL_FPS)
        half = TOTAL_FPS / 2
        clip = str(sample_clip())
        two = run_case(graph, [{"id": "cam1", "source": clip, "fps": half, "sourceFps": half},
                               {"id": "cam2", "source": clip, "fps": half, "sourceFps": half}], half)
        return {"clip": sample_clip().name, "threads": graph.threads, "versions": versions(),
                "one_camera_30fps": single, "two_cameras_15fps": two, "comparison": compare(single, two)}
    finally:
        try:
            graph.deploy_cameras(None, TOTAL_FPS)  # leave the kept root as the other sections expect it
        finally:
            graph.close()
