"""Image operations the capture needs: bring any decoded image to the configured size and format."""

from __future__ import annotations

import cv2
import numpy as np


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel BGR uint8 image from a grey, BGR or BGRA one."""
    if image.dtype != np.uint8:
        raise ValueError(f"image dtype {image.dtype} is not supported: expected uint8")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    raise ValueError(f"image shape {image.shape} is not grey, BGR or BGRA")


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit ``width`` x ``height`` keeping its aspect ratio, centred on black."""
    image = to_bgr(image)
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = resized
    return out


def encode_jpeg_within(image: np.ndarray, max_bytes: int, max_side: int = 320) -> tuple[bytes, int, int]:
    """A JPEG of ``image`` (downscaled to at most ``max_side``) no larger than ``max_bytes``.

    Returns ``(jpeg, width, height)``; lowers quality, then size, until it fits.
    """
    h, w = image.shape[:2]
    side = max_side
    while side >= 32:
        scale = min(1.0, side / max(w, h))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        for quality in (80, 65, 50, 35, 20):
            ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and buf.size <= max_bytes:
                return buf.tobytes(), small.shape[1], small.shape[0]
        side //= 2
    raise ValueError(f"cannot encode the frame as a JPEG of at most {max_bytes} bytes")
