"""The pixels of a ``greenlens.frame/1`` descriptor: a slot of the shared-memory ring, or the inline JPEG."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
from greenlens_common import messages
from greenlens_common.ring import RingError, RingReader, RingReaders


class FrameReadError(Exception):
    """The descriptor's pixels cannot be read (no such ring, an undecodable JPEG); the text says why."""


class FrameReader:
    """Reads frames named by descriptors; keeps one RingReader per ring and reopens one its owner replaced."""

    def __init__(self, ring_dir: str | os.PathLike[str] | None = None) -> None:
        self.ring_dir = ring_dir
        self._rings = RingReaders(ring_dir)

    def read(self, msg: Mapping[str, Any]) -> np.ndarray | None:
        """The frame (H x W x C uint8, BGR), or None when the ring slot was already overwritten."""
        ring = msg.get("ring")
        if isinstance(ring, Mapping):
            return self._read_ring(str(ring["name"]), int(ring["slot"]), int(ring["slot_seq"]), msg)
        try:
            data = messages.frame_jpeg(msg)
        except messages.MessageError as exc:
            raise FrameReadError(f"frame seq {msg.get('seq')}: {exc}") from None
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise FrameReadError(f"frame seq {msg.get('seq')}: its inline jpeg ({len(data)} bytes) cannot be decoded")
        return image

    def _reader(self, name: str, reopen: bool = False) -> RingReader:
        try:
            return self._rings.get(name, reopen=reopen)
        except RingError as exc:
            raise FrameReadError(str(exc)) from None

    def _read_ring(self, name: str, slot: int, seq: int, msg: Mapping[str, Any]) -> np.ndarray | None:
        for attempt in range(2):
            reader = self._reader(name, reopen=attempt > 0)
            try:
                frame = reader.read(slot, seq)
            except RingError as exc:  # a slot beyond this ring: the descriptor is of a newer ring
                if attempt == 0:
                    continue
                raise FrameReadError(f"frame seq {msg.get('seq')}: {exc}") from None
            if frame is not None:
                return frame.image
            if not reader.closed_by_owner:
                return None  # overwritten by a newer frame
        return None

    def close(self) -> None:
        self._rings.close()
