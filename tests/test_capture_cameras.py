"""Several cameras: greenlens.Capture as a process under the simulator's IPC server, each camera on its own
thread and ring; a missing camera retried and reported, never an error; one camera's change leaves the
others' readers alone; a bad camera list refused naming the camera and the setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from greenlens_capture.config import CaptureSettings, ConfigError
from greenlens_common import messages, topics
from greenlens_common.ipc import Ipc
from greenlens_common.ring import RingReader

from devsupport.roots import python_component_user
from tests.test_capture_main import PUBSUB, _capture, _ipc_env, _register, _wait_state

REFUSED = "rtsp://127.0.0.1:9/yard"  # nothing listens on port 9: the camera is missing


class _Topics:
    """Every message seen on frames, cameras and events, with a condition to wait on."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.cond = threading.Condition()

    def __call__(self, message: dict[str, Any], topic: str) -> None:
        with self.cond:
            self.seen.append((topic, message))
            self.cond.notify_all()

    def on(self, topic: str, **fields: Any) -> list[dict[str, Any]]:
        with self.cond:
            return [m for t, m in self.seen if t == topic and all(m.get(k) == v for k, v in fields.items())]

    def wait(self, predicate: Any, timeout: float = 30) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def frames_of(self, camera: str) -> list[dict[str, Any]]:
        return self.on(topics.FRAMES, source=camera)

    def state_of(self, camera: str) -> dict[str, Any] | None:
        states = self.on(topics.CAMERAS, camera=camera)
        return states[-1] if states else None


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Any]:
    from tests.ipc.conftest import Core

    c = Core(tmp_path)
    yield c
    c.close()


def _watch(core: Any) -> tuple[Ipc, _Topics]:
    token = _register(core, "test.Watcher", {"accessControl": PUBSUB})
    seen = _Topics()
    watcher = Ipc.connect(timeout=10, socket_path=str(core.host.socket_path), token=token)
    for topic in (topics.FRAMES, topics.CAMERAS, topics.EVENTS):
        watcher.subscribe_json(topic, seen)
    return watcher, seen


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    return err


# ------------------------------------------------------------------------------------------ configuration


def test_one_camera_stays_the_simple_default_and_a_list_gives_each_camera_its_own_ring() -> None:
    single = CaptureSettings().updated({"source": "synthetic", "cameraId": "door", "fps": 5})
    assert [(c.camera_id, c.ring_name, c.fps) for c in single.cameras] == [("door", "greenlens-frames", 5.0)]
    several = single.updated({"cameras": [{"id": "door", "source": "0"},
                                          {"id": "yard", "source": REFUSED, "fps": 2.0, "width": "320"}]})
    assert [(c.camera_id, c.source, c.ring_name, c.fps, c.width) for c in several.cameras] == [
        ("door", "0", "greenlens-frames-door", 5.0, 640), ("yard", REFUSED, "greenlens-frames-yard", 2.0, 320)]
    assert several.updated({"cameras": []}).cameras == single.cameras, "an empty list is the single camera"


@pytest.mark.parametrize(("cameras", "expected"), [
    ([{"id": "door", "source": "0"}, {"id": "door", "source": "1"}],
     "camera 'door' (cameras[1]): duplicate camera id 'door' (also cameras[0])"),
    ([{"id": "door", "source": "ftp://cam/1"}],
     "camera 'door' (cameras[0]): configuration source='ftp://cam/1': the scheme 'ftp' is not supported"),
    ([{"id": "door", "source": "rtsp:///front"}],
     "camera 'door' (cameras[0]): configuration source='rtsp:///front': the URL names no host"),
    ([{"id": "door", "source": "synthetic:dead"}], "camera 'door' (cameras[0]): configuration source='synthetic:dead'"),
    ([{"id": "door", "source": "-1"}], "configuration source='-1': a camera index is >= 0"),
    ([{"id": "door", "fps": 0}], "camera 'door' (cameras[0]): configuration fps=0: expected a number > 0"),
    ([{"id": "door", "width": 10_000}], "camera 'door' (cameras[0]): configuration width=10000: expected an integer "
                                        "from 16 to 7680"),
    ([{"id": "door", "fsp": 5}], "camera 'door' (cameras[0]): unknown setting 'fsp'"),
    ([{"source": "0"}], "cameras[0]: no 'id'"),
    ([{"id": "front door"}], "cameras[0].id='front door': expected a camera id of letters, digits"),
    ([{"id": "a", "ringName": "shared"}, {"id": "b", "ringName": "shared"}],
     "camera 'b' (cameras[1]): ringName 'shared' is also camera 'a''s ring"),
    ("door", "configuration cameras='door': expected a list of objects"),
])
def test_a_bad_camera_list_is_refused_naming_the_camera_and_the_setting(cameras: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as refused:
        CaptureSettings().updated({"cameras": cameras})
    assert expected in str(refused.value)


# ------------------------------------------------------------------------------------------ under ggsim


def test_a_missing_camera_is_retried_and_reported_while_the_other_keeps_delivering(core: Any, tmp_path: Path) -> None:
    token = _register(core, "greenlens.Capture", {
        "width": 96, "height": 64, "maxBackoffSeconds": 1, "accessControl": PUBSUB,
        "cameras": [{"id": "door", "source": "synthetic", "fps": 20}, {"id": "yard", "source": REFUSED}]})
    watcher, seen = _watch(core)
    proc = _capture("--ring-dir", str(tmp_path), env=_ipc_env(core, token))
    try:
        assert _wait_state(core, "greenlens.Capture", "RUNNING"), "a missing camera is no error of the component"
        assert seen.wait(lambda: len(seen.on(topics.CAMERAS, camera="yard", state="missing")) >= 3), \
            "the missing camera is retried and reported each time"
        yard = seen.state_of("yard")
        assert yard is not None and messages.validate(yard) == messages.CAMERA
        assert "cannot open stream rtsp://127.0.0.1:9/yard: connection refused" in yard["detail"], yard
        assert yard["counters"]["open_failures"] >= 3
        assert [e for e in seen.on(topics.EVENTS, kind="camera_missing") if "yard" in e["detail"]], \
            "an event says the camera is missing"
        door_seen = len(seen.frames_of("door"))
        assert seen.wait(lambda: len(seen.frames_of("door")) >= door_seen + 10), "the other camera keeps delivering"
        assert seen.state_of("door")["state"] == "connected"  # type: ignore[index]
        assert not seen.frames_of("yard")
        assert "ERRORED" not in core.host.states["greenlens.Capture"]

        # The camera comes (its source fixed by a configuration update): it delivers too.
        core.call_soon(lambda: core.host.config.merge("greenlens.Capture", {"cameras": [
            {"id": "door", "source": "synthetic", "fps": 20}, {"id": "yard", "source": "synthetic", "fps": 20}]}))
        assert seen.wait(lambda: len(seen.frames_of("yard")) >= 3), "the fixed camera delivers"
        assert seen.state_of("yard")["state"] == "connected"  # type: ignore[index]
    finally:
        watcher.close()
        err = _stop(proc)
    assert err.count("camera yard is missing: cannot open stream") == 1, "one error line, not one per retry"


def test_adding_and_removing_a_camera_leaves_the_other_cameras_reader_and_ring_running(
        core: Any, tmp_path: Path) -> None:
    door = {"id": "door", "source": "synthetic", "fps": 20}
    token = _register(core, "greenlens.Capture", {"width": 96, "height": 64, "accessControl": PUBSUB,
                                                  "maxFramesInFlight": 0, "cameras": [door]})
    watcher, seen = _watch(core)
    proc = _capture("--ring-dir", str(tmp_path), env=_ipc_env(core, token))
    try:
        assert seen.wait(lambda: len(seen.frames_of("door")) >= 3)
        ring_name = seen.frames_of("door")[0]["ring"]["name"]
        ring_file = tmp_path / ring_name
        inode = ring_file.stat().st_ino
        reader = RingReader(ring_name, directory=tmp_path)

        core.call_soon(lambda: core.host.config.merge("greenlens.Capture", {"cameras": [
            door, {"id": "porch", "source": "synthetic", "fps": 20, "width": 64, "height": 48}]}))
        assert seen.wait(lambda: len(seen.frames_of("porch")) >= 3), "the added camera delivers"
        porch = seen.frames_of("porch")[-1]
        assert porch["ring"]["name"] == "greenlens-frames-porch" and (porch["width"], porch["height"]) == (64, 48)
        with RingReader(porch["ring"]["name"], directory=tmp_path) as porch_ring:
            frame = porch_ring.read(int(porch["ring"]["slot"]), int(porch["ring"]["slot_seq"]))
            assert frame is None or frame.image.shape == (48, 64, 3), "the added camera's own ring"

        core.call_soon(lambda: core.host.config.merge("greenlens.Capture", {"cameras": [door]}))
        assert seen.wait(lambda: seen.state_of("porch")["state"] == "removed"), "the removed camera says so"  # type: ignore[index]
        removed_at = len(seen.frames_of("door"))
        assert seen.wait(lambda: len(seen.frames_of("door")) >= removed_at + 5)

        frames = seen.frames_of("door")
        seqs = [int(m["seq"]) for m in frames]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no restart and no gap in the door's numbering"
        gaps = [b["captured_at"] - a["captured_at"] for a, b in zip(frames, frames[1:], strict=False)]
        assert max(gaps) < 1.5, f"the door's reader never paused: largest gap {max(gaps):.2f} s"
        assert {m["ring"]["name"] for m in frames} == {ring_name}
        assert ring_file.stat().st_ino == inode and not reader.closed_by_owner, "the same ring all along"
        assert len(seen.on(topics.CAMERAS, camera="door", state="connected")) >= 1
        assert not seen.on(topics.CAMERAS, camera="door", state="removed")
        reader.close()
    finally:
        watcher.close()
        err = _stop(proc)
    assert err.count("source synthetic opened") == 2, "the door's source was opened once, the porch's once"
    assert not (tmp_path / "greenlens-frames-porch").exists(), "a removed camera's ring is removed"


# ------------------------------------------------------------------------------------------ a real deployment


REPO = Path(__file__).resolve().parent.parent
GGSIM = [sys.executable, "-m", "ggsim.cli"]


def _recipe(folder: Path, ring_dir: Path) -> None:
    """greenlens.Capture 1.0.0 running this tree's code (no artifacts, no venv: the test's interpreter)."""
    path = os.pathsep.join(str(REPO / "components" / p) for p in ("capture", "common"))
    folder.mkdir()
    (folder / "greenlens.Capture-1.0.0.json").write_text(json.dumps({
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "greenlens.Capture", "ComponentVersion": "1.0.0",
        "ComponentPublisher": "test", "ComponentConfiguration": {"DefaultConfiguration": {
            "width": 96, "height": 64, "accessControl": PUBSUB}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": {
            "Script": f"exec {sys.executable} -u -m greenlens_capture --ring-dir {ring_dir}",
            "Setenv": {"PYTHONPATH": path}}}}]}))


def _ggsim(root: Path, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*GGSIM, "--root", str(root), *args], capture_output=True, text=True, timeout=timeout)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def test_an_invalid_camera_list_fails_its_deployment_with_nothing_changed(tmp_path: Path) -> None:
    root, ring_dir = tmp_path / "root", tmp_path / "shm"
    ring_dir.mkdir()
    ring_dir.chmod(0o777)  # Capture runs as the component user (devsupport.roots)
    _recipe(tmp_path / "recipes", ring_dir)
    log = open(tmp_path / "ggsim-up.log", "a")  # noqa: SIM115 (closed below)
    up = subprocess.Popen([*GGSIM, "--root", str(root), "up", "--thing-name", "cameras-test",
                           "--component-default-user", python_component_user()], stderr=log, stdout=log)
    try:
        info = root / "cli_ipc_info" / "ggsim.json"
        deadline = time.monotonic() + 60
        while not info.exists():  # the core writes it once it serves IPC
            assert up.poll() is None and time.monotonic() < deadline, (tmp_path / "ggsim-up.log").read_text()
            time.sleep(0.05)
        good = [{"id": "door", "source": "synthetic", "fps": 10}, {"id": "yard", "source": REFUSED}]
        _ggsim(root, "deployment", "create", "-r", str(tmp_path / "recipes"), "-m", "greenlens.Capture=1.0.0",
               "-c", json.dumps({"greenlens.Capture": {"MERGE": {"cameras": good}}}), "--wait", "--timeout", "120",
               timeout=180)
        details = json.loads(_ggsim(root, "--json", "component", "details", "-n", "greenlens.Capture").stdout)
        assert details["state"] == "RUNNING", details
        before = details["configuration"]["cameras"]
        ring = ring_dir / "greenlens-frames-door"
        assert ring.exists()
        inode = ring.stat().st_ino

        document = tmp_path / "bad-cameras.json"
        document.write_text(json.dumps({
            "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/cameras-test",
            "components": {"greenlens.Capture": {"componentVersion": "1.0.0", "configurationUpdate": {
                "merge": json.dumps({"cameras": [{"id": "door", "source": "synthetic"},
                                                 {"id": "door", "source": "1"}]})}}},
            "deploymentPolicies": {"failureHandlingPolicy": "ROLLBACK"}}))
        rejected = _ggsim(root, "--json", "deployment", "create", "--document", str(document), "--wait", "--timeout",
                          "120", check=False, timeout=180)
        said = rejected.stdout + rejected.stderr
        assert rejected.returncode == 1, said
        assert "COMPONENT_CONFIGURATION_NOT_VALID" in said and "duplicate camera id 'door'" in said, said

        details = json.loads(_ggsim(root, "--json", "component", "details", "-n", "greenlens.Capture").stdout)
        assert details["state"] == "RUNNING" and details["configuration"]["cameras"] == before, "nothing changed"
        assert ring.stat().st_ino == inode, "the camera's ring (and its reader) untouched"
        logs = _ggsim(root, "logs", "greenlens.Capture", "-n", "400").stdout
        assert logs.count("source synthetic opened") == 1 and "ERRORED" not in logs, logs[-3000:]
    finally:
        up.terminate()
        up.wait(60)
        log.close()
