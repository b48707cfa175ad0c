"""A camera frame (OpenCV BGR, uint8) → the model's input tensor, exactly as model.json's `input` says.

Resize modes:
- shorter_side_center_crop: scale so the shorter side is `shorter_side`, then cut the centre `crop`;
- letterbox: scale the whole frame to fit the input, keeping its aspect ratio, and pad (black) around it;
- stretch: scale to the input size, ignoring the aspect ratio.
Then color order, `(pixel - mean) / std`, float32, batch of one (NHWC).

`Crop` says where the tensor's area lies in the frame (normalised), so that detections can be mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}


@dataclass(frozen=True)
class Crop:
    """The frame region the tensor shows, in normalised frame coordinates (the tensor's [0,1] span maps to
    [x0, x1] horizontally and [y0, y1] vertically; letterbox padding gives spans outside [0, 1])."""

    x0: float = 0.0
    y0: float = 0.0
    x1: float = 1.0
    y1: float = 1.0

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Map [..., x0, y0, x1, y1] boxes from tensor to frame coordinates (not clipped)."""
        out = np.array(boxes, dtype=np.float32, copy=True)
        out[..., 0::2] = self.x0 + out[..., 0::2] * (self.x1 - self.x0)
        out[..., 1::2] = self.y0 + out[..., 1::2] * (self.y1 - self.y0)
        return out


def as_bgr(frame: Any) -> np.ndarray:
    """Check a frame and return it as an HxWx3 uint8 BGR array (gray and BGRA frames are converted)."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame: expected a numpy array (OpenCV BGR image), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame: dtype is {frame.dtype}; expected uint8 (an 8-bit image)")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame: shape is {frame.shape}; expected (height, width, 3) BGR, gray or BGRA")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame: shape is {frame.shape}; expected a non-empty image")
    return frame


def _shorter_side_center_crop(
    frame: np.ndarray, shorter_side: int, crop_h: int, crop_w: int, interpolation: int
) -> tuple[np.ndarray, Crop]:
    # Scaling the whole frame and then cutting the centre out is the same as cutting the matching centre out
    # of the frame and scaling only that (up to where the cut falls within a source pixel): the second reads
    # and writes fewer pixels (0.9 instead of 1.7 ms for 640x480 → 224x224 with INTER_AREA on this CPU).
    h, w = frame.shape[:2]
    scale = shorter_side / min(h, w)
    src_w = min(w, max(1, round(crop_w / scale)))
    src_h = min(h, max(1, round(crop_h / scale)))
    left, top = (w - src_w) // 2, (h - src_h) // 2
    image = cv2.resize(frame[top : top + src_h, left : left + src_w], (crop_w, crop_h), interpolation=interpolation)
    return image, Crop(left / w, top / h, (left + src_w) / w, (top + src_h) / h)


def _letterbox(frame: np.ndarray, out_h: int, out_w: int, interpolation: int) -> tuple[np.ndarray, Crop]:
    h, w = frame.shape[:2]
    scale = min(out_w / w, out_h / h)
    new_w, new_h = max(1, min(out_w, round(w * scale))), max(1, min(out_h, round(h * scale)))
    resized = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
    canvas = np.zeros((out_h, out_w, 3), dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    # tensor x in [0,1] ↔ frame x = (x * out_w - left) / new_w
    region = Crop(-left / new_w, -top / new_h, (out_w - left) / new_w, (out_h - top) / new_h)
    return canvas, region


def preprocess(frame_bgr: Any, input_spec: dict[str, Any]) -> tuple[np.ndarray, Crop]:
    """The input tensor for `frame_bgr` under model.json's `input` spec, and the frame region it shows."""
    frame = as_bgr(frame_bgr)
    _, out_h, out_w, _ = input_spec["shape"]
    resize = input_spec["resize"]
    interpolation = _INTERPOLATION[resize.get("interpolation", "bilinear")]
    mode = resize["mode"]
    if mode == "shorter_side_center_crop":
        image, region = _shorter_side_center_crop(frame, resize["shorter_side"], out_h, out_w, interpolation)
    elif mode == "letterbox":
        image, region = _letterbox(frame, out_h, out_w, interpolation)
    elif mode == "stretch":
        image, region = cv2.resize(frame, (out_w, out_h), interpolation=interpolation), Crop()
    else:
        raise ValueError(f"input.resize.mode is {mode!r}; expected shorter_side_center_crop, letterbox or stretch")
    if input_spec["color"] == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    norm = input_spec["normalization"]
    tensor = (image.astype(np.float32) - np.float32(norm["mean"])) / np.float32(norm["std"])
    return tensor[np.newaxis], region
