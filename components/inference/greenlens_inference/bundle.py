"""Load and validate a greenlens.Model bundle: a folder with model.json, the .tflite file and its labels.

`load_bundle(path)` checks, in order, and raises `BundleError` naming the file and what was expected:
model.json exists, is JSON and matches model.schema.json (greenlens.model/1); the model file exists and its
sha256 equals model.json's; the labels file exists, has model.json's labels_sha256 (when given) and fits the
model; the runtime loads the model and its
input and output tensors have the shapes model.json states.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .runtime import RUNTIME, make_interpreter

MANIFEST = "model.json"
SCHEMA_FILE = Path(__file__).with_name("model.schema.json")


class BundleError(ValueError):
    """A model bundle is missing, corrupt or inconsistent; the message names the file and the expectation."""


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle, with the verified model bytes held in memory."""

    path: Path
    manifest: dict[str, Any]
    labels: list[str]
    model_content: bytes = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def input(self) -> dict[str, Any]:
        return dict(self.manifest["input"])

    @property
    def output(self) -> dict[str, Any]:
        return dict(self.manifest["output"])

    @property
    def label_of_interest(self) -> dict[str, Any]:
        return dict(self.manifest["label_of_interest"])

    def model_info(self) -> dict[str, str]:
        """The `model` object of a greenlens.result/1 message."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "task": self.task}


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _describe(error: ValidationError, manifest_path: Path) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        names = ", ".join(f"'{where + '.' if where else ''}{name}'" for name in missing)
        return f"{manifest_path}: missing required field {names} (greenlens.model/1, see model.schema.json)"
    value = json.dumps(error.instance)
    if len(value) > 80:
        value = value[:77] + "..."
    return f"{manifest_path}: field '{where or '(top level)'}' has value {value}: {error.message}"


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """model.json of a bundle folder, parsed and validated against greenlens.model/1."""
    manifest_path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: not a model bundle folder (expected a folder holding {MANIFEST})")
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: not found; a model bundle folder needs {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from None
    error = best_match(_validator().iter_errors(manifest))
    if error is not None:
        raise BundleError(_describe(error, manifest_path))
    return manifest


def _read_labels(path: Path) -> list[str]:
    if not path.is_file():
        raise BundleError(f"{path}: labels file not found (model.json's labels_file names it)")
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise BundleError(f"{path}: labels file is empty; expected one class name per line")
    return labels


def _check_sha256(path: Path, expected: str | None, field_name: str) -> None:
    """A file model.json gives a sha256 for (optional in greenlens.model/1) must have exactly that sha256."""
    if expected is None or not path.is_file():
        return
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise BundleError(f"{path}: sha256 mismatch: the file's sha256 is {actual}, model.json's {field_name}"
                          f" expects {expected} (the file is corrupt or not the one this bundle was built with)")


def _check_labels(manifest: dict[str, Any], labels: list[str], labels_path: Path) -> None:
    output = manifest["output"]
    classes = output["classificators_shape"][-1] if output["kind"] == "ssd_anchors" else output["shape"][-1]
    if len(labels) != classes:
        raise BundleError(f"{labels_path}: has {len(labels)} labels; the model's output has {classes} classes")
    loi = manifest["label_of_interest"]
    if loi["class_index"] >= len(labels):
        raise BundleError(
            f"{labels_path.parent / MANIFEST}: label_of_interest.class_index {loi['class_index']} is out of range;"
            f" expected 0..{len(labels) - 1}"
        )


def _check_geometry(manifest: dict[str, Any], manifest_path: Path) -> None:
    """The resize settings and the anchors must fit the input tensor's height and width."""
    _, height, width, _ = manifest["input"]["shape"]
    resize = manifest["input"]["resize"]
    if resize["mode"] == "shorter_side_center_crop":
        if list(resize["crop"]) != [height, width]:
            raise BundleError(
                f"{manifest_path}: input.resize.crop is {resize['crop']}; expected [{height}, {width}] (input.shape)"
            )
        if resize["shorter_side"] < max(height, width):
            raise BundleError(
                f"{manifest_path}: input.resize.shorter_side is {resize['shorter_side']}; expected at least"
                f" {max(height, width)} so that the centre crop fits"
            )
    anchors = manifest["output"].get("anchors")
    if anchors is not None:
        if [anchors["input_size_height"], anchors["input_size_width"]] != [height, width]:
            raise BundleError(
                f"{manifest_path}: output.anchors input size is {anchors['input_size_height']}x"
                f"{anchors['input_size_width']}; expected {height}x{width} (input.shape)"
            )
        if len(anchors["strides"]) != anchors["num_layers"]:
            raise BundleError(
                f"{manifest_path}: output.anchors.strides has {len(anchors['strides'])} entries; expected"
                f" num_layers = {anchors['num_layers']}"
            )


def _check_model_tensors(manifest: dict[str, Any], interpreter: Any, model_path: Path) -> None:
    inputs = interpreter.get_input_details()
    want = list(manifest["input"]["shape"])
    if len(inputs) != 1 or list(inputs[0]["shape"]) != want:
        got = [list(d["shape"]) for d in inputs]
        raise BundleError(f"{model_path}: model inputs have shapes {got}; model.json's input.shape says {want}")
    if inputs[0]["dtype"].__name__ != manifest["input"]["dtype"]:
        raise BundleError(
            f"{model_path}: model input is {inputs[0]['dtype'].__name__}; model.json's input.dtype says"
            f" {manifest['input']['dtype']}"
        )
    output = manifest["output"]
    got_shapes = sorted(list(d["shape"]) for d in interpreter.get_output_details())
    if output["kind"] == "ssd_anchors":
        wanted = sorted([list(output["regressors_shape"]), list(output["classificators_shape"])])
    else:
        wanted = [list(output["shape"])]
    if got_shapes != wanted:
        raise BundleError(f"{model_path}: model outputs have shapes {got_shapes}; model.json says {wanted}")


def load_bundle(path: str | Path) -> Bundle:
    """Load and validate the bundle in folder `path` (see the module docstring)."""
    bundle_dir = Path(path)
    manifest = read_manifest(bundle_dir)
    _check_geometry(manifest, bundle_dir / MANIFEST)
    model_path = bundle_dir / manifest["model_file"]
    if not model_path.is_file():
        raise BundleError(f"{model_path}: model file not found (model.json's model_file names it)")
    content = model_path.read_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != manifest["sha256"]:
        raise BundleError(
            f"{model_path}: sha256 mismatch: the file's sha256 is {actual}, model.json expects"
            f" {manifest['sha256']} (the file is corrupt or not the model this bundle describes)"
        )
    labels_path = bundle_dir / manifest["labels_file"]
    _check_sha256(labels_path, manifest.get("labels_sha256"), "labels_sha256")
    labels = _read_labels(labels_path)
    _check_labels(manifest, labels, labels_path)
    try:
        interpreter = make_interpreter(content, threads=1)
    except Exception as exc:  # the runtimes raise ValueError/RuntimeError with their own wording
        raise BundleError(
            f"{model_path}: the {RUNTIME} runtime cannot load it ({exc}); expected a TensorFlow Lite model"
        ) from exc
    _check_model_tensors(manifest, interpreter, model_path)
    return Bundle(path=bundle_dir, manifest=manifest, labels=labels, model_content=content)
