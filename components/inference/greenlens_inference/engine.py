"""The inference engine: a validated bundle, a TFLite interpreter, and frame → result.

    engine = Engine(load_bundle("bundles/efficientnet-lite0"), threads=2)
    result = engine.infer(frame_bgr)   # {"verdict", "top_k", "detections", "timings_ms"}
    prepared = engine.prepare(frame_bgr); result = engine.run(prepared)   # the same, in two steps
    raw = engine.invoke(prepared); result = engine.finish(raw)             # run() in two steps
    engine.set_threshold(0.2); engine.set_rule("threshold"); engine.set_threads(1)
    engine.set_label_of_interest("cheeseburger")   # None: model.json's label of interest again

Threads, threshold, rule and the label of interest can change while another thread calls infer(); a call sees either the old
or the new setting, never half of each. prepare() (the frame → the input tensor) and finish() (the outputs → the
result) touch no interpreter state, so a pipeline can prepare the next frame and finish the last one on other
threads while invoke() runs the model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import classify, ssd
from .bundle import Bundle, BundleError, load_bundle
from .preprocess import Crop, preprocess
from .runtime import make_interpreter
from .verdict import check_rule, check_threshold, decide


def label_index(labels: list[str], label: str) -> int:
    """The class index of `label`: a line of labels.txt, or one of a line's comma-separated names (any case).

    ValueError when no class, or more than one, has that name.
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"label of interest is {label!r}; expected a class name from the model's labels")
    wanted = label.strip().lower()
    named = [i for i, line in enumerate(labels) if line.strip().lower() == wanted] or [
        i for i, line in enumerate(labels) if wanted in (n.strip().lower() for n in line.split(","))]
    if len(named) == 1:
        return named[0]
    if named:
        lines = "; ".join(f"{i}: {labels[i]!r}" for i in named)
        raise ValueError(f"label of interest {label!r} names {len(named)} classes ({lines}); expected a name of one")
    raise ValueError(f"label of interest {label!r} is not a class of this model (none of its {len(labels)} labels)")


def _check_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads is {threads!r}; expected a whole number of CPU threads, 1 or more")
    return threads


@dataclass(frozen=True)
class Prepared:
    """A frame made into the model's input tensor by :meth:`Engine.prepare`, ready for :meth:`Engine.invoke`."""

    bundle: Bundle
    """The bundle whose input spec made the tensor (invoke() refuses a tensor made for another bundle)."""
    tensor: np.ndarray
    region: Crop
    preprocess_ms: float


@dataclass(frozen=True)
class Invoked:
    """The model's raw outputs for one prepared frame, with the settings in force when it ran."""

    outputs: list[np.ndarray]
    region: Crop
    rule: str
    threshold: float
    label_of_interest: tuple[str, int]
    preprocess_ms: float
    inference_ms: float


class Engine:
    """Runs one model bundle on camera frames."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        threads: int = 1,
        *,
        threshold: float | None = None,
        rule: str | None = None,
        top_k: int = 5,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        loi = self.bundle.label_of_interest
        self._threads = _check_threads(threads)
        self._threshold = check_threshold(loi["threshold"] if threshold is None else threshold)
        self._rule = check_rule(loi["rule"] if rule is None else rule)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"top_k is {top_k!r}; expected a whole number, 0 or more")
        self.top_k = top_k
        self._loi = (str(loi["label"]), int(loi["class_index"]))
        self._lock = threading.Lock()
        output = self.bundle.output
        self._detector = output["kind"] == "ssd_anchors"
        self._anchors = ssd.generate_anchors(output["anchors"]) if self._detector else None
        self._interpreter = self._open(self._threads)

    # --- settings -----------------------------------------------------------------------------------

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def rule(self) -> str:
        return self._rule

    def set_threads(self, threads: int) -> None:
        """Use `threads` CPU threads from the next frame on (the interpreter is rebuilt)."""
        threads = _check_threads(threads)
        with self._lock:
            if threads != self._threads:
                self._interpreter = self._open(threads)
                self._threads = threads

    @property
    def label_of_interest(self) -> tuple[str, int]:
        """(label, class index) the verdict is about."""
        return self._loi

    def set_label_of_interest(self, label: str | None) -> None:
        """Judge the verdict on class `label` (see label_index) from the next frame on; None: model.json's."""
        loi = self.bundle.label_of_interest
        value = (str(loi["label"]), int(loi["class_index"])) if label is None else (
            label.strip(), label_index(self.bundle.labels, label))
        with self._lock:
            self._loi = value

    def set_threshold(self, threshold: float) -> None:
        value = check_threshold(threshold)
        with self._lock:
            self._threshold = value

    def set_rule(self, rule: str) -> None:
        value = check_rule(rule)
        with self._lock:
            self._rule = value

    # --- inference ----------------------------------------------------------------------------------

    def _open(self, threads: int) -> Any:
        interpreter = make_interpreter(self.bundle.model_content, threads)
        inp = interpreter.get_input_details()[0]
        outputs = {tuple(int(v) for v in d["shape"]): d["index"] for d in interpreter.get_output_details()}
        output = self.bundle.output
        if self._detector:
            indices = (outputs.get(tuple(output["regressors_shape"])), outputs.get(tuple(output["classificators_shape"])))
        else:
            indices = (outputs.get(tuple(output["shape"])),)
        if None in indices or len(set(indices)) != len(indices):
            raise BundleError(
                f"{self.bundle.path / self.bundle.manifest['model_file']}: cannot tell the model's outputs"
                f" {sorted(outputs)} apart by the shapes model.json gives"
            )
        self._input_index = inp["index"]
        self._output_indices = indices
        return interpreter

    def prepare(self, frame_bgr: np.ndarray) -> Prepared:
        """The model's input tensor for one BGR frame (thread-safe; no interpreter involved)."""
        t0 = time.perf_counter()
        tensor, region = preprocess(frame_bgr, self.bundle.input)
        return Prepared(self.bundle, tensor, region, round((time.perf_counter() - t0) * 1000, 3))

    def invoke(self, prepared: Prepared) -> Invoked:
        """Run the interpreter on a prepared frame (the only step that holds the interpreter)."""
        if prepared.bundle is not self.bundle:
            raise ValueError(f"the frame was prepared for model {prepared.bundle.name} {prepared.bundle.version}, "
                             f"not for {self.bundle.name} {self.bundle.version}: prepare it again")
        with self._lock:
            t1 = time.perf_counter()
            interpreter = self._interpreter
            interpreter.set_tensor(self._input_index, prepared.tensor)
            interpreter.invoke()
            outputs = [interpreter.get_tensor(i).copy() for i in self._output_indices]
            t2 = time.perf_counter()
            return Invoked(outputs, prepared.region, self._rule, self._threshold, self._loi, prepared.preprocess_ms,
                           round((t2 - t1) * 1000, 3))

    def finish(self, invoked: Invoked) -> dict[str, Any]:
        """The result of a frame from the model's outputs; see the module docstring for its keys."""
        t2 = time.perf_counter()
        outputs, rule, threshold, loi = invoked.outputs, invoked.rule, invoked.threshold, invoked.label_of_interest
        if self._detector:
            result = self._detections(outputs[0], outputs[1], invoked.region, rule, threshold, loi)
        else:
            result = self._classification(outputs[0], rule, threshold, loi)
        result["timings_ms"] = {
            "preprocess": invoked.preprocess_ms,
            "inference": invoked.inference_ms,
            "postprocess": round((time.perf_counter() - t2) * 1000, 3),
        }
        return result

    def run(self, prepared: Prepared) -> dict[str, Any]:
        """Run the model on a prepared frame: :meth:`finish` of :meth:`invoke`."""
        return self.finish(self.invoke(prepared))

    def infer(self, frame_bgr: np.ndarray) -> dict[str, Any]:
        """Run the model on one BGR frame: :meth:`run` of :meth:`prepare`."""
        return self.run(self.prepare(frame_bgr))

    def _classification(
        self, output: np.ndarray, rule: str, threshold: float, loi: tuple[str, int]
    ) -> dict[str, Any]:
        labels = self.bundle.labels
        probs = classify.probabilities(output, self.bundle.output["activation"])
        label, index = loi
        verdict = decide(label, float(probs[index]), int(np.argmax(probs)) == index, rule, threshold)
        return {"verdict": verdict, "top_k": classify.top_k(probs, labels, self.top_k), "detections": []}

    def _detections(
        self, raw_boxes: np.ndarray, raw_scores: np.ndarray, region: Crop, rule: str, threshold: float,
        loi: tuple[str, int],
    ) -> dict[str, Any]:
        assert self._anchors is not None
        output = self.bundle.output
        labels = self.bundle.labels
        decoded = ssd.decode(raw_boxes, raw_scores, self._anchors, output["decoder"])
        boxes = decoded.boxes
        valid = (
            (decoded.scores >= output["decoder"]["min_score_thresh"])
            & (boxes[:, 2] > boxes[:, 0])
            & (boxes[:, 3] > boxes[:, 1])
        )
        candidates = np.flatnonzero(valid)
        nms = output["nms"]
        kept = ssd.non_max_suppression(
            boxes[candidates], decoded.scores[candidates], nms["min_suppression_threshold"], nms["weighted"],
            nms["max_detections"],
        )
        detections = []
        kept_classes = []
        for box, score, group in kept:
            cls = int(decoded.classes[candidates[group[0]]])
            kept_classes.append(cls)
            frame_box = np.clip(region.to_frame(box), 0.0, 1.0)
            detections.append(
                {"label": labels[cls], "score": score, "box": [round(float(v), 5) for v in frame_box]}
            )
        per_class = decoded.class_scores.max(axis=0)
        label, index = loi
        is_top = bool(kept_classes) and kept_classes[0] == index
        verdict = decide(label, float(per_class[index]), is_top, rule, threshold)
        return {"verdict": verdict, "top_k": classify.top_k(per_class, labels, self.top_k), "detections": detections}
