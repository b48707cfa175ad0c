"""`make soak`: GreenLens on ggsim for a long run at 30 fps (the sample clip as the camera): RSS of every
process sampled over time (first, after the warm-up, last, growth %), results per second, latency and
dropped / skipped frames per interval. Writes build/bench/soak.json.

    python -m bench.soak [--minutes 10] [--fps 30] [--threads 1] [--out build/bench/soak.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .common import REPO, ProcSampler, load, stats_ms
from .graph import Graph

ROOT = REPO / "build" / "bench" / "ggsim-soak-root"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _grew(first: dict[str, Any] | None, last: dict[str, Any] | None, key: str) -> int | None:
    if not first or not last:
        return None
    a, b = _int(first.get(key)), _int(last.get(key))
    return b - a if a is not None and b is not None else None


def rss_summary(series: list[tuple[float, float]], warmup: float) -> dict[str, Any]:
    first = series[0][1]
    warm = next((rss for t, rss in series if t >= warmup), series[-1][1])
    last = series[-1][1]
    return {"rss_mb_first": first, "rss_mb_after_warmup": warm, "rss_mb_last": last,
            "rss_mb_max": max(rss for _, rss in series),
            "growth_percent_after_warmup": round((last - warm) / warm * 100, 2) if warm else None,
            "samples": len(series)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "soak.json")
    args = ap.parse_args(argv)
    seconds = args.minutes * 60
    warmup = min(60.0, seconds / 4)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    graph = Graph(root=ROOT, threads=args.threads)
    intervals: list[dict[str, Any]] = []
    try:
        graph.configure(args.fps)
        assert graph.observer is not None
        graph.observer.drain()
        sampler = ProcSampler(graph.pids, interval=0.5, keep_series=True).start()
        t0 = time.monotonic()
        warm_wall = time.time() + warmup  # results received from then on count
        first: dict[str, Any] | None = None
        last: dict[str, Any] | None = None
        latencies: list[float] = []
        results = 0
        print(f"soak: {args.minutes:g} min at {args.fps:g} fps (warm-up {warmup:g} s) ...", flush=True)
        while time.monotonic() - t0 < seconds:
            time.sleep(min(30.0, max(0.0, seconds - (time.monotonic() - t0))))
            batch = [(t, m) for t, m in graph.observer.drain()
                     if str(m.get("schema", "")).startswith("greenlens.result/")]
            elapsed = time.monotonic() - t0
            if batch:
                lat = [(t - float(m["captured_at"])) * 1000 for t, m in batch]
                warm = [(t, m) for t, m in batch if t >= warm_wall]
                if warm:
                    latencies += [(t - float(m["captured_at"])) * 1000 for t, m in warm]
                    results += len(warm)
                    first = first or warm[0][1]
                    last = warm[-1][1]
                b0, b1 = batch[0][1], batch[-1][1]
                intervals.append({"t_s": round(elapsed, 1), "results": len(batch),
                                  "latency_ms_p50": stats_ms(lat)["p50"], "skipped_total": _int(b1.get("skipped")),
                                  "overwritten_total": _int(b1.get("overwritten")),
                                  "capture_dropped_total": _int(b1.get("capture_dropped")),
                                  "frames": int(b1["seq"]) - int(b0["seq"]) + 1, "loadavg": load()})
            else:
                intervals.append({"t_s": round(elapsed, 1), "results": 0, "loadavg": load()})
            print(f"soak: {elapsed:.0f} s, {intervals[-1]['results']} results in the last interval, "
                  f"load {load()}", flush=True)
        processes = sampler.summary()
        sampler.stop()
        duration = time.time() - warm_wall
    finally:
        graph.close()
    rss = {name: rss_summary(series, warmup) for name, series in sampler.series.items()}
    report: dict[str, Any] = {
        "started": started, "minutes": args.minutes, "fps": args.fps, "threads": args.threads,
        "warmup_s": warmup,
        "results_after_warmup": results,
        "results_per_s_after_warmup": round(results / duration, 2) if duration > 0 else None,
        "latency_ms_observed_after_warmup": stats_ms(latencies),
        "frames_after_warmup": int(last["seq"]) - int(first["seq"]) + 1 if first and last else None,
        "skipped_by_inference_after_warmup": _grew(first, last, "skipped"),
        "overwritten_after_warmup": _grew(first, last, "overwritten"),
        "dropped_by_capture_after_warmup": _grew(first, last, "capture_dropped"),
        "rss": rss,
        "cpu_percent_whole_run": {name: p["cpu_percent"] for name, p in processes.items()},
        "peak_rss_mb_vmhwm": {name: p["peak_rss_mb_vmhwm"] for name, p in processes.items()},
        "intervals": intervals,
        "rss_series_every_5s": {name: s[::10] for name, s in sampler.series.items()},
        "loadavg_at_end": load(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for name, r in rss.items():
        print(f"soak: {name}: RSS {r['rss_mb_first']} → {r['rss_mb_after_warmup']} (after warm-up) → "
              f"{r['rss_mb_last']} MB, growth {r['growth_percent_after_warmup']} %")
    print(f"soak: {report['results_per_s_after_warmup']} results/s, latency p50/p99 "
          f"{report['latency_ms_observed_after_warmup']['p50']}/{report['latency_ms_observed_after_warmup']['p99']} ms,"
          f" skipped {report['skipped_by_inference_after_warmup']}, capture dropped "
          f"{report['dropped_by_capture_after_warmup']}, overwritten {report['overwritten_after_warmup']}")
    print(f"soak: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
