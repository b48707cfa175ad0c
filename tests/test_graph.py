"""The whole graph as a developer runs it: the build output deployed on ggsim (its own process), greenlens.App
alone bringing up Capture → Inference → StreamPublisher with greenlens.Model, real photos as the camera.

A sequence of hot dog photos gives hot dog results on local pub/sub and a "hotdog appeared" event on the
IoT Core stand-in; a sequence of other food gives neither. The photos are picked (the first of
../shared/data/hotdog-photos in name order) among those the model itself calls clearly, on the frame
Capture makes of them, so the test is about the graph, not about the model's accuracy.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from devsupport.ports import free_port
from devsupport.roots import component_root, python_component_user

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
BUNDLE = REPO / "components" / "model" / "bundles" / "efficientnet-lite0"
GGSIM = [sys.executable, "-m", "ggsim.cli"]
THING = "graph-cam"
WIDTH, HEIGHT = 640, 480
SEQUENCE = 6  # photos in each sequence
RESULTS = 8  # results checked per sequence

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """This interpreter's bin first on PATH: the components' Install builds venvs on top of its packages."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


class Watcher:
    """A `ggsim ... sub --json` process whose lines arrive in a queue (read by a thread)."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen([*GGSIM, "--root", str(root), "--json", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=_env())
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, deadline: float) -> dict[str, Any]:
        try:
            record = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"nothing more within the time; seen so far: {self.seen[-5:]}") from None
        if record is None:
            raise AssertionError(f"the watcher ended: {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.seen.append(record)
        return record

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Core:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root.parent / "ggsim-up.log"
        root.mkdir(parents=True)
        # as root, components run as the component user when it can run this Python (devsupport.roots)
        self.proc = subprocess.Popen([*GGSIM, "--root", str(root), "up", "--thing-name", THING,
                                      "--component-default-user", python_component_user()],
                                     stderr=open(self.log, "a"), env=_env())
        info = root / "cli_ipc_info" / "ggsim.json"
        deadline = time.monotonic() + 60
        while not info.exists():  # the core writes it once it serves IPC
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "ggsim up did not come up"
            time.sleep(0.05)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*GGSIM, "--root", str(self.root), *args], capture_output=True, text=True,
                                timeout=timeout, env=_env())
        assert result.returncode == 0, f"ggsim {' '.join(args)} exited {result.returncode}: {result.stderr}"
        return result

    def watch(self, kind: str, topic: str) -> Watcher:
        """Subscribe, and return once the subscription is live: a probe published on the same topic is seen."""
        watcher = Watcher(self.root, kind, "sub", topic)
        probe_topic = topic.replace("#", "probe")
        deadline = time.monotonic() + 30
        while True:
            self.run(kind, "pub", probe_topic, json.dumps({"probe": kind}))
            try:
                record = watcher.lines.get(timeout=0.5)
            except queue.Empty:
                assert time.monotonic() < deadline, f"{kind} sub {topic} never received a probe"
                continue
            assert record is not None and record["topic"] == probe_topic, record
            break
        while not watcher.lines.empty():  # later probes
            watcher.lines.get_nowait()
        return watcher

    def down(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture(scope="module")
def deploy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy")
    built = subprocess.run([sys.executable, str(REPO / "tools" / "greenlens_build.py"), "all", "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture(scope="module")
def verdicts() -> dict[Path, tuple[bool, float]]:
    """The model's own verdict on Capture's frame of each candidate photo (the first 40 of each folder)."""
    assert PHOTOS.is_dir(), f"the shared test photos are missing: {PHOTOS}"
    from greenlens_capture.imaging import letterbox
    from greenlens_inference import Engine, load_bundle

    engine = Engine(load_bundle(BUNDLE), threads=1)
    found = {}
    for label in ("hotdog", "not_hotdog"):
        for path in sorted((PHOTOS / label).glob("*.jpg"))[:40]:
            frame = letterbox(cv2.imread(str(path), cv2.IMREAD_COLOR), WIDTH, HEIGHT)
            verdict = engine.infer(frame)["verdict"]
            found[path] = (bool(verdict["present"]), float(verdict["score"]))
    return found


def sequence(verdicts: dict[Path, tuple[bool, float]], label: str, folder: Path) -> Path:
    """A folder of SEQUENCE photos of `label` that the model calls clearly (links to the shared photos)."""
    hotdog = label == "hotdog"
    chosen = [p for p, (present, score) in verdicts.items()
              if p.parent.name == label and present == hotdog and (score >= 0.6 if hotdog else score <= 0.05)]
    assert len(chosen) >= SEQUENCE, f"only {len(chosen)} clear {label} photos among the first 40"
    folder.mkdir()
    for path in chosen[:SEQUENCE]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture
def core() -> Iterator[Core]:
    with component_root("root") as root:  # reachable by the component user, as the photos beside it
        c = Core(root)
        yield c
        assert c.down() == 0


def deploy_app(core: Core, deploy_dir: Path, source: Path, tmp_path: Path, *roots: str) -> int:
    """greenlens.App (which brings the rest), with Capture and StreamPublisher as roots for their settings
    (and `roots`, more NAME=VERSION)."""
    port = free_port()
    config = {
        "greenlens.Capture": {"MERGE": {"source": str(source), "fps": 4, "sourceFps": 2, "cameraId": "graph-test",
                                        "ringName": f"greenlens-graph-{os.getpid()}-{tmp_path.name}"}},
        "greenlens.StreamPublisher": {"MERGE": {"port": port}},
    }
    core.run("deployment", "create", "-r", str(deploy_dir / "recipes"), "-a", str(deploy_dir / "artifacts"),
             "-m", "greenlens.App=1.0.0", "-m", "greenlens.Capture=1.0.0", "-m", "greenlens.StreamPublisher=1.0.0",
             # the photos are chosen by 1.0.0's verdicts: greenlens.Model 1.0.1 (1.0.0 with its golden set) unless
             # `roots` names another (App alone would resolve the newest it accepts, 3.x)
             *[arg for root in (roots or ("greenlens.Model=1.0.1",)) for arg in ("-m", root)],
             "-c", json.dumps(config), "--wait", "--timeout", "600", timeout=660)
    states = {c["componentName"]: c["state"] for c in json.loads(core.run("--json", "component", "list").stdout)}
    greenlens = {name: state for name, state in states.items() if not name.startswith("aws.greengrass.")}
    assert greenlens == {"greenlens.App": "FINISHED", "greenlens.Model": "FINISHED", "greenlens.Capture": "RUNNING",
                         "greenlens.Inference": "RUNNING", "greenlens.StreamPublisher": "RUNNING"}
    assert states["aws.greengrass.TokenExchangeService"] == "RUNNING", "StreamPublisher's S3 credentials"
    return port


def results(watcher: Watcher, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 120
    found = []
    while len(found) < count:
        record = watcher.next(deadline)
        message = record.get("json", {})
        if message.get("schema", "").startswith("greenlens.result/"):
            found.append(message)
    return found


def test_a_hot_dog_sequence_gives_hot_dog_results_and_an_appeared_event(
        core: Core, deploy_dir: Path, verdicts: dict[Path, tuple[bool, float]], tmp_path: Path) -> None:
    photos = sequence(verdicts, "hotdog", core.root.parent / "hotdogs")
    local = core.watch("pubsub", "greenlens/results")
    cloud = core.watch("iotcore", "greenlens/#")
    try:
        port = deploy_app(core, deploy_dir, photos, tmp_path)

        got = results(local, RESULTS)
        assert all(r["verdict"]["label"] == "hotdog" and r["verdict"]["present"] for r in got), \
            [r["verdict"] for r in got]
        assert {r["source"] for r in got} == {"graph-test"}
        assert {r["model"]["name"] for r in got} == {"efficientnet-lite0"}

        deadline = time.monotonic() + 60
        while True:
            record = cloud.next(deadline)
            message = record.get("json", {})
            if message.get("schema", "").startswith("greenlens.event/") and message.get("kind") == "appeared":
                break
        assert record["topic"] == f"greenlens/{THING}/events"
        assert "hotdog" in message["detail"] and message["component"] == "greenlens.StreamPublisher"

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
    finally:
        local.close()
        cloud.close()


def test_a_not_hot_dog_sequence_gives_neither_hot_dog_results_nor_an_event(
        core: Core, deploy_dir: Path, verdicts: dict[Path, tuple[bool, float]], tmp_path: Path) -> None:
    photos = sequence(verdicts, "not_hotdog", core.root.parent / "others")
    local = core.watch("pubsub", "greenlens/results")
    cloud = core.watch("iotcore", "greenlens/#")
    try:
        deploy_app(core, deploy_dir, photos, tmp_path)

        got = results(local, RESULTS)
        assert not any(r["verdict"]["present"] for r in got), [r["verdict"] for r in got]
        last = max(r["seq"] for r in got)

        # IoT Core carries sampled results in order with the events: once a result at or after the last
        # local one has arrived there, an "appeared" event for those results would have arrived before it.
        deadline = time.monotonic() + 60
        cloud_messages = []
        while True:
            message = cloud.next(deadline).get("json", {})
            cloud_messages.append(message)
            if message.get("schema", "").startswith("greenlens.result/") and message["seq"] >= last:
                break
        assert [m for m in cloud_messages if m.get("kind") == "appeared"] == []
        assert not any(m["verdict"]["present"] for m in cloud_messages if "verdict" in m)

        # Someone else stops the inference process (plain SIGTERM): it exits 143, not 0, so the nucleus
        # sees an error, restarts it, and results resume from the new process.
        old_pid = inference_pid(core.root)
        os.kill(old_pid, signal.SIGTERM)
        resumed = [r for r in results(local, RESULTS * 3) if r["seq"] > last]
        assert resumed, "results resumed after the restart"
        assert inference_pid(core.root) != old_pid
        assert "ERRORED" in core.run("logs", "greenlens.Inference", "-n", "400").stdout
    finally:
        local.close()
        cloud.close()


def inference_pid(root: Path) -> int:
    """The greenlens.Inference process of the core on `root` (its command line names the root's store)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError):
                continue
            program = os.path.basename(cmdline.split(" ", 1)[0])
            if ("-m greenlens_inference" in cmdline and str(root) in cmdline
                    and program not in ("sh", "bash", "dash")):
                return int(proc.name)
        time.sleep(0.2)  # polling /proc for a process that is starting
    raise AssertionError("no greenlens.Inference process")


@pytest.fixture(scope="module")
def broken_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """greenlens.Model's versions with the deliberately broken one (1.0.2), built only on request."""
    out = tmp_path_factory.mktemp("deploy-broken")
    built = subprocess.run([sys.executable, str(REPO / "tools" / "greenlens_build.py"), "greenlens.Model",
                            "--include-broken", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert (out / "recipes" / "greenlens.Model-1.0.2.yaml").is_file()
    return out


def fresh_results(watcher: Watcher, count: int, after: float) -> list[dict[str, Any]]:
    """`count` results of frames captured after `after` (wall clock)."""
    deadline = time.monotonic() + 120
    found: list[dict[str, Any]] = []
    while len(found) < count:
        message = watcher.next(deadline).get("json", {})
        if message.get("schema", "").startswith("greenlens.result/") and message["captured_at"] > after:
            found.append(message)
    return found


def test_a_model_failing_its_golden_check_and_bad_settings_fail_their_deployments_and_the_graph_keeps_running(
        core: Core, deploy_dir: Path, broken_dir: Path, verdicts: dict[Path, tuple[bool, float]],
        tmp_path: Path) -> None:
    photos = sequence(verdicts, "hotdog", tmp_path / "hotdogs")
    local = core.watch("pubsub", "greenlens/results")
    try:
        deploy_app(core, deploy_dir, photos, tmp_path)
        assert {r["model"]["version"] for r in results(local, 2)} == {"1.0.1"}

        # The deliberately broken model: Inference refuses it before RUNNING, the deployment fails, ROLLBACK.
        bad = subprocess.run([*GGSIM, "--root", str(core.root), "deployment", "create", "-r",
                              str(broken_dir / "recipes"), "-a", str(broken_dir / "artifacts"),
                              "-m", "greenlens.Model=1.0.2", "-fp", "ROLLBACK", "--wait", "--timeout", "300"],
                             capture_output=True, text=True, timeout=360, env=_env())
        assert bad.returncode == 1, bad.stdout + bad.stderr
        components = {c["componentName"]: c for c in json.loads(core.run("--json", "component", "list").stdout)}
        assert components["greenlens.Model"]["version"] == "1.0.1"
        assert components["greenlens.Inference"]["state"] == "RUNNING"
        log = core.run("logs", "greenlens.Inference", "-n", "400").stdout
        assert ("model refused: bundle efficientnet-lite0 1.0.2 (" in log
                and "golden accuracy: expected at least 1, got 0.00" in log), log[-3000:]
        after = time.time()
        assert {r["model"]["version"] for r in fresh_results(local, 3, after)} == {"1.0.1"}

        # Bad settings: a (cloud) deployment whose configuration points modelDir at nothing is rejected by
        # Inference's validation; nothing changes, not even the process.
        pid = inference_pid(core.root)
        document = tmp_path / "bad-settings.json"
        document.write_text(json.dumps({
            "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/graph-test",
            "components": {"greenlens.Inference": {"componentVersion": "1.0.0", "configurationUpdate": {
                "merge": json.dumps({"modelDir": str(tmp_path / "no-such-bundle")})}}},
            "deploymentPolicies": {"failureHandlingPolicy": "ROLLBACK"}}))
        rejected = subprocess.run([*GGSIM, "--root", str(core.root), "--json", "deployment", "create", "--document",
                                   str(document), "--wait", "--timeout", "120"],
                                  capture_output=True, text=True, timeout=180, env=_env())
        assert rejected.returncode == 1, rejected.stdout + rejected.stderr
        assert "to-be-deployed configuration is invalid" in rejected.stdout + rejected.stderr
        assert "no-such-bundle" in rejected.stdout + rejected.stderr
        assert inference_pid(core.root) == pid
        after = time.time()
        assert {r["model"]["version"] for r in fresh_results(local, 3, after)} == {"1.0.1"}
    finally:
        local.close()
