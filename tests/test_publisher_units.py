"""greenlens.StreamPublisher's parts on their own: drawing, debouncing, rate limiting, the disk spool, the outbox."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from greenlens_common import messages
from greenlens_publisher.annotate import draw_result, verdict_text
from greenlens_publisher.cloud import MAX_MESSAGE_BYTES, CloudOutbox, encode
from greenlens_publisher.config import ConfigError, PublisherConfig
from greenlens_publisher.debounce import Debouncer
from greenlens_publisher.ratelimit import ResultSampler, TokenBucket
from greenlens_publisher.spool import Spool, SpooledMessage

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
MODEL = {"name": "m", "version": "1.0.0", "sha256": "0" * 64, "task": "classification"}


def result(seq: int, present: bool, score: float = 0.9, **extra: Any) -> dict[str, Any]:
    return messages.result_message(seq=seq, captured_at=1000.0 + seq, source="cam", model=MODEL,
                                   verdict={"label": "hotdog", "present": present, "score": score},
                                   timings_ms={"total": 5.0}, **extra)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------ drawing


def test_the_drawn_frame_differs_from_the_raw_one_where_the_label_and_box_are() -> None:
    raw = cv2.imread(str(sorted((PHOTOS / "hotdog").iterdir())[0]))
    raw = cv2.resize(raw, (640, 480))
    before = raw.copy()
    res = result(1, True, 0.93, top_k=[{"index": 1, "label": "hotdog", "score": 0.93}],
                 detections=[{"label": "hotdog", "score": 0.9, "box": [0.5, 0.5, 0.9, 0.9]}])
    drawn = draw_result(raw, res)
    assert np.array_equal(raw, before), "the raw frame (a ring slot or the device stream) is not touched"
    assert drawn.shape == raw.shape
    diff = np.any(drawn != raw, axis=2)
    assert diff[:40, :].mean() > 0.5, "the verdict banner covers the top of the frame"
    assert diff[int(0.5 * 479), 330:570].mean() > 0.9, "the box's top edge is drawn"
    assert not diff[300:340, 60:200].any(), "away from the label and the box the frame is unchanged"
    assert verdict_text(res) == "HOTDOG 0.93"
    assert verdict_text(result(2, False, 0.12)) == "NOT HOTDOG 0.12"


def test_a_gray_frame_is_drawn_in_colour_and_absent_differs_from_present() -> None:
    gray = np.full((120, 160), 128, np.uint8)
    present = draw_result(gray, result(1, True))
    absent = draw_result(gray, result(1, False))
    assert present.shape == (120, 160, 3)
    banner_p, banner_a = present[5, 150], absent[5, 150]
    assert banner_p[1] > banner_p[2] and banner_a[2] > banner_a[1], "green banner for present, red for absent"


# ------------------------------------------------------------------------------------------ debouncer


def test_appeared_after_k_consecutive_present_and_gone_after_k_absent() -> None:
    d = Debouncer(3)
    assert [d.feed(p) for p in (False, False, False)] == [None, None, None], "no 'gone' for what never came"
    assert [d.feed(p) for p in (True, True, False, True, True)] == [None] * 5, "an interrupted run restarts"
    assert d.feed(True) == "appeared"
    assert [d.feed(True) for _ in range(5)] == [None] * 5, "announced once"
    assert [d.feed(p) for p in (False, False, True, False, False)] == [None] * 5
    assert d.feed(False) == "gone"
    assert d.feed(False) is None and d.state is False


def test_debounce_k_changes_at_run_time_and_bad_k_is_refused() -> None:
    d = Debouncer(5)
    d.feed(True)
    d.set_k(2)
    assert d.feed(True) == "appeared", "the current run counts toward the new k"
    assert Debouncer(1).feed(True) == "appeared"
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="debounce k"):
            Debouncer(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ rate limiter


def test_token_bucket_gives_rate_tokens_per_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock)
    assert bucket.try_take() and not bucket.try_take(), "burst of one"
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.now += 0.25
    assert not bucket.try_take()
    clock.now += 0.25
    assert bucket.try_take()
    clock.now += 100
    assert bucket.try_take() and not bucket.try_take(), "an idle hour saves no more than the burst"
    bucket.set_rate(0)
    clock.now += 100
    assert not bucket.try_take() and bucket.wait_time() is None, "rate 0: nothing goes"


def test_sampler_sends_at_most_the_rate_newest_result_with_a_summary_of_the_rest() -> None:
    clock = FakeClock()
    sampler = ResultSampler(TokenBucket(1.0, clock=clock))
    sent = []
    for i in range(1, 21):  # 20 results over 2.5 s at 8 fps
        msg = sampler.offer(result(i, present=i % 3 == 0, score=i / 100))
        if msg:
            sent.append(msg)
        clock.now += 0.125
        msg = sampler.due()
        if msg:
            sent.append(msg)
    assert [m["seq"] for m in sent] == [1, 8, 16], "one per second, each the newest at its time"
    assert sent[2]["window"] == {"results": 8, "present": 3, "max_score": 0.16, "first_seq": 9, "last_seq": 16}
    assert sampler.next_due_in() == pytest.approx(0.5), "results 17..20 wait for the next token"
    clock.now += 0.5
    last = sampler.due()
    assert last is not None and last["seq"] == 20 and last["window"]["results"] == 4, "the newest is never lost"
    assert sum(m["window"]["results"] for m in [*sent, last]) == 20, "every result is accounted for"
    assert sampler.sampled_out == 16
    assert messages.validate(last) == messages.RESULT, "still a greenlens.result/1 (window is an extra field)"


def test_messages_are_kept_within_iot_cores_128_kb() -> None:
    big = result(1, True, top_k=[{"index": i, "label": "x" * 200, "score": 0.1} for i in range(1000)])
    payload = encode(big)
    assert len(payload) <= MAX_MESSAGE_BYTES
    doc = json.loads(payload)
    assert doc["truncated"] is True and len(doc["top_k"]) == 10
    assert encode(result(2, False)) == json.dumps(result(2, False), separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------ configuration


def test_configuration_accepts_floats_and_names_the_bad_key() -> None:
    cfg = PublisherConfig().updated({"port": 8081.0, "debounceResults": "4", "resultsPerSecond": 0,
                                     "topicPrefix": "/acme/lens/"})
    assert (cfg.port, cfg.debounce_results, cfg.results_per_second, cfg.topic_prefix) == (8081, 4, 0.0,
                                                                                           "acme/lens")
    for key, value, text in [("port", 70000, "port=70000: expected an integer from 0 to 65535"),
                             ("debounceResults", 0, "debounceResults=0"),
                             ("resultsPerSecond", "fast", "resultsPerSecond='fast': expected a number"),
                             ("topicPrefix", "a/#", "topicPrefix='a/#'"),
                             ("mqttQos", 2, "mqttQos=2"), ("jpegQuality", 1.5, "jpegQuality=1.5")]:
        with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
            PublisherConfig().updated({key: value})


def test_snapshot_settings_are_checked_and_the_key_prefix_is_filled_in() -> None:
    cfg = PublisherConfig().updated({"snapshotBucket": "acme.lens-01", "snapshotRegion": "eu-west-1",
                                     "s3EndpointUrl": "http://127.0.0.1:4566",
                                     "snapshotKeyPrefix": "snaps/{thingName}/{camera}/"})
    assert cfg.snapshot_prefix("thing-1", "front") == "snaps/thing-1/front/"
    assert PublisherConfig().updated({"snapshotBucket": ""}).snapshot_bucket == "", "empty: no snapshots"
    for key, value in [("snapshotBucket", "ab"), ("snapshotBucket", "Upper"), ("snapshotBucket", "a..b"),
                       ("snapshotBucket", "192.168.1.1"), ("snapshotBucket", "-abc"), ("snapshotBucket", 7),
                       ("snapshotKeyPrefix", "x/{cam}/"), ("snapshotKeyPrefix", "/abs/"),
                       ("snapshotKeyPrefix", "a b/"), ("snapshotRegion", "mars"), ("s3EndpointUrl", "ftp://x"),
                       ("snapshotMaxCount", 0), ("snapshotMaxBytes", -5), ("frameStaleSeconds", 0),
                       ("retryMaxSeconds", -1)]:
        with pytest.raises(ConfigError, match=f"configuration {key}="):
            PublisherConfig().updated({key: value})


# ------------------------------------------------------------------------------------------ spool


def msg(i: int, kind: str = "result", size: int = 0) -> SpooledMessage:
    return SpooledMessage(f"t/{kind}", json.dumps({"n": i, "pad": "x" * size}).encode(), kind)


def test_spool_keeps_order_across_a_restart_of_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, max_messages=100)
    for i in range(5):
        assert spool.append(msg(i))
    head = spool.peek()
    assert head is not None and json.loads(head.payload)["n"] == 0
    spool.pop()
    del spool
    again = Spool(tmp_path / "spool", max_bytes=1 << 20, max_messages=100)
    assert len(again) == 4
    again.append(msg(5, "event"))
    assert again.status()["bytes"] == again.bytes > 0
    out = []
    while (m := again.peek()) is not None:
        out.append((json.loads(m.payload)["n"], m.kind, m.topic))
        again.pop()
    assert out == [(1, "result", "t/result"), (2, "result", "t/result"), (3, "result", "t/result"),
                   (4, "result", "t/result"), (5, "event", "t/event")]
    assert len(again) == 0 and again.bytes == 0


def test_spool_is_bounded_and_counts_what_overflows(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, max_messages=3)
    for i in range(5):
        spool.append(msg(i, "event" if i == 0 else "result"))
    assert len(spool) == 3
    assert spool.overflowed == {"result": 2}, "the oldest results overflow first, counted"
    kept = []
    while (m := spool.peek()) is not None:
        kept.append((json.loads(m.payload)["n"], m.kind))
        spool.pop(m.number)
    assert kept == [(0, "event"), (3, "result"), (4, "result")], "the event is kept, the order too"
    events = Spool(tmp_path / "events", max_bytes=1 << 20, max_messages=2)
    for i in range(3):
        events.append(msg(i, "event"))
    assert events.overflowed == {"event": 1} and json.loads(events.peek().payload)["n"] == 1  # type: ignore[union-attr]
    one = len(json.dumps({"topic": "t/result", "kind": "result",
                          "payload": msg(9, size=1000).payload.decode()}).encode())
    small = Spool(tmp_path / "b", max_bytes=int(one * 2.5), max_messages=100)
    for i in range(4):
        small.append(msg(i, size=1000))
    assert len(small) == 2 and small.bytes <= small.max_bytes and small.overflowed["result"] == 2
    assert not small.append(msg(99, size=10_000)), "larger than the whole spool"
    assert small.overflowed["result"] == 3
    small.set_limits(max_bytes=one * 10, max_messages=1)
    assert len(small) == 1 and small.overflowed["result"] == 4, "shrinking the bound overflows the oldest"
    status = small.status()
    assert status["overflowed"] == {"result": 4} and status["messages"] == 1


def test_a_spool_folder_that_cannot_be_created_is_a_clear_error_and_counted_drops(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    with caplog.at_level(logging.ERROR, "greenlens.publisher.spool"):
        spool = Spool(blocker / "spool", max_bytes=1 << 20, max_messages=10)
        assert not spool.append(msg(1))
        assert not spool.append(msg(2, "event"))
    assert spool.failed == {"result": 1, "event": 1}
    assert str(blocker / "spool") in caplog.text and "Not a directory" in caplog.text
    assert spool.status()["error"] and "Not a directory" in spool.status()["error"]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs: writes past it fail with ENOSPC as on a full disk."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the full-disk test (run as root): {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_clear_log_line_and_a_counted_drop_not_a_crash(
        tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tiny_disk / "spool", max_bytes=10 << 20, max_messages=10_000)
    with caplog.at_level(logging.ERROR, "greenlens.publisher.spool"):
        events = [spool.append(msg(i, "event", size=4000)) for i in range(40)]
    assert events[0] and not all(events), "the first fit, later ones hit the full disk"
    assert spool.failed["event"] == events.count(False)
    assert "the disk is full" in caplog.text and str(tiny_disk / "spool") in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, "one clear line, not one per message"
    kept = len(spool)
    assert kept == events.count(True)
    assert not list(tiny_disk.glob("spool/*.tmp")), "no partial files left behind"
    assert not spool.append(msg(99, "result", size=4000)), "a result does not push out an event"
    assert spool.failed["result"] == 1 and len(spool) == kept
    spool.pop()
    assert spool.append(msg(100, size=100)), "writes work again once there is room"
    assert spool.status()["error"] is None


def test_on_a_full_disk_events_are_kept_ahead_of_older_results(tiny_disk: Path) -> None:
    spool = Spool(tiny_disk / "spool", max_bytes=10 << 20, max_messages=10_000)
    results = 0
    while spool.append(msg(results, "result", size=4000)) and spool.dropped_for_space["result"] == 0:
        results += 1  # until the disk is full (results then make room for newer results)
    assert results > 3
    for i in range(3):
        assert spool.append(msg(1000 + i, "event", size=4000)), "an event takes the room of the oldest result"
    assert spool.failed == {}, "no event dropped"
    kinds = []
    while (m := spool.peek()) is not None:
        kinds.append(m.kind)
        spool.pop(m.number)
    assert kinds.count("event") == 3 and kinds[-3:] == ["event"] * 3, "in order, the events after the results"
    status = spool.status()
    assert status["removed_disk_full"]["result"] == status["overflowed"]["result"] >= 3, "counted"


# ------------------------------------------------------------------------------------------ outbox


class FlakyCloud:
    """A send() that fails while ``down`` is set; records what it took."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        if self.down.is_set():
            raise ConnectionError("IoT Core unreachable")
        with self.cond:
            self.got.append((topic, json.loads(payload)))
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.got) >= n, timeout)


def test_outbox_spools_while_unreachable_and_sends_in_order_then_reports_the_overflow(tmp_path: Path) -> None:
    cloud = FlakyCloud()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, max_messages=5)
    outbox = CloudOutbox(cloud, spool, retry_initial=0.05, retry_max=0.2, events_topic="g/t/events").start()
    try:
        outbox.submit("g/t/results", {"n": 0}, "result")
        assert cloud.wait_for(1)
        cloud.down.set()
        for i in range(1, 9):
            outbox.submit("g/t/results", {"n": i}, "result")
        with outbox._cond:
            assert outbox._cond.wait_for(lambda: len(spool) == 5 and not outbox._queue, 10)
        assert not outbox.online and spool.overflowed["result"] == 3
        assert outbox.status()["spool"]["messages"] == 5
        cloud.down.clear()
        outbox.wake()
        assert cloud.wait_for(7), "the spool drains, then the overflow event goes"
    finally:
        outbox.close()
    ns = [m.get("n") for _, m in cloud.got[:6]]
    assert ns == [0, 4, 5, 6, 7, 8], "in order; 1..3 overflowed"
    topic, event = cloud.got[6]
    assert topic == "g/t/events" and event["kind"] == "spool_overflow"
    assert event["counters"]["lost_total"] == 3 and event["counters"]["overflowed_result"] == 3
    assert messages.validate(event) == messages.EVENT
    assert outbox.online and outbox.send_failures >= 1


def test_the_message_being_sent_never_overflows(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, max_messages=2)
    spool.append(msg(1))
    spool.append(msg(2))
    head = spool.peek()  # being sent now
    assert head is not None
    spool.append(msg(3))
    spool.pop(head.number)  # sent: it leaves the spool once, nothing else does
    rest = []
    while (m := spool.peek()) is not None:
        rest.append(json.loads(m.payload)["n"])
        spool.pop(m.number)
    assert rest == [3] and spool.overflowed == {"result": 1}, "2 overflowed instead of the one in flight"
