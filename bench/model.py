"""The model alone: the TFLite interpreter on preprocessed tensors (set_tensor + invoke + get_tensor), 1 and 2
threads, for each hot dog greenlens.Model version — the limit of this CPU for each model, with no decoding, IPC
or drawing.

Tensors are real frames of the sample clip, preprocessed once by greenlens_inference.preprocess (every version
measured here has the same input spec). The versions run in alternating slices, so that a change in the load of
the machine falls on all of them alike; `p50_ratio` is each version's median over 1.0.0's, per thread count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from .common import BUNDLE, HEIGHT, REPO, WIDTH, load, sample_clip, stats_ms

WARMUP = 20
SECONDS = 8.0
SLICES = 4
THREADS = (1, 2)
VERSIONS = ("1.0.0", "3.0.0")  # the hot dog classifiers: ImageNet class 934, and the trained model
BASELINE = VERSIONS[0]


def bundle_dir(version: str) -> Path:
    versions = yaml.safe_load((REPO / "components" / "model" / "versions.yaml").read_text())["versions"]
    return REPO / "components" / "model" / "bundles" / versions[version]["bundle"]


def tensors(count: int = 16, bundle: Path = BUNDLE) -> list[Any]:
    import cv2
    from greenlens_capture.imaging import letterbox
    from greenlens_inference.bundle import load_bundle
    from greenlens_inference.preprocess import preprocess

    spec = load_bundle(bundle).input
    cap = cv2.VideoCapture(str(sample_clip()))
    out = []
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i * max(1, total // count))
        ok, frame = cap.read()
        if ok:
            out.append(preprocess(letterbox(frame, WIDTH, HEIGHT), spec)[0])
    cap.release()
    return out


class Timed:
    """One bundle's interpreter on `threads` threads, and the times of its runs."""

    def __init__(self, bundle: Path, threads: int, inputs: list[Any]) -> None:
        from greenlens_inference.bundle import load_bundle
        from greenlens_inference.runtime import make_interpreter

        loaded = load_bundle(bundle)
        self.name, self.version = loaded.name, loaded.version
        self.interpreter = make_interpreter(loaded.model_content, threads)
        self.runtime = type(self.interpreter).__module__
        self.inp = self.interpreter.get_input_details()[0]["index"]
        self.out = self.interpreter.get_output_details()[0]["index"]
        self.inputs = inputs
        self.times: list[float] = []
        self.elapsed = 0.0
        for i in range(WARMUP):
            self.once(i)

    def once(self, i: int) -> None:
        self.interpreter.set_tensor(self.inp, self.inputs[i % len(self.inputs)])
        self.interpreter.invoke()
        self.interpreter.get_tensor(self.out).copy()

    def run_for(self, seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            self.once(len(self.times))
            self.times.append((time.perf_counter() - t0) * 1000)
        self.elapsed += time.perf_counter() - start


def measure(threads: int, inputs: list[Any], bundles: dict[str, Path], seconds: float = SECONDS) -> dict[str, Any]:
    """Each bundle for `seconds` in all, in SLICES alternating slices; {version: case}."""
    timed = {version: Timed(path, threads, inputs) for version, path in bundles.items()}
    load_before = load()
    for _ in range(SLICES):
        for t in timed.values():
            t.run_for(seconds / SLICES)
    cases = {}
    for version, t in timed.items():
        ms = stats_ms(t.times)
        cases[version] = {"threads": threads, "runtime": t.runtime, "inferences": len(t.times),
                          "seconds": round(t.elapsed, 2), "inferences_per_s": round(len(t.times) / t.elapsed, 1),
                          "ms_p50": ms["p50"], "ms_p99": ms["p99"], "ms_mean": ms["mean"],
                          "loadavg_before": load_before, "loadavg_after": load()}
    return cases


def run() -> dict[str, Any]:
    bundles = {version: bundle_dir(version) for version in VERSIONS}
    inputs = tensors(bundle=bundles[BASELINE])
    by_threads = {threads: measure(threads, inputs, bundles) for threads in THREADS}
    versions = [{"version": version, "model": path.name, "cases": [by_threads[t][version] for t in THREADS]}
                for version, path in bundles.items()]
    ratios = {version: {str(t): round(by_threads[t][version]["ms_p50"] / by_threads[t][BASELINE]["ms_p50"], 3)
                        for t in THREADS} for version in VERSIONS if version != BASELINE}
    return {"model": bundles[BASELINE].name, "input_shape": list(inputs[0].shape), "cases": versions[0]["cases"],
            "versions": versions, "p50_ratio": ratios}
