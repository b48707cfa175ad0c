"""The publisher's core: frame descriptors and results in; streams, metrics and IoT Core messages out.

It knows nothing of IPC or HTTP: ``on_frame``/``on_result``/``on_event`` are called with parsed
messages (from IPC stream threads, or stdin in development), ``send`` publishes to IoT Core. A worker
thread does the work, so a callback never waits: a frame descriptor replaces the pending one (the newest
wins, the skipped ones are counted), results queue up to a bound.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from greenlens_common import messages

from .annotate import draw_result, placeholder, verdict_text
from .cloud import COMPONENT, CloudOutbox, Send
from .config import PublisherConfig
from .debounce import Debouncer
from .frames import Image, LatestImage, StreamFrames
from .metrics import PipelineMetrics
from .ratelimit import ResultSampler, TokenBucket
from .spool import Spool

log = logging.getLogger("greenlens.publisher")

_INTEGER_FIELDS = ("seq", "dropped", "width", "height")
DESCRIPTORS_KEPT = 256
RESULTS_QUEUED = 256


def _burst(config: PublisherConfig) -> float:
    """The bucket holds a second's worth of tokens: up to N results at once, N per second on average."""
    return max(1.0, config.results_per_second)


class PublisherComponent:
    def __init__(self, config: PublisherConfig, *, thing_name: str, send: Send,
                 ring_dir: str | os.PathLike[str] | None = None, work_dir: str | os.PathLike[str] = ".") -> None:
        self.config = config
        self.thing_name = thing_name
        self.started_at = time.time()
        self.reader = StreamFrames(ring_dir)
        self.metrics = PipelineMetrics()
        self.device = LatestImage("device", placeholder(640, 480, "waiting for frames"), config.jpeg_quality)
        self.project = LatestImage("project", placeholder(640, 480, "waiting for results"), config.jpeg_quality)
        self.debouncer = Debouncer(config.debounce_results)
        self.sampler = ResultSampler(TokenBucket(config.results_per_second, burst=_burst(config)))
        spool_dir = Path(work_dir) / config.spool_dir
        self.spool = Spool(spool_dir, max_bytes=config.spool_max_bytes, max_messages=config.spool_max_messages)
        self.outbox = CloudOutbox(send, self.spool, retry_max=config.retry_max_seconds,
                                  events_topic=self.events_topic)
        self.last_result: dict[str, Any] | None = None
        self.last_change: dict[str, Any] | None = None
        self.forwarded_events = 0
        self._cond = threading.Condition()
        self._pending_frame: dict[str, Any] | None = None
        self._descriptors: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._results: deque[dict[str, Any]] = deque()
        self.results_overflowed = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._invalid_logged = 0

    # -- topics

    @property
    def results_topic(self) -> str:
        return f"{self.config.topic_prefix}/{self.thing_name}/results"

    @property
    def events_topic(self) -> str:
        return f"{self.config.topic_prefix}/{self.thing_name}/events"

    # -- configuration

    def apply(self, new: PublisherConfig) -> None:
        """Switch to ``new`` without a restart (host/port are the HTTP server's business)."""
        old = self.config
        with self._cond:
            self.config = new
            self.debouncer.set_k(new.debounce_results)
            self.sampler.bucket.set_rate(new.results_per_second, burst=_burst(new))
            if new.results_per_second <= 0:
                self.sampler.drop_pending()
            self.device.quality = self.project.quality = new.jpeg_quality
            self._cond.notify_all()
        self.spool.set_limits(max_bytes=new.spool_max_bytes, max_messages=new.spool_max_messages)
        self.outbox.retry_max = new.retry_max_seconds
        self.outbox.events_topic = self.events_topic
        if new.spool_dir != old.spool_dir:
            log.warning("configuration spoolDir=%r takes effect at the next start (the spool stays in %s)",
                        new.spool_dir, self.spool.directory)
        if new.mqtt_qos != old.mqtt_qos:
            self.outbox.wake()
        log.info("configuration applied: results to %s at most %g/s, events to %s, debounce %d results",
                 self.results_topic, new.results_per_second, self.events_topic, new.debounce_results)

    # -- inputs (any thread)

    @staticmethod
    def _whole_numbers(msg: dict[str, Any]) -> dict[str, Any]:
        """Integer fields that crossed IPC as floats (1 -> 1.0) made integers again, so what goes on to
        IoT Core reads as it was sent."""
        out = dict(msg)
        for key in _INTEGER_FIELDS:
            value = out.get(key)
            if isinstance(value, float) and value.is_integer():
                out[key] = int(value)
        ring = out.get("ring")
        if isinstance(ring, dict):
            out["ring"] = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ring.items()}
        if isinstance(out.get("top_k"), list):
            out["top_k"] = [{**t, "index": int(t["index"])} if isinstance(t, dict) and isinstance(t.get("index"), float)
                            and t["index"].is_integer() else t for t in out["top_k"]]
        return out

    def _valid(self, msg: Any, expect: str) -> bool:
        try:
            messages.validate(msg, expect)
            return True
        except messages.MessageError as exc:
            self.metrics.invalid_messages += 1
            self._invalid_logged += 1
            if self._invalid_logged <= 5 or self._invalid_logged % 100 == 0:
                log.warning("ignored an invalid message (%d so far): %s", self.metrics.invalid_messages, exc)
            return False

    def on_frame(self, msg: Any, topic: str = "") -> None:
        if not self._valid(msg, messages.FRAME):
            return
        msg = self._whole_numbers(msg)
        with self._cond:
            if self._pending_frame is not None:
                self.metrics.frames_skipped += 1
            self._pending_frame = msg
            self._descriptors[int(msg["seq"])] = msg
            while len(self._descriptors) > DESCRIPTORS_KEPT:
                self._descriptors.popitem(last=False)
            self.metrics.frame(msg, time.time())
            self._cond.notify_all()

    def on_result(self, msg: Any, topic: str = "") -> None:
        if not self._valid(msg, messages.RESULT):
            return
        msg = self._whole_numbers(msg)
        now = time.time()
        with self._cond:
            self.metrics.result(msg, now)
            if len(self._results) >= RESULTS_QUEUED:
                self._results.popleft()
                self.results_overflowed += 1
            self._results.append(msg)
            self._cond.notify_all()

    def on_event(self, msg: Any, topic: str = "") -> None:
        """Events of the other components (a lost camera...) go to IoT Core as they are."""
        if not self._valid(msg, messages.EVENT) or msg.get("component") == COMPONENT:
            return
        self.forwarded_events += 1
        self.outbox.submit(self.events_topic, msg, "event")

    # -- the worker

    def start(self) -> PublisherComponent:
        self.outbox.start()
        self._thread = threading.Thread(target=self._run, name="publisher-worker", daemon=True)
        self._thread.start()
        return self

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
        self.outbox.close()
        self.reader.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._pending_frame is None and not self._results:
                    due = self.sampler.next_due_in()
                    if due is not None and due <= 0:
                        break
                    self._cond.wait(due)
                if self._stop:
                    return
                descriptor, self._pending_frame = self._pending_frame, None
                results = list(self._results)
                self._results.clear()
            try:
                if descriptor is not None:
                    self._take_frame(descriptor)
                for result in results:
                    self._take_result(result)
                if results:
                    self._annotate(results[-1])
                self._send_due_result()
            except Exception:
                log.exception("publisher worker: unexpected error (continuing)")

    def _take_frame(self, descriptor: dict[str, Any]) -> None:
        # The device stream's pixels are copied when a viewer asks for them, not for every frame; the frame
        # is checked now, so that a ring nobody can read is reported without a viewer.
        if not self.reader.readable(descriptor):
            self.metrics.frames_unreadable += 1
            return
        self.device.offer(lambda: self.reader.read(descriptor))

    def _take_result(self, result: dict[str, Any]) -> None:
        verdict = result["verdict"]
        self.last_result = result
        change = self.debouncer.feed(bool(verdict["present"]))
        if change is not None:
            self._send_change(change, result)
        with self._cond:
            rate = self.sampler.bucket.rate
            message = self.sampler.offer(result) if rate > 0 else None
        if message is not None:
            self.outbox.submit(self.results_topic, message, "result")
        self.metrics.results_processed += 1

    def _send_due_result(self) -> None:
        with self._cond:
            message = self.sampler.due()
        if message is not None:
            self.outbox.submit(self.results_topic, message, "result")

    def _send_change(self, change: str, result: Mapping[str, Any]) -> None:
        verdict = result["verdict"]
        label = str(verdict["label"])
        k = self.debouncer.k
        detail = (f"{label} {change}: {k} consecutive result(s) with {label} "
                  f"{'present' if change == 'appeared' else 'absent'} (seq {result['seq']}, "
                  f"score {float(verdict['score']):.2f})")
        event = messages.event_message(component=COMPONENT, kind=change, detail=detail,
                                       counters={"seq": int(result["seq"]), "score": float(verdict["score"]),
                                                 "consecutive": k})
        event.update({"label": label, "thing": self.thing_name, "source": result.get("source"),
                      "captured_at": result.get("captured_at")})
        self.last_change = {"kind": change, "label": label, "seq": int(result["seq"]), "at": event["at"]}
        log.info("event: %s", detail)
        self.outbox.submit(self.events_topic, event, "event")

    def _annotate(self, result: dict[str, Any]) -> None:
        seq = int(result["seq"])
        with self._cond:
            descriptor = self._descriptors.get(seq)
            newest = next(reversed(self._descriptors.values()), None)
        drawn = None if descriptor is None else self.reader.draw(descriptor, lambda px: draw_result(px, result))
        if drawn is None:  # its frame was overwritten (or never came): draw on the newest one
            if newest is None:
                return  # no frame at all yet
            note = f"result of frame {seq} drawn on frame {newest['seq']} (its own was overwritten)"
            drawn = self.reader.draw(newest, lambda px: draw_result(px, result, note=note))
            if drawn is None:
                return
            self.metrics.results_on_newer_frame += 1
        self.metrics.results_annotated += 1
        self.project.update(Image(seq, float(result["captured_at"]), drawn.image))

    # -- status

    def status(self) -> dict[str, Any]:
        result = self.last_result
        last: dict[str, Any] | None = None
        if result is not None:
            last = {"seq": result["seq"], "captured_at": result["captured_at"], "source": result["source"],
                    "verdict": result["verdict"], "text": verdict_text(result),
                    "top_k": result.get("top_k") or [], "detections": result.get("detections") or [],
                    "model": result.get("model"), "timings_ms": result.get("timings_ms")}
        with self._cond:  # the metrics' deques are appended to under this lock
            sampler = {"rate_limit_per_s": self.sampler.bucket.rate, "offered": self.sampler.offered,
                       "sent": self.sampler.sent, "sampled_out": self.sampler.sampled_out}
            metrics = self.metrics.status()
        state = self.debouncer.state
        return {
            "component": COMPONENT,
            "thing_name": self.thing_name,
            "uptime_s": round(time.time() - self.started_at, 1),
            **metrics,
            "results_queue_overflowed": self.results_overflowed,
            "last_result": last,
            "debounced": {"present": state, "k": self.debouncer.k, "run": self.debouncer.run,
                          "last_change": self.last_change},
            "iot_core": {"results_topic": self.results_topic, "events_topic": self.events_topic,
                         "results": sampler, "events_forwarded": self.forwarded_events,
                         **self.outbox.status()},
            "config": self.config.as_keys(),
        }
