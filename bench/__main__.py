"""`make bench`: run the benchmark sections, write build/bench/report.json and print a table.

    python -m bench [--only ipc,deploy,model,monolith,graph,frameplane,cameras,fleet] [--out build/bench/report.json]

`model`, `monolith` and `graph` are measured side by side in one run; with both `monolith` and `graph` the report
gets a `comparison` (GreenLens against the monolith, against the targets of design §6; reported, not asserted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import REPO


def sections() -> dict[str, Callable[[], dict[str, Any]]]:
    from . import cameras, deploy, fleet, frameplane, graph, ipc, model, monolith

    return {"ipc": ipc.run, "deploy": deploy.run, "model": model.run, "monolith": monolith.run,
            "graph": graph.run, "frameplane": frameplane.run, "cameras": cameras.run, "fleet": fleet.run}


TARGETS = {"throughput_ratio_min": 1.0, "latency_p50_ratio_max": 1.25, "frameplane_1280x720_ms_max": 1.0}


def comparison(report: dict[str, Any]) -> dict[str, Any]:
    """GreenLens against the monolith (frames/s unpaced, p50 latency paced at 30 fps) and the targets; with
    several rounds, each round's ratios and their medians."""
    rounds = report.get("rounds") or [report]
    per_round = [pair_ratios(r) for r in rounds]
    out: dict[str, Any] = {"targets": TARGETS, **per_round[0]}
    if len(per_round) > 1:
        out = {"targets": TARGETS, "rounds": per_round}
        for key in ("throughput_ratio", "latency_p50_ratio", "throughput_ratio_capture_at_60fps"):
            values = [r[key] for r in per_round if r.get(key) is not None]
            if values:
                out[key] = round(statistics.median(values), 3)
        if "throughput_ratio" in out:
            out["throughput_target_met"] = out["throughput_ratio"] >= TARGETS["throughput_ratio_min"]
        if "latency_p50_ratio" in out:
            out["latency_target_met"] = out["latency_p50_ratio"] <= TARGETS["latency_p50_ratio_max"]
    plane = report.get("frameplane")
    if plane:
        big = next((c for c in plane["ring"] if c["size"] == "1280x720"), None)
        if big:
            out["frameplane_1280x720_ms"] = big["write_plus_read_ms_p50"]
            out["frameplane_target_met"] = big["write_plus_read_ms_p50"] < TARGETS["frameplane_1280x720_ms_max"]
    return out


def pair_ratios(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mono, graph = report.get("monolith"), report.get("graph")
    if mono and graph:
        g_fps, m_fps = graph["unpaced"].get("results_per_s"), mono["unpaced"]["frames_per_s"]
        g_lat = (graph["paced_30fps"].get("latency_ms_observed") or {}).get("p50")
        m_lat = mono["paced_30fps"]["latency_ms"]["p50"]
        if g_fps and m_fps:
            out["throughput_ratio"] = round(g_fps / m_fps, 3)
            out["throughput_target_met"] = out["throughput_ratio"] >= TARGETS["throughput_ratio_min"]
        if g_lat and m_lat:
            out["latency_p50_ratio"] = round(g_lat / m_lat, 3)
            out["latency_target_met"] = out["latency_p50_ratio"] <= TARGETS["latency_p50_ratio_max"]
        matched = graph.get("paced_60fps", {}).get("results_per_s")
        if matched and m_fps:
            out["throughput_ratio_capture_at_60fps"] = round(matched / m_fps, 3)
    return out


def _f(value: Any, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)


def _procs(processes: dict[str, Any]) -> str:
    return ", ".join(f"{name.split(' ')[0]} {_f(p['cpu_percent'], '.0f')}%/{_f(p['peak_rss_mb_vmhwm'], '.0f')} MB"
                     for name, p in processes.items())


def perf_tables(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    model = report.get("model")
    if model:
        t = Table(title="Model alone (preprocessed tensors)")
        for col in ("greenlens.Model", "threads", "median ms", "p99 ms", "inferences/s", "load (1/5/15 min)"):
            t.add_column(col)
        for v in model.get("versions") or [{"version": "", "model": model["model"], "cases": model["cases"]}]:
            for c in v["cases"]:
                t.add_row(f"{v['version']} {v['model']}", str(c["threads"]), _f(c["ms_p50"], ".2f"),
                          _f(c["ms_p99"], ".2f"), _f(c["inferences_per_s"]), "/".join(map(str, c["loadavg_before"])))
        console.print(t)
    mono, graph = report.get("monolith"), report.get("graph")
    cases = []
    rounds = report.get("rounds") or [report]
    for n, round_ in enumerate(rounds, 1):
        prefix = f"r{n} " if len(rounds) > 1 else ""
        for label in ("monolith", "graph"):
            section = round_.get(label)
            for key in ("unpaced", "paced_30fps", "paced_60fps"):
                if section and section.get(key):
                    name = "monolith" if label == "monolith" else "GreenLens"
                    cases.append((f"{prefix}{name} {key}", name, section[key]))
    if cases:
        t = Table(title=f"GreenLens on ggsim against the monolith (same clip, model, "
                        f"threads={(mono or graph or {}).get('threads')})")
        for col in ("case", "frames/s", "p50 ms", "p99 ms", "c→r p50 in-graph", "infer p50", "dropped / skipped", "CPU %",
                    "others' CPU %", "load 1 min"):
            t.add_column(col)
        for name, label, case in cases:
            if label == "monolith":
                fps, lat, drops = case["frames_per_s"], case["latency_ms"], f"{case['late_ticks']} late"
                cpu, inner = case["cpu_percent_total"], lat.get("p50")
            else:
                inner = case["stage_ms"]["capture_to_result"]["p50"]
                fps, lat = case.get("results_per_s"), case.get("latency_ms_observed") or {}
                drops = (f"{case.get('skipped_by_inference')} skip, {case.get('dropped_by_capture')} cap, "
                         f"{case.get('overwritten_in_ring')} ovw")
                cpu = case["cpu_percent_total_graph"]
            machine = case.get("machine") or {}
            t.add_row(name, _f(fps), _f(lat.get("p50")), _f(lat.get("p99")), _f(inner),
                      _f(case["stage_ms"]["inference"]["p50"]),
                      drops, _f(cpu, ".0f"), _f(machine.get("other_processes_cpu_percent"), ".0f"),
                      _f(case["loadavg_before"][0], ".2f"))
        console.print(t)
        console.print("p50/p99: capture → result as seen outside (monolith: encoded; GreenLens: received by a "
                      "greenlens/results subscriber); c→r in-graph: GreenLens's timings_ms.capture_to_result (at "
                      "greenlens.Inference's publish). others' CPU: the machine's busy CPU minus these processes'.")
        t = Table(title="CPU % (100 = one core) / peak RSS MB of every process, per case")
        names = list(dict.fromkeys(n for _, _, c in cases for n in c["processes"]))
        t.add_column("case")
        for n in names:
            t.add_column(n.split(" ")[0])
        for name, _, case in cases:
            procs = case["processes"]
            t.add_row(name, *(f"{_f(procs[n]['cpu_percent'], '.0f')} / {_f(procs[n]['peak_rss_mb_vmhwm'], '.0f')}"
                              if n in procs else "" for n in names))
        console.print(t)
    plane = report.get("frameplane")
    if plane:
        t = Table(title="Frame plane per frame (ring: write + read in another process; inline JPEG: encode + decode)")
        for col in ("size", "ring write p50 ms", "ring read p50 ms", "ring total p50 / p99 ms",
                    "inline JPEG enc+dec p50 / p99 ms", "JPEG delivered"):
            t.add_column(col)
        for r, j in zip(plane["ring"], plane["inline_jpeg"], strict=True):
            t.add_row(r["size"], _f(r["write_ms"]["p50"], ".3f"), _f(r["read_ms"]["p50"], ".3f"),
                      f"{r['write_plus_read_ms_p50']:.3f} / {r['write_plus_read_ms_p99']:.3f}",
                      f"{j['encode_plus_decode_ms_p50']:.2f} / {j['encode_plus_decode_ms_p99']:.2f}",
                      str(j["delivered_size"]))
        console.print(t)
    comp = report.get("comparison")
    if comp:
        many = " (median of the rounds' ratios)" if comp.get("rounds") else ""
        console.print(f"GreenLens / monolith{many}: frames/s ×{comp.get('throughput_ratio')} (target ≥ 1.0), "
                      f"p50 latency ×{comp.get('latency_p50_ratio')} (target ≤ 1.25); frame plane 1280x720 "
                      f"{comp.get('frameplane_1280x720_ms')} ms (target < 1 ms)")


def table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 160))
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
    fleet = report.get("fleet")
    if fleet:
        spread = fleet.get("rollout_seconds_spread") or {}
        console.print(f"Fleet of {fleet['cores']} ggsim cores ({fleet['clock']}): RSS per core "
                      f"{fleet['rss_mb_per_core_idle_median']} MB idle, {fleet['rss_mb_per_core_after_deployment_median']} "
                      f"MB after a deployment (USS {fleet.get('uss_mb_per_core_after_deployment_median', '–')} MB; "
                      f"target ≤ {fleet['rss_target_mb']}); "
                      f"{fleet['cores_that_fit_in_available_memory']} fit in available memory; CreateDeployment → all "
                      f"SUCCEEDED {fleet['rollout_seconds_create_to_all_succeeded']} s "
                      f"(min {spread.get('min', '–')}, max {spread.get('max', '–')}; rate dictates "
                      f"{fleet['rollout_seconds_dictated_by_rate']} s, the nucleus's health wait "
                      f"{fleet.get('rollout_seconds_nucleus_health_wait', '–')} s, target overhead ≤ "
                      f"{fleet['rollout_overhead_target_s']} s); control plane {fleet['control_plane_requests_per_s']} "
                      f"requests/s; load {fleet.get('load_average_at_start', '–')} → {fleet.get('load_average_at_end', '–')}")
    perf_tables(report, console)
    cameras_table(report, console)


def cameras_table(report: dict[str, Any], console: Any) -> None:
    """The cameras section: one camera at 30 frames/s beside two at 15, per camera."""
    from rich.table import Table

    section = report.get("cameras")
    if not section:
        return
    t = Table(title=f"Cameras on the graph ({section['clip']}): one at 30 frames/s, two at 15 each")
    for col in ("case", "camera", "results/s", "share", "p50 ms", "p99 ms", "skipped", "graph CPU %",
                "graph RSS MB"):
        t.add_column(col)
    for key in ("one_camera_30fps", "two_cameras_15fps"):
        case = section[key]
        for name, cam in case["per_camera"].items():
            lat = cam.get("latency_ms_observed") or {}
            t.add_row(key, name, _f(cam["results_per_s"]), _f(cam["share_of_results"], ".2f"), _f(lat.get("p50")),
                      _f(lat.get("p99")), _f(cam["skipped_by_inference"], "d"), _f(case["cpu_percent_total_graph"]),
                      _f(case["rss_mb_total_graph"]))
    console.print(t)
    comp = section["comparison"]
    console.print(f"two cameras / one: results/s ×{comp.get('results_ratio')} (target ≥ 0.95), p50 latency "
                  f"×{comp.get('latency_p50_ratio')} (target ≤ 1.3), smallest camera share "
                  f"{comp.get('smallest_camera_share')} (target ≥ 0.45)")


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", help="comma-separated sections (default: all)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with monolith and graph: this many rounds of both, alternating which goes first")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "report.json")
    args = parser.parse_args()
    available = sections()
    chosen = args.only.split(",") if args.only else list(available)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {sorted(available)}")
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "platform": platform.platform(), "cpu_model": cpu_model()},
                              "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    paired = [n for n in ("monolith", "graph") if n in chosen]
    for name in chosen:
        if name in paired and args.rounds > 1:
            if name != paired[0]:
                continue
            report["rounds"] = []
            for r in range(args.rounds):
                order = paired if r % 2 == 0 else paired[::-1]
                round_: dict[str, Any] = {"order": order}
                for part in order:
                    print(f"bench: {part} (round {r + 1} of {args.rounds}) ...", flush=True)
                    round_[part] = available[part]()
                report["rounds"].append(round_)
            for part in paired:
                report[part] = report["rounds"][0][part]
            continue
        print(f"bench: {name} ...", flush=True)
        report[name] = available[name]()
    if any(k in report for k in ("monolith", "graph", "frameplane")):
        report["comparison"] = comparison(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    table(report)
    print(f"load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
