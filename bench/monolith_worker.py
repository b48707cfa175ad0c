"""One process doing what a DeepLens Lambda did, in a loop: decode the video (OpenCV), letterbox it as
greenlens.Capture does, preprocess + infer (greenlens_inference.Engine), annotate (the publisher's
draw_result) and "publish" (the result message JSON-encoded as the publisher encodes it for IoT Core).

    python -m bench.monolith_worker CLIP THREADS PACE_FPS WARMUP_S SECONDS

PACE_FPS 0: unpaced (as fast as frames can be read). Prints "WARM" when the warm-up ends, then one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import cv2

from .common import BUNDLE, HEIGHT, WIDTH, stats_ms


def main(argv: list[str]) -> None:
    from greenlens_capture.imaging import letterbox
    from greenlens_inference import Engine, build_result_message, load_bundle
    from greenlens_publisher.annotate import draw_result
    from greenlens_publisher.cloud import encode

    clip, threads, pace, warmup, seconds = argv[0], int(argv[1]), float(argv[2]), float(argv[3]), float(argv[4])
    engine = Engine(load_bundle(BUNDLE), threads=threads)
    model = engine.bundle.model_info()
    cap = cv2.VideoCapture(clip, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {clip}")
    interval = 1.0 / pace if pace > 0 else 0.0
    stages: dict[str, list[float]] = {k: [] for k in ("read", "preprocess", "inference", "postprocess",
                                                       "annotate", "publish", "total")}
    latencies: list[float] = []
    frames = late = 0
    payload_bytes = 0
    start = time.monotonic()
    measuring = False
    window_start = end = start + warmup
    end = window_start + seconds
    next_due = start
    seq = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if not measuring and now >= window_start:
            measuring, window_start = True, now
            print("WARM", flush=True)
        if interval:
            delay = next_due - now
            if delay > 0:
                time.sleep(delay)
            elif delay < -interval:
                if measuring:
                    late += int(-delay / interval)  # ticks of a 30 fps camera this loop could not take
                next_due = time.monotonic()
            next_due += interval
        t0 = time.perf_counter()
        ok, image = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
            if not ok:
                raise SystemExit(f"cannot read {clip}")
        frame = letterbox(image, WIDTH, HEIGHT)
        captured_at = time.time()
        t1 = time.perf_counter()
        seq += 1
        result = engine.infer(frame)
        message = build_result_message(result, model, seq=seq, captured_at=captured_at, source="camera")
        t2 = time.perf_counter()
        draw_result(frame, message)
        t3 = time.perf_counter()
        payload = encode(message)
        t4 = time.perf_counter()
        latency = (time.time() - captured_at) * 1000
        if measuring:
            frames += 1
            payload_bytes += len(payload)
            latencies.append(latency)
            timings = result["timings_ms"]
            stages["read"].append((t1 - t0) * 1000)
            for key in ("preprocess", "inference", "postprocess"):
                stages[key].append(timings[key])
            stages["annotate"].append((t3 - t2) * 1000)
            stages["publish"].append((t4 - t3) * 1000)
            stages["total"].append((t4 - t0) * 1000)
    elapsed = time.monotonic() - window_start
    print(json.dumps({
        "frames": frames, "seconds": round(elapsed, 2), "frames_per_s": round(frames / elapsed, 2),
        "late_ticks": late, "latency_ms": stats_ms(latencies),
        "stage_ms": {k: stats_ms(v) for k, v in stages.items()},
        "payload_bytes_mean": round(payload_bytes / frames) if frames else None,
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
