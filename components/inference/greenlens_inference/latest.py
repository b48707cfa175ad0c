"""The newest-frame mailbox between the thread that receives frame descriptors and the inference workers.

It holds at most one descriptor per camera (the descriptor's ``source``): offering a new one replaces that
camera's descriptor the workers have not taken yet, and the replaced one is counted as skipped, for that
camera. A slow model therefore always gets each camera's newest frame and never works through a backlog.

With several cameras the workers take them in turn (round-robin over the cameras that have a frame waiting,
least recently served first). The invariant: while k cameras have frames waiting, each of them is taken
within the next k takes. So when the model cannot keep up with the sum, every camera gets an equal share
of the model (a camera slower than its share gets all its frames, the rest is shared by the others), and
no camera is starved however fast another one publishes.

Descriptors can arrive out of order (several publishers, or a client calling back on a pool): one older than
a descriptor already offered from the same source, arriving shortly after it, is counted as skipped too
instead of being taken after the newer one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

REORDER_WINDOW_S = 1.0
"""An older seq from the same source within this time of the newest is a late arrival (else a restart)."""


@dataclass(frozen=True)
class Pending:
    """A frame descriptor as received, with when it was received."""

    message: dict[str, Any]
    received_mono: float = field(default_factory=time.monotonic)
    received_wall: float = field(default_factory=time.time)

    @property
    def source(self) -> str:
        return str(self.message.get("source", ""))

    @property
    def key(self) -> tuple[str, int]:
        return self.source, int(self.message.get("seq", 0))


class LatestFrame:
    """One slot per camera that keeps its newest descriptor, taken round-robin; counts what nobody processes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[str, Pending] = {}
        """Each camera's descriptor waiting to be taken."""
        self._turns: dict[str, None] = {}
        """Every camera seen, least recently taken first (an insertion-ordered dict used as a queue)."""
        self._newest: dict[str, Pending] = {}
        self._busy = 0
        """Descriptors taken and not yet done (the workers may hold more than one)."""
        self._closed = False
        self.offered = 0
        self.skipped = 0
        """Descriptors offered that will never be processed (replaced by a newer one, or arrived late)."""
        self._offered_by: dict[str, int] = {}
        self._skipped_by: dict[str, int] = {}
        self._taken_by: dict[str, int] = {}

    def offer(self, item: Pending) -> bool:
        """Make ``item`` its camera's next one to take; False when it is older than one offered before
        (skipped)."""
        source = item.source
        with self._cond:
            self.offered += 1
            self._offered_by[source] = self._offered_by.get(source, 0) + 1
            if source not in self._turns:
                self._turns[source] = None
            newest = self._newest.get(source)
            if newest is not None and self._is_late(item, newest):
                self._skip(source)
                return False
            if source in self._pending:
                self._skip(source)
            self._pending[source] = item
            self._newest[source] = item
            self._cond.notify_all()
            return True

    def _skip(self, source: str) -> None:
        self.skipped += 1
        self._skipped_by[source] = self._skipped_by.get(source, 0) + 1

    @staticmethod
    def _is_late(item: Pending, newest: Pending) -> bool:
        _, seq = item.key
        _, newest_seq = newest.key
        return seq <= newest_seq and item.received_mono - newest.received_mono < REORDER_WINDOW_S

    def take(self, timeout: float) -> Pending | None:
        """The newest descriptor of the camera whose turn it is (the least recently taken of those with one
        waiting; busy with it until :meth:`done` is called for it), or None after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending or self._closed, timeout) or self._closed:
                return None
            pending = self._pending
            if len(pending) == 1:  # one camera (the common case): no search
                source, item = pending.popitem()
            else:
                source = next(s for s in self._turns if s in pending)
                item = pending.pop(source)
            turns = self._turns
            if len(turns) > 1:
                del turns[source]  # to the back of the queue
                turns[source] = None
            self._taken_by[source] = self._taken_by.get(source, 0) + 1
            self._busy += 1
            return item

    def done(self) -> None:
        """A descriptor taken before is finished with (a result sent, or given up)."""
        with self._cond:
            self._busy = max(0, self._busy - 1)
            self._cond.notify_all()

    def skip(self, source: str = "") -> None:
        """Count a descriptor taken before that will not get a result after all (its model was replaced)."""
        with self._cond:
            self._skip(source)

    def skipped_of(self, source: str) -> int:
        """Descriptors of camera ``source`` skipped so far."""
        with self._cond:
            return self._skipped_by.get(source, 0)

    def counts(self) -> tuple[int, int]:
        """(offered, skipped), read at one instant."""
        with self._cond:
            return self.offered, self.skipped

    def by_camera(self) -> dict[str, dict[str, int]]:
        """Per camera: descriptors offered, taken and skipped so far, read at one instant."""
        with self._cond:
            return {s: {"offered": self._offered_by.get(s, 0), "taken": self._taken_by.get(s, 0),
                        "skipped": self._skipped_by.get(s, 0)} for s in self._turns}

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending and the workers are not busy; False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and self._busy == 0, timeout)

    def close(self) -> None:
        """Wake a worker waiting in :meth:`take` (it gets None from then on)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
