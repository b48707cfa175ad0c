"""The publisher's core: frame descriptors and results in; streams, metrics and IoT Core messages out.

It knows nothing of IPC or HTTP: ``on_frame``/``on_result``/``on_event``/``on_camera`` are called with parsed
messages (from IPC stream threads, or stdin in development), ``send`` publishes to IoT Core. Every camera
(the ``source`` of its frame descriptors and results) has its own streams, debouncer and counters. A worker
thread does the work, so a callback never waits: a camera's frame descriptor replaces its pending one (the
newest wins, the skipped ones are counted), results queue up to a bound. An "appeared" event carries the
claim check of a snapshot (the triggering frame drawn like the project stream) that a second thread uploads
to S3 from the snapshot store.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
from greenlens_common import messages

from .annotate import draw_result, placeholder, verdict_text
from .cameras import Camera, Cameras
from .cloud import COMPONENT, CloudOutbox, Send
from .config import PublisherConfig
from .exposition import Exposition
from .frames import Image, LatestImage, StreamFrames
from .ratelimit import ResultSampler, TokenBucket
from .s3upload import S3Target, SnapshotUploader
from .snapshots import Drop, SnapshotStore
from .spool import Spool

log = logging.getLogger("greenlens.publisher")

_INTEGER_FIELDS = ("seq", "dropped", "width", "height")
RESULTS_QUEUED = 256
DEFAULT_REGION = "us-east-1"


def _burst(config: PublisherConfig) -> float:
    """The bucket holds a second's worth of tokens: up to N results at once, N per second on average."""
    return max(1.0, config.results_per_second)


def s3_target(config: PublisherConfig) -> S3Target:
    region = config.snapshot_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") \
        or DEFAULT_REGION
    return S3Target(region, config.s3_endpoint_url)


class PublisherComponent:
    def __init__(self, config: PublisherConfig, *, thing_name: str, send: Send,
                 ring_dir: str | os.PathLike[str] | None = None, work_dir: str | os.PathLike[str] = ".") -> None:
        self.config = config
        self.thing_name = thing_name
        self.started_at = time.time()
        self.reader = StreamFrames(ring_dir)
        self.cameras = Cameras(config.debounce_results, config.jpeg_quality)
        self.exposition = Exposition()
        self.sampler = ResultSampler(TokenBucket(config.results_per_second, burst=_burst(config)))
        spool_dir = Path(work_dir) / config.spool_dir
        self.spool = Spool(spool_dir, max_bytes=config.spool_max_bytes, max_messages=config.spool_max_messages)
        self.outbox = CloudOutbox(send, self.spool, retry_max=config.retry_max_seconds,
                                  events_topic=self.events_topic)
        self.snapshots = SnapshotStore(Path(work_dir) / config.snapshot_dir, max_count=config.snapshot_max_count,
                                       max_bytes=config.snapshot_max_bytes, on_drop=self._snapshot_dropped)
        self.uploader = SnapshotUploader(self.snapshots, s3_target(config), retry_max=config.retry_max_seconds)
        self.forwarded_events = 0
        self.invalid_messages = 0
        self.ipc_problem: str | None = None
        """Why the IPC side is not serving (set by the entry point), None when it is."""
        self._cond = threading.Condition()
        self._results: deque[dict[str, Any]] = deque()
        self.results_overflowed = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._invalid_logged = 0
        self.exposition.attach(self)
        self.no_camera = {name: LatestImage(name, placeholder(640, 480, "waiting for a camera"), config.jpeg_quality)
                          for name in ("project", "device")}
        """What the first camera's stream URLs show before any camera: the viewers are woken when one comes."""
        self.cameras.listen(lambda camera: [image.touch() for image in self.no_camera.values()])
        if not config.snapshot_bucket:
            log.info("snapshotBucket is not set: events carry no snapshot")

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
            self.cameras.configure(new.debounce_results, new.jpeg_quality)
            self.sampler.bucket.set_rate(new.results_per_second, burst=_burst(new))
            if new.results_per_second <= 0:
                self.sampler.drop_pending()
            self._cond.notify_all()
        self.spool.set_limits(max_bytes=new.spool_max_bytes, max_messages=new.spool_max_messages)
        self.snapshots.set_limits(max_count=new.snapshot_max_count, max_bytes=new.snapshot_max_bytes)
        self.uploader.set_target(s3_target(new), new.retry_max_seconds)
        self.outbox.retry_max = new.retry_max_seconds
        self.outbox.events_topic = self.events_topic
        for key, name, folder in (("spool_dir", "spoolDir", self.spool.directory),
                                  ("snapshot_dir", "snapshotDir", self.snapshots.directory)):
            if getattr(new, key) != getattr(old, key):
                log.warning("configuration %s=%r takes effect at the next start (it stays %s)", name,
                            getattr(new, key), folder)
        if new.mqtt_qos != old.mqtt_qos:
            self.outbox.wake()
        log.info("configuration applied: results to %s at most %g/s, events to %s, debounce %d results, "
                 "snapshots to %s", self.results_topic, new.results_per_second, self.events_topic,
                 new.debounce_results, new.snapshot_bucket or "nowhere (snapshotBucket is not set)")

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
            self.invalid_messages += 1
            self._invalid_logged += 1
            if self._invalid_logged <= 5 or self._invalid_logged % 100 == 0:
                log.warning("ignored an invalid message (%d so far): %s", self.invalid_messages, exc)
            return False

    def on_frame(self, msg: Any, topic: str = "") -> None:
        if not self._valid(msg, messages.FRAME):
            return
        msg = self._whole_numbers(msg)
        camera = self.cameras.get(str(msg["source"]))
        with self._cond:
            if camera.pending_frame is not None:
                camera.metrics.frames_skipped += 1
            camera.pending_frame = msg
            camera.remember(msg)
            camera.last_frame_at = time.monotonic()
            camera.metrics.frame(msg, time.time())
            self._cond.notify_all()

    def on_result(self, msg: Any, topic: str = "") -> None:
        if not self._valid(msg, messages.RESULT):
            return
        msg = self._whole_numbers(msg)
        now = time.time()
        camera = self.cameras.get(str(msg["source"]))
        self.exposition.histograms.observe(camera.source, msg, now)
        with self._cond:
            camera.metrics.result(msg, now)
            if isinstance(msg.get("skipped"), int):  # Inference's running total for this camera
                camera.status.skipped = msg["skipped"]
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

    def on_camera(self, msg: Any, topic: str = "") -> None:
        """A camera's status from greenlens.Capture (greenlens.camera/1), shown on the page, /health and
        /metrics."""
        if not self._valid(msg, messages.CAMERA):
            return
        camera = self.cameras.set_status(msg)
        if camera is None:
            self.invalid_messages += 1
            log.warning("ignored a camera status without a camera id: %r", dict(msg))
        elif camera.status.state != "connected":
            log.info("camera %s: %s%s", camera.source, camera.status.state,
                     f" ({camera.status.reason})" if camera.status.reason else "")

    # -- the worker

    def start(self) -> PublisherComponent:
        self.outbox.start()
        self.uploader.start()
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
        self.uploader.close()
        self.outbox.close()
        self.reader.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._results and not any(
                        c.pending_frame is not None for c in self.cameras.all()):
                    due = self.sampler.next_due_in()
                    if due is not None and due <= 0:
                        break
                    self._cond.wait(due)
                if self._stop:
                    return
                frames: list[tuple[Camera, dict[str, Any]]] = []
                for camera in self.cameras.all():
                    if camera.pending_frame is not None:
                        frames.append((camera, camera.pending_frame))
                        camera.pending_frame = None
                results = list(self._results)
                self._results.clear()
            try:
                for camera, descriptor in frames:
                    self._take_frame(camera, descriptor)
                newest: dict[str, dict[str, Any]] = {}
                for result in results:
                    self._take_result(result)
                    newest[str(result["source"])] = result
                for source, result in newest.items():
                    self._annotate(self.cameras.get(source), result)
                self._send_due_result()
            except Exception:
                log.exception("publisher worker: unexpected error (continuing)")

    def _take_frame(self, camera: Camera, descriptor: dict[str, Any]) -> None:
        # The device stream's pixels are copied when a viewer asks for them, not for every frame; the frame
        # is checked now, so that a ring nobody can read is reported without a viewer.
        if not self.reader.readable(descriptor):
            camera.metrics.frames_unreadable += 1
            return
        camera.device.offer(lambda: self.reader.read(descriptor))

    def _take_result(self, result: dict[str, Any]) -> None:
        camera = self.cameras.get(str(result["source"]))
        verdict = result["verdict"]
        camera.last_result = result
        change = camera.debouncer.feed(bool(verdict["present"]))
        if change is not None:
            self._send_change(camera, change, result)
        with self._cond:
            rate = self.sampler.bucket.rate
            message = self.sampler.offer(result) if rate > 0 else None
        if message is not None:
            self.outbox.submit(self.results_topic, message, "result")
        camera.metrics.results_processed += 1

    def _send_due_result(self) -> None:
        with self._cond:
            message = self.sampler.due()
        if message is not None:
            self.outbox.submit(self.results_topic, message, "result")

    def _send_change(self, camera: Camera, change: str, result: Mapping[str, Any]) -> None:
        verdict = result["verdict"]
        label = str(verdict["label"])
        k = camera.debouncer.k
        detail = (f"{label} {change} on camera {camera.source}: {k} consecutive result(s) with {label} "
                  f"{'present' if change == 'appeared' else 'absent'} (seq {result['seq']}, "
                  f"score {float(verdict['score']):.2f})")
        event = messages.event_message(component=COMPONENT, kind=change, detail=detail,
                                       counters={"seq": int(result["seq"]), "score": float(verdict["score"]),
                                                 "consecutive": k})
        event.update({"label": label, "thing": self.thing_name, "source": camera.source,
                      "camera": camera.source, "captured_at": result.get("captured_at")})
        if change == "appeared":
            event["snapshot"] = self._snapshot(camera, result)
        camera.last_change = {"kind": change, "label": label, "seq": int(result["seq"]), "at": event["at"],
                              "snapshot": event.get("snapshot")}
        camera.events_sent += 1
        log.info("event: %s", detail)
        self.outbox.submit(self.events_topic, event, "event")

    def _snapshot(self, camera: Camera, result: Mapping[str, Any]) -> dict[str, Any] | None:
        """The triggering frame drawn like the project stream, stored for S3; the event's claim check."""
        config = self.config
        if not config.snapshot_bucket:
            return None
        seq = int(result["seq"])
        with self._cond:
            descriptor = camera.descriptors.get(seq)
        drawn = None if descriptor is None else self.reader.draw(descriptor, lambda px: draw_result(px, result))
        if drawn is None:
            log.warning("camera %s: no snapshot for the event of frame %d: the frame is no longer in its ring",
                        camera.source, seq)
            return None
        ok, buf = cv2.imencode(".jpg", drawn.image, [cv2.IMWRITE_JPEG_QUALITY, int(config.jpeg_quality)])
        if not ok:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(float(result["captured_at"])))
        key = f"{config.snapshot_prefix(self.thing_name, camera.id)}{stamp}-{seq:08d}.jpg"
        snap = self.snapshots.add(buf.tobytes(), bucket=config.snapshot_bucket, key=key, camera=camera.source)
        self.uploader.wake()
        return snap.claim()

    def _snapshot_dropped(self, drop: Drop) -> None:
        event = messages.event_message(
            component=COMPONENT, kind="snapshot_dropped", detail=drop.detail,
            counters={"dropped_total": sum(self.snapshots.dropped.values()), "size": drop.snapshot.size})
        event.update({"reason": drop.reason, "bucket": drop.snapshot.bucket, "key": drop.snapshot.key,
                      "camera": drop.snapshot.camera, "thing": self.thing_name})
        self.outbox.submit(self.events_topic, event, "event")

    def _annotate(self, camera: Camera, result: dict[str, Any]) -> None:
        seq = int(result["seq"])
        with self._cond:
            descriptor = camera.descriptors.get(seq)
            newest = next(reversed(camera.descriptors.values()), None)
        drawn = None if descriptor is None else self.reader.draw(descriptor, lambda px: draw_result(px, result))
        if drawn is None:  # its frame was overwritten (or never came): draw on the newest one
            if newest is None:
                return  # no frame at all yet
            note = f"result of frame {seq} drawn on frame {newest['seq']} (its own was overwritten)"
            drawn = self.reader.draw(newest, lambda px: draw_result(px, result, note=note))
            if drawn is None:
                return
            camera.metrics.results_on_newer_frame += 1
        camera.metrics.results_annotated += 1
        camera.project.update(Image(seq, float(result["captured_at"]), drawn.image))

    def stream_image(self, name: str, camera_id: str | None = None) -> LatestImage | None:
        """The ``project`` or ``device`` stream of camera ``camera_id`` (None: the first camera, or the
        waiting placeholder before any); None for a camera never seen."""
        if camera_id is None:
            camera = self.cameras.first()
            if camera is None:
                return self.no_camera[name]
        else:
            camera = self.cameras.by_id(camera_id)
            if camera is None:
                return None
        return camera.project if name == "project" else camera.device

    # -- health

    def camera_problem(self, camera: Camera) -> str | None:
        """Why ``camera`` is unhealthy (None: it is not)."""
        state = camera.status.state
        if state not in ("unknown", "connected", "running", "ok"):
            return f"status {state}" + (f": {camera.status.reason}" if camera.status.reason else "")
        if not camera.last_frame_at:
            return "no frame yet"
        age = time.monotonic() - camera.last_frame_at
        if age > self.config.frame_stale_seconds:
            return f"frames stale: the newest is {age:.1f} s old (frameStaleSeconds={self.config.frame_stale_seconds:g})"
        return None

    def health(self) -> dict[str, Any]:
        """Each part's health: ``ok`` and, when not, ``problem``; the whole is ok when every part is."""
        parts: dict[str, dict[str, Any]] = {}
        parts["worker"] = {"ok": self.healthy} | ({} if self.healthy else {"problem": "the worker thread stopped"})
        ipc_problem = self.ipc_problem
        parts["ipc"] = {"ok": ipc_problem is None} | ({"problem": ipc_problem} if ipc_problem else {})
        out = self.outbox.status()
        parts["iot_core"] = {"ok": bool(out["online"]), "spooled": out["spool"]["messages"]} | (
            {} if out["online"] else {"problem": f"IoT Core unreachable: {out['last_error'] or 'sending the spool'}"})
        store, s3 = self.snapshots.status(), self.uploader.status()
        s3_problem = s3["condition"] or store["error"]
        parts["s3"] = {"ok": s3_problem is None, "bucket": self.config.snapshot_bucket or None,
                       "waiting": store["snapshots"], "waiting_bytes": store["bytes"]} | (
            {"problem": s3_problem} if s3_problem else {})
        cameras = {}
        for camera in self.cameras.all():
            problem = self.camera_problem(camera)
            cameras[camera.source] = {"ok": problem is None, "state": camera.status.state} | (
                {"problem": problem} if problem else {})
        parts["cameras"] = {"ok": all(c["ok"] for c in cameras.values()), "cameras": cameras} | (
            {} if cameras else {"ok": False, "problem": "no camera has sent a frame yet"})
        unhealthy = sorted(name for name, part in parts.items() if not part["ok"])
        return {"status": "ok" if not unhealthy else "unhealthy", "unhealthy": unhealthy, "parts": parts}

    # -- status

    def camera_status(self, camera: Camera) -> dict[str, Any]:
        result = camera.last_result
        last: dict[str, Any] | None = None
        if result is not None:
            last = {"seq": result["seq"], "captured_at": result["captured_at"], "source": result["source"],
                    "verdict": result["verdict"], "text": verdict_text(result),
                    "top_k": result.get("top_k") or [], "detections": result.get("detections") or [],
                    "model": result.get("model"), "timings_ms": result.get("timings_ms")}
        with self._cond:  # the metrics' deques are appended to under this lock
            metrics = camera.metrics.status()
        metrics["results"]["invalid_messages"] = self.invalid_messages
        return {
            "source": camera.source, "id": camera.id,
            "streams": {"project": f"/cameras/{camera.id}/project.mjpg",
                        "device": f"/cameras/{camera.id}/device.mjpg"},
            "status": {"state": camera.status.state, "reason": camera.status.reason,
                       "problem": self.camera_problem(camera)},
            **metrics,
            "last_result": last,
            "debounced": {"present": camera.debouncer.state, "k": camera.debouncer.k, "run": camera.debouncer.run,
                          "last_change": camera.last_change},
        }

    def status(self) -> dict[str, Any]:
        cameras = [self.camera_status(c) for c in self.cameras.all()]
        first = cameras[0] if cameras else self._no_camera()
        with self._cond:
            sampler = {"rate_limit_per_s": self.sampler.bucket.rate, "offered": self.sampler.offered,
                       "sent": self.sampler.sent, "sampled_out": self.sampler.sampled_out}
        return {
            "component": COMPONENT,
            "thing_name": self.thing_name,
            "uptime_s": round(time.time() - self.started_at, 1),
            # the first camera's, as before there were several (the /stream/*.mjpg URLs show it too)
            **{k: first[k] for k in ("frames", "results", "dropped_frames", "last_result", "debounced")},
            "cameras": cameras,
            "results_queue_overflowed": self.results_overflowed,
            "iot_core": {"results_topic": self.results_topic, "events_topic": self.events_topic,
                         "results": sampler, "events_forwarded": self.forwarded_events,
                         **self.outbox.status()},
            "snapshots": {"bucket": self.config.snapshot_bucket or None, **self.snapshots.status(),
                          "s3": self.uploader.status()},
            "config": self.config.as_keys(),
        }

    def _no_camera(self) -> dict[str, Any]:
        from .metrics import PipelineMetrics

        metrics = PipelineMetrics().status()
        metrics["results"]["invalid_messages"] = self.invalid_messages
        return {**metrics, "last_result": None,
                "debounced": {"present": None, "k": self.config.debounce_results, "run": 0, "last_change": None}}
