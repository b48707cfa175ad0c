"""The "appeared" / "gone" debouncer: the verdict must hold for k consecutive results before it counts."""

from __future__ import annotations

from typing import Literal

Change = Literal["appeared", "gone"]


class Debouncer:
    """Feeds on verdicts (present or not); reports a change once ``k`` consecutive results agree on it.

    The state starts unknown: k absent results at start-up settle it to absent without a "gone"
    (nothing was there to go); k present results from unknown or absent are "appeared".
    """

    def __init__(self, k: int) -> None:
        self.k = self._check(k)
        self.state: bool | None = None
        self._candidate: bool | None = None
        self.run = 0
        """Consecutive results so far that agree with the newest one."""

    @staticmethod
    def _check(k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"debounce k={k!r}: expected an integer >= 1")
        return k

    def set_k(self, k: int) -> None:
        """A new k, applied from the next result (the current run still counts)."""
        self.k = self._check(k)

    def feed(self, present: bool) -> Change | None:
        present = bool(present)
        if present == self._candidate:
            self.run += 1
        else:
            self._candidate, self.run = present, 1
        if self.run >= self.k and present != self.state:
            previous, self.state = self.state, present
            if present:
                return "appeared"
            if previous is not None:
                return "gone"
        return None
