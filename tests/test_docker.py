"""GreenLens in Docker, end to end: the image built as a user builds it, ggsim and the whole graph inside.

The image (simulator/Dockerfile) is built by scripts/docker-image.sh from the local base image
(scripts/docker-base-image.sh), the host wheelhouse (scripts/wheelhouse.sh) and the build tool's output
(tools/greenlens_build.py all), with no network. One container runs with host networking, real hot dog photos mounted as Capture's source and
IoT Core bridged to a real Mosquitto on 127.0.0.1; then faults inside it: the inference process killed,
and a deployment of a corrupt greenlens.Model version with ROLLBACK. The compose file is checked too.

In CI (CI=true) every test runs: no Docker engine is a failure, never a skip. Outside CI the module skips
when no engine answers and none can be started. Nothing is left running: containers are removed, an
engine this module started is stopped (in CI, .ci/run owns the engine).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt
import pytest

from devsupport.ports import free_port
from tests.support.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
#: the greenlens.Model version that greenlens.App alone resolves (the newest it accepts that the build makes)
MODEL_VERSION = "3.0.1"
BUNDLE = REPO / "components" / "model" / "bundles" / "efficientnet-lite0-hotdog-golden"
IMAGE = "greenlens/ggsim:latest"
BASE_IMAGE = "greenlens/base:bookworm"
THING = "docker-cam"
IN_CI = os.environ.get("CI") == "true"
MEASUREMENTS = REPO / "build" / "docker" / "measurements.json"
PHOTO_COUNT = 6
RESULTS = 8
HEALTH_MAX_RESULT_AGE = 8  # seconds (the image's default is 60)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the Docker end-to-end test must run)")
    pytest.skip(reason)


def run(*command: str, timeout: float = 120, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **kwargs.pop("env", {}))
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
    if check:
        assert result.returncode == 0, (f"{' '.join(command)} exited {result.returncode}:\n"
                                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def measured(key: str, value: float) -> None:
    """Record a timing for the report (build/docker/measurements.json); never asserted on."""
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.is_file() else {}
    data[key] = round(value, 2)
    MEASUREMENTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)  # polling a condition, with a deadline
    raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    """The engine DOCKER_HOST names (.ci/run starts this checkout's and exports it), else the default one,
    else this checkout's own (scripts/dockerd.sh, root only), started here and stopped at the end."""
    if shutil.which("docker") is None:
        _unavailable("the docker client is not installed")
    if run("docker", "info", check=False).returncode == 0:
        yield
        return
    if os.geteuid() != 0:
        _unavailable("no Docker engine answers and starting one needs root")
    dockerd = str(REPO / "scripts" / "dockerd.sh")
    result = run(dockerd, "start", check=False, timeout=300)
    if result.returncode != 0:
        _unavailable(f"scripts/dockerd.sh start failed: {result.stderr[-1500:]}")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = run(dockerd, "host").stdout.strip()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["DOCKER_HOST"]
        else:
            os.environ["DOCKER_HOST"] = previous
        run(dockerd, "stop", timeout=120)


@pytest.fixture(scope="module")
def image(engine: None) -> str:
    """The image, built as documented (scripts/docker-image.sh): local base image, host wheelhouse, the build
    tool's output, `docker build` with no network."""
    t0 = time.monotonic()
    run(str(REPO / "scripts" / "docker-base-image.sh"), BASE_IMAGE, timeout=1800)
    measured("base_image_s", time.monotonic() - t0)
    t0 = time.monotonic()
    run(str(REPO / "scripts" / "docker-image.sh"), IMAGE, timeout=1800,
        env={"BASE_IMAGE": BASE_IMAGE, "PYTHON": sys.executable})
    measured("image_build_s", time.monotonic() - t0)
    measured("image_size_mb", int(run("docker", "image", "inspect", "-f", "{{.Size}}", IMAGE).stdout) / 1e6)
    return IMAGE


@pytest.fixture(scope="module")
def hot_dogs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PHOTO_COUNT hot dog photos the model itself calls clearly (score >= 0.6 on Capture's frame of them),
    copied into a folder the container's user can read: the test is about the graph, not the model."""
    if not PHOTOS.is_dir():
        _unavailable(f"the shared test photos are missing: {PHOTOS}")
    from greenlens_capture.imaging import letterbox
    from greenlens_inference import Engine, load_bundle

    engine = Engine(load_bundle(BUNDLE), threads=1)
    folder = tmp_path_factory.mktemp("hotdogs")
    chosen = 0
    for path in sorted((PHOTOS / "hotdog").glob("*.jpg"))[:40]:
        verdict = engine.infer(letterbox(cv2.imread(str(path), cv2.IMREAD_COLOR), 640, 480))["verdict"]
        if verdict["present"] and verdict["score"] >= 0.6:
            shutil.copyfile(path, folder / path.name)
            chosen += 1
            if chosen == PHOTO_COUNT:
                break
    assert chosen == PHOTO_COUNT, f"only {chosen} clear hot dog photos among the first 40"
    folder.chmod(0o755)  # mounted into the container, whose user is not this one
    for photo in folder.iterdir():
        photo.chmod(0o644)
    return folder


class Subscriber:
    """A paho client on the host's Mosquitto; messages arrive in a queue."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        subscribed = queue.Queue[bool]()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"docker-test-{os.getpid()}")
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, json.loads(msg.payload)))
        self.client.on_subscribe = lambda *_args: subscribed.put(True)
        self.client.on_connect = lambda c, *_args: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def next(self, deadline: float) -> tuple[str, dict[str, Any]]:
        try:
            return self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("no more messages on the host's Mosquitto in time") from None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Container:
    def __init__(self, image: str, name: str, photos: Path, broker: str) -> None:
        self.name = name
        self.page_port = free_port()
        self.started = time.monotonic()
        run("docker", "run", "-d", "--name", name, "--network", "host", "--shm-size", "256m",
            "-v", f"{photos}:/media/photos:ro",
            "-e", "GREENLENS_SOURCE=/media/photos", "-e", f"GREENLENS_PAGE_PORT={self.page_port}",
            "-e", f"GREENLENS_MQTT_BROKER={broker}", "-e", f"GREENLENS_THING_NAME={THING}",
            "-e", 'GREENLENS_CONFIG={"greenlens.Capture": {"MERGE": {"cameraId": "docker-test"}}}',
            "-e", f"GREENLENS_HEALTH_MAX_RESULT_AGE={HEALTH_MAX_RESULT_AGE}",
            image)

    def wait_up(self, timeout: float = 120) -> None:
        """Until ggsim inside answers its CLI (it serves IPC), failing early if the container exited."""
        def answers() -> bool:
            state = run("docker", "inspect", "-f", "{{.State.Status}}", self.name).stdout.strip()
            assert state == "running", f"the container is {state}:\n{self.diagnostics()}"
            return self.exec("ggsim", "component", "list", check=False).returncode == 0
        wait_for("ggsim answering inside the container", answers, timeout=timeout)

    def exec(self, *command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("docker", "exec", self.name, *command, timeout=timeout, check=check)

    def ggsim_json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.exec("ggsim", "--json", *args, timeout=timeout).stdout)

    def states(self) -> dict[str, tuple[str, str]]:
        return {c["componentName"]: (c["version"], c["state"]) for c in self.ggsim_json("component", "list")}

    def results(self, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        """The next `count` results on local pub/sub, read inside the container with ggsim."""
        out = self.exec("ggsim", "pubsub", "sub", "greenlens/results", "--json", "--count", str(count),
                        timeout=timeout).stdout
        return [json.loads(line)["json"] for line in out.splitlines() if line.strip()]

    def inference_pids(self) -> list[int]:
        found = self.exec("pgrep", "-f", "python -u -m greenlens_inference", check=False).stdout
        return [int(p) for p in found.split()]

    def diagnostics(self) -> str:
        parts = [run("docker", "logs", "--tail", "40", self.name, check=False).stderr]
        for name in ("greenlens.Inference", "greenlens.Capture", "greenlens.StreamPublisher"):
            parts.append(self.exec("ggsim", "logs", name, "-n", "15", check=False).stdout)
        return "\n".join(parts)

    def remove(self) -> None:
        run("docker", "rm", "-f", self.name, check=False)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def cloud(mosquitto: Mosquitto) -> Iterator[Subscriber]:
    subscriber = Subscriber(mosquitto.port, "greenlens/#")
    yield subscriber
    subscriber.close()


@pytest.fixture(scope="module")
def container(image: str, hot_dogs: Path, mosquitto: Mosquitto, cloud: Subscriber) -> Iterator[Container]:
    c = Container(image, f"greenlens-test-{os.getpid()}", hot_dogs, mosquitto.url)
    try:
        c.wait_up()
        yield c
    finally:
        print(c.diagnostics())  # shown by pytest when a test failed
        c.remove()
        assert run("docker", "ps", "-aq", "--filter", f"name={c.name}").stdout.strip() == ""


# ------------------------------------------------------------------------------------------------ tests


def test_the_graph_in_the_container_sends_hot_dog_results_to_iot_core_and_the_page_answers(
        container: Container, cloud: Subscriber) -> None:
    first = container.results(1, timeout=300)
    measured("up_to_first_result_s", time.monotonic() - container.started)
    assert first[0]["schema"] == "greenlens.result/1"

    versions = {n: v for n, v in container.states().items() if not n.startswith("aws.greengrass.")}
    assert versions == {"greenlens.App": ("1.0.0", "FINISHED"), "greenlens.Model": (MODEL_VERSION, "FINISHED"),
                        "greenlens.Capture": ("1.0.0", "RUNNING"), "greenlens.Inference": ("1.0.0", "RUNNING"),
                        "greenlens.StreamPublisher": ("1.0.0", "RUNNING")}
    got = container.results(RESULTS)
    assert all(r["verdict"]["label"] == "hotdog" and r["verdict"]["present"] for r in got), \
        [r["verdict"] for r in got]
    assert {r["source"] for r in got} == {"docker-test"}
    assert {(r["model"]["name"], r["model"]["version"]) for r in got} == {("efficientnet-lite0-hotdog", MODEL_VERSION)}

    # IoT Core from inside the container (ggsim's CLI, through the bridge) ...
    out = container.exec("ggsim", "iotcore", "sub", f"greenlens/{THING}/results", "--json", "--count", "2",
                         timeout=120).stdout
    inside = [json.loads(json.loads(line)["text"]) for line in out.splitlines() if line.strip()]
    assert all(m["schema"] == "greenlens.result/1" and m["verdict"]["present"] for m in inside), inside

    # ... and on the real broker on the host: results, and the "hotdog appeared" event.
    deadline = time.monotonic() + 120
    topics: dict[str, dict[str, Any]] = {}
    while not {f"greenlens/{THING}/results", f"greenlens/{THING}/events"} <= topics.keys():
        topic, message = cloud.next(deadline)
        if topic.endswith("/events") and message.get("kind") != "appeared":
            continue
        topics[topic] = message
    assert topics[f"greenlens/{THING}/results"]["verdict"]["label"] == "hotdog"
    assert "hotdog" in topics[f"greenlens/{THING}/events"]["detail"]

    # The page, from the host (host networking).
    base = f"http://127.0.0.1:{container.page_port}"
    with urllib.request.urlopen(f"{base}/", timeout=10) as page:
        assert page.status == 200 and "<html" in page.read().decode().lower()
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as health:
        assert json.load(health)["status"] == "ok"

    # Docker's own view: the image's HEALTHCHECK turns healthy.
    wait_for("the container's HEALTHCHECK reports healthy",
             lambda: run("docker", "inspect", "-f", "{{.State.Health.Status}}", container.name).stdout.strip()
             == "healthy", timeout=90)
    assert container.exec("id", "-un").stdout.strip() == "greenlens"


def test_a_killed_inference_process_is_restarted_and_results_resume(container: Container) -> None:
    container.results(1, timeout=300)
    before = container.inference_pids()
    assert len(before) == 1, before
    container.exec("pkill", "-KILL", "-f", "python -u -m greenlens_inference")
    killed_at = time.time()

    after = wait_for("a new greenlens_inference process", lambda: [p for p in container.inference_pids()
                                                                  if p not in before], timeout=60)
    assert len(after) == 1, after
    resumed = container.results(3)
    assert all(r["captured_at"] > killed_at and r["verdict"]["present"] for r in resumed), resumed
    assert container.states()["greenlens.Inference"] == ("1.0.0", "RUNNING")
    log = container.exec("ggsim", "logs", "greenlens.Inference", "-n", "200").stdout
    assert "newState=ERRORED" in log


def test_the_health_check_reports_a_stalled_pipeline_and_its_recovery(container: Container) -> None:
    def health() -> subprocess.CompletedProcess[str]:
        return container.exec("python3", "/opt/greenlens/entrypoint.py", "health", check=False)

    container.results(1, timeout=300)
    assert health().returncode == 0, health().stdout
    capture = "python -u -m greenlens_capture"
    container.exec("pkill", "-STOP", "-f", capture)  # the camera freezes: processes up, no results
    try:
        stalled = wait_for("the health check failing on stale results",
                           lambda: (h := health()).returncode == 1 and h.stdout, timeout=HEALTH_MAX_RESULT_AGE + 60)
        assert "the newest result was captured" in stalled, stalled
    finally:
        container.exec("pkill", "-CONT", "-f", capture)
    container.results(2)
    wait_for("the health check passing again", lambda: health().returncode == 0, timeout=30)


def corrupt_model(deploy: Path, out: Path, version: str) -> Path:
    """greenlens.Model `version`: the built MODEL_VERSION recipe and bundle, with model.tflite cut in half."""
    recipe = (deploy / "recipes" / f"greenlens.Model-{MODEL_VERSION}.yaml").read_text()
    assert f"ComponentVersion: {MODEL_VERSION}\n" in recipe
    (out / "recipes").mkdir(parents=True)
    (out / "recipes" / f"greenlens.Model-{version}.yaml").write_text(
        recipe.replace(f"ComponentVersion: {MODEL_VERSION}\n", f"ComponentVersion: {version}\n"))
    artifacts = out / "artifacts" / "greenlens.Model" / version
    artifacts.mkdir(parents=True)
    with zipfile.ZipFile(deploy / "artifacts" / "greenlens.Model" / MODEL_VERSION / "greenlens.Model.zip") as good, \
            zipfile.ZipFile(artifacts / "greenlens.Model.zip", "w") as bad:
        for name in good.namelist():
            data = good.read(name)
            if name == "model.json":
                data = json.dumps(dict(json.loads(data), version=version)).encode()
            elif name == "model.tflite":
                data = data[: len(data) // 2]
            bad.writestr(name, data)
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


def test_a_corrupt_model_version_is_rolled_back_and_results_resume(container: Container, tmp_path: Path) -> None:
    container.results(1, timeout=300)
    broken = corrupt_model(REPO / "build" / "deploy", tmp_path / "broken", "3.0.9")
    run("docker", "cp", str(broken), f"{container.name}:/tmp/broken-model")

    deployed = container.exec("ggsim", "deployment", "create", "-r", "/tmp/broken-model/recipes",
                              "-a", "/tmp/broken-model/artifacts", "-m", "greenlens.Model=3.0.9",
                              "--failure-handling-policy", "ROLLBACK", "--wait", "--timeout", "300",
                              timeout=360, check=False)
    rolled_back_at = time.time()
    assert deployed.returncode == 1, deployed.stdout + deployed.stderr
    assert "FAILED_ROLLBACK_COMPLETE" in deployed.stdout, deployed.stdout
    assert "greenlens.Inference" in deployed.stdout  # the cause names the component that could not start

    states = container.states()
    assert states["greenlens.Model"] == (MODEL_VERSION, "FINISHED"), states
    assert states["greenlens.Inference"][1] == "RUNNING", states
    resumed = [r for r in container.results(6) if r["captured_at"] > rolled_back_at]
    assert resumed, "no result captured after the rollback"
    assert {r["model"]["version"] for r in resumed} == {MODEL_VERSION}
    assert all(r["verdict"]["present"] for r in resumed), [r["verdict"] for r in resumed]


@pytest.mark.parametrize(("setting", "message"), [
    ("GREENLENS_PAGE_PORT=http", "GREENLENS_PAGE_PORT: 'http': expected a TCP port number 1..65535"),
    ("GREENLENS_APP_VERSION=9.9.9", "GREENLENS_APP_VERSION: '9.9.9': not built; available: 1.0.0"),
    ("GREENLENS_CONFIG={not json", "GREENLENS_CONFIG: not JSON"),
])
def test_a_bad_setting_stops_the_container_with_one_clear_line(image: str, setting: str, message: str) -> None:
    result = run("docker", "run", "--rm", "--network", "none", "-e", setting, image, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"greenlens: {message}"), result.stderr


# ------------------------------------------------------------------------------------------------ compose


@pytest.fixture(scope="module")
def compose(engine: None) -> list[str]:
    """docker compose v2 when the client has it, else Debian's docker-compose 1.29."""
    if run("docker", "compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is None and os.geteuid() == 0:
        run(str(REPO / "scripts" / "apt-ensure.sh"), "docker-compose", timeout=600)
    if shutil.which("docker-compose") is None:
        _unavailable("neither `docker compose` nor docker-compose is installed")
    return ["docker-compose"]


def test_compose_up_starts_the_graph_with_a_broker_and_the_page_is_reachable(
        compose: list[str], image: str, hot_dogs: Path) -> None:
    project = f"greenlens-test-{os.getpid()}"
    page_port, mqtt_port = free_port(), free_port()
    env = {"GREENLENS_MEDIA": str(hot_dogs), "GREENLENS_SOURCE": "/media/greenlens",
           "GREENLENS_PAGE_PORT": str(page_port), "GREENLENS_MQTT_PORT": str(mqtt_port),
           "GREENLENS_MQTT_BROKER": f"mqtt://127.0.0.1:{mqtt_port}", "GREENLENS_THING_NAME": THING,
           "GREENLENS_IMAGE": image}
    base = [*compose, "-f", str(REPO / "simulator" / "compose.yaml"), "-p", project, "--profile", "mqtt"]
    config = run(*base, "config", env=env).stdout
    assert "network_mode: host" in config and "shm_size" in config

    try:
        run(*base, "up", "-d", "--no-build", env=env, timeout=300)
        subscriber = wait_for("the compose broker accepting a subscriber",
                              lambda: _try_subscribe(mqtt_port), timeout=60)
        try:
            deadline = time.monotonic() + 300
            while True:  # hot dog results reach the compose file's broker through ggsim's bridge
                topic, message = subscriber.next(deadline)
                if topic == f"greenlens/{THING}/results":
                    break
            assert message["verdict"]["label"] == "hotdog" and message["verdict"]["present"], message
        finally:
            subscriber.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{page_port}/healthz", timeout=10) as health:
            assert json.load(health)["status"] == "ok"
    finally:
        logs = run(*base, "logs", "--tail", "30", env=env, check=False)
        print(logs.stdout, logs.stderr)
        run(*base, "down", "--remove-orphans", "--timeout", "30", env=env, timeout=180)
    left = run("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").stdout
    assert left.strip() == ""


def _try_subscribe(port: int) -> Subscriber | None:
    try:
        return Subscriber(port, "greenlens/#")
    except (OSError, queue.Empty):
        return None
