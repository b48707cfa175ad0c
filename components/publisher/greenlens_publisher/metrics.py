"""The truth about the pipeline as the publisher sees it: fps, capture-to-result latency, dropped frames."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np


class Rate:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()

    def per_second(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0


class PipelineMetrics:
    """Counters and rates; fed by the publisher's worker thread, read by the HTTP status."""

    def __init__(self, latency_samples: int = 1000) -> None:
        self.frames_received = 0
        self.frames_skipped = 0
        """Descriptors this publisher never read because a newer one came first (it takes the newest)."""
        self.frames_unreadable = 0
        """Descriptors whose ring slot was already overwritten (or unreadable) when read."""
        self.capture_dropped = 0
        """Frames the capture skipped (the ``dropped`` field of the newest descriptor)."""
        self.results_received = 0
        self.results_not_inferred = 0
        """Frames with no result: gaps in the result sequence numbers."""
        self.results_on_newer_frame = 0
        """Results drawn on the newest frame because their own was overwritten in the ring."""
        self.results_annotated = 0
        self.results_processed = 0  # taken by the worker: verdict shown, debounced, offered to IoT Core
        self.invalid_messages = 0
        self.last_result_seq = 0
        self._latencies: deque[float] = deque(maxlen=latency_samples)
        self.frame_rate = Rate()
        self.result_rate = Rate()

    def frame(self, descriptor: Mapping[str, Any], now: float) -> None:
        self.frames_received += 1
        self.capture_dropped = max(self.capture_dropped, int(descriptor.get("dropped") or 0))
        self.frame_rate.tick(time.monotonic())

    def result(self, result: Mapping[str, Any], now: float) -> None:
        self.results_received += 1
        seq = int(result["seq"])
        if self.last_result_seq and seq > self.last_result_seq + 1:
            self.results_not_inferred += seq - self.last_result_seq - 1
        if seq < self.last_result_seq - 1000:
            self.last_result_seq = 0  # the capture restarted its numbering
        self.last_result_seq = max(self.last_result_seq, seq)
        self._latencies.append(max(0.0, (now - float(result["captured_at"])) * 1000.0))
        self.result_rate.tick(time.monotonic())

    def latency_ms(self) -> dict[str, float | int | None]:
        samples = np.fromiter(self._latencies, float)
        if samples.size == 0:
            return {"p50": None, "p99": None, "samples": 0}
        p50, p99 = np.percentile(samples, [50, 99])
        return {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "samples": int(samples.size)}

    def status(self) -> dict[str, Any]:
        mono = time.monotonic()
        return {
            "frames": {"received": self.frames_received, "fps": round(self.frame_rate.per_second(mono), 2),
                       "skipped_by_publisher": self.frames_skipped, "unreadable": self.frames_unreadable,
                       "dropped_by_capture": self.capture_dropped},
            "results": {"received": self.results_received, "processed": self.results_processed,
                        "fps": round(self.result_rate.per_second(mono), 2),
                        "not_inferred": self.results_not_inferred,
                        "on_newer_frame": self.results_on_newer_frame, "annotated": self.results_annotated,
                        "invalid_messages": self.invalid_messages,
                        "latency_ms": self.latency_ms()},
            "dropped_frames": self.capture_dropped + self.results_not_inferred,
        }
