"""The pixels a ``greenlens.frame/1`` descriptor names: a slot of the shared-memory ring, or its inline JPEG.

:class:`FrameReader` is what every consumer of frame descriptors reads them with: it keeps one
:class:`~greenlens_common.ring.RingReader` per ring, reopens one whose owner replaced it (a restarted
greenlens.Capture makes a new ring under the same name), and says ``None`` for a frame whose slot was
already overwritten by a newer frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from . import messages
from .ring import RingError, RingReader, RingReaders


class FrameReadError(Exception):
    """The descriptor's pixels cannot be read (no such ring, an undecodable JPEG); the text says why.
    ``ring`` is the ring's name, or None for the inline JPEG."""

    def __init__(self, text: str, ring: str | None = None) -> None:
        super().__init__(text)
        self.ring = ring


def _always() -> bool:
    return True


@dataclass(frozen=True)
class FrameView:
    """A descriptor's pixels without a copy: ``image`` may be a view into the ring, valid only while
    ``intact()`` is True. Compute from it first, then check ``intact()``."""

    image: np.ndarray
    intact: Callable[[], bool] = _always


class FrameReader:
    """Reads frames named by descriptors. One thread at a time: a caller that reads from several threads
    holds its own lock around each call."""

    def __init__(self, ring_dir: str | os.PathLike[str] | None = None,
                 on_open: Callable[[str], None] | None = None) -> None:
        """``ring_dir``: where the rings are (see :func:`~greenlens_common.ring.ring_dir`); ``on_open(name)``
        hears of each ring (re)opened."""
        self.ring_dir = ring_dir
        self._rings = RingReaders(ring_dir, on_open=on_open)

    def read(self, msg: Mapping[str, Any]) -> np.ndarray | None:
        """The frame (H x W x C uint8, BGR), the caller's own copy; None when its ring slot was overwritten."""
        if isinstance(msg.get("ring"), Mapping):
            frame = self._from_ring(msg, RingReader.read)
            return None if frame is None else frame.image
        return self._decode(msg)

    def view(self, msg: Mapping[str, Any]) -> FrameView | None:
        """Like :meth:`read`, but a ring frame is viewed in place (no copy of the whole frame)."""
        if not isinstance(msg.get("ring"), Mapping):
            return FrameView(self._decode(msg))
        borrowed = self._from_ring(msg, RingReader.borrow)
        return None if borrowed is None else FrameView(borrowed.image, borrowed.intact)

    @staticmethod
    def _decode(msg: Mapping[str, Any]) -> np.ndarray:
        try:
            data = messages.frame_jpeg(msg)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except (messages.MessageError, cv2.error) as exc:
            raise FrameReadError(f"frame seq {msg.get('seq')}: {exc}") from None
        if image is None:
            raise FrameReadError(f"frame seq {msg.get('seq')}: its inline jpeg ({len(data)} bytes) cannot be decoded")
        return image

    def _from_ring(self, msg: Mapping[str, Any], fetch: Callable[[RingReader, int, int], Any]) -> Any:
        """``fetch(reader, slot, slot_seq)`` on the descriptor's ring, reopened once when its owner replaced
        it; None when the slot was overwritten."""
        ring = msg["ring"]
        name, slot, seq = str(ring["name"]), int(ring["slot"]), int(ring["slot_seq"])
        for attempt in range(2):
            try:
                reader = self._rings.get(name, reopen=attempt > 0)
            except RingError as exc:
                raise FrameReadError(str(exc), ring=name) from None
            try:
                got = fetch(reader, slot, seq)
            except RingError as exc:  # a slot beyond this ring: the descriptor is of a newer ring
                if attempt == 0:
                    continue
                raise FrameReadError(f"frame seq {msg.get('seq')}: {exc}", ring=name) from None
            if got is not None:
                return got
            if not reader.closed_by_owner:
                return None  # overwritten by a newer frame
        return None

    def close(self) -> None:
        self._rings.close()
