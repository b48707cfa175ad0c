"""Draws a greenlens.result/1 on its frame with OpenCV: a verdict banner, the top-k, the detection boxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

PRESENT_COLOUR = (60, 180, 60)  # BGR green
ABSENT_COLOUR = (40, 40, 200)  # BGR red
BOX_COLOUR = (0, 220, 255)  # BGR amber
TEXT_COLOUR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def verdict_text(result: Mapping[str, Any]) -> str:
    """``HOTDOG 0.93`` or ``NOT HOTDOG 0.12``: what the banner (and the page) says."""
    verdict = result.get("verdict") or {}
    label = str(verdict.get("label") or "?")
    score = float(verdict.get("score") or 0.0)
    prefix = "" if verdict.get("present") else "NOT "
    return f"{prefix}{label.upper()} {score:.2f}"


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel BGR copy of a gray, BGR or BGRA frame (the drawing never touches the ring)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image.copy()


def draw_result(image: np.ndarray, result: Mapping[str, Any], *, max_top_k: int = 3,
                note: str | None = None) -> np.ndarray:
    """A new image: ``image`` with the result's verdict, score, top-k and boxes drawn on it.

    ``note`` (e.g. "drawn on a newer frame") is written at the bottom.
    """
    out = to_bgr(image)
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 480)
    thick = max(1, int(round(2 * scale)))
    line_h = int(28 * scale)

    for det in result.get("detections") or []:
        box = det.get("box") or []
        if len(box) != 4:
            continue
        x0, y0, x1, y1 = (float(v) for v in box)
        p0 = (int(np.clip(x0, 0, 1) * (w - 1)), int(np.clip(y0, 0, 1) * (h - 1)))
        p1 = (int(np.clip(x1, 0, 1) * (w - 1)), int(np.clip(y1, 0, 1) * (h - 1)))
        cv2.rectangle(out, p0, p1, BOX_COLOUR, thick)
        caption = f"{det.get('label', '?')} {float(det.get('score') or 0):.2f}"
        (tw, th), base = cv2.getTextSize(caption, FONT, 0.6 * scale, max(1, thick - 1))
        ty = max(th + base, p0[1])
        cv2.rectangle(out, (p0[0], ty - th - base), (p0[0] + tw + 4, ty), BOX_COLOUR, -1)
        cv2.putText(out, caption, (p0[0] + 2, ty - base), FONT, 0.6 * scale, (0, 0, 0), max(1, thick - 1),
                    cv2.LINE_AA)

    present = bool((result.get("verdict") or {}).get("present"))
    top = [t for t in (result.get("top_k") or [])[:max_top_k] if isinstance(t, Mapping)]
    banner_h = line_h + 12 + len(top) * int(20 * scale)
    overlay = out.copy()
    cv2.rectangle(overlay, (0, 0), (w, banner_h), PRESENT_COLOUR if present else ABSENT_COLOUR, -1)
    cv2.addWeighted(overlay, 0.75, out, 0.25, 0, dst=out)
    cv2.putText(out, verdict_text(result), (8, line_h), FONT, 0.9 * scale, TEXT_COLOUR, thick, cv2.LINE_AA)
    for i, t in enumerate(top):
        y = line_h + 6 + (i + 1) * int(20 * scale)
        text = f"{float(t.get('score') or 0):.2f} {str(t.get('label', '?'))[:40]}"
        cv2.putText(out, text, (10, y), FONT, 0.5 * scale, TEXT_COLOUR, 1, cv2.LINE_AA)
    if note:
        cv2.putText(out, note, (8, h - 8), FONT, 0.5 * scale, TEXT_COLOUR, 1, cv2.LINE_AA)
    return out


def placeholder(width: int, height: int, text: str) -> np.ndarray:
    """A dark frame with a line of text (what a stream shows before its first frame)."""
    image = np.full((height, width, 3), 32, np.uint8)
    scale = max(0.4, min(width, height) / 480)
    (tw, th), _ = cv2.getTextSize(text, FONT, 0.8 * scale, 2)
    cv2.putText(image, text, ((width - tw) // 2, (height + th) // 2), FONT, 0.8 * scale, (200, 200, 200), 2,
                cv2.LINE_AA)
    return image
