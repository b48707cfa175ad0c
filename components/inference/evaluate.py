"""Measure the hot dog verdict on labelled photos: precision, recall and accuracy under both rules.

    python components/inference/evaluate.py [PHOTOS] [--bundle DIR] [--threads N] [--threshold T] [--limit N]

PHOTOS holds `hotdog/` (positives) and `not_hotdog/` (negatives); the default is the repo-relative
../shared/data/hotdog-photos. Prints one line per rule ("top1": the class of interest is the top-1
prediction; "threshold": its score is greater than T, default model.json's threshold), then one JSON line
with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
from greenlens_inference import BundleError, Engine, load_bundle
from greenlens_inference.verdict import check_threshold

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
DEFAULT_BUNDLE = REPO / "components" / "model" / "bundles" / "efficientnet-lite0"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CLASSES = {"hotdog": True, "not_hotdog": False}


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, truth: bool, predicted: bool) -> None:
        if truth and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    def metrics(self) -> dict[str, Any]:
        total = self.tp + self.fp + self.tn + self.fn
        return {
            "precision": round(self.tp / (self.tp + self.fp), 4) if self.tp + self.fp else None,
            "recall": round(self.tp / (self.tp + self.fn), 4) if self.tp + self.fn else None,
            "accuracy": round((self.tp + self.tn) / total, 4) if total else None,
            "n": total,
            **asdict(self),
        }


def labelled_photos(photos: Path, limit: int | None = None) -> list[tuple[Path, bool]]:
    """(path, is hot dog) for every image in photos/hotdog and photos/not_hotdog, sorted by name."""
    found: list[tuple[Path, bool]] = []
    for folder, truth in CLASSES.items():
        sub = photos / folder
        if not sub.is_dir():
            raise SystemExit(f"evaluate: {sub}: not found; expected a folder of {folder} photos")
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"evaluate: {sub}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        found += [(p, truth) for p in files[:limit]]
    return found


def evaluate(engine: Engine, photos: list[tuple[Path, bool]], threshold: float) -> dict[str, Any]:
    """Run the engine on each photo once; score the top-1 and the threshold rule from the same result."""
    engine.set_rule("top1")
    counts = {"top1": Counts(), "threshold": Counts()}
    by_source: dict[str, Counts] = {}
    started = time.perf_counter()
    inference_ms = 0.0
    for path, truth in photos:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise SystemExit(f"evaluate: {path}: cannot be decoded as an image")
        result = engine.infer(frame)
        inference_ms += result["timings_ms"]["inference"]
        top1 = result["verdict"]["present"]
        counts["top1"].add(truth, top1)
        counts["threshold"].add(truth, result["verdict"]["score"] > threshold)
        by_source.setdefault(path.name.split("_", 1)[0], Counts()).add(truth, top1)
    elapsed = time.perf_counter() - started
    return {
        "rules": {
            "top1": counts["top1"].metrics(),
            "threshold": {"threshold": threshold, **counts["threshold"].metrics()},
        },
        "top1_by_source": {k: v.metrics() for k, v in sorted(by_source.items())},
        "mean_inference_ms": round(inference_ms / max(1, len(photos)), 3),
        "seconds": round(elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="?", type=Path, default=DEFAULT_PHOTOS, help="folder of labelled photos")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="model bundle folder")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--threshold", type=float, help="threshold rule's threshold (default: model.json's)")
    parser.add_argument("--limit", type=int, help="use only the first N photos of each class")
    args = parser.parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        threshold = check_threshold(
            bundle.label_of_interest["threshold"] if args.threshold is None else args.threshold
        )
        engine = Engine(bundle, threads=args.threads)
    except (BundleError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    photos = labelled_photos(args.photos, args.limit)
    report = evaluate(engine, photos, threshold)
    label = bundle.label_of_interest["label"]
    for rule, m in report["rules"].items():
        name = f"threshold > {threshold:g}" if rule == "threshold" else "top-1"
        print(f"{label} verdict, rule {name:<16} precision {m['precision']}  recall {m['recall']}  "
              f"accuracy {m['accuracy']}  (n={m['n']}, tp={m['tp']} fp={m['fp']} tn={m['tn']} fn={m['fn']})")
    document = {"bundle": bundle.model_info(), "photos": str(args.photos), "threads": args.threads, **report}
    print(json.dumps(document, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
