"""The model alone: the TFLite interpreter on preprocessed tensors (set_tensor + invoke + get_tensor), 1 and 2
threads — the limit of this CPU for EfficientNet-Lite0, with no decoding, IPC or drawing.

Tensors are real frames of the sample clip, preprocessed once by greenlens_inference.preprocess.
"""

from __future__ import annotations

import time
from typing import Any

from .common import BUNDLE, HEIGHT, WIDTH, load, sample_clip, stats_ms

WARMUP = 20
SECONDS = 8.0
THREADS = (1, 2)


def tensors(count: int = 16) -> list[Any]:
    import cv2
    from greenlens_capture.imaging import letterbox
    from greenlens_inference.bundle import load_bundle
    from greenlens_inference.preprocess import preprocess

    bundle = load_bundle(BUNDLE)
    cap = cv2.VideoCapture(str(sample_clip()))
    out = []
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i * max(1, total // count))
        ok, frame = cap.read()
        if ok:
            out.append(preprocess(letterbox(frame, WIDTH, HEIGHT), bundle.input)[0])
    cap.release()
    return out


def measure(threads: int, inputs: list[Any], seconds: float = SECONDS) -> dict[str, Any]:
    from greenlens_inference.bundle import load_bundle
    from greenlens_inference.runtime import make_interpreter

    bundle = load_bundle(BUNDLE)
    interpreter = make_interpreter(bundle.model_content, threads)
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def once(tensor: Any) -> None:
        interpreter.set_tensor(inp, tensor)
        interpreter.invoke()
        interpreter.get_tensor(out).copy()

    for i in range(WARMUP):
        once(inputs[i % len(inputs)])
    load_before = load()
    times = []
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        once(inputs[i % len(inputs)])
        times.append((time.perf_counter() - t0) * 1000)
        i += 1
    elapsed = time.perf_counter() - start
    ms = stats_ms(times)
    return {"threads": threads, "runtime": type(interpreter).__module__, "inferences": len(times), "seconds": round(elapsed, 2),
            "inferences_per_s": round(len(times) / elapsed, 1), "ms_p50": ms["p50"], "ms_p99": ms["p99"],
            "ms_mean": ms["mean"], "loadavg_before": load_before, "loadavg_after": load()}


def run() -> dict[str, Any]:
    inputs = tensors()
    return {"model": BUNDLE.name, "input_shape": list(inputs[0].shape), "cases": [measure(t, inputs) for t in THREADS]}
