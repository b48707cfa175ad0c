"""The newest-frame mailbox between the thread that receives frame descriptors and the inference worker.

It holds at most one descriptor: offering a new one replaces the one the worker has not taken yet, and the
replaced one is counted as skipped. A slow worker therefore always gets the newest frame and never works
through a backlog. Descriptors can arrive out of order (several publishers, or a client calling back on a pool):
one older than a descriptor already offered from the same source, arriving shortly after it, is counted
as skipped too instead of being taken after the newer one.
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
    def key(self) -> tuple[str, int]:
        return str(self.message.get("source", "")), int(self.message.get("seq", 0))


class LatestFrame:
    """A one-slot mailbox that keeps the newest descriptor and counts the ones nobody will process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: Pending | None = None
        self._newest: Pending | None = None
        self._busy = 0
        """Descriptors taken and not yet done (the workers may hold more than one)."""
        self._closed = False
        self.offered = 0
        self.skipped = 0
        """Descriptors offered that will never be processed (replaced by a newer one, or arrived late)."""

    def offer(self, item: Pending) -> bool:
        """Make ``item`` the next one to take; False when it is older than one offered before (skipped)."""
        with self._cond:
            self.offered += 1
            newest = self._newest
            if newest is not None and self._is_late(item, newest):
                self.skipped += 1
                return False
            if self._pending is not None:
                self.skipped += 1
            self._pending = item
            self._newest = item
            self._cond.notify_all()
            return True

    @staticmethod
    def _is_late(item: Pending, newest: Pending) -> bool:
        source, seq = item.key
        newest_source, newest_seq = newest.key
        return (source == newest_source and seq <= newest_seq
                and item.received_mono - newest.received_mono < REORDER_WINDOW_S)

    def take(self, timeout: float) -> Pending | None:
        """The newest descriptor (busy with it until :meth:`done` is called for it), or None after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending is not None or self._closed, timeout):
                return None
            item, self._pending = self._pending, None
            if item is not None:
                self._busy += 1
            return item

    def done(self) -> None:
        """A descriptor taken before is finished with (a result sent, or given up)."""
        with self._cond:
            self._busy = max(0, self._busy - 1)
            self._cond.notify_all()

    def skip(self) -> None:
        """Count a descriptor taken before that will not get a result after all (its model was replaced)."""
        with self._cond:
            self.skipped += 1

    def counts(self) -> tuple[int, int]:
        """(offered, skipped), read at one instant."""
        with self._cond:
            return self.offered, self.skipped

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending and the worker is not busy; False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and self._busy == 0, timeout)

    def close(self) -> None:
        """Wake a worker waiting in :meth:`take` (it gets None from then on)."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
