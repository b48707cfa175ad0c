"""GET /metrics: the publisher's numbers in the Prometheus text format (prometheus-client).

Histograms (inference seconds from the results' ``timings_ms``, capture-to-result latency) are observed as
results arrive; counters and gauges are read from the component's state at each scrape (a custom collector),
so there is one source of truth for each number. Per camera series carry the label ``camera`` (its source).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .component import PublisherComponent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


class Histograms:
    """The histograms, observed per result."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.inference = Histogram("greenlens_inference_seconds",
                                   "Model inference time per result (from the result's timings_ms.inference)",
                                   ["camera"], buckets=_INFERENCE_BUCKETS, registry=registry)
        self.latency = Histogram("greenlens_capture_to_result_seconds",
                                 "Time from a frame's capture to its result reaching the publisher",
                                 ["camera"], buckets=_LATENCY_BUCKETS, registry=registry)

    def observe(self, camera: str, result: Mapping[str, Any], now: float) -> None:
        timings = result.get("timings_ms")
        if isinstance(timings, Mapping):
            inference = timings.get("inference")
            if isinstance(inference, int | float) and not isinstance(inference, bool) and inference >= 0:
                self.inference.labels(camera).observe(float(inference) / 1000.0)
        self.latency.labels(camera).observe(max(0.0, now - float(result["captured_at"])))


class StateCollector(Collector):
    """Counters and gauges read from the component at scrape time."""

    def __init__(self, component: PublisherComponent) -> None:
        self.component = component

    def collect(self) -> Iterator[Metric]:
        c = self.component
        mono = time.monotonic()

        def family(kind: type, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return kind(name, doc, labels=list(labels))

        frames = family(CounterMetricFamily, "greenlens_frames_received", "Frame descriptors received",
                        ("camera",))
        fps = family(GaugeMetricFamily, "greenlens_frames_per_second", "Frame descriptors per second (last 5 s)",
                     ("camera",))
        skipped = family(CounterMetricFamily, "greenlens_frames_skipped",
                         "Frames skipped: by the publisher (a newer frame came first) or by inference",
                         ("camera", "by"))
        dropped = family(CounterMetricFamily, "greenlens_frames_dropped",
                         "Frames dropped: by the capture (its source skipped them) or never inferred "
                         "(gaps in the results' sequence numbers)", ("camera", "by"))
        results = family(CounterMetricFamily, "greenlens_results_received", "Results received", ("camera",))
        result_fps = family(GaugeMetricFamily, "greenlens_results_per_second", "Results per second (last 5 s)",
                            ("camera",))
        events = family(CounterMetricFamily, "greenlens_events_sent",
                        "Debounced appeared/gone events sent to IoT Core", ("camera",))
        up = family(GaugeMetricFamily, "greenlens_camera_up",
                    "1 when the camera's frames are fresh and its status (if reported) is connected", ("camera",))
        frame_age = family(GaugeMetricFamily, "greenlens_camera_frame_age_seconds",
                           "Seconds since the camera's newest frame descriptor", ("camera",))
        for cam in c.cameras.all():
            m = cam.metrics
            frames.add_metric([cam.source], m.frames_received)
            fps.add_metric([cam.source], m.frame_rate.per_second(mono))
            skipped.add_metric([cam.source, "publisher"], m.frames_skipped)
            if cam.status.skipped is not None:
                skipped.add_metric([cam.source, "inference"], cam.status.skipped)
            dropped.add_metric([cam.source, "capture"], m.capture_dropped)
            dropped.add_metric([cam.source, "not_inferred"], m.results_not_inferred)
            results.add_metric([cam.source], m.results_received)
            result_fps.add_metric([cam.source], m.result_rate.per_second(mono))
            events.add_metric([cam.source], cam.events_sent)
            up.add_metric([cam.source], 1.0 if c.camera_problem(cam) is None else 0.0)
            if cam.last_frame_at:
                frame_age.add_metric([cam.source], mono - cam.last_frame_at)
        yield from (frames, fps, skipped, dropped, results, result_fps, events, up, frame_age)

        outbox = c.outbox
        sent = family(CounterMetricFamily, "greenlens_iot_core_messages_sent",
                      "Messages sent to IoT Core, by kind", ("kind",))
        for kind, n in sorted(outbox.sent_by_kind.items()):
            sent.add_metric([kind], n)
        yield sent
        online = GaugeMetricFamily("greenlens_iot_core_online", "1 while IoT Core takes messages")
        online.add_metric([], 1.0 if outbox.online else 0.0)
        yield online
        failures = CounterMetricFamily("greenlens_iot_core_send_failures", "PublishToIoTCore attempts that failed")
        failures.add_metric([], outbox.send_failures)
        yield failures
        spool = c.spool.status()
        yield _gauge("greenlens_spool_messages", "Messages waiting in the IoT Core spool", spool["messages"])
        yield _gauge("greenlens_spool_bytes", "Bytes of the IoT Core spool", spool["bytes"])
        lost = CounterMetricFamily("greenlens_spool_dropped", "Spooled messages dropped (overflow or a full "
                                   "disk), by kind and reason", labels=["kind", "reason"])
        for kind, n in sorted(spool["overflowed"].items()):
            lost.add_metric([kind, "overflow"], n)
        for kind, n in sorted(spool["write_failed"].items()):
            lost.add_metric([kind, "write_failed"], n)
        yield lost

        store = c.snapshots.status()
        yield _gauge("greenlens_snapshot_store_snapshots", "Snapshots waiting for S3 in the store",
                     store["snapshots"])
        yield _gauge("greenlens_snapshot_store_bytes", "Bytes of the snapshots waiting for S3", store["bytes"])
        dropped_snaps = CounterMetricFamily("greenlens_snapshots_dropped", "Snapshots dropped before S3 had "
                                            "them, by reason", labels=["reason"])
        for reason, n in sorted(store["dropped"].items()):
            dropped_snaps.add_metric([reason], n)
        yield dropped_snaps
        up_s3 = c.uploader.status()
        uploaded = CounterMetricFamily("greenlens_snapshots_uploaded", "Snapshots uploaded to S3")
        uploaded.add_metric([], up_s3["uploaded"])
        yield uploaded
        uploaded_bytes = CounterMetricFamily("greenlens_snapshots_uploaded_bytes", "Bytes uploaded to S3")
        uploaded_bytes.add_metric([], up_s3["uploaded_bytes"])
        yield uploaded_bytes
        s3_ok = GaugeMetricFamily("greenlens_s3_ok", "0 while snapshots cannot be uploaded, by condition "
                                  "(bucket_missing, access_denied, no_credentials, unreachable, error)",
                                  labels=["condition"])
        s3_ok.add_metric([up_s3["condition_kind"] or "none"], 0.0 if up_s3["condition"] else 1.0)
        yield s3_ok
        invalid = CounterMetricFamily("greenlens_invalid_messages", "Messages ignored because they break the "
                                      "message contract")
        invalid.add_metric([], c.invalid_messages)
        yield invalid


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g


class Exposition:
    """The registry of one publisher: its histograms and its state collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.histograms = Histograms(self.registry)

    def attach(self, component: PublisherComponent) -> None:
        self.registry.register(StateCollector(component))

    def text(self) -> bytes:
        return generate_latest(self.registry)
