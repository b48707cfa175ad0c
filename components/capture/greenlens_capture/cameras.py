"""Several cameras in one greenlens.Capture: one reader thread (and one ring) per camera, each on its own.

A :class:`CameraWorker` owns one camera's :class:`~.component.CaptureComponent` and runs its capture loop on
its own thread. A camera that cannot be opened (a device that is absent, a stream that refuses, a ring that
cannot be made) is *missing*: retried with a doubling backoff up to ``maxBackoffSeconds``, reported on
``greenlens/cameras`` (``greenlens.camera/1``) and as an event, and never stops the other cameras or the
component. Once open, a lost source is reopened by the source itself (state *reconnecting*).

:class:`Cameras` keeps the workers of a configuration: :meth:`Cameras.apply` starts the cameras that were
added, stops those removed and hands a changed configuration to that camera's worker only (which reopens only
what changed); the other cameras' threads and rings are not touched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from greenlens_common import messages, topics
from greenlens_common.ring import RingError

from .component import COMPONENT, CaptureComponent, Publish
from .config import CaptureConfig
from .sources import SourceEvent, SourceOpenError, redact_url

log = logging.getLogger("greenlens.capture")

BACKOFF_INITIAL_S = 0.5
"""First wait before reopening a camera that could not be opened; it doubles up to maxBackoffSeconds."""
STATUS_INTERVAL_S = 5.0
"""Each camera's state is published at least this often (a consumer that starts later learns it)."""


class CameraWorker:
    """One camera: its capture component, its thread, its state (connected / reconnecting / missing)."""

    def __init__(self, config: CaptureConfig, publish: Publish, *, ring_dir: str | os.PathLike[str] | None = None,
                 max_frames: int | None = None, flow_enabled: bool = False,
                 status_interval: float = STATUS_INTERVAL_S, on_finished: Callable[[], None] | None = None,
                 publish_status: Publish | None = None) -> None:
        """``publish`` sends the frames (in a hot loop: it need not wait for the answer); ``publish_status``
        (default ``publish``) the camera's states and events, and waits for the answer, so that a refused
        one is a warning here and never the frames' error."""
        self.camera_id = config.camera_id
        self.publish = publish_status or publish
        self._publish_failures = 0
        self.max_frames = max_frames
        self.status_interval = status_interval
        self.on_finished = on_finished
        self.component = CaptureComponent(config, publish, ring_dir=ring_dir)
        self.component.flow.enabled = flow_enabled
        self.component.on_source_event = self._on_source_event
        self.component.on_tick = self._maybe_report
        self._desired = config
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.finished = threading.Event()
        """Set when the thread ends (stopped, or max_frames published)."""
        self.state = ""
        self.detail = ""
        self._since = time.time()
        self._last_status = 0.0
        self.open_failures = 0
        self.thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)

    @property
    def config(self) -> CaptureConfig:
        with self._lock:
            return self._desired

    def start(self) -> None:
        self.thread.start()

    def reconfigure(self, config: CaptureConfig) -> None:
        """Apply ``config`` (same camera id) on the camera's own thread; only what changed is reopened."""
        with self._lock:
            self._desired = config
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the thread to end (it finishes the frame it holds); :meth:`stop` waits for it."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        self.thread.join(timeout)
        self.component.close()
        self._status("removed", "removed from the configuration", force=True)

    # -- the thread

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # one camera's failure never stops the others
            log.exception("camera %s: capture stopped by an error", self.camera_id)
            self._status("missing", f"capture stopped by an error: {type(exc).__name__}: {exc}", force=True)
        finally:
            self.finished.set()
            if self.on_finished is not None:
                self.on_finished()

    def _loop(self) -> None:
        component = self.component
        attempt = 0
        while not self._stop.is_set():
            self._wake.clear()  # before reading the desired configuration: a later change wakes the next wait
            config = self.config
            try:
                component.apply(config)
            except (SourceOpenError, RingError) as exc:
                attempt += 1
                self.open_failures += 1
                delay = min(config.max_backoff, BACKOFF_INITIAL_S * 2 ** min(attempt - 1, 20))
                self._missing(str(exc), attempt, delay)
                self._wake.wait(delay)
                continue
            attempt = 0
            if component.source is not None and component.source.stats().connected:
                self._status("connected", f"reading {component.source.description}")
            component.run(self._wake, max_frames=self.max_frames)
            if self.max_frames is not None and component.counters.published >= self.max_frames:
                return

    def _missing(self, reason: str, attempt: int, delay: float) -> None:
        changed = self.state != "missing" or self.detail.split("; retry")[0] != reason
        detail = f"{reason}; retry {attempt} in {delay:g} s"
        if changed:
            log.error("camera %s is missing: %s (retried every %g s at most; the other cameras go on)",
                      self.camera_id, reason, self.config.max_backoff)
            self._event("camera_missing", f"camera {self.camera_id}: {reason}")
        else:
            log.debug("camera %s: still missing: %s", self.camera_id, detail)
        self._status("missing", detail, force=True)

    def _on_source_event(self, event: SourceEvent) -> None:
        if event.kind == "source_lost":
            self._status("reconnecting", event.detail, force=True)
        elif event.kind == "source_restored":
            self._status("connected", event.detail, force=True)

    def _maybe_report(self) -> None:
        if time.monotonic() - self._last_status >= self.status_interval:
            self._status(self.state or "connected", self.detail)

    # -- reporting

    def _status(self, state: str, detail: str, force: bool = False) -> None:
        """Publish the camera's state: at every change (or when ``force``), else at most every interval."""
        now = time.monotonic()
        if state == self.state and detail == self.detail and not force \
                and now - self._last_status < self.status_interval:
            return
        if state != self.state:
            self._since = time.time()
            if state == "connected" and self.state in ("missing", "reconnecting"):
                log.info("camera %s is back: %s", self.camera_id, detail)
        self.state, self.detail, self._last_status = state, detail, now
        self._publish(topics.CAMERAS, self.status_message())

    def status_message(self) -> dict[str, Any]:
        cfg = self.config
        c = self.component.snapshot()
        return messages.camera_message(
            camera=self.camera_id, state=self.state or "missing", detail=self.detail, since=self._since,
            source=redact_url(cfg.source), ring=cfg.ring_name if cfg.transport == "ring" else None, fps=cfg.fps,
            width=cfg.width, height=cfg.height,
            counters={"published": c.published, "dropped": c.dropped, "outages": c.outages,
                      "reconnects": c.reconnects, "open_failures": self.open_failures})

    def _event(self, kind: str, detail: str) -> None:
        self._publish(topics.EVENTS, messages.event_message(
            component=COMPONENT, kind=kind, detail=detail, counters={"open_failures": self.open_failures}))

    def _publish(self, topic: str, message: dict[str, Any]) -> None:
        try:
            self.publish(topic, message)
        except Exception as exc:
            self._publish_failures += 1
            if self._publish_failures == 1 or self._publish_failures % 100 == 0:
                log.warning("camera %s: publish to %s failed (%d so far): %s", self.camera_id, topic,
                            self._publish_failures, exc)


class Cameras:
    """The workers of the configured cameras, by camera id."""

    def __init__(self, publish: Publish, *, ring_dir: str | os.PathLike[str] | None = None,
                 max_frames: int | None = None, on_finished: Callable[[], None] | None = None,
                 publish_status: Publish | None = None) -> None:
        self.publish = publish
        self.publish_status = publish_status
        self.on_finished = on_finished
        self.ring_dir = ring_dir
        self.max_frames = max_frames
        self.flow_enabled = False
        self.workers: dict[str, CameraWorker] = {}
        self._lock = threading.Lock()

    def apply(self, cameras: Sequence[CaptureConfig]) -> None:
        """Run exactly ``cameras``: start the new ones, stop the removed ones, reconfigure the changed ones."""
        wanted = {c.camera_id: c for c in cameras}
        with self._lock:
            current = dict(self.workers)
        for camera_id, worker in current.items():
            if camera_id not in wanted:
                log.info("camera %s removed", camera_id)
                worker.stop()
                with self._lock:
                    del self.workers[camera_id]
        for i, (camera_id, config) in enumerate(wanted.items()):
            phase = i / len(wanted) if len(wanted) > 1 else None  # same-rate cameras publish in turn
            worker = current.get(camera_id)
            if worker is None:
                worker = CameraWorker(config, self.publish, ring_dir=self.ring_dir, max_frames=self.max_frames,
                                      flow_enabled=self.flow_enabled, on_finished=self.on_finished,
                                      publish_status=self.publish_status)
                with self._lock:
                    self.workers[camera_id] = worker
                log.info("camera %s: %s at %g fps, %dx%d, transport %s%s", camera_id, redact_url(config.source),
                         config.fps, config.width, config.height, config.transport,
                         f" (ring {config.ring_name})" if config.transport == "ring" else "")
                worker.component.phase = phase
                worker.start()
                continue
            worker.component.phase = phase  # from its next tick that is off its grid (a new run, a lag)
            if worker.config != config:
                log.info("camera %s: configuration changed; only its reader is updated", camera_id)
                worker.reconfigure(config)

    def enable_flow_control(self) -> None:
        self.flow_enabled = True
        for worker in self.snapshot():
            worker.component.flow.enabled = True

    def on_result(self, message: Any) -> None:
        """A message from the results topic (an IPC thread): flow control of the camera it is about."""
        if not isinstance(message, dict):
            return
        with self._lock:
            worker = self.workers.get(str(message.get("source")))
        if worker is not None:
            worker.component.on_result(message)

    def snapshot(self) -> list[CameraWorker]:
        with self._lock:
            return list(self.workers.values())

    def all_finished(self) -> bool:
        """True when every camera's thread ended (each published max_frames)."""
        return all(w.finished.is_set() for w in self.snapshot())

    def close(self) -> None:
        for worker in self.snapshot():
            worker.request_stop()
        for worker in self.snapshot():
            worker.thread.join(10)
            worker.component.close()
        with self._lock:
            self.workers.clear()
