"""The inference loop: the newest frame descriptor in, its pixels from the ring, the engine, a result out.

Two worker threads pipeline the frames. A worker takes the newest descriptor, makes the input tensor from
its pixels (viewed in the ring, not copied), runs the interpreter (one frame at a time), turns the outputs
into the result and publishes it (in frame order). The other worker takes the next frame just in time for
the interpreter to be free (by the measured durations of preparing and running), so while the model runs on
frame n, frame n+1 is prepared and frame n-1 finished on other cores, and the frame taken is as fresh as it
can be. At a camera's pace (the model faster than the frames) one worker does a whole frame, with no hand-off
between threads. The turns, their timing and the counters are kept by one :class:`~.schedule.Schedule`.

It knows nothing of IPC: descriptors come in through :meth:`InferenceComponent.offer` (from any thread)
and results go out through a ``publish(topic, message)`` callable, so it runs the same under a nucleus and
in development (``--no-ipc``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from greenlens_common import messages
from greenlens_common.frames import FrameReader, FrameReadError, FrameView

from .bundle import MANIFEST, BundleError, load_bundle, read_manifest
from .config import ConfigError, InferenceConfig
from .engine import Engine, Invoked, Prepared, label_index
from .golden import check_golden
from .latest import LatestFrame, Pending
from .message import build_result_message
from .schedule import Schedule

log = logging.getLogger("greenlens.inference")

COMPONENT = "greenlens.Inference"
Publish = Callable[[str, dict[str, Any]], None]
STATS_INTERVAL_S = 60.0
WORKERS = 2
"""Worker threads: one can prepare the next frame while another's frame is in the interpreter."""
FATAL_PUBLISH_ERRORS = 10
"""Consecutive failed publishes after which the component gives up (the nucleus restarts it)."""


@dataclass
class InferenceCounters:
    """The component's counters at one instant (:meth:`InferenceComponent.snapshot`)."""

    received: int = 0
    """Frame descriptors accepted (a supported schema)."""
    results: int = 0
    skipped: int = 0
    """Descriptors never processed because a newer one came first (the worker takes the newest)."""
    overwritten: int = 0
    """Frames whose ring slot the capture had already reused when the worker came to read them."""
    rejected: int = 0
    """Messages that are not greenlens.frame/1 descriptors (another major, or malformed)."""
    unreadable: int = 0
    errors: int = 0
    publish_errors: int = 0


class RateLimitedLog:
    """Logs a warning of each kind at most once per ``interval`` seconds, then how many were suppressed."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            suppressed = self._suppressed.pop(kind, 0)
            self._last[kind] = now
        more = f" ({suppressed} more like it in the last {self.interval:g} s)" if suppressed else ""
        log.warning("%s%s", text, more)


def resolve_model_dir(model_dir: str | None) -> Path:
    """The bundle folder: ``model_dir`` itself, or the one bundle folder inside it (an unpacked artifact)."""
    if model_dir is None:
        raise ConfigError("no model: give the bundle folder with --model-dir or the modelDir configuration key")
    path = Path(model_dir).expanduser().absolute()
    if not (path / MANIFEST).is_file() and path.is_dir():
        inside = sorted(d for d in path.iterdir() if (d / MANIFEST).is_file())
        if len(inside) == 1:
            return inside[0]
    return path


def _ms(seconds: float) -> float:
    return round(max(0.0, seconds) * 1000, 3)


@dataclass(frozen=True)
class _Ready:
    """A frame made into the model's input, on its way to the interpreter."""

    item: Pending
    prepared: Prepared
    taken: float
    """When the descriptor was taken from the mailbox (monotonic)."""
    read_ms: float
    ready_at: float
    """When its tensor was ready (monotonic)."""


class InferenceComponent:
    """Owns the engine for one configuration and the worker threads that infer the newest frames."""

    def __init__(self, publish: Publish, ring_dir: str | os.PathLike[str] | None = None,
                 on_fatal: Callable[[Exception], None] | None = None) -> None:
        self.publish = publish
        self.on_fatal = on_fatal
        self.config = InferenceConfig()
        self.engine: Engine | None = None
        self.latest = LatestFrame()
        self.schedule = Schedule()
        self.frames = FrameReader(ring_dir)
        """Read only by the worker holding the take turn (one at a time)."""
        self.rate_limited = RateLimitedLog()
        self._configure_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._report_lock = threading.Lock()
        self._last_report = time.monotonic()

    # -- configuration

    def configure(self, config: InferenceConfig) -> bool:
        """Apply ``config``: load its model when it is a different one, else change the settings in place.

        Returns True when a model was loaded. Raises BundleError (the model is missing, corrupt, does not
        load or fails its golden check) or ConfigError (a setting does not fit the model); the previous state
        is then kept.
        """
        with self._configure_lock:
            engine = self.engine
            if self._loads_a_model(config, engine):
                new, golden = self._checked_engine(config)
                self.engine = new
                self.config = config
                b = new.bundle
                log.info("model %s %s (%s, sha256 %s…) loaded from %s: label of interest %r, rule %s, "
                         "threshold %g, %d thread(s); %s", b.name, b.version, b.task, b.sha256[:12], b.path,
                         new.label_of_interest[0], new.rule, new.threshold, new.threads, golden)
                self._event("model_loaded", f"model {b.name} {b.version} ({b.task}) loaded from {b.path}; {golden}")
                return True
            self._apply_settings(engine, config)
            self.config = config
            log.info("configuration applied: label of interest %r, rule %s, threshold %g, %d thread(s), top %d",
                     engine.label_of_interest[0], engine.rule, engine.threshold, engine.threads, engine.top_k)
            return False

    def validate(self, config: InferenceConfig) -> None:
        """Check ``config`` as :meth:`configure` would apply it, changing nothing: its model loads and passes
        its golden check (when it is another model), its settings fit the model. Raises BundleError or
        ConfigError."""
        engine = self.engine
        if self._loads_a_model(config, engine):
            self._checked_engine(config)
        elif engine is not None:
            self._label(engine.bundle.labels, config, f"{engine.bundle.name} {engine.bundle.version}")
            try:
                Engine(engine.bundle, config.threads, threshold=config.threshold, rule=config.rule,
                       top_k=config.top_k)
            except ValueError as exc:
                raise ConfigError(f"configuration refused by model {engine.bundle.name} "
                                  f"{engine.bundle.version}: {exc}") from None

    @staticmethod
    def _loads_a_model(config: InferenceConfig, engine: Engine | None) -> bool:
        model_dir = resolve_model_dir(config.model_dir)
        return (engine is None or model_dir != engine.bundle.path
                or read_manifest(model_dir)["sha256"] != engine.bundle.sha256)

    def _checked_engine(self, config: InferenceConfig) -> tuple[Engine, str]:
        """The engine of ``config``'s model once the bundle loads and passes its golden check, and what that
        check found (one phrase for the log)."""
        bundle = load_bundle(resolve_model_dir(config.model_dir))
        report = check_golden(bundle)
        engine = self._new_engine(bundle, config)
        return engine, (report.summary() if report is not None else "no golden set: not checked")

    @staticmethod
    def _label(engine_labels: list[str], config: InferenceConfig, bundle_text: str) -> None:
        if config.label_of_interest is not None:
            try:
                label_index(engine_labels, config.label_of_interest)
            except ValueError as exc:
                raise ConfigError(f"configuration labelOfInterest={config.label_of_interest!r}: {exc} "
                                  f"(model {bundle_text})") from None

    def _new_engine(self, bundle: Any, config: InferenceConfig) -> Engine:
        self._label(bundle.labels, config, f"{bundle.name} {bundle.version}")
        try:
            engine = Engine(bundle, config.threads, threshold=config.threshold, rule=config.rule, top_k=config.top_k)
        except BundleError:
            raise
        except ValueError as exc:
            raise ConfigError(f"configuration refused by model {bundle.name} {bundle.version}: {exc}") from None
        engine.set_label_of_interest(config.label_of_interest)
        return engine

    def _apply_settings(self, engine: Engine, config: InferenceConfig) -> None:
        bundle = engine.bundle
        self._label(bundle.labels, config, f"{bundle.name} {bundle.version}")
        loi = bundle.label_of_interest
        engine.set_threads(config.threads)
        engine.set_threshold(loi["threshold"] if config.threshold is None else config.threshold)
        engine.set_rule(loi["rule"] if config.rule is None else config.rule)
        engine.set_label_of_interest(config.label_of_interest)
        engine.top_k = config.top_k

    # -- frames in

    def offer(self, message: dict[str, Any], topic: str | None = None) -> None:
        """A message from the frames topic (any thread). Keeps only the newest greenlens.frame/1."""
        try:
            messages.validate(message, expect=messages.FRAME)
        except messages.UnsupportedSchemaError as exc:
            self.schedule.count("rejected")
            self.rate_limited.warning("schema", f"frame message refused: {exc}")
            return
        except messages.MessageError as exc:
            self.schedule.count("rejected")
            self.rate_limited.warning("invalid", f"frame message refused: {exc}")
            return
        self.latest.offer(Pending(message))  # counted there as received

    # -- the worker

    def start(self) -> None:
        if not self._workers:
            self._workers = [threading.Thread(target=self._work, name=f"inference-worker-{i}", daemon=True)
                             for i in range(WORKERS)]
            for t in self._workers:
                t.start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every descriptor offered so far is processed or skipped."""
        return self.latest.wait_idle(timeout)

    def close(self) -> None:
        self.schedule.stop()
        self.latest.close()
        for t in self._workers:
            t.join(30)
        self._workers = []
        self.frames.close()

    # -- the workers

    def _work(self) -> None:
        schedule = self.schedule
        while not schedule.stopped:
            if schedule.take_turn():
                item = self.latest.take(timeout=1.0)
                if item is None:
                    schedule.give_up_turn()
                else:
                    try:
                        self._process(item)
                    finally:
                        self.latest.done()
            self._maybe_log_stats()

    def _maybe_log_stats(self) -> None:
        with self._report_lock:
            now = time.monotonic()
            if now - self._last_report < STATS_INTERVAL_S:
                return
            self._last_report = now
        self.log_stats()

    def _process(self, item: Pending) -> None:
        """One frame, by the schedule's turns: prepare it (holding the take turn), run the model (holding
        the interpreter), make the result and publish it (in ticket order)."""
        schedule = self.schedule
        ready = self._prepare(item)
        if ready is None:
            schedule.give_up_turn()
            return
        ticket = schedule.enter_interpreter(ready.ready_at - ready.taken)
        try:
            invoked = self._invoke(ready)
        finally:
            schedule.leave_interpreter(ticket)
        sent: bool | None = None
        failure: Exception | None = None
        try:
            message = None if invoked is None else self._result(ready, ticket.started, *invoked)
            counts = schedule.wait_to_publish(ticket)  # a frame's result never overtakes the one before it
            if message is not None:
                failure = self._publish(message, counts["overwritten"])
                sent = failure is None
        finally:
            failed_in_a_row = schedule.published(ticket, sent)
        if failure is not None:
            self._publish_failed(failure, failed_in_a_row)

    def _prepare(self, item: Pending) -> _Ready | None:
        """Make the descriptor's input tensor; None when that cannot be done (counted)."""
        engine = self.engine
        if engine is None:
            return None
        msg = item.message
        taken = time.monotonic()
        try:
            frame: FrameView | None = self.frames.view(msg)
        except FrameReadError as exc:
            self.schedule.count("unreadable")
            self.rate_limited.warning("unreadable", f"frame cannot be read: {exc}")
            return None
        read_done = time.monotonic()
        if frame is None:
            return self._overwritten(msg)
        try:
            prepared = engine.prepare(frame.image)
        except Exception as exc:  # one bad frame never stops the component
            self._frame_failed(msg, exc)
            return None
        if not frame.intact():  # the capture reused the slot while the tensor was made from it
            return self._overwritten(msg)
        return _Ready(item, prepared, taken, _ms(read_done - taken), time.monotonic())

    def _overwritten(self, msg: dict[str, Any]) -> None:
        self.schedule.count("overwritten")
        log.debug("frame seq %s: its ring slot was overwritten before it was read", msg.get("seq"))

    def _frame_failed(self, msg: dict[str, Any], exc: Exception) -> None:
        self.schedule.count("errors")
        self.rate_limited.warning("error", f"frame seq {msg.get('seq')}: inference failed: "
                                           f"{type(exc).__name__}: {exc}")

    def _invoke(self, ready: _Ready) -> tuple[Engine, Invoked] | None:
        engine = self.engine
        if engine is None:
            return None
        if ready.prepared.bundle is not engine.bundle:
            # Prepared for the model before a new one was loaded: the next frame is the new model's first.
            self.latest.skip(ready.item.source)
            return None
        try:
            return engine, engine.invoke(ready.prepared)
        except Exception as exc:  # one bad frame never stops the component
            self._frame_failed(ready.item.message, exc)
            return None

    def _result(self, ready: _Ready, started: float, engine: Engine, invoked: Invoked) -> dict[str, Any] | None:
        msg = ready.item.message
        try:
            message = build_result_message(engine.finish(invoked), engine.bundle.model_info(), seq=int(msg["seq"]),
                                           captured_at=float(msg["captured_at"]), source=str(msg["source"]))
        except Exception as exc:  # one bad frame never stops the component
            self._frame_failed(msg, exc)
            return None
        timings = message["timings_ms"]
        timings["queue"] = _ms(ready.taken - ready.item.received_mono)
        timings["read"] = ready.read_ms
        timings["wait"] = _ms(started - ready.ready_at)
        timings["delivery"] = _ms(ready.item.received_wall - float(msg["captured_at"]))
        message["capture_dropped"] = int(msg.get("dropped", 0))
        return message

    def infer(self, engine: Engine, image: np.ndarray, *, seq: int, captured_at: float,
              source: str) -> dict[str, Any]:
        """The result message of one frame (timings: preprocess, inference, postprocess)."""
        result = engine.infer(image)
        return build_result_message(result, engine.bundle.model_info(), seq=seq, captured_at=captured_at,
                                    source=source)

    def send(self, message: dict[str, Any]) -> None:
        """Publish a result outside the workers (one image at a time, ``--no-ipc``)."""
        failure = self._publish(message, self.schedule.counts()["overwritten"])
        failed_in_a_row = self.schedule.count_publish(failure is None)
        if failure is not None:
            self._publish_failed(failure, failed_in_a_row)

    def _publish(self, message: dict[str, Any], overwritten: int) -> Exception | None:
        """Publish a result, the counters and the capture-to-result latency filled in now; the error if it
        could not be published."""
        message["skipped"] = self.latest.skipped_of(str(message["source"]))  # this camera's
        message["overwritten"] = overwritten
        timings = message["timings_ms"]
        timings["total"] = round(sum(timings.get(k, 0.0) for k in
                                     ("queue", "read", "preprocess", "wait", "inference", "postprocess")), 3)
        timings["capture_to_result"] = _ms(time.time() - message["captured_at"])
        try:
            self.publish(self.config.results_topic, message)
        except Exception as exc:
            return exc
        return None

    def _publish_failed(self, exc: Exception, failed_in_a_row: int) -> None:
        log.warning("publish to %s failed (%d so far): %s", self.config.results_topic,
                    self.schedule.counts()["publish_errors"], exc)
        if failed_in_a_row >= FATAL_PUBLISH_ERRORS and self.on_fatal is not None:
            self.on_fatal(exc)

    def _event(self, kind: str, detail: str) -> None:
        try:
            msg = messages.event_message(component=COMPONENT, kind=kind, detail=detail,
                                         counters={k: float(v) for k, v in asdict(self.snapshot()).items()})
            self.publish(self.config.events_topic, msg)
        except Exception as exc:
            log.warning("event %s not published: %s", kind, exc)

    def report_error(self, kind: str, detail: str) -> None:
        """Publish an event operators can see (e.g. a model that was refused)."""
        self._event(kind, detail)

    def snapshot(self) -> InferenceCounters:
        """The counters now (the mailbox's and the schedule's, each read at one instant)."""
        received, skipped = self.latest.counts()
        return InferenceCounters(received=received, skipped=skipped, **self.schedule.counts())

    @property
    def counters(self) -> InferenceCounters:
        return self.snapshot()

    def log_stats(self) -> None:
        c = self.snapshot()
        log.info("received %d frames, %d results, skipped %d, overwritten %d, unreadable %d, rejected %d, "
                 "errors %d, publish errors %d", c.received, c.results, c.skipped, c.overwritten, c.unreadable,
                 c.rejected, c.errors, c.publish_errors)
        cameras = self.latest.by_camera()
        if len(cameras) > 1:
            log.info("per camera (received / inferred / skipped): %s", ", ".join(
                f"{s} {n['offered']}/{n['taken']}/{n['skipped']}" for s, n in cameras.items()))
