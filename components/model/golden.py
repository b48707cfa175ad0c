"""A bundle's golden set: procedural images drawn at build time and the verdicts the bundle's model gives them.

    python components/model/golden.py BUNDLE_DIR --max-latency-ms 500 [--min-accuracy 1.0]

adds to a built bundle folder ``golden/NN.ppm`` (the images), ``golden.json`` (``greenlens.golden/1``: each
image's sha256 and expected verdict, the bounds) and model.json's ``golden`` (golden.json's sha256) and
``labels_sha256``. greenlens.Inference checks a bundle against it before it uses the model
(components/inference/greenlens_inference/golden.py).

The images are the project's own (no photograph; ../shared/data may not be copied into a bundle): abstract
drawings (stripes, rings, checkers, blobs, gradients) whose parameters come from sha256("golden/<n>"), drawn
with integer arithmetic and written as binary PPM, so every build writes the same bytes. The expected
verdict of an image is the one the bundle's own model gives it (its top-1 label and whether the label of
interest is present, under model.json's rule and threshold); an image is kept only when that verdict is
clear (top-1 ahead of the second by at least MIN_MARGIN, the label of interest's score at least
MIN_MARGIN from the threshold), so the same model gives it on any CPU. The first IMAGES clear candidates in
order are the set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

GOLDEN_SCHEMA = "greenlens.golden/1"
GOLDEN_FILE = "golden.json"
GOLDEN_DIR = "golden"
IMAGES = 8
CANDIDATES = 64
MIN_MARGIN = 0.2
WIDTH, HEIGHT = 160, 120


class GoldenBuildError(RuntimeError):
    """The golden set cannot be made for this bundle; the message says why."""


def _params(index: int) -> list[int]:
    """32 bytes of parameters for candidate `index` (stable everywhere: sha256)."""
    return list(hashlib.sha256(f"golden/{index}".encode()).digest())


def draw(index: int) -> Any:
    """Candidate `index`: an HxWx3 uint8 BGR drawing (integer arithmetic only, so the same bytes anywhere)."""
    import numpy as np

    p = _params(index)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.int64)
    c1 = np.array(p[0:3], dtype=np.int64)
    c2 = np.array(p[3:6], dtype=np.int64)
    kind = p[6] % 5
    period = 6 + p[7] % 30
    cx, cy = p[8] * WIDTH // 256, p[9] * HEIGHT // 256
    if kind == 0:  # stripes at one of four angles
        direction = [(1, 0), (0, 1), (1, 1), (1, -1)][p[10] % 4]
        mask = ((x * direction[0] + y * direction[1]) // period) % 2
    elif kind == 1:  # rings (of equal area)
        mask = (((x - cx) ** 2 + (y - cy) ** 2) // (period * period * 4)) % 2
    elif kind == 2:  # checkers
        mask = ((x // period) + (y // period)) % 2
    elif kind == 3:  # a disc on a background
        mask = ((x - cx) ** 2 + (y - cy) ** 2 < (period * 3) ** 2).astype(np.int64)
    else:  # a horizontal two-colour gradient (mask in 0..255)
        mask = None
    if mask is None:
        ramp = (x * 255 // (WIDTH - 1))[..., None]
        image = (c1 * (255 - ramp) + c2 * ramp) // 255
    else:
        image = np.where(mask[..., None] == 1, c1, c2)
    return image.astype(np.uint8)


def ppm_bytes(image: Any) -> bytes:
    """Binary PPM (P6) of a BGR image: OpenCV reads it; no compressor whose output could change."""
    height, width = image.shape[:2]
    return f"P6\n{width} {height}\n255\n".encode() + image[:, :, ::-1].tobytes()


def _verdict(engine: Any, image: Any) -> tuple[dict[str, Any], bool]:
    """(expected verdict, whether it is clear) of the model on one image."""
    result = engine.infer(image)
    top_k = result["top_k"]
    verdict = result["verdict"]
    expected = {"top1": top_k[0]["label"] if top_k else "", "present": bool(verdict["present"])}
    clear = abs(float(verdict["score"]) - engine.threshold) >= MIN_MARGIN / 4 if engine.rule == "threshold" else True
    if len(top_k) > 1:
        clear = clear and float(top_k[0]["score"]) - float(top_k[1]["score"]) >= MIN_MARGIN
    return expected, clear


def add_golden_set(bundle_dir: Path, *, max_latency_ms: float, min_accuracy: float = 1.0) -> dict[str, Any]:
    """Write the golden set into `bundle_dir` and declare it in model.json; return golden.json's content."""
    from greenlens_inference import Engine, load_bundle

    bundle = load_bundle(bundle_dir)
    engine = Engine(bundle, threads=1)
    images: list[dict[str, Any]] = []
    (bundle_dir / GOLDEN_DIR).mkdir(exist_ok=True)
    for index in range(CANDIDATES):
        image = draw(index)
        expected, clear = _verdict(engine, image)
        if not clear:
            continue
        name = f"{GOLDEN_DIR}/{len(images):02d}.ppm"
        data = ppm_bytes(image)
        (bundle_dir / name).write_bytes(data)
        images.append({"file": name, "candidate": index, "sha256": hashlib.sha256(data).hexdigest(),
                       "expected": expected})
        if len(images) == IMAGES:
            break
    else:
        raise GoldenBuildError(f"{bundle_dir}: only {len(images)} of {CANDIDATES} candidate drawings get a clear "
                               f"verdict from the model; a golden set needs {IMAGES}")
    golden = {
        "schema": GOLDEN_SCHEMA,
        "generator": "components/model/golden.py: procedural drawings, parameters from sha256('golden/<n>'); "
                     "expected verdicts from this bundle's model",
        "bounds": {"min_accuracy": min_accuracy, "max_latency_ms": max_latency_ms},
        "images": images,
    }
    golden_bytes = (json.dumps(golden, indent=2) + "\n").encode()
    (bundle_dir / GOLDEN_FILE).write_bytes(golden_bytes)
    manifest_path = bundle_dir / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["labels_sha256"] = hashlib.sha256((bundle_dir / manifest["labels_file"]).read_bytes()).hexdigest()
    manifest["golden"] = {"file": GOLDEN_FILE, "sha256": hashlib.sha256(golden_bytes).hexdigest()}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return golden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="a built bundle folder (model.json, model, labels)")
    parser.add_argument("--max-latency-ms", type=float, required=True, help="bound: inference p50 on the device")
    parser.add_argument("--min-accuracy", type=float, default=1.0, help="bound: golden verdicts as expected")
    args = parser.parse_args(argv)
    try:
        golden = add_golden_set(args.bundle, max_latency_ms=args.max_latency_ms, min_accuracy=args.min_accuracy)
    except GoldenBuildError as exc:
        print(f"golden: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.bundle}: golden set of {len(golden['images'])} images", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
