"""How a captured frame reaches the consumers: a slot of the shared-memory ring, or a small inline JPEG.

Either way the result is a ``greenlens.frame/1`` descriptor to publish on the local topic.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from greenlens_common import messages
from greenlens_common.ring import RingWriter

from .imaging import encode_jpeg_within
from .sources import CapturedFrame


class FrameTransport(Protocol):
    def send(self, frame: CapturedFrame, *, seq: int, source: str, dropped: int) -> dict[str, Any]:
        """Put the frame where consumers can read it; returns its descriptor (frame number ``seq``)."""

    def close(self) -> None: ...


class RingTransport:
    """Pixels into the ring; the descriptor names the ring, the slot and the slot's sequence number."""

    def __init__(self, name: str, width: int, height: int, slots: int,
                 directory: str | os.PathLike[str] | None = None) -> None:
        self.ring = RingWriter(name, width=width, height=height, slot_count=slots, directory=directory)

    def fits(self, name: str, width: int, height: int, slots: int) -> bool:
        layout = self.ring.layout
        return (name == self.ring.name and slots == layout.slot_count
                and width * height * 3 <= layout.slot_capacity)

    def send(self, frame: CapturedFrame, *, seq: int, source: str, dropped: int) -> dict[str, Any]:
        slot, slot_seq = self.ring.write(frame.image, captured_at=frame.captured_at)
        h, w = frame.image.shape[:2]
        return messages.frame_message(source=source, seq=seq, captured_at=frame.captured_at, width=w, height=h,
                                      dropped=dropped, ring=(self.ring.name, slot, slot_seq))

    def close(self) -> None:
        self.ring.close()


class InlineTransport:
    """A JPEG small enough for one IPC message (nucleus lite caps IPC frames at 10,000 bytes)."""

    def __init__(self, max_bytes: int) -> None:
        # base64 grows the JPEG by 4/3; the rest of the descriptor needs a few hundred bytes.
        self.max_jpeg_bytes = max_bytes * 3 // 4

    def send(self, frame: CapturedFrame, *, seq: int, source: str, dropped: int) -> dict[str, Any]:
        jpeg, w, h = encode_jpeg_within(frame.image, self.max_jpeg_bytes)
        return messages.frame_message(source=source, seq=seq, captured_at=frame.captured_at, width=w,
                                      height=h, dropped=dropped, jpeg=jpeg)

    def close(self) -> None:
        pass
