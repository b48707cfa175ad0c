"""greenlens.Capture as a process: frames into the ring and descriptors out, with and without a nucleus."""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from greenlens_capture.component import CaptureComponent
from greenlens_capture.config import CaptureConfig, ConfigError
from greenlens_common import messages, topics
from greenlens_common.ipc import SOCKET_ENV, Ipc
from greenlens_common.ring import RingReader

REPO = Path(__file__).resolve().parent.parent
COMPONENT_PATH = os.pathsep.join(str(REPO / "components" / p) for p in ("capture", "common"))


def _capture(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SVCUID", SOCKET_ENV)}
    full_env.update(PYTHONPATH=COMPONENT_PATH, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "greenlens_capture", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from the capture process in time"
    return proc.stdout.readline()


# ------------------------------------------------------------------------------------------ --no-ipc


def test_no_ipc_run_puts_frames_in_the_ring_that_another_process_reads(tmp_path: Path) -> None:
    proc = _capture("--no-ipc", "--source", "synthetic", "--width", "160", "--height", "120", "--fps", "20",
                    "--ring-dir", str(tmp_path), "--ring-name", "cam-test")
    try:
        read = []
        with_ring: RingReader | None = None
        descriptors = 0
        while descriptors < 6:
            out = json.loads(_line(proc))
            if out["topic"] == topics.CAMERAS:
                assert out["message"]["state"] == "connected"
                continue
            assert out["topic"] == topics.FRAMES
            descriptors += 1
            msg = out["message"]
            assert messages.validate(msg) == messages.FRAME
            if with_ring is None:
                with_ring = RingReader(msg["ring"]["name"], directory=tmp_path)
            frame = with_ring.read(msg["ring"]["slot"], msg["ring"]["slot_seq"])
            if frame is not None:
                read.append((msg, frame))
        assert read, "descriptors point at frames in the ring"
        msg, frame = read[-1]
        assert frame.image.shape == (msg["height"], msg["width"], 3) == (120, 160, 3)
        assert frame.captured_at == msg["captured_at"]
        assert [m["seq"] for m, _ in read] == sorted(m["seq"] for m, _ in read)
        assert with_ring is not None
        with_ring.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err  # stopped by SIGTERM: 128 + 15
    assert not (tmp_path / "cam-test").exists(), "the capture removes its ring when it stops"


def test_inline_transport_sends_a_small_jpeg(tmp_path: Path) -> None:
    proc = _capture("--no-ipc", "--source", "synthetic", "--width", "1280", "--height", "720",
                    "--transport", "inline", "--max-frames", "2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    msgs = [json.loads(line)["message"] for line in out.splitlines()
            if json.loads(line)["topic"] == topics.FRAMES]
    assert len(msgs) == 2
    for msg in msgs:
        messages.validate(msg)
        assert "ring" not in msg and len(json.dumps(msg)) < 10_000
        image = cv2.imdecode(np.frombuffer(base64.b64decode(msg["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (msg["height"], msg["width"], 3) and max(image.shape) <= 320


def test_a_source_that_cannot_be_opened_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    proc = _capture("--no-ipc", "--source", "rtsp://127.0.0.1:9/front", "--ring-dir", str(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "cannot open stream rtsp://127.0.0.1:9/front: connection refused by 127.0.0.1:9" in lines[0]


def test_bad_configuration_names_the_key_and_value() -> None:
    proc = _capture("--no-ipc", "--fps", "fast")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "configuration fps='fast': expected a number >= 0" in err


# ------------------------------------------------------------------------------------------ config


def test_configuration_accepts_floats_for_integers_and_refuses_nonsense() -> None:
    cfg = CaptureConfig().updated({"width": 320.0, "height": "240", "fps": 15, "source": 0, "ringSlots": 3.0})
    assert (cfg.width, cfg.height, cfg.fps, cfg.source, cfg.ring_slots) == (320, 240, 15.0, "0", 3)
    for key, value, expected in [
        ("width", 320.5, "configuration width=320.5: expected an integer >= 16"),
        ("transport", "tcp", "configuration transport='tcp': expected 'ring' or 'inline'"),
        ("fps", 0, "configuration fps=0: expected a number > 0"),
        ("ringSlots", 1000, "configuration ringSlots=1000: expected an integer from 2 to 64"),
        ("ringName", "../x", "configuration ringName='../x': expected a plain file name"),
        ("source", "", "configuration source='': expected a non-empty string"),
    ]:
        with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
            CaptureConfig().updated({key: value})


# ------------------------------------------------------------------------------------------ component


class _Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.cond = threading.Condition()

    def __call__(self, topic: str, message: dict[str, Any]) -> None:
        with self.cond:
            self.messages.append((topic, message))
            self.cond.notify_all()

    def frames(self) -> list[dict[str, Any]]:
        with self.cond:
            return [m for t, m in self.messages if t == topics.FRAMES]


def test_a_source_faster_than_the_publish_rate_counts_what_it_skipped(tmp_path: Path) -> None:
    # A live source (a camera): frames it produced that were not published are skipped and counted.
    publish = _Collector()
    cfg = CaptureConfig(source="synthetic:live", width=64, height=48, fps=20, source_fps=200)
    component = CaptureComponent(cfg, publish, ring_dir=tmp_path)
    component.start()
    try:
        component.run(threading.Event(), max_frames=6)
        frames_read = component.source.stats().frames if component.source else 0
    finally:
        component.close()
    frames = publish.frames()
    assert [m["seq"] for m in frames] == [1, 2, 3, 4, 5, 6]
    dropped = [m["dropped"] for m in frames]
    assert dropped == sorted(dropped) and dropped[-1] > 0
    assert 6 + dropped[-1] <= frames_read


def test_a_new_configuration_is_applied_without_a_restart(tmp_path: Path) -> None:
    publish = _Collector()
    component = CaptureComponent(CaptureConfig(source="synthetic", width=64, height=48, fps=50), publish,
                                 ring_dir=tmp_path)
    component.start()
    try:
        component.run(threading.Event(), max_frames=2)
        old_reader = RingReader("greenlens-frames", directory=tmp_path)
        component.apply(component.config.updated({"width": 320, "height": 240, "cameraId": "door"}))
        assert old_reader.closed_by_owner, "readers of the smaller ring learn it was replaced"
        old_reader.close()
        component.run(threading.Event(), max_frames=4)
        last = publish.frames()[-1]
        with RingReader("greenlens-frames", directory=tmp_path) as reader:
            frame = reader.read(last["ring"]["slot"], last["ring"]["slot_seq"])
        assert frame is not None and frame.image.shape == (240, 320, 3)
        assert (last["width"], last["height"], last["source"], last["seq"]) == (320, 240, "door", 4)
    finally:
        component.close()


# ------------------------------------------------------------------------------------------ under ggsim


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Any]:
    from tests.ipc.conftest import Core

    c = Core(tmp_path)
    yield c
    c.close()


PUBSUB = {"aws.greengrass.ipc.pubsub": {"capture": {"policyDescription": "frames and events",
                                                    "operations": ["*"], "resources": ["*"]}}}


def _register(core: Any, name: str, config: dict[str, Any]) -> str:
    def register() -> str:
        core.host.config.merge(name, config)
        return core.host.tokens.issue(name)

    return core.call_soon(register)


def _ipc_env(core: Any, token: str) -> dict[str, str]:
    return {"SVCUID": token, "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(core.host.socket_path)}


def _wait_state(core: Any, component: str, state: str, timeout: float = 30) -> bool:
    with core.host.state_changed:
        return core.host.state_changed.wait_for(lambda: state in core.host.states.get(component, []), timeout)


def test_under_the_simulator_it_publishes_frames_and_follows_configuration_updates(core: Any,
                                                                                    tmp_path: Path) -> None:
    token = _register(core, "greenlens.Capture", {
        "source": "synthetic", "fps": 20, "width": 96, "height": 64, "cameraId": "bench",
        "accessControl": PUBSUB})
    watcher_token = _register(core, "test.Watcher", {"accessControl": PUBSUB})
    received = _Collector()
    watcher = Ipc.connect(timeout=10, socket_path=str(core.host.socket_path), token=watcher_token)
    watcher.subscribe_json(topics.FRAMES, lambda m, t: received(t, m))
    ring_dir = tmp_path / "shm"
    ring_dir.mkdir()
    proc = _capture("--ring-dir", str(ring_dir), env=_ipc_env(core, token))
    try:
        assert _wait_state(core, "greenlens.Capture", "RUNNING"), "it reports RUNNING"
        with received.cond:
            assert received.cond.wait_for(lambda: len(received.messages) >= 3, 30), "descriptors arrive"
        first = received.frames()[0]
        assert messages.validate(first) == messages.FRAME
        assert (first["width"], first["height"], first["source"]) == (96, 64, "bench")

        core.call_soon(lambda: core.host.config.merge("greenlens.Capture", {"width": 128.0, "height": 96.0}))
        with received.cond:
            assert received.cond.wait_for(
                lambda: any(m["width"] == 128 for _, m in received.messages), 30), "the new size is used"
        new = [m for m in received.frames() if m["width"] == 128][-1]
        assert new["height"] == 96 and new["seq"] > first["seq"], "same process, numbering goes on"
        assert proc.poll() is None
    finally:
        watcher.close()
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err  # stopped by SIGTERM: 128 + 15


def test_a_lost_and_restored_source_is_published_as_events(tmp_path: Path) -> None:
    photos = REPO.parent / "shared" / "data" / "hotdog-photos"
    folder = tmp_path / "slides"
    folder.mkdir()
    originals = sorted(photos.rglob("*.jpg"))[:2]
    for p in originals:
        (folder / p.name).write_bytes(p.read_bytes())
    publish = _Collector()
    cfg = CaptureConfig(source=str(folder), width=64, height=48, fps=50, stall_timeout=5, max_backoff=0.3)
    component = CaptureComponent(cfg, publish, ring_dir=tmp_path)
    component.start()
    stop = threading.Event()
    runner = threading.Thread(target=component.run, args=(stop,))
    runner.start()

    def events() -> list[dict[str, Any]]:
        return [m for t, m in publish.messages if t == topics.EVENTS]

    try:
        with publish.cond:
            assert publish.cond.wait_for(lambda: len(publish.messages) >= 2, 10)
        for f in folder.iterdir():
            f.unlink()
        with publish.cond:
            assert publish.cond.wait_for(lambda: any(e["kind"] == "source_lost" for e in events()), 15)
        for p in originals:
            (folder / p.name).write_bytes(p.read_bytes())
        with publish.cond:
            assert publish.cond.wait_for(lambda: any(e["kind"] == "source_restored" for e in events()), 15)
    finally:
        stop.set()
        runner.join(10)
        component.close()
    lost = next(e for e in events() if e["kind"] == "source_lost")
    assert messages.validate(lost) == messages.EVENT
    assert lost["component"] == "greenlens.Capture" and str(folder) in lost["detail"]
    assert lost["counters"]["outages"] == 1
    assert component.snapshot().outages >= 1 and component.snapshot().reconnects >= 1


# ------------------------------------------------------------------------------------------ flow control


MODEL = {"name": "fake", "version": "1.0.0", "sha256": "0" * 64, "task": "classification"}


def _result(seq: int, source: str) -> dict[str, Any]:
    return messages.result_message(seq=seq, captured_at=1.0, source=source, model=MODEL,
                                   verdict={"label": "hotdog", "present": False, "score": 0.1},
                                   timings_ms={"total": 1.0})


def test_flow_control_keeps_k_frames_in_flight_and_publishes_anyway_after_the_timeout(core: Any,
                                                                                      tmp_path: Path) -> None:
    # greenlens.Capture under ggsim with a file-like source (synthetic, read on demand) that could give 1000
    # frames a second; the test is the consumer: it answers result messages for the seqs it chooses.
    token = _register(core, "greenlens.Capture", {
        "source": "synthetic", "fps": 1000, "sourceFps": 1000, "width": 64, "height": 48, "cameraId": "flow",
        "maxFramesInFlight": 2, "inFlightTimeoutSeconds": 3, "accessControl": PUBSUB})
    consumer_token = _register(core, "test.Consumer", {"accessControl": PUBSUB})
    received = _Collector()
    consumer = Ipc.connect(timeout=10, socket_path=str(core.host.socket_path), token=consumer_token)
    consumer.subscribe_json(topics.FRAMES, lambda m, t: received(t, m))
    consumer.subscribe_json(topics.EVENTS, lambda m, t: received(t, m))
    ring_dir = tmp_path / "shm"
    ring_dir.mkdir()
    proc = _capture("--ring-dir", str(ring_dir), env=_ipc_env(core, token))

    def seqs() -> list[int]:
        return [m["seq"] for m in received.frames()]

    def wait_frames(n: int, timeout: float) -> bool:
        with received.cond:
            return received.cond.wait_for(lambda: len(received.frames()) >= n, timeout)

    try:
        assert _wait_state(core, "greenlens.Capture", "RUNNING"), "it reports RUNNING"
        assert wait_frames(2, 30)
        assert not wait_frames(3, 1.0), "frames 1 and 2 in flight: frame 3 waits for a result"
        assert seqs() == [1, 2]

        consumer.publish_json(topics.RESULTS, _result(1, "flow"))
        assert wait_frames(3, 10), "the result for frame 1 lets frame 3 go"
        assert not wait_frames(4, 1.0)
        consumer.publish_json(topics.RESULTS, _result(2, "other-camera"))  # another camera's result: ignored
        consumer.publish_json(topics.RESULTS, _result(99, "flow"))  # a frame not yet published: ignored
        assert not wait_frames(4, 0.5)
        consumer.publish_json(topics.RESULTS, _result(3, "flow"))  # frame 3 answered: 4 and 5 may go
        assert wait_frames(5, 10)
        assert seqs() == [1, 2, 3, 4, 5]
        assert not wait_frames(6, 1.0), "frames 4 and 5 in flight"

        # Nobody answers: after inFlightTimeoutSeconds (3 s) it publishes anyway, counts and reports it.
        with received.cond:
            assert received.cond.wait_for(
                lambda: any(m.get("kind") == "results_timeout" for t, m in received.messages if t == topics.EVENTS),
                10), "the timeout is reported as an event"
        assert wait_frames(50, 10), "without results, frames flow at fps: capture never stalls"
        event = next(m for t, m in received.messages if t == topics.EVENTS and m.get("kind") == "results_timeout")
        assert messages.validate(event) == messages.EVENT
        assert event["counters"]["in_flight_timeouts"] == 1

        # Results come back: flow control resumes.
        latest = seqs()[-1]
        consumer.publish_json(topics.RESULTS, _result(latest, "flow"))
        with received.cond:
            received.cond.wait_for(lambda: False, 0.5)  # let the frames already allowed arrive
        settled = len(received.frames())
        assert not wait_frames(settled + 1, 1.0), "no result for the frames after it: they wait again"
        assert proc.poll() is None
    finally:
        consumer.close()
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    assert "flow-control timeouts 1" in err or "flow-control timeouts 2" in err, err


def test_flow_control_never_blocks_a_live_source(tmp_path: Path) -> None:
    # A live source (a camera) is read on regardless: while the consumer holds frames, the newest frame is
    # published when the window opens, and the frames in between are counted as dropped.
    publish = _Collector()
    cfg = CaptureConfig(source="synthetic:live", width=64, height=48, fps=100, source_fps=200,
                        max_in_flight=2, in_flight_timeout=30, camera_id="cam")
    component = CaptureComponent(cfg, publish, ring_dir=tmp_path)
    component.flow.enabled = True  # as main.py does once it subscribed to greenlens/results
    component.start()
    stop = threading.Event()
    runner = threading.Thread(target=component.run, args=(stop,))
    runner.start()
    try:
        with publish.cond:
            assert publish.cond.wait_for(lambda: len(publish.frames()) >= 2, 10)
        assert component.source is not None
        read_before = component.source.stats().frames
        assert component.source.wait_for(lambda s: s.frames >= read_before + 20, 5), "the camera is read on"
        assert len(publish.frames()) == 2
        component.on_result(_result(1, "cam"))
        with publish.cond:
            assert publish.cond.wait_for(lambda: len(publish.frames()) >= 3, 10)
        third = publish.frames()[2]
        # frame 2 was at most frame read_before of the source, frame 3 at least read_before + 20
        assert third["seq"] == 3 and third["dropped"] >= 19, "the newest frame, the skipped ones counted"
    finally:
        stop.set()
        runner.join(10)
        component.close()
    assert component.snapshot().in_flight_timeouts == 0
