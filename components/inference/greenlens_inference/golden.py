"""The golden check: a bundle's model must give the verdicts its golden set expects, within its bounds.

A bundle may carry a golden set (model.json ``golden``: ``{"file": "golden.json", "sha256": ...}``), built
with the bundle by components/model/golden.py. golden.json (``greenlens.golden/1``)::

    {"schema": "greenlens.golden/1",
     "bounds": {"min_accuracy": 1.0, "max_latency_ms": 400.0},
     "images": [{"file": "golden/00.ppm", "sha256": "...", "expected": {"top1": "<a line of labels.txt>",
                                                                         "present": false}}, ...]}

``check_golden(bundle)`` runs the model (with model.json's own rule and threshold, one thread) on every
golden image and raises :class:`GoldenError` — one line naming the bundle, the check, the expected and the
actual value — when golden.json or an image is missing or not the file model.json / golden.json names
(sha256), when fewer images than ``min_accuracy`` give their expected verdict (the top-1 label and the
label of interest's present/absent), or when the median inference time is above ``max_latency_ms``.
A bundle without a golden set (greenlens.Model 1.0.0 and 2.0.0, built before golden sets) is not checked.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundle import Bundle, BundleError

GOLDEN_SCHEMA = "greenlens.golden/1"


class GoldenError(BundleError):
    """The model does not give its golden set's verdicts, or not fast enough, or the set is not intact."""


@dataclass(frozen=True)
class GoldenReport:
    """What the golden check found (the check passed)."""

    images: int
    matched: int
    latency_p50_ms: float
    min_accuracy: float
    max_latency_ms: float

    @property
    def accuracy(self) -> float:
        return self.matched / self.images

    def summary(self) -> str:
        return (f"golden check passed: {self.matched} of {self.images} verdicts as expected (minimum accuracy "
                f"{self.min_accuracy:g}), inference p50 {self.latency_p50_ms:.1f} ms (maximum "
                f"{self.max_latency_ms:g} ms)")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refuse(bundle: Bundle, check: str, detail: str) -> GoldenError:
    return GoldenError(f"bundle {bundle.name} {bundle.version} ({bundle.path}): {check}: {detail}")


def read_golden(bundle: Bundle) -> dict[str, Any] | None:
    """golden.json of the bundle, its sha256 checked; None when the bundle has no golden set."""
    declared = bundle.manifest.get("golden")
    if declared is None:
        return None
    path = bundle.path / declared["file"]
    if not path.is_file():
        raise _refuse(bundle, "golden set", f"{path.name} not found (model.json's golden.file names it)")
    actual = _sha256(path)
    if actual != declared["sha256"]:
        raise _refuse(bundle, "golden set sha256", f"expected {declared['sha256']} (model.json), got {actual}")
    try:
        golden = json.loads(path.read_text(encoding="utf-8"))
        bounds = golden["bounds"]
        float(bounds["min_accuracy"]), float(bounds["max_latency_ms"])
        images = list(golden["images"])
        if golden.get("schema") != GOLDEN_SCHEMA or not images:
            raise ValueError(f"expected schema {GOLDEN_SCHEMA} and at least one image")
        for image in images:
            str(image["file"]), str(image["sha256"]), str(image["expected"]["top1"])
            bool(image["expected"]["present"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise _refuse(bundle, "golden set", f"{path.name} is not a {GOLDEN_SCHEMA} document ({exc!r})") from None
    return dict(golden)


def check_golden(bundle: Bundle) -> GoldenReport | None:
    """Run the golden check (see the module docstring); None when the bundle has no golden set."""
    import cv2

    from .engine import Engine

    golden = read_golden(bundle)
    if golden is None:
        return None
    bounds = golden["bounds"]
    min_accuracy, max_latency_ms = float(bounds["min_accuracy"]), float(bounds["max_latency_ms"])
    frames = []
    for image in golden["images"]:
        path = bundle.path / image["file"]
        if not path.is_file():
            raise _refuse(bundle, "golden image", f"{image['file']} not found (golden.json names it)")
        actual = _sha256(path)
        if actual != image["sha256"]:
            raise _refuse(bundle, "golden image sha256", f"{image['file']}: expected {image['sha256']}, got {actual}")
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise _refuse(bundle, "golden image", f"{image['file']} cannot be read as an image")
        frames.append((image, frame))
    engine = Engine(bundle, threads=1)  # model.json's rule, threshold and label of interest
    engine.infer(frames[0][1])  # warm-up: the first invoke allocates
    matched = 0
    latencies = []
    first_miss = ""
    for image, frame in frames:
        result = engine.infer(frame)
        latencies.append(float(result["timings_ms"]["inference"]))
        top1 = result["top_k"][0]["label"] if result["top_k"] else ""
        present = bool(result["verdict"]["present"])
        expected = image["expected"]
        if top1 == expected["top1"] and present == bool(expected["present"]):
            matched += 1
        elif not first_miss:
            first_miss = (f"; first miss {image['file']}: expected top-1 {expected['top1']!r} present="
                          f"{str(bool(expected['present'])).lower()}, got top-1 {top1!r} present={str(present).lower()}")
    accuracy = matched / len(frames)
    if accuracy < min_accuracy:
        raise _refuse(bundle, "golden accuracy", f"expected at least {min_accuracy:g}, got {accuracy:.2f} ({matched} "
                                                 f"of {len(frames)} golden images gave their expected verdict"
                                                 f"{first_miss})")
    p50 = statistics.median(latencies)
    if p50 > max_latency_ms:
        raise _refuse(bundle, "golden latency", f"expected inference p50 at most {max_latency_ms:g} ms, got "
                                                f"{p50:.1f} ms on this device")
    return GoldenReport(len(frames), matched, round(p50, 3), min_accuracy, max_latency_ms)
