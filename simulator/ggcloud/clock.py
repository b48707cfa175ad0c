"""Time for roll-outs: rates and timeouts are per minute, and a clock scale compresses them (scale 60 makes a
minute last one second). Timestamps a user reads stay wall-clock time."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"clock scale must be > 0, not {self.scale}")

    @property
    def minute(self) -> float:
        """Seconds of real time one roll-out minute lasts."""
        return 60.0 / self.scale

    def seconds(self, minutes: float) -> float:
        return minutes * self.minute

    @staticmethod
    def now() -> float:
        return time.time()

    def describe(self) -> str:
        """How the scale reads in every line that reports a rate."""
        return f"clock scale {self.scale:g} (1 min = {self.minute:g} s)"
