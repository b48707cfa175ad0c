"""How results reach IoT Core within a rate: a token bucket, and a sampler that summarises what it skips.

Policy: at most ``rate`` result messages per second. Every result is offered to the sampler; when a
token is free the newest result goes at once, otherwise it waits as the pending one (a newer result
replaces it) and goes when the next token frees — so the newest result is never lost, only thinned.
Each message sent carries a ``window`` summary of all the results it stands for (count, how many had
the label present, the highest score, first and last seq), so nothing is hidden by the sampling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; ``rate`` 0 gives no tokens at all."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens = 0.0
        self._last = clock()
        self.set_rate(rate, burst)
        self._tokens = self.burst

    def set_rate(self, rate: float, burst: float | None = None) -> None:
        if rate < 0 or (burst is not None and burst < 1):
            raise ValueError(f"rate {rate!r}/s, burst {burst!r}: expected rate >= 0 and burst >= 1")
        self._refill()
        self.rate = float(rate)
        if burst is not None:
            self.burst = float(burst)
        self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self.clock()
        if now > self._last and getattr(self, "rate", 0) > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def try_take(self) -> bool:
        """Take a token if one is free now."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float | None:
        """Seconds until a token is free (0 when one is), None when the rate is 0 (never)."""
        self._refill()
        if self._tokens >= 1.0:
            return 0.0
        if self.rate <= 0:
            return None
        return (1.0 - self._tokens) / self.rate


@dataclass
class Window:
    """The results a sampled message stands for."""

    results: int = 0
    present: int = 0
    max_score: float = 0.0
    first_seq: int | None = None
    last_seq: int | None = None
    labels: set[str] = field(default_factory=set)

    def add(self, result: Mapping[str, Any]) -> None:
        verdict = result.get("verdict") or {}
        self.results += 1
        self.present += 1 if verdict.get("present") else 0
        self.max_score = max(self.max_score, float(verdict.get("score") or 0.0))
        seq = int(result.get("seq") or 0)
        self.first_seq = seq if self.first_seq is None else min(self.first_seq, seq)
        self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)

    def as_json(self) -> dict[str, Any]:
        return {"results": self.results, "present": self.present, "max_score": round(self.max_score, 4),
                "first_seq": self.first_seq, "last_seq": self.last_seq}


class ResultSampler:
    """Thins results to the bucket's rate; see the module docstring."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self._pending: Mapping[str, Any] | None = None
        self._window = Window()
        self.offered = 0
        self.sent = 0
        self.sampled_out = 0
        """Results that went to IoT Core only as part of another message's ``window``."""

    def offer(self, result: Mapping[str, Any]) -> dict[str, Any] | None:
        """Offer a result; returns the message to send now, if a token is free."""
        self.offered += 1
        if self._pending is not None:
            self.sampled_out += 1
        self._pending = result
        self._window.add(result)
        return self.due()

    def due(self) -> dict[str, Any] | None:
        """The pending result's message when a token is free now, else None."""
        if self._pending is None or not self.bucket.try_take():
            return None
        message = {**self._pending, "window": self._window.as_json()}
        self._pending, self._window = None, Window()
        self.sent += 1
        return message

    def next_due_in(self) -> float | None:
        """Seconds until the pending result may go (None: nothing pending, or never at rate 0)."""
        if self._pending is None:
            return None
        return self.bucket.wait_time()

    def drop_pending(self) -> int:
        """Forget the pending result (the rate became 0); returns how many results it stood for."""
        n = self._window.results
        if self._pending is not None:
            self.sampled_out += 1
        self._pending, self._window = None, Window()
        return n
