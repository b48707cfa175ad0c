"""The publisher's frames: the pixels of descriptors for its two streams (read through greenlens_common's
FrameReader, from two threads, a ring nobody can read reported once), and the newest image of each stream,
encoded to JPEG once per frame however many viewers there are."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from greenlens_common.frames import FrameReader, FrameReadError, FrameView

log = logging.getLogger("greenlens.publisher.frames")


@dataclass(frozen=True)
class Image:
    seq: int
    captured_at: float
    image: np.ndarray


class StreamFrames:
    """The frames the streams show: a ``greenlens.frame/1`` descriptor's pixels, None once its ring slot was
    overwritten or when they cannot be read (counted in ``errors``, logged once per ring until it is reopened).
    Safe to call from several threads (the worker and the stream encoder)."""

    def __init__(self, ring_dir: str | os.PathLike[str] | None = None) -> None:
        self._complained: set[str] = set()
        self._reader = FrameReader(ring_dir, on_open=self._complained.discard)  # a new ring may complain again
        self._lock = threading.Lock()
        self.errors = 0

    def read(self, descriptor: Mapping[str, Any]) -> Image | None:
        """The frame's pixels, a copy of its own."""
        with self._lock:
            image = self._call(self._reader.read, descriptor)
        return None if image is None else Image(int(descriptor["seq"]), float(descriptor["captured_at"]), image)

    def readable(self, descriptor: Mapping[str, Any]) -> bool:
        """Whether the frame can be read now (its ring slot checked in place, nothing copied)."""
        with self._lock:
            return self._call(self._reader.view, descriptor) is not None

    def draw(self, descriptor: Mapping[str, Any], draw: Callable[[np.ndarray], np.ndarray]) -> Image | None:
        """``draw(pixels)`` (which must return a new image) on the frame viewed in place in the ring, not
        copied first; None when the frame is gone, or was overwritten while it was drawn."""
        with self._lock:
            view: FrameView | None = self._call(self._reader.view, descriptor)
        if view is None:
            return None
        drawn = Image(int(descriptor["seq"]), float(descriptor["captured_at"]), draw(view.image))
        return drawn if view.intact() else None

    def _call(self, fetch: Callable[[Mapping[str, Any]], Any], descriptor: Mapping[str, Any]) -> Any:
        try:
            return fetch(descriptor)
        except FrameReadError as exc:
            self.errors += 1
            key = exc.ring or "inline"
            if key not in self._complained:
                self._complained.add(key)
                log.error("cannot read frames: %s", exc)
            return None

    def close(self) -> None:
        with self._lock:
            self._reader.close()


class LatestImage:
    """The newest image of one stream; JPEG-encoded lazily (once per version); listeners hear of updates."""

    def __init__(self, name: str, placeholder: np.ndarray, quality: int = 80) -> None:
        self.name = name
        self.quality = quality
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._image: Image | None = None
        self._placeholder = placeholder
        self.version = 0
        self._jpeg: Encoded | None = None
        self._pending: Callable[[], Image | None] | None = None
        self._listeners: list[Callable[[], None]] = []

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def update(self, image: Image) -> None:
        with self._lock:
            self._image, self._pending = image, None
            self.version += 1
        self._changed()

    def offer(self, load: Callable[[], Image | None]) -> None:
        """A newer image whose pixels ``load()`` gets only when a viewer asks for them (:meth:`jpeg`); None
        from it (the frame is gone) keeps the image before."""
        with self._lock:
            self._pending = load
            self.version += 1
        self._changed()

    def touch(self) -> None:
        """Wake the viewers without a new image (what they should show changed elsewhere)."""
        with self._lock:
            self.version += 1
        self._changed()

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    def jpeg(self) -> Encoded:
        """The newest image as JPEG (the placeholder, seq 0, before the first)."""
        with self._encode_lock:
            with self._lock:
                version, image, pending = self.version, self._image, self._pending
            cached = self._jpeg
            if cached is not None and cached.version == version:
                return cached
            loaded = pending() if pending is not None else None
            if loaded is not None:
                image = loaded
                with self._lock:
                    if self._pending is pending:
                        self._image, self._pending = loaded, None
            pixels = image.image if image is not None else self._placeholder
            ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(self.quality)])
            if not ok:
                raise RuntimeError(f"{self.name}: JPEG encoding failed")
            self._jpeg = Encoded(version, image.seq if image is not None else 0, buf.tobytes())
            return self._jpeg


@dataclass(frozen=True)
class Encoded:
    version: int
    seq: int
    """The frame's sequence number (0: the placeholder)."""
    data: bytes
