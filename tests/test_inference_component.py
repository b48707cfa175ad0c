"""greenlens.Inference as a running component: frames from the ring (or inline), results out, live configuration.

Under the simulator's real IPC server (tests/ipc/conftest.py) the component runs as its own process, as a
nucleus would start it; the test plays greenlens.Capture (a real ring, real frame descriptors over IPC) and
watches the results topic with the real awsiotsdk client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from greenlens_common import messages, topics
from greenlens_common.ipc import SOCKET_ENV, Ipc
from greenlens_common.ring import RingWriter
from greenlens_inference.bundle import BundleError
from greenlens_inference.component import InferenceComponent
from greenlens_inference.config import ConfigError, InferenceConfig

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
BUNDLES = REPO / "components" / "model" / "bundles"
HOTDOG_BUNDLE = BUNDLES / "efficientnet-lite0"
FACE_BUNDLE = BUNDLES / "face-detection-short-range"
GOLDEN_BUNDLE = BUNDLES / "efficientnet-lite0-golden"  # greenlens.Model 1.0.1
BROKEN_BUNDLE = BUNDLES / "efficientnet-lite0-broken"  # greenlens.Model 1.0.2, deliberately broken
FACE_PHOTO = Path(__file__).resolve().parent / "data" / "faces" / "grace_hopper.jpg"
COMPONENT_PATH = os.pathsep.join(str(REPO / "components" / p) for p in ("inference", "common"))

# The same photos as tests/test_inference_engine.py: clear cases for the EfficientNet bundle (model 1.0.0).
CLEAR_HOTDOGS = ["sf_1011661.jpg", "sf_1013916.jpg", "sf_1000288.jpg"]
CLEAR_NEGATIVES = ["sf_100135.jpg", "sf_100274.jpg"]
RUNNER_UP_HOTDOG = "sf_100148.jpg"  # a cheeseburger (p 0.38) where "hotdog" is the runner-up (p 0.33)

ACCESS = {"aws.greengrass.ipc.pubsub": {
    "greenlens.Inference:pubsub:1": {"operations": ["aws.greengrass#SubscribeToTopic"], "resources": [topics.FRAMES]},
    "greenlens.Inference:pubsub:2": {"operations": ["aws.greengrass#PublishToTopic"],
                                     "resources": [topics.RESULTS, topics.EVENTS]}}}
TEST_ACCESS = {"aws.greengrass.ipc.pubsub": {"test": {"operations": ["*"], "resources": ["*"]}}}


def photo(folder: str, name: str) -> np.ndarray:
    path = PHOTOS / folder / name
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"test photo {path} is missing: the tests need ../shared/data beside the repo"
    return image


def _inference(*args: str, env: dict[str, str] | None = None, stdin: int | None = None) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SVCUID", SOCKET_ENV)}
    full_env.update(PYTHONPATH=COMPONENT_PATH, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "greenlens_inference", *args], env=full_env, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop the component as the nucleus does (SIGTERM); its stderr. It must exit cleanly, with 143."""
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    return err


class Collector:
    """Messages received on a topic, with a condition to wait on."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def __call__(self, message: dict[str, Any], _topic: str = "") -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        with self.cond:
            assert self.cond.wait_for(lambda: any(match(m) for m in self.messages), timeout), \
                f"no matching message within {timeout} s; got {len(self.messages)}"
            return next(m for m in self.messages if match(m))


# ------------------------------------------------------------------------------------------ under ggsim


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Any]:
    from tests.ipc.conftest import Core

    c = Core(tmp_path)
    yield c
    c.close()


def _register(core: Any, name: str, config: dict[str, Any]) -> str:
    def register() -> str:
        core.host.config.merge(name, config)
        return core.host.tokens.issue(name)

    return core.call_soon(register)


def _ipc_env(core: Any, token: str) -> dict[str, str]:
    return {"SVCUID": token, SOCKET_ENV: str(core.host.socket_path)}


def _wait_state(core: Any, component: str, state: str, count: int = 1, timeout: float = 60) -> bool:
    with core.host.state_changed:
        return core.host.state_changed.wait_for(
            lambda: core.host.states.get(component, []).count(state) >= count, timeout)


class Camera:
    """Plays greenlens.Capture: frames into a real ring, descriptors over IPC; watches results and events."""

    def __init__(self, core: Any, ring_dir: Path, slots: int = 8) -> None:
        token = _register(core, "test.Camera", {"accessControl": TEST_ACCESS})
        self.ipc = Ipc.connect(timeout=10, socket_path=str(core.host.socket_path), token=token)
        self.results = Collector()
        self.events = Collector()
        self.ipc.subscribe_json(topics.RESULTS, self.results)
        self.ipc.subscribe_json(topics.EVENTS, self.events)
        self.ring = RingWriter("test-frames", width=640, height=512, slot_count=slots, directory=ring_dir)

    def send(self, image: np.ndarray, **extra: Any) -> int:
        """Write a frame to the ring and publish its descriptor; its seq."""
        captured_at = time.time()
        slot, seq = self.ring.write(image, captured_at=captured_at)
        msg = messages.frame_message(source="test-cam", seq=seq, captured_at=captured_at, width=image.shape[1],
                                     height=image.shape[0], dropped=0, ring=(self.ring.name, slot, seq))
        self.ipc.publish_json(topics.FRAMES, {**msg, **extra})
        return seq

    def show(self, image: np.ndarray) -> dict[str, Any]:
        """Send a frame and wait for its result."""
        seq = self.send(image)
        return self.results.wait_for(lambda m: m["seq"] == seq)

    def show_until(self, image: np.ndarray, done: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict:
        """Show the frame again and again until a result satisfies ``done`` (a configuration update applied)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.show(image)
            if done(result):
                return result
        raise AssertionError(f"no result satisfied the condition within {timeout} s; last: {result['verdict']}")

    def close(self) -> None:
        self.ipc.close()
        self.ring.close()


@pytest.fixture
def camera(core: Any, tmp_path: Path) -> Iterator[Camera]:
    cam = Camera(core, tmp_path, slots=48)
    yield cam
    cam.close()


def _start(core: Any, tmp_path: Path, config: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    token = _register(core, "greenlens.Inference", {**config, "accessControl": ACCESS})
    return _inference("--ring-dir", str(tmp_path), *args, env=_ipc_env(core, token))


def test_hot_dogs_from_the_ring_are_hot_dogs_and_configuration_updates_change_the_verdict_live(
        core: Any, tmp_path: Path, camera: Camera) -> None:
    proc = _start(core, tmp_path, {"threads": 2}, "--model-dir", str(HOTDOG_BUNDLE))
    try:
        assert _wait_state(core, "greenlens.Inference", "RUNNING"), "it reports RUNNING"
        for name in CLEAR_HOTDOGS:
            result = camera.show(photo("hotdog", name))
            assert messages.validate(result) == messages.RESULT
            assert result["verdict"]["label"] == "hotdog" and result["verdict"]["present"] is True, name
            assert result["top_k"][0]["index"] == 934
        for name in CLEAR_NEGATIVES:
            result = camera.show(photo("not_hotdog", name))
            assert result["verdict"]["present"] is False, name
        assert result["model"] == {"name": "efficientnet-lite0", "version": "1.0.0", "task": "classification",
                                   "sha256": json.loads((HOTDOG_BUNDLE / "model.json").read_text())["sha256"]}
        assert result["source"] == "test-cam" and result["skipped"] == 0 and result["overwritten"] == 0
        timings = result["timings_ms"]
        for stage in ("queue", "read", "preprocess", "wait", "inference", "postprocess", "total", "capture_to_result"):
            assert stage in timings and timings[stage] >= 0, stage
        assert timings["inference"] > 0 and timings["capture_to_result"] >= timings["total"]

        # A cheeseburger where "hotdog" is the runner-up: not a hot dog under top1 (model.json's rule) ...
        burger = photo("not_hotdog", RUNNER_UP_HOTDOG)
        assert camera.show(burger)["verdict"]["present"] is False
        # ... a hot dog under "threshold" 0.2 (p 0.33), set while the component runs (numbers come back floats).
        core.call_soon(lambda: core.host.config.merge("greenlens.Inference", {"rule": "threshold", "threshold": 0.2}))
        camera.show_until(burger, lambda r: r["verdict"]["present"] is True)
        core.call_soon(lambda: core.host.config.merge("greenlens.Inference", {"threshold": 0.9}))
        camera.show_until(burger, lambda r: r["verdict"]["present"] is False)
        # The label of interest and top-k follow the configuration too.
        core.call_soon(lambda: core.host.config.merge("greenlens.Inference", {
            "labelOfInterest": "cheeseburger", "rule": "top1", "topK": 2}))
        result = camera.show_until(burger, lambda r: r["verdict"]["label"] == "cheeseburger" and len(r["top_k"]) == 2)
        assert result["verdict"]["present"] is True
        # A value that cannot work is refused with a clear line and an event; the previous configuration stays
        # and the component stays RUNNING (an ERRORED one would be restarted into BROKEN).
        core.call_soon(lambda: core.host.config.merge("greenlens.Inference", {"labelOfInterest": "sushi"}))
        camera.events.wait_for(lambda m: m["kind"] == "configuration_refused")
        assert camera.show(burger)["verdict"]["label"] == "cheeseburger"
        assert "ERRORED" not in core.host.states["greenlens.Inference"]
        assert proc.poll() is None
    finally:
        err = _stop(proc)
    assert "bad configuration: configuration labelOfInterest='sushi': label of interest 'sushi' is not a " \
           "class of this model" in err


def test_a_burst_of_frames_while_inference_is_busy_gives_results_for_the_newest_and_counts_the_skipped(
        core: Any, tmp_path: Path, camera: Camera) -> None:
    proc = _start(core, tmp_path, {"modelDir": str(HOTDOG_BUNDLE)})
    frames = [photo("hotdog", n) for n in CLEAR_HOTDOGS] + [photo("not_hotdog", n) for n in CLEAR_NEGATIVES]
    try:
        assert _wait_state(core, "greenlens.Inference", "RUNNING")
        first = camera.show(frames[0])
        assert first["skipped"] == 0
        burst = [camera.send(frames[i % len(frames)]) for i in range(40)]
        newest = camera.results.wait_for(lambda m: m["seq"] == burst[-1])
    finally:
        _stop(proc)
    results = [m for m in camera.results.messages if m["seq"] in burst]
    seqs = [m["seq"] for m in results]
    assert seqs == sorted(seqs) and seqs[-1] == burst[-1], "results come newest-first, never from a backlog"
    assert newest["skipped"] > 0, "inference was busy: frames were skipped"
    assert len(results) + newest["skipped"] + newest["overwritten"] == len(burst), \
        "every frame of the burst was either inferred or counted as skipped"
    assert len(results) < len(burst) // 2
    expected = [(s - 2) % len(frames) < len(CLEAR_HOTDOGS) for s in seqs]
    assert [m["verdict"]["present"] for m in results] == expected, "each result is of its own frame"


def test_a_corrupt_model_at_start_fails_startup_with_one_line_and_errored(
        core: Any, tmp_path: Path, camera: Camera) -> None:
    corrupt = tmp_path / "corrupt-bundle"
    shutil.copytree(HOTDOG_BUNDLE, corrupt)
    model = corrupt / "model.tflite"
    data = bytearray(model.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    model.write_bytes(bytes(data))
    proc = _start(core, tmp_path, {"modelDir": str(corrupt)})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err  # Startup fails: the deployment fails and ROLLBACK restores the model
    assert _wait_state(core, "greenlens.Inference", "ERRORED"), "it reports ERRORED"
    assert "RUNNING" not in core.host.states["greenlens.Inference"]
    event = camera.events.wait_for(lambda m: m["kind"] == "model_refused")
    assert event["component"] == "greenlens.Inference" and "sha256 mismatch" in event["detail"]
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    assert f"greenlens.Inference: model refused: {model}: sha256 mismatch" in errors[0]
    assert "expects 69c35e57e46be6e0b181ac90219c7c88ee51cbcde1d04cfbd587b7d0e0d8147d" in errors[0]


def test_the_deliberately_broken_bundle_fails_its_golden_check_at_start(core: Any, tmp_path: Path) -> None:
    proc = _start(core, tmp_path, {"modelDir": str(BROKEN_BUNDLE)})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "RUNNING" not in core.host.states.get("greenlens.Inference", [])
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    assert ("greenlens.Inference: model refused: bundle efficientnet-lite0 1.0.2 "
            f"({BROKEN_BUNDLE}): golden accuracy: expected at least 1, got 0.00 (0 of 8") in errors[0]


def test_a_bad_bundle_at_run_time_keeps_the_previous_model_running_and_says_so(
        core: Any, tmp_path: Path, camera: Camera) -> None:
    proc = _start(core, tmp_path, {"modelDir": str(GOLDEN_BUNDLE)})
    hotdog = photo("hotdog", CLEAR_HOTDOGS[0])
    try:
        assert _wait_state(core, "greenlens.Inference", "RUNNING")
        loaded = camera.events.wait_for(lambda m: m["kind"] == "model_loaded")
        assert "golden check passed: 8 of 8" in loaded["detail"]
        assert camera.show(hotdog)["model"]["version"] == "1.0.1"
        # A configuration update points at the broken bundle: refused, 1.0.1 keeps serving, still RUNNING.
        core.call_soon(lambda: core.host.config.merge("greenlens.Inference", {"modelDir": str(BROKEN_BUNDLE)}))
        refused = camera.events.wait_for(lambda m: m["kind"] == "model_refused")
        assert "golden accuracy" in refused["detail"] and "still running model efficientnet-lite0 1.0.1" \
            in refused["detail"]
        result = camera.show(hotdog)
        assert result["model"]["version"] == "1.0.1" and result["verdict"]["present"] is True
        # Files that disappear under a configured model: the model in memory keeps serving.
        gone = tmp_path / "gone"
        core.call_soon(lambda: core.host.config.merge("greenlens.Inference", {"modelDir": str(gone)}))
        camera.events.wait_for(lambda m: m["kind"] == "model_refused" and str(gone) in m["detail"])
        assert camera.show(hotdog)["model"]["version"] == "1.0.1"
        assert "ERRORED" not in core.host.states["greenlens.Inference"]
        assert proc.poll() is None
    finally:
        _stop(proc)


def test_proposed_configurations_are_rejected_before_they_apply_and_good_ones_accepted(
        core: Any, tmp_path: Path, camera: Camera) -> None:
    proc = _start(core, tmp_path, {"modelDir": str(GOLDEN_BUNDLE)})
    try:
        assert _wait_state(core, "greenlens.Inference", "RUNNING")
        hub = core.host.validation_hub

        def validate(config: dict[str, Any], deployment: str) -> tuple[str, str]:
            return core.run(hub.validate("greenlens.Inference", {**config, "accessControl": ACCESS}, deployment, 30),
                            timeout=40)

        status, message = validate({"modelDir": str(tmp_path / "missing")}, "d-missing")
        assert status == "REJECTED" and f"{tmp_path / 'missing'}: not a model bundle folder" in message
        status, message = validate({"modelDir": str(BROKEN_BUNDLE)}, "d-broken")
        assert status == "REJECTED" and "1.0.2" in message and "golden accuracy" in message
        status, message = validate({"modelDir": str(GOLDEN_BUNDLE), "threshold": 7}, "d-threshold")
        assert status == "REJECTED" and "threshold" in message
        status, message = validate({"modelDir": str(GOLDEN_BUNDLE), "labelOfInterest": "sushi"}, "d-label")
        assert status == "REJECTED" and "'sushi'" in message
        assert validate({"modelDir": str(FACE_BUNDLE), "labelOfInterest": "face"}, "d-face")[0] == "ACCEPTED"
        # Nothing was applied: still 1.0.1, still RUNNING.
        assert camera.show(photo("hotdog", CLEAR_HOTDOGS[0]))["model"]["version"] == "1.0.1"
        assert "ERRORED" not in core.host.states["greenlens.Inference"]
    finally:
        _stop(proc)


def test_a_new_model_dir_switches_to_the_face_detector_which_gives_detections_and_other_majors_are_refused(
        core: Any, tmp_path: Path, camera: Camera) -> None:
    proc = _start(core, tmp_path, {"modelDir": str(HOTDOG_BUNDLE)})
    face = cv2.imread(str(FACE_PHOTO), cv2.IMREAD_COLOR)
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(face, (96, 112)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    try:
        assert _wait_state(core, "greenlens.Inference", "RUNNING")
        assert camera.show(face)["model"]["name"] == "efficientnet-lite0"
        # greenlens.Model 2.0.0 deployed: model.json says detection, "face", letterbox, SSD anchors.
        core.call_soon(lambda: core.host.config.merge("greenlens.Inference", {"modelDir": str(FACE_BUNDLE)}))
        from_ring = camera.show_until(face, lambda r: r["model"]["name"] == "face-detection-short-range")
        assert camera.events.wait_for(lambda m: "face-detection-short-range 2.0.0" in m["detail"])["kind"] \
            == "model_loaded"
        inline = messages.frame_message(source="door", seq=900, captured_at=time.time(), width=96, height=112,
                                        dropped=3, jpeg=jpeg.tobytes())
        future = {**inline, "schema": "greenlens.frame/2", "seq": 901}
        for _ in range(3):
            camera.ipc.publish_json(topics.FRAMES, future)
        # A later minor of the same major, with fields this version does not know, is read.
        camera.ipc.publish_json(topics.FRAMES, {**inline, "schema": "greenlens.frame/1.4", "lens": {"mm": 4}})
        from_inline = camera.results.wait_for(lambda m: m["seq"] == 900)
    finally:
        err = _stop(proc)
    for result in (from_ring, from_inline):
        assert messages.validate(result) == messages.RESULT
        assert result["model"]["name"] == "face-detection-short-range" and result["model"]["version"] == "2.0.0"
        assert result["model"]["task"] == "detection"
        assert result["verdict"]["label"] == "face" and result["verdict"]["present"] is True
        detection = result["detections"][0]
        assert detection["label"] == "face" and detection["score"] > 0.5
        x0, y0, x1, y1 = detection["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert from_inline["source"] == "door" and from_inline["capture_dropped"] == 3
    assert not any(m["seq"] == 901 for m in camera.results.messages)
    refused = [line for line in err.splitlines() if "greenlens.frame/2" in line]
    assert len(refused) == 1, "a rate-limited line, not one per message"
    assert "frame message refused: schema 'greenlens.frame/2' has major version 2; this component reads " \
           "greenlens.frame/1 only" in refused[0]


# ------------------------------------------------------------------------------------------ --no-ipc


def test_no_ipc_runs_a_folder_of_images_and_names_unreadable_ones(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(PHOTOS / "hotdog" / CLEAR_HOTDOGS[0], folder / "a_hotdog.jpg")
    shutil.copy(PHOTOS / "not_hotdog" / CLEAR_NEGATIVES[0], folder / "b_other.jpg")
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = _inference("--no-ipc", "--model-dir", str(HOTDOG_BUNDLE), str(folder))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert f"{folder / 'c_broken.jpg'}: cannot be read as an image" in err
    lines = [json.loads(line) for line in out.splitlines()]
    results = [line["message"] for line in lines if line["topic"] == topics.RESULTS]
    assert [(r["source"], r["verdict"]["present"]) for r in results] == [
        (f"file:{folder / 'a_hotdog.jpg'}", True), (f"file:{folder / 'b_other.jpg'}", False)]
    for r in results:
        messages.validate(r)


def test_no_ipc_reads_capture_lines_on_stdin_and_ends_with_the_newest_frame(tmp_path: Path) -> None:
    ring = RingWriter("pipe-frames", width=640, height=512, slot_count=2, directory=tmp_path)
    lines = []
    try:
        for image in (photo("hotdog", CLEAR_HOTDOGS[1]), photo("hotdog", CLEAR_HOTDOGS[0]),
                      photo("not_hotdog", CLEAR_NEGATIVES[1])):
            slot, seq = ring.write(image)
            msg = messages.frame_message(source="cam", seq=seq, captured_at=time.time(), width=image.shape[1],
                                         height=image.shape[0], dropped=0, ring=(ring.name, slot, seq))
            lines.append({"topic": topics.FRAMES, "message": msg})
        # The capture's events are on the same stdout; frame 1's slot already holds frame 3.
        lines.insert(1, {"topic": topics.EVENTS, "message": {"schema": "greenlens.event/1", "kind": "x"}})
        stdin = "".join(json.dumps(line) + "\n" for line in lines)
        proc = _inference("--no-ipc", "--model-dir", str(HOTDOG_BUNDLE), "--ring-dir", str(tmp_path),
                          stdin=subprocess.PIPE)
        out, err = proc.communicate(stdin, timeout=120)
    finally:
        ring.close()
    assert proc.returncode == 0, err
    results = [json.loads(line)["message"] for line in out.splitlines()]
    results = [r for r in results if r["schema"].startswith("greenlens.result/")]
    seqs = [r["seq"] for r in results]
    assert seqs == sorted(seqs) and seqs[-1] == 3 and 1 not in seqs
    last = results[-1]
    assert last["verdict"]["present"] is False and last["source"] == "cam"
    assert len(results) + last["skipped"] + last["overwritten"] == 3, "every frame inferred or counted"


def test_a_descriptor_whose_ring_slot_was_reused_is_counted_as_overwritten(tmp_path: Path) -> None:
    published: Collector = Collector()
    component = InferenceComponent(lambda topic, msg: published(msg, topic), ring_dir=tmp_path)
    component.configure(InferenceConfig(model_dir=str(FACE_BUNDLE)))
    face = cv2.imread(str(FACE_PHOTO), cv2.IMREAD_COLOR)
    with RingWriter("small", width=face.shape[1], height=face.shape[0], slot_count=2, directory=tmp_path) as ring:
        descriptors = []
        for _ in range(3):
            slot, seq = ring.write(face)
            descriptors.append(messages.frame_message(source="cam", seq=seq, captured_at=time.time(),
                                                      width=face.shape[1], height=face.shape[0], dropped=0,
                                                      ring=(ring.name, slot, seq)))
        component.start()
        try:
            component.offer(descriptors[0])  # frame 1: its slot now holds frame 3
            assert component.wait_idle(30)
            assert component.counters.overwritten == 1 and component.counters.results == 0
            component.offer(descriptors[2])
            result = published.wait_for(lambda m: m.get("seq") == 3)
        finally:
            component.close()
    assert result["overwritten"] == 1 and result["verdict"]["present"] is True


def test_under_load_the_next_frame_is_prepared_on_another_thread_while_the_model_runs(tmp_path: Path) -> None:
    """The pipeline: with frames always waiting, preparing frame n+1 overlaps running the model on frame n,
    on another thread; results still come in frame order, each of its own frame."""
    published: Collector = Collector()
    component = InferenceComponent(lambda topic, msg: published(msg, topic), ring_dir=tmp_path)
    component.configure(InferenceConfig(model_dir=str(HOTDOG_BUNDLE)))
    engine = component.engine
    assert engine is not None
    spans: dict[str, list[tuple[float, float, str]]] = {"prepare": [], "invoke": [], "finish": []}

    def timed(stage: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def call(arg: Any) -> Any:
            t0 = time.monotonic()
            try:
                return fn(arg)
            finally:
                spans[stage].append((t0, time.monotonic(), threading.current_thread().name))
        return call

    engine.prepare = timed("prepare", engine.prepare)  # type: ignore[method-assign]
    engine.invoke = timed("invoke", engine.invoke)  # type: ignore[method-assign]
    engine.finish = timed("finish", engine.finish)  # type: ignore[method-assign]
    frames = [photo("hotdog", CLEAR_HOTDOGS[0]), photo("not_hotdog", CLEAR_NEGATIVES[0])]
    height, width = frames[0].shape[:2]
    with RingWriter("load", width=width, height=height, slot_count=8, directory=tmp_path) as ring:
        component.start()
        try:
            for n in range(60):
                image = cv2.resize(frames[n % 2], (width, height))
                slot, slot_seq = ring.write(image)
                component.offer(messages.frame_message(source="cam", seq=n + 1, captured_at=time.time(),
                                                       width=width, height=height, dropped=0,
                                                       ring=(ring.name, slot, slot_seq)))
                time.sleep(0.003)  # frames come faster than the model: one is always waiting
            assert component.wait_idle(30)
        finally:
            component.close()
    results = [m for m in published.messages if m.get("schema", "").startswith("greenlens.result/")]
    assert len(results) >= 5
    assert [m["verdict"]["present"] for m in results] == [m["seq"] % 2 == 1 for m in results], \
        "each result is of its own frame"
    seqs = [m["seq"] for m in results]
    assert seqs == sorted(seqs), "results in frame order"
    invokes = sorted(spans["invoke"])
    assert all(a[1] <= b[0] for a, b in zip(invokes, invokes[1:], strict=False)), "one frame in the model at a time"
    overlapping = [1 for r0, r1, rt in invokes for p0, p1, pt in spans["prepare"] if p0 < r1 and p1 > r0 and pt != rt]
    assert len(overlapping) >= len(invokes) // 2, "frames are prepared on another thread while the model runs"
    assert all(m["timings_ms"]["wait"] >= 0 for m in results)


# ------------------------------------------------------------------------------------------ configuration


def test_configuration_accepts_floats_and_strings_and_refuses_nonsense_naming_the_key() -> None:
    cfg = InferenceConfig().updated({"threads": 2.0, "topK": "3", "threshold": "0.25", "rule": "threshold",
                                     "labelOfInterest": " hotdog ", "modelDir": "bundles/x"})
    assert (cfg.threads, cfg.top_k, cfg.threshold, cfg.rule, cfg.label_of_interest, cfg.model_dir) == (
        2, 3, 0.25, "threshold", "hotdog", "bundles/x")
    assert InferenceConfig(threshold=0.3, rule="top1").updated({"threshold": "", "rule": None}).threshold is None
    for key, value, expected in [
        ("threads", 0, "configuration threads=0: expected an integer from 1 to 64"),
        ("threads", 1.5, "configuration threads=1.5: expected an integer from 1 to 64"),
        ("threshold", 1.5, "configuration threshold=1.5: expected a number from 0 to 1"),
        ("threshold", "high", "configuration threshold='high': expected a number from 0 to 1"),
        ("rule", "top5", "configuration rule='top5': expected one of top1, threshold"),
        ("topK", -1, "configuration topK=-1: expected an integer from 0 to 1000"),
        ("resultsTopic", "greenlens/#", "configuration resultsTopic='greenlens/#': expected a topic name"),
        ("modelDir", 7, "configuration modelDir=7: expected the path of a model bundle folder"),
    ]:
        with pytest.raises(ConfigError) as err:
            InferenceConfig().updated({key: value})
        assert expected in str(err.value)


def test_no_ipc_refuses_a_folder_that_is_not_a_bundle_and_a_missing_model(tmp_path: Path) -> None:
    proc = _inference("--no-ipc", "--model-dir", str(tmp_path), str(FACE_PHOTO))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"{tmp_path / 'model.json'}: not found; a model bundle folder needs model.json" in err
    proc = _inference("--no-ipc", str(FACE_PHOTO))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "no model: give the bundle folder with --model-dir or the modelDir configuration key" in err


def test_inline_jpeg_descriptors_decode_like_the_capture_encodes_them() -> None:
    image = np.full((40, 60, 3), (0, 128, 255), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    msg = messages.frame_message(source="c", seq=1, captured_at=1.0, width=60, height=40, dropped=0,
                                 jpeg=jpeg.tobytes())
    assert base64.b64decode(msg["jpeg"]) == jpeg.tobytes()
    from greenlens_common.frames import FrameReader, FrameReadError

    decoded = FrameReader().read(msg)
    assert decoded is not None and decoded.shape == (40, 60, 3)
    assert np.abs(decoded.astype(int) - image.astype(int)).max() < 8
    with pytest.raises(FrameReadError, match="frame seq 1: its inline jpeg .* cannot be decoded"):
        FrameReader().read({**msg, "jpeg": base64.b64encode(b"\xff\xd8 junk").decode()})


def test_a_model_the_runtime_cannot_load_is_refused_and_the_previous_one_keeps_serving(tmp_path: Path) -> None:
    broken = tmp_path / "truncated"
    shutil.copytree(FACE_BUNDLE, broken)
    data = (broken / "model.tflite").read_bytes()[:5000]
    (broken / "model.tflite").write_bytes(data)
    manifest = json.loads((broken / "model.json").read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()  # the checksum fits: only loading can tell
    (broken / "model.json").write_text(json.dumps(manifest))
    events = Collector()
    component = InferenceComponent(lambda topic, msg: events(msg, topic), ring_dir=tmp_path)
    with pytest.raises(BundleError, match=rf"{broken / 'model.tflite'}: the .* runtime cannot load it"):
        component.configure(InferenceConfig(model_dir=str(broken)))
    assert component.engine is None
    component.configure(InferenceConfig(model_dir=str(HOTDOG_BUNDLE), threshold=0.3))
    with pytest.raises(BundleError, match="runtime cannot load it"):
        component.configure(InferenceConfig(model_dir=str(broken)))
    assert component.engine is not None and component.engine.bundle.name == "efficientnet-lite0"
    assert component.engine.threshold == 0.3 and component.config.model_dir == str(HOTDOG_BUNDLE)
    assert [e["kind"] for e in events.messages] == ["model_loaded"]
