"""/metrics (scraped and parsed by prometheus-client's own parser) and /health of the publisher as a process
with two cameras."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from greenlens_common import messages, topics
from prometheus_client.parser import text_string_to_metric_families

from tests.support.publisher import Feeder, NoIpcPublisher, wait_until

CAMERAS_TOPIC = "greenlens/cameras"


@pytest.fixture
def publisher(tmp_path: Path) -> Iterator[NoIpcPublisher]:
    p = NoIpcPublisher(tmp_path, "--debounce-results", "2")
    yield p
    if p.proc.poll() is None:
        p.stop()


def scrape(url: str) -> tuple[dict[str, Any], dict[tuple[str, tuple[tuple[str, str], ...]], float], str]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
        content_type = resp.headers["Content-Type"]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    return families, samples, content_type


def health(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_metrics_per_camera_in_the_prometheus_text_format(publisher: NoIpcPublisher) -> None:
    wait_until(publisher.status, 30, "the HTTP server")
    feeders = [Feeder(publisher.ring_dir, name="ring-a", source="cam-a"),
               Feeder(publisher.ring_dir, name="ring-b", source="cam-b")]
    try:
        for i in range(6):
            frame = feeders[0].frame()
            publisher.send(topics.FRAMES, frame)
            result = feeders[0].result(frame, True)
            result["timings_ms"] = {"inference": 30.0, "total": 35.0}
            publisher.send(topics.RESULTS, result)
            if i < 3:  # camera b: 3 frames, results for 2 (its frame 2 never inferred)
                frame = feeders[1].frame()
                publisher.send(topics.FRAMES, frame)
                if i != 1:
                    publisher.send(topics.RESULTS, feeders[1].result(frame, False))
        publisher.wait_status(lambda s: sum(c["results"]["processed"] for c in s["cameras"]) == 8, "8 results")
        families, samples, content_type = scrape(publisher.url)
    finally:
        for feeder in feeders:
            feeder.close()
    assert content_type.startswith("text/plain; version=0.0.4")
    assert families["greenlens_frames_received"].type == "counter"
    assert samples[("greenlens_frames_received_total", (("camera", "cam-a"),))] == 6
    assert samples[("greenlens_frames_received_total", (("camera", "cam-b"),))] == 3
    assert samples[("greenlens_results_received_total", (("camera", "cam-b"),))] == 2
    assert samples[("greenlens_frames_dropped_total", (("by", "not_inferred"), ("camera", "cam-b")))] == 1
    assert ("greenlens_frames_skipped_total", (("by", "publisher"), ("camera", "cam-a"))) in samples
    assert samples[("greenlens_frames_per_second", (("camera", "cam-a"),))] > 0
    assert families["greenlens_inference_seconds"].type == "histogram"
    assert samples[("greenlens_inference_seconds_count", (("camera", "cam-a"),))] == 6
    assert samples[("greenlens_inference_seconds_sum", (("camera", "cam-a"),))] == pytest.approx(0.18)
    assert samples[("greenlens_inference_seconds_bucket", (("camera", "cam-a"), ("le", "0.035")))] == 6
    assert samples[("greenlens_inference_seconds_bucket", (("camera", "cam-a"), ("le", "0.02")))] == 0
    assert samples[("greenlens_capture_to_result_seconds_count", (("camera", "cam-b"),))] == 2
    assert samples[("greenlens_events_sent_total", (("camera", "cam-a"),))] == 1, "hot dog appeared on a"
    assert samples[("greenlens_events_sent_total", (("camera", "cam-b"),))] == 0
    assert samples[("greenlens_iot_core_online", ())] == 1
    assert samples[("greenlens_iot_core_messages_sent_total", (("kind", "event"),))] == 1
    assert samples[("greenlens_spool_messages", ())] == 0 and samples[("greenlens_spool_bytes", ())] == 0
    assert samples[("greenlens_snapshot_store_snapshots", ())] == 0
    assert samples[("greenlens_snapshot_store_bytes", ())] == 0
    for name in families:
        assert name.startswith("greenlens_"), name


def test_health_names_the_unhealthy_part_with_a_load_balancer_status(publisher: NoIpcPublisher) -> None:
    wait_until(publisher.status, 30, "the HTTP server")
    code, body = health(publisher.url)
    assert code == 503 and body["unhealthy"] == ["cameras"]
    assert body["parts"]["cameras"]["problem"] == "no camera has sent a frame yet"
    feeders = [Feeder(publisher.ring_dir, name="ring-a", source="cam-a"),
               Feeder(publisher.ring_dir, name="ring-b", source="cam-b")]
    try:
        for feeder in feeders:
            publisher.send(topics.FRAMES, feeder.frame())
        publisher.wait_status(lambda s: len(s["cameras"]) == 2, "both cameras")
        code, body = wait_until(lambda: (lambda h: h if h[0] == 200 else None)(health(publisher.url)), 30,
                                "healthy with two cameras")
        assert body["status"] == "ok" and set(body["parts"]["cameras"]["cameras"]) == {"cam-a", "cam-b"}
        assert body["parts"]["iot_core"]["ok"] and body["parts"]["ipc"]["ok"] and body["parts"]["s3"]["ok"]

        publisher.send(CAMERAS_TOPIC, messages.camera_message(camera="cam-b", state="missing",
                                                              detail="/dev/video7: no such device", source="/dev/video7"))
        code, body = wait_until(lambda: (lambda h: h if h[0] == 503 else None)(health(publisher.url)), 30,
                                "cam-b unhealthy")
        assert body["unhealthy"] == ["cameras"]
        cam_b = body["parts"]["cameras"]["cameras"]["cam-b"]
        assert cam_b == {"ok": False, "state": "missing", "problem": "status missing: /dev/video7: no such device"}
        assert body["parts"]["cameras"]["cameras"]["cam-a"]["ok"] is True
        _, samples, _ = scrape(publisher.url)
        assert samples[("greenlens_camera_up", (("camera", "cam-b"),))] == 0
        assert samples[("greenlens_camera_up", (("camera", "cam-a"),))] == 1
        status = publisher.status()
        assert [c["status"]["state"] for c in status["cameras"]] == ["unknown", "missing"]
    finally:
        for feeder in feeders:
            feeder.close()


def test_frames_that_stop_make_the_camera_stale(tmp_path: Path) -> None:
    publisher = NoIpcPublisher(tmp_path, "--frame-stale-seconds", "1.5")
    feeder = Feeder(publisher.ring_dir, source="cam-a")
    try:
        wait_until(publisher.status, 30, "the HTTP server")
        publisher.send(topics.FRAMES, feeder.frame())
        wait_until(lambda: health(publisher.url)[0] == 200, 30, "healthy")
        code, body = wait_until(lambda: (lambda h: h if h[0] == 503 else None)(health(publisher.url)), 30,
                                "the camera to go stale")
        problem = body["parts"]["cameras"]["cameras"]["cam-a"]["problem"]
        assert problem.startswith("frames stale: the newest is") and "frameStaleSeconds=1.5" in problem
        publisher.send(topics.FRAMES, feeder.frame())
        wait_until(lambda: health(publisher.url)[0] == 200, 30, "healthy again with a new frame")
    finally:
        feeder.close()
        publisher.stop()
