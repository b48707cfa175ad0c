"""The capture loop: the newest frame of the source, at the configured fps, into the transport, then published.

It knows nothing of IPC: it gets a ``publish(topic, message)`` callable, so it runs the same under a
nucleus and in development (``--no-ipc``). With flow control (``maxFramesInFlight`` k > 0, and results fed to
:meth:`CaptureComponent.on_result` by whoever subscribed to greenlens/results) frame n+k is not published
before a result for a frame >= n came back, or ``inFlightTimeoutSeconds`` passed (see :class:`FlowControl`).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from greenlens_common import messages, topics

from .config import CaptureConfig
from .sources import FrameSource, SourceEvent, open_source
from .transport import FrameTransport, InlineTransport, RingTransport

log = logging.getLogger("greenlens.capture")

COMPONENT = "greenlens.Capture"
Publish = Callable[[str, dict[str, Any]], None]


@dataclass
class CaptureCounters:
    published: int = 0
    dropped: int = 0
    """Frames the source produced that were never published (a slow consumer takes the newest)."""
    publish_errors: int = 0
    outages: int = 0
    reconnects: int = 0
    in_flight_timeouts: int = 0
    """Waits for a result that ended by the flow-control timeout (frames then published anyway)."""


class FlowControl:
    """Frames in flight between Capture and its consumer, told by the results (``greenlens.result/1`` seq).

    ``wait(seq, k, timeout)`` returns once frame ``seq`` may be published: flow control off (k = 0, or no
    results subscribed), a result for a frame >= seq - k came back, or ``timeout`` passed. After a timeout the
    consumer is taken to be absent (a missing or dead Inference): frames are published without waiting until a
    result comes back, so capture never stalls. Results for another camera, or for frames not yet published
    (an earlier run's numbering), are ignored.
    """

    def __init__(self) -> None:
        self.enabled = False
        """True once someone feeds results (the process subscribed to greenlens/results)."""
        self.camera_id = ""
        self.published = 0
        self.answered = 0
        """Highest seq a result came back for."""
        self.results = 0
        self.timeouts = 0
        self.consumer_absent = False
        self._cond = threading.Condition()

    def sent(self, seq: int) -> None:
        with self._cond:
            self.published = seq

    def on_result(self, message: Any) -> None:
        """A message from the results topic (any thread)."""
        if not isinstance(message, dict):
            return
        seq, source = message.get("seq"), message.get("source")
        if isinstance(seq, bool) or not isinstance(seq, int | float) or (self.camera_id and source != self.camera_id):
            return
        with self._cond:
            if not 0 < seq <= self.published:
                return
            self.results += 1
            if seq > self.answered:
                self.answered = int(seq)
            if self.consumer_absent:
                self.consumer_absent = False
                log.info("results come back again (frame %d): flow control resumes", seq)
            self._cond.notify_all()

    def wait(self, seq: int, k: int, timeout: float, interrupt: threading.Event) -> str:
        """``"go"`` (frame ``seq`` may be published), ``"timeout"`` (publish anyway, counted) or ``"interrupted"``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if not self.enabled or k <= 0 or self.consumer_absent or self.answered >= seq - k:
                    return "go"
                if interrupt.is_set():
                    return "interrupted"
                left = deadline - time.monotonic()
                if left <= 0:
                    self.timeouts += 1
                    self.consumer_absent = True
                    return "timeout"
                self._cond.wait(min(left, 0.05))  # a result notifies at once; the slice only checks interrupt


class CaptureComponent:
    """Owns the source and the transport for one configuration; :meth:`apply` switches configurations."""

    def __init__(self, config: CaptureConfig, publish: Publish,
                 ring_dir: str | os.PathLike[str] | None = None) -> None:
        self.config = config
        self.publish = publish
        self.ring_dir = ring_dir
        self.counters = CaptureCounters()
        self.source: FrameSource | None = None
        self.transport: FrameTransport | None = None
        self._events: queue.Queue[SourceEvent] = queue.Queue()
        self._last_index = 0
        self._past_outages = 0
        self._past_reconnects = 0
        self.flow = FlowControl()
        self.flow.camera_id = config.camera_id
        self._last_timeout_event = -1e9
        self.on_source_event: Callable[[SourceEvent], None] | None = None
        """Hears each source event (lost, restored) on the capture thread, after it was published."""
        self.on_tick: Callable[[], None] | None = None
        """Called on the capture thread at every turn of :meth:`run` (cheap; for periodic reports)."""
        self.phase: float | None = None
        """With several cameras: this camera's ticks fall on a grid, ``phase`` (a fraction 0..1 of the period)
        after the grid's, so that cameras of the same rate publish in turn, not all at once (Inference then
        finds the model free for each); None: the ticks start when :meth:`run` starts."""

    def on_result(self, message: Any) -> None:
        """A ``greenlens.result/1`` message from the results topic (any thread): flow control."""
        self.flow.on_result(message)

    # -- set-up

    def start(self) -> None:
        """Open the source and the transport; SourceOpenError/RingError when they cannot be opened."""
        self._open_source(self.config)
        try:
            self._open_transport(self.config)
        except BaseException:
            self._close_source()
            raise

    def apply(self, new: CaptureConfig) -> None:
        """Switch to ``new`` without a restart: reopen only what changed. Raises like :meth:`start`."""
        old = self.config
        if new == old and self.source is not None and self.transport is not None:
            return
        if new.source_settings() != old.source_settings() or self.source is None:
            self._close_source()
            self.config = new
            self._open_source(new)
        self.config = new
        self.flow.camera_id = new.camera_id
        if new.transport != old.transport or not self._transport_fits(new):
            self._close_transport()
            self._open_transport(new)
        log.info("configuration applied: source=%s %dx%d @ %g fps, transport=%s", self.source_name(),
                 new.width, new.height, new.fps, new.transport)

    def _open_source(self, cfg: CaptureConfig) -> None:
        self.source = open_source(
            cfg.source, width=cfg.width, height=cfg.height, fps=cfg.fps, source_fps=cfg.source_fps,
            open_timeout=cfg.open_timeout, read_timeout=cfg.read_timeout, stall_timeout=cfg.stall_timeout,
            backoff_max=cfg.max_backoff, on_event=self._events.put,
        )
        self._last_index = 0

    def _close_source(self) -> None:
        if self.source is not None:
            stats = self.source.stats()
            self._past_outages += stats.outages
            self._past_reconnects += stats.reconnects
            self.source.stop()
            self.source = None

    def _transport_fits(self, cfg: CaptureConfig) -> bool:
        t = self.transport
        if cfg.transport == "ring":
            return isinstance(t, RingTransport) and t.fits(cfg.ring_name, cfg.width, cfg.height, cfg.ring_slots)
        return isinstance(t, InlineTransport) and t.max_jpeg_bytes == cfg.inline_max_bytes * 3 // 4

    def _open_transport(self, cfg: CaptureConfig) -> None:
        if cfg.transport == "ring":
            self.transport = RingTransport(cfg.ring_name, cfg.width, cfg.height, cfg.ring_slots, self.ring_dir)
        else:
            self.transport = InlineTransport(cfg.inline_max_bytes)

    def _close_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def close(self) -> None:
        self._close_source()
        self._close_transport()

    # -- the loop

    def source_name(self) -> str:
        return self.config.camera_id

    def run(self, interrupt: threading.Event, max_frames: int | None = None) -> None:
        """Publish frames until ``interrupt`` is set (or ``max_frames`` were published)."""
        assert self.source is not None and self.transport is not None, "start() first"
        period = 1.0 / self.config.fps
        next_due = self._on_grid(time.monotonic(), period)
        last_report = time.monotonic()
        while not interrupt.is_set():
            self._publish_events()
            if self.on_tick is not None:
                self.on_tick()
            seq = self.counters.published + 1
            waited = self.flow.wait(seq, self.config.max_in_flight, self.config.in_flight_timeout, interrupt)
            if waited == "interrupted":
                break
            if waited == "timeout":
                self._flow_timeout(seq)
            frame = self.source.next_frame(self._last_index, timeout=min(1.0, max(period, 0.05)))
            if frame is None:
                continue
            self.counters.dropped += max(0, frame.index - self._last_index - 1)
            self._last_index = frame.index
            seq = self.counters.published + 1
            descriptor = self.transport.send(frame, seq=seq, source=self.source_name(),
                                             dropped=self.counters.dropped)
            self._publish(topics.FRAMES, descriptor)
            self.counters.published = seq
            self.flow.sent(seq)
            if max_frames is not None and seq >= max_frames:
                break
            now = time.monotonic()
            if now - last_report >= 30:
                self._log_stats()
                last_report = now
            next_due += period
            if next_due < now - period:
                next_due = self._on_grid(now, period)  # fell behind (a slow publish): no burst to catch up
            elif next_due > now and interrupt.wait(next_due - now):
                break
        self._publish_events()

    def _on_grid(self, now: float, period: float) -> float:
        """The first tick at or after ``now``: ``now`` itself, or the next tick of this camera's phase grid."""
        if self.phase is None:
            return now
        offset = self.phase * period
        return offset + math.ceil((now - offset) / period) * period

    def _flow_timeout(self, seq: int) -> None:
        """No result within inFlightTimeoutSeconds: counted, logged and (at most every 30 s) an event."""
        n = self.flow.timeouts
        self.counters.in_flight_timeouts = n
        k, t = self.config.max_in_flight, self.config.in_flight_timeout
        detail = (f"no result for frame {max(1, seq - k)} or later within {t:g} s ({k} frames in flight): "
                  f"publishing without flow control until results come back (timeout {n})")
        if n == 1 or n % 100 == 0:
            log.warning("%s", detail)
        now = time.monotonic()
        if now - self._last_timeout_event >= 30:
            self._last_timeout_event = now
            c = self.snapshot()
            self._publish(topics.EVENTS, messages.event_message(
                component=COMPONENT, kind="results_timeout", detail=detail,
                counters={"in_flight_timeouts": n, "published": c.published, "dropped": c.dropped}))

    def _publish(self, topic: str, message: dict[str, Any]) -> None:
        try:
            self.publish(topic, message)
        except Exception as exc:
            self.counters.publish_errors += 1
            log.warning("publish to %s failed (%d so far): %s", topic, self.counters.publish_errors, exc)
            if self.counters.publish_errors >= 10 and self.counters.publish_errors % 10 == 0:
                raise

    def _publish_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            stats = event.stats
            msg = messages.event_message(
                component=COMPONENT, kind=event.kind, detail=event.detail,
                counters={"outages": self._past_outages + stats.outages,
                          "reconnects": self._past_reconnects + stats.reconnects,
                          "frames": stats.frames, "published": self.counters.published,
                          "dropped": self.counters.dropped},
            )
            self._publish(topics.EVENTS, msg)
            if self.on_source_event is not None:
                self.on_source_event(event)

    def snapshot(self) -> CaptureCounters:
        stats = self.source.stats() if self.source is not None else None
        return CaptureCounters(
            published=self.counters.published, dropped=self.counters.dropped,
            publish_errors=self.counters.publish_errors,
            outages=self._past_outages + (stats.outages if stats else 0),
            reconnects=self._past_reconnects + (stats.reconnects if stats else 0),
            in_flight_timeouts=self.flow.timeouts,
        )

    def _log_stats(self) -> None:
        c = self.snapshot()
        log.info("published %d frames, dropped %d, outages %d, reconnects %d, publish errors %d, "
                 "flow-control timeouts %d", c.published, c.dropped, c.outages, c.reconnects, c.publish_errors,
                 c.in_flight_timeouts)
