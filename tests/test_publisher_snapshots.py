"""Event snapshots: the bounded snapshot store on its own, and end to end to S3 — the control plane's
(moto's) S3 as the endpoint, credentials from a container credentials endpoint as the token exchange
service gives them, the publisher as its own process."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import cv2
import numpy as np
import pytest
from ggcloud.server import ControlPlane
from greenlens_common import topics
from greenlens_publisher.snapshots import Drop, SnapshotStore
from prometheus_client.parser import text_string_to_metric_families

from tests.support.credentials import CredentialsEndpoint
from tests.support.publisher import Feeder, NoIpcPublisher, http_json, wait_until

REGION = "us-east-1"

# ------------------------------------------------------------------------------------------ the store


def jpeg(n: int, size: int = 100) -> bytes:
    return bytes([n % 256]) * size


def test_the_store_keeps_order_across_a_restart_and_drops_the_oldest_counted_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    drops: list[Drop] = []
    store = SnapshotStore(tmp_path / "snaps", max_count=3, max_bytes=1 << 20, on_drop=drops.append)
    claims = [store.add(jpeg(i), bucket="b", key=f"k/{i}.jpg", camera="cam").claim() for i in range(3)]
    assert claims[0] == {"bucket": "b", "key": "k/0.jpg", "size": 100, "sha256": hashlib.sha256(jpeg(0)).hexdigest(),
                         "content_type": "image/jpeg"}
    with caplog.at_level(logging.ERROR, "greenlens.publisher.snapshots"):
        store.add(jpeg(3), bucket="b", key="k/3.jpg", camera="cam")
    assert [d.snapshot.key for d in drops] == ["k/0.jpg"] and drops[0].reason == "count_limit"
    assert "snapshotMaxCount=3" in caplog.text and "k/0.jpg" in caplog.text, "logged, naming the setting"
    assert store.status()["dropped"] == {"count_limit": 1}

    again = SnapshotStore(tmp_path / "snaps", max_count=3, max_bytes=1 << 20)
    assert len(again) == 3 and again.bytes == 300
    keys = []
    while (head := again.peek()) is not None:
        snap, data = head
        assert data == jpeg(int(snap.key[2]))
        keys.append(snap.key)
        again.pop(snap.number)
    assert keys == ["k/1.jpg", "k/2.jpg", "k/3.jpg"], "oldest first, across a restart"
    assert not list((tmp_path / "snaps").iterdir())


def test_the_byte_bound_drops_the_oldest_but_never_the_one_being_uploaded(tmp_path: Path) -> None:
    drops: list[Drop] = []
    store = SnapshotStore(tmp_path, max_count=100, max_bytes=2048, on_drop=drops.append)
    for i in range(2):
        store.add(jpeg(i, 1000), bucket="b", key=f"{i}", camera="c")
    head = store.peek()  # being uploaded
    assert head is not None
    store.add(jpeg(2, 1000), bucket="b", key="2", camera="c")
    assert [d.snapshot.key for d in drops] == ["1"] and drops[0].reason == "bytes_limit"
    assert "snapshotMaxBytes=2048" in drops[0].detail
    store.add(jpeg(3, 5000), bucket="b", key="3", camera="c")
    assert drops[-1].reason == "too_large" and "larger than the whole store" in drops[-1].detail
    store.set_limits(max_count=1, max_bytes=2048)
    assert [d.snapshot.key for d in drops][-1] == "2", "a smaller bound drops the oldest not in flight"
    assert store.status()["dropped"] == {"bytes_limit": 1, "too_large": 1, "count_limit": 1}


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with ControlPlane(region=REGION) as cp:
        yield cp


@pytest.fixture(scope="module")
def s3(plane: ControlPlane) -> Any:
    return boto3.client("s3", endpoint_url=plane.url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture
def credentials() -> Iterator[CredentialsEndpoint]:
    endpoint = CredentialsEndpoint()
    yield endpoint
    endpoint.close()


def publisher_env(credentials: CredentialsEndpoint, tmp_path: Path) -> dict[str, str]:
    """The token exchange service's credentials only: no keys in the environment, no credentials files."""
    return {**credentials.env, "AWS_REGION": REGION, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}


def hot_dogs_on(publisher: NoIpcPublisher, feeders: list[Feeder], n: int = 2) -> dict[str, list[dict[str, Any]]]:
    """``n`` frames with a hot dog on each camera; the frames sent, by camera."""
    sent: dict[str, list[dict[str, Any]]] = {f.source: [] for f in feeders}
    for _ in range(n):
        for feeder in feeders:
            frame = feeder.frame()
            publisher.send(topics.FRAMES, frame)
            publisher.send(topics.RESULTS, feeder.result(frame, True))
            sent[feeder.source].append(frame)
    return sent


def appeared(publisher: NoIpcPublisher) -> list[dict[str, Any]]:
    return [m["payload"] for m in publisher.cloud
            if m["iot_core"] == "greenlens/local/events" and m["payload"]["kind"] == "appeared"]


def scrape(publisher: NoIpcPublisher) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import urllib.request

    with urllib.request.urlopen(f"{publisher.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_an_appearing_hot_dog_gives_one_event_per_camera_whose_snapshot_is_in_s3(
        tmp_path: Path, plane: ControlPlane, s3: Any, credentials: CredentialsEndpoint) -> None:
    s3.create_bucket(Bucket="greenlens-snapshots")
    publisher = NoIpcPublisher(tmp_path, "--debounce-results", "2", "--snapshot-bucket", "greenlens-snapshots",
                               "--s3-endpoint-url", plane.url, env=publisher_env(credentials, tmp_path))
    feeders = [Feeder(publisher.ring_dir, name="ring-a", source="cam-a"),
               Feeder(publisher.ring_dir, name="ring-b", source="cam/b")]
    try:
        wait_until(publisher.status, 30, "the HTTP server")
        sent = hot_dogs_on(publisher, feeders)
        hot_dogs_on(publisher, feeders)  # still there: no second event
        status = publisher.wait_status(lambda s: s["snapshots"]["s3"]["uploaded"] == 2, "2 snapshots in S3")
        events = appeared(publisher)
        log = publisher.stop()
    finally:
        for feeder in feeders:
            feeder.close()
    assert sorted(e["camera"] for e in events) == ["cam-a", "cam/b"], "one event per camera"
    assert status["snapshots"]["snapshots"] == 0 and status["snapshots"]["s3"]["condition"] is None
    assert credentials.requests >= 1, "boto3 took the credentials from the container credentials endpoint"
    assert "ERROR" not in log, log
    for event in events:
        claim = event["snapshot"]
        camera_id = "cam-a" if event["camera"] == "cam-a" else "cam_b"
        assert claim["bucket"] == "greenlens-snapshots"
        assert claim["key"].startswith(f"greenlens/local/{camera_id}/") and claim["key"].endswith(".jpg")
        assert "jpeg" not in event and len(str(event)) < 2000, "the claim check, never the image, over MQTT"
        body = s3.get_object(Bucket=claim["bucket"], Key=claim["key"])["Body"].read()
        assert len(body) == claim["size"] and hashlib.sha256(body).hexdigest() == claim["sha256"]
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (240, 320, 3)
        trigger = next(f for f in sent[event["camera"]] if f["seq"] == event["counters"]["seq"])
        raw = next(fd for fd in feeders if fd.source == event["camera"]).images[trigger["seq"] - 1]
        assert event["counters"]["seq"] == 2, "the frame that completed the debounce"
        diff = np.abs(image.astype(int) - raw.astype(int)).max(axis=2)
        assert (diff[:40] > 60).mean() > 0.2, "the verdict banner is drawn on top, like the project stream"
        assert (diff[120:] > 60).mean() < 0.05, "over the triggering frame itself"


def test_a_bucket_that_does_not_exist_and_a_full_store_are_run_time_conditions_not_errors(
        tmp_path: Path, plane: ControlPlane, s3: Any, credentials: CredentialsEndpoint) -> None:
    publisher = NoIpcPublisher(tmp_path, "--debounce-results", "2", "--snapshot-bucket", "greenlens-later",
                               "--snapshot-max-count", "1", "--s3-endpoint-url", plane.url,
                               "--retry-max-seconds", "0.5", env=publisher_env(credentials, tmp_path))
    feeders = [Feeder(publisher.ring_dir, name="ring-a", source="cam-a"),
               Feeder(publisher.ring_dir, name="ring-b", source="cam-b")]
    try:
        wait_until(publisher.status, 30, "the HTTP server")
        hot_dogs_on(publisher, feeders[:1])
        wait_until(lambda: publisher.status()["snapshots"]["s3"]["failures"] >= 3, 30, "a few upload attempts")
        hot_dogs_on(publisher, feeders[1:])
        wait_until(lambda: any(m["payload"].get("kind") == "snapshot_dropped" for m in publisher.cloud), 30,
                   "the drop to be reported")
        metrics = scrape(publisher)
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(f"{publisher.url}/health", timeout=5)
        assert unhealthy.value.code == 503
        import json

        health = json.loads(unhealthy.value.read())
        events = appeared(publisher)

        s3.create_bucket(Bucket="greenlens-later")
        status = publisher.wait_status(lambda s: s["snapshots"]["s3"]["uploaded"] == 1, "the kept snapshot in S3")
        assert http_json(f"{publisher.url}/health")["parts"]["s3"]["ok"] is True
        log = publisher.stop()
    finally:
        for feeder in feeders:
            feeder.close()
    assert [e["camera"] for e in events] == ["cam-a", "cam-b"], "the events go out while S3 cannot take them"
    assert all(e["snapshot"]["bucket"] == "greenlens-later" for e in events)
    assert "s3" in health["unhealthy"]
    assert "the S3 bucket 'greenlens-later' does not exist" in health["parts"]["s3"]["problem"]
    assert metrics[("greenlens_s3_ok", (("condition", "bucket_missing"),))] == 0
    assert metrics[("greenlens_snapshot_store_snapshots", ())] == 1
    assert metrics[("greenlens_snapshot_store_bytes", ())] == events[1]["snapshot"]["size"]
    assert metrics[("greenlens_snapshots_dropped_total", (("reason", "count_limit"),))] == 1
    dropped = next(m["payload"] for m in publisher.cloud if m["payload"].get("kind") == "snapshot_dropped")
    assert dropped["key"] == events[0]["snapshot"]["key"] and "snapshotMaxCount=1" in dropped["detail"]
    missing = [line for line in log.splitlines() if "does not exist" in line]
    assert len(missing) == 1 and "ERROR" in missing[0] and "'greenlens-later'" in missing[0], \
        "logged once, however many attempts"
    assert "S3 takes snapshots again" in log
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="greenlens-later").get("Contents", [])]
    assert keys == [events[1]["snapshot"]["key"]], "the kept (newest) snapshot; the dropped one never"
    assert status["snapshots"]["dropped"] == {"count_limit": 1}
