"""MediaPipe-style SSD post-processing in numpy: anchors, box decoding, scores, non-maximum suppression.

Follows mediapipe/calculators/tflite/ssd_anchors_calculator.cc, tensors_to_detections_calculator.cc and
non_max_suppression_calculator.cc, driven by model.json's output.anchors / output.decoder / output.nms.
Boxes are [x0, y0, x1, y1] in the model input's normalised coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) / 2
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def generate_anchors(opts: dict[str, Any]) -> np.ndarray:
    """Anchors as an (N, 4) float32 array of [x_center, y_center, width, height] (normalised)."""
    strides: list[int] = list(opts["strides"])
    num_layers = int(opts["num_layers"])
    anchors: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < num_layers:
        heights: list[float] = []
        widths: list[float] = []
        ratios: list[float] = []
        scales: list[float] = []
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _scale(opts["min_scale"], opts["max_scale"], last, len(strides))
            if last == 0 and opts["reduce_boxes_in_lowest_layer"]:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                for ratio in opts["aspect_ratios"]:
                    ratios.append(float(ratio))
                    scales.append(scale)
                if opts["interpolated_scale_aspect_ratio"] > 0:
                    nxt = 1.0 if last == len(strides) - 1 else _scale(
                        opts["min_scale"], opts["max_scale"], last + 1, len(strides)
                    )
                    scales.append(math.sqrt(scale * nxt))
                    ratios.append(float(opts["interpolated_scale_aspect_ratio"]))
            last += 1
        for ratio, scale in zip(ratios, scales, strict=True):
            heights.append(scale / math.sqrt(ratio))
            widths.append(scale * math.sqrt(ratio))
        stride = strides[layer]
        rows = math.ceil(opts["input_size_height"] / stride)
        cols = math.ceil(opts["input_size_width"] / stride)
        for y in range(rows):
            for x in range(cols):
                cx = (x + opts["anchor_offset_x"]) / cols
                cy = (y + opts["anchor_offset_y"]) / rows
                for w, h in zip(widths, heights, strict=True):
                    if opts["fixed_anchor_size"]:
                        w, h = 1.0, 1.0
                    anchors.append((cx, cy, w, h))
        layer = last
    return np.asarray(anchors, dtype=np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class Decoded:
    """Every anchor's box, keypoints, best class and its score (before thresholding)."""

    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1
    keypoints: np.ndarray  # (N, K, 2) x, y
    classes: np.ndarray  # (N,) int
    scores: np.ndarray  # (N,) float32
    class_scores: np.ndarray  # (N, C) float32


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, opts: dict[str, Any]) -> Decoded:
    """Decode the regressors (1, N, num_coords) and classificators (1, N, C) against the anchors."""
    n = int(opts["num_boxes"])
    raw = np.asarray(raw_boxes, dtype=np.float32).reshape(n, int(opts["num_coords"]))
    logits = np.asarray(raw_scores, dtype=np.float32).reshape(n, -1)
    if anchors.shape[0] != n:
        raise ValueError(f"output.decoder.num_boxes is {n} but the anchor options give {anchors.shape[0]} anchors")
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    off = int(opts["box_coord_offset"])
    if opts["reverse_output_order"]:
        cx, cy, w, h = raw[:, off], raw[:, off + 1], raw[:, off + 2], raw[:, off + 3]
    else:
        cy, cx, h, w = raw[:, off], raw[:, off + 1], raw[:, off + 2], raw[:, off + 3]
    cx = cx / opts["x_scale"] * aw + ax
    cy = cy / opts["y_scale"] * ah + ay
    w = w / opts["w_scale"] * aw
    h = h / opts["h_scale"] * ah
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    k = int(opts["num_keypoints"])
    kp_off, per_kp = int(opts["keypoint_coord_offset"]), int(opts["num_values_per_keypoint"])
    keypoints = np.zeros((n, k, 2), dtype=np.float32)
    for i in range(k):
        base = kp_off + i * per_kp
        first, second = raw[:, base], raw[:, base + 1]
        kx, ky = (first, second) if opts["reverse_output_order"] else (second, first)
        keypoints[:, i, 0] = kx / opts["x_scale"] * aw + ax
        keypoints[:, i, 1] = ky / opts["y_scale"] * ah + ay
    if opts["sigmoid_score"]:
        clip = float(opts["score_clipping_thresh"])
        class_scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -clip, clip)))
    else:
        class_scores = logits
    class_scores = class_scores.astype(np.float32)
    classes = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(n), classes]
    return Decoded(boxes.astype(np.float32), keypoints, classes, scores, class_scores)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one [x0, y0, x1, y1] box with each of (M, 4) boxes."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, weighted: bool, max_detections: int
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Keep the best box of each overlapping group (IoU > threshold).

    Returns (box, score, member indices) per kept detection, best first. With `weighted`, the box is the
    score-weighted mean of its group (MediaPipe's WEIGHTED algorithm), else the top box itself.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    kept: list[tuple[np.ndarray, float, np.ndarray]] = []
    while remaining.size and len(kept) < max_detections:
        top = remaining[0]
        overlaps = iou(boxes[top], boxes[remaining])
        overlaps[0] = 1.0  # the top box is always in its own group, even a degenerate one
        in_group = overlaps > threshold
        group = remaining[in_group]
        if weighted and float(scores[group].sum()) > 0:
            weights = scores[group][:, None]
            box = (boxes[group] * weights).sum(axis=0) / weights.sum()
        else:
            box = boxes[top]
        kept.append((box.astype(np.float32), float(scores[top]), group))
        remaining = remaining[~in_group]
    return kept
