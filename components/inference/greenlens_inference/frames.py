"""The pixels of a ``greenlens.frame/1`` descriptor: a slot of the shared-memory ring, or the inline JPEG."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from greenlens_common import messages
from greenlens_common.ring import RingError, RingReader, RingReaders


class FrameReadError(Exception):
    """The descriptor's pixels cannot be read (no such ring, an undecodable JPEG); the text says why."""


def _always() -> bool:
    return True


@dataclass(frozen=True)
class FrameView:
    """A descriptor's pixels without a copy: ``image`` may be a view into the ring, valid only while
    ``intact()`` is True. Compute from it first, then check ``intact()``."""

    image: np.ndarray
    intact: Callable[[], bool] = _always


class FrameReader:
    """Reads frames named by descriptors; keeps one RingReader per ring and reopens one its owner replaced."""

    def __init__(self, ring_dir: str | os.PathLike[str] | None = None) -> None:
        self.ring_dir = ring_dir
        self._rings = RingReaders(ring_dir)

    def read(self, msg: Mapping[str, Any]) -> np.ndarray | None:
        """The frame (H x W x C uint8, BGR), or None when the ring slot was already overwritten."""
        if isinstance(msg.get("ring"), Mapping):
            frame = self._from_ring(msg, RingReader.read)
            return None if frame is None else frame.image
        try:
            data = messages.frame_jpeg(msg)
        except messages.MessageError as exc:
            raise FrameReadError(f"frame seq {msg.get('seq')}: {exc}") from None
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise FrameReadError(f"frame seq {msg.get('seq')}: its inline jpeg ({len(data)} bytes) cannot be decoded")
        return image

    def view(self, msg: Mapping[str, Any]) -> FrameView | None:
        """Like :meth:`read`, but a ring frame is viewed in place (no copy of the whole frame)."""
        if not isinstance(msg.get("ring"), Mapping):
            image = self.read(msg)
            return None if image is None else FrameView(image)
        borrowed = self._from_ring(msg, RingReader.borrow)
        return None if borrowed is None else FrameView(borrowed.image, borrowed.intact)

    def _from_ring(self, msg: Mapping[str, Any], fetch: Callable[[RingReader, int, int], Any]) -> Any:
        """``fetch(reader, slot, slot_seq)`` on the descriptor's ring, reopened once when its owner replaced
        it; None when the slot was overwritten."""
        ring = msg["ring"]
        name, slot, seq = str(ring["name"]), int(ring["slot"]), int(ring["slot_seq"])
        for attempt in range(2):
            try:
                reader = self._rings.get(name, reopen=attempt > 0)
            except RingError as exc:
                raise FrameReadError(str(exc)) from None
            try:
                got = fetch(reader, slot, seq)
            except RingError as exc:  # a slot beyond this ring: the descriptor is of a newer ring
                if attempt == 0:
                    continue
                raise FrameReadError(f"frame seq {msg.get('seq')}: {exc}") from None
            if got is not None:
                return got
            if not reader.closed_by_owner:
                return None  # overwritten by a newer frame
        return None

    def close(self) -> None:
        self._rings.close()
