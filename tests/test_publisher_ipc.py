"""greenlens.StreamPublisher as a process under ggsim's real IPC server: local pub/sub in, IoT Core out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from greenlens_common import messages, topics
from greenlens_common.ipc import Ipc

from devsupport.ports import free_port
from tests.ipc.conftest import Core
from tests.support.mosquitto import Mosquitto
from tests.support.publisher import Feeder, http_json, start_publisher, stop_publisher, wait_until

THING = "test-thing-7"
NAME = "greenlens.StreamPublisher"


def access_control(*prefixes: str) -> dict[str, Any]:
    """What the recipe grants greenlens.StreamPublisher (prefixes: the topic prefixes it may publish under)."""
    mqtt = [f"{p}/{THING}/{kind}" for p in prefixes for kind in ("results", "events")]
    return {
        "aws.greengrass.ipc.pubsub": {f"{NAME}:pubsub:1": {
            "policyDescription": "frame descriptors, results and events of the other components",
            "operations": ["aws.greengrass#SubscribeToTopic"],
            "resources": [topics.FRAMES, topics.RESULTS, topics.EVENTS]}},
        "aws.greengrass.ipc.mqttproxy": {f"{NAME}:mqttproxy:1": {
            "policyDescription": "results and events to AWS IoT Core",
            "operations": ["aws.greengrass#PublishToIoTCore"], "resources": mqtt}},
    }


FEEDER_ACL = {"aws.greengrass.ipc.pubsub": {"feeder": {"operations": ["aws.greengrass#PublishToTopic"],
                                                       "resources": ["*"]}}}


class IotCoreLog:
    """Every PublishToIoTCore the embedded IoT Core (or the bridge) sees, with whether it was delivered."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.cond = threading.Condition()
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.times: list[float] = []
        """time.monotonic() of each message, in the same order."""
        core.call_soon(lambda: core.host.iotcore.observe(self._seen))

    def _seen(self, message: Any) -> None:
        delivered = self.core.host.iotcore.connected  # publish() sends right after its observers, if connected
        with self.cond:
            self.messages.append((message.topic, json.loads(message.payload), delivered))
            self.times.append(time.monotonic())
            self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float = 30, what: str = "messages") -> list[tuple[str, dict, bool]]:
        with self.cond:
            ok = self.cond.wait_for(lambda: predicate(self.messages), timeout)
            assert ok, f"timed out waiting for {what}; IoT Core saw {[(t, m.get('seq', m.get('kind'))) for t, m, _ in self.messages]}"
            return list(self.messages)


def register(core: Core, name: str, config: dict[str, Any]) -> str:
    def go() -> str:
        core.host.config.merge(name, config)
        return core.host.tokens.issue(name)

    return core.call_soon(go)


def wait_state(core: Core, state: str, timeout: float = 30) -> bool:
    with core.host.state_changed:
        return core.host.state_changed.wait_for(lambda: state in core.host.states.get(NAME, []), timeout)


def events(msgs: list[tuple[str, dict, bool]], topic: str) -> list[str]:
    return [m["kind"] for t, m, _ in msgs if t == topic]


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    c = Core(tmp_path)
    yield c
    c.close()


@pytest.fixture
def setup(core: Core, tmp_path: Path) -> Iterator[tuple[Core, Feeder, Ipc, Path]]:
    ring_dir = tmp_path / "shm"
    ring_dir.mkdir()
    feeder = Feeder(ring_dir)
    feeder_ipc = Ipc.connect(timeout=10, socket_path=str(core.host.socket_path),
                             token=register(core, "test.Feeder", {"accessControl": FEEDER_ACL}))
    yield core, feeder, feeder_ipc, ring_dir
    feeder_ipc.close()
    feeder.close()


def run_publisher(core: Core, tmp_path: Path, ring_dir: Path, config: dict[str, Any]) -> Any:
    token = register(core, NAME, config)
    env = {"SVCUID": token, "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(core.host.socket_path),
           "AWS_IOT_THING_NAME": THING, "GREENLENS_RING_DIR": str(ring_dir)}
    return start_publisher(tmp_path / "work", env=env)


def test_results_and_debounced_events_reach_iot_core_and_configuration_updates_apply(setup: Any,
                                                                                      tmp_path: Path) -> None:
    core, feeder, feeder_ipc, ring_dir = setup
    iot = IotCoreLog(core)
    port = free_port()
    proc = run_publisher(core, tmp_path, ring_dir, {
        "port": port, "debounceResults": 3, "resultsPerSecond": 1000, "accessControl": access_control("greenlens", "acme")})
    results_topic, events_topic = f"greenlens/{THING}/results", f"greenlens/{THING}/events"
    try:
        assert wait_state(core, "RUNNING"), "it reports RUNNING once it serves"

        def step(present: bool) -> dict[str, Any]:
            frame = feeder.frame()
            feeder_ipc.publish_json(topics.FRAMES, frame)
            result = feeder.result(frame, present)
            feeder_ipc.publish_json(topics.RESULTS, result)
            return result

        for _ in range(2):
            step(True)
        msgs = iot.wait(lambda ms: sum(t == results_topic for t, _, _ in ms) >= 2, what="two results")
        assert events(msgs, events_topic) == [], "two hot dog results are not enough (k=3)"
        step(True)
        msgs = iot.wait(lambda ms: "appeared" in events(ms, events_topic)
                        and sum(t == results_topic for t, _, _ in ms) >= 3, what="the 'appeared' event")
        appeared = next(m for t, m, _ in msgs if t == events_topic)
        assert appeared["schema"] == "greenlens.event/1" and appeared["label"] == "hotdog"
        assert appeared["component"] == NAME and appeared["counters"]["seq"] == 3
        assert "hotdog appeared" in appeared["detail"]
        sent = [m for t, m, _ in msgs if t == results_topic]
        assert [m["seq"] for m in sent] == [1, 2, 3] and sent[0]["verdict"]["present"] is True
        assert all(m["schema"] == "greenlens.result/1" and m["window"]["results"] == 1 for m in sent)

        for _ in range(2):
            step(False)
        step(True)  # an interruption: the run of "absent" restarts
        for _ in range(2):
            step(False)
        msgs = iot.wait(lambda ms: sum(t == results_topic for t, _, _ in ms) >= 8, what="eight results")
        assert events(msgs, events_topic) == ["appeared"]
        step(False)
        msgs = iot.wait(lambda ms: "gone" in events(ms, events_topic), what="the 'gone' event")
        assert events(msgs, events_topic) == ["appeared", "gone"]

        status = wait_until(lambda: (s := http_json(f"http://127.0.0.1:{port}/api/status"))
                            ["results"]["processed"] >= 9 and s, 10, "the status to count 9 results processed")
        assert status["frames"]["received"] == 9 and status["results"]["latency_ms"]["samples"] == 9
        assert status["last_result"]["text"] == "NOT HOTDOG 0.10"
        assert status["iot_core"]["online"] is True and status["iot_core"]["spool"]["messages"] == 0
        assert status["iot_core"]["results_topic"] == results_topic
        assert http_json(f"http://127.0.0.1:{port}/healthz")["status"] == "ok"

        # Another component's event goes to IoT Core as it is.
        lost = messages.event_message(component="greenlens.Capture", kind="source_lost", detail="camera gone")
        feeder_ipc.publish_json(topics.EVENTS, lost)
        msgs = iot.wait(lambda ms: "source_lost" in events(ms, events_topic), what="the forwarded event")
        assert next(m for t, m, _ in msgs if t == events_topic and m["kind"] == "source_lost") == lost

        # A configuration update, no restart: a new prefix, k=1 and a new port.
        new_port = free_port()
        core.call_soon(lambda: core.host.config.merge(NAME, {"topicPrefix": "acme", "debounceResults": 1.0,
                                                             "port": float(new_port)}))
        status = wait_until(lambda: http_json(f"http://127.0.0.1:{new_port}/api/status"), 20, "the new port")
        assert status["config"]["topicPrefix"] == "acme" and status["frames"]["received"] == 9, "same process"
        step(True)
        iot.wait(lambda ms: "appeared" in events(ms, f"acme/{THING}/events")
                 and any(t == f"acme/{THING}/results" and m["seq"] == 10 for t, m, _ in ms),
                 what="result 10 and 'appeared' (k=1) under acme/")
        assert proc.poll() is None
    finally:
        log = stop_publisher(proc, tmp_path / "work")
    assert "ERROR" not in log, log


def test_the_project_stream_shows_the_result_drawn_on_its_own_frame(setup: Any, tmp_path: Path) -> None:
    core, feeder, feeder_ipc, ring_dir = setup
    port = free_port()
    proc = run_publisher(core, tmp_path, ring_dir, {"port": port, "accessControl": access_control("greenlens")})
    try:
        assert wait_state(core, "RUNNING")
        frames = [feeder.frame() for _ in range(2)]
        for frame in frames:
            feeder_ipc.publish_json(topics.FRAMES, frame)
        feeder_ipc.publish_json(topics.RESULTS, feeder.result(frames[0], True))  # for the older frame
        status = wait_until(lambda: (s := http_json(f"http://127.0.0.1:{port}/api/status"))
                            ["results"]["annotated"] >= 1 and s, 20, "an annotated frame")
        assert status["results"]["on_newer_frame"] == 0, "frame 1 is still in the ring: drawn on its own frame"
        project = first_jpeg(port, "project")
        raw = feeder.images[0]
        assert project.shape == raw.shape
        banner = np.abs(project[:30].astype(int) - raw[:30]).mean()
        below = np.abs(project[150:].astype(int) - raw[150:]).mean()
        assert banner > 40 and below < 8, "the verdict banner is drawn over frame 1 (not frame 2) and the rest is it"

        # Overwrite frame 3's slot before its result comes: drawn on the newest frame, and counted.
        late = feeder.frame()
        feeder_ipc.publish_json(topics.FRAMES, late)
        for _ in range(4):
            feeder_ipc.publish_json(topics.FRAMES, feeder.frame())
        wait_until(lambda: http_json(f"http://127.0.0.1:{port}/api/status")["frames"]["received"] == 7, 20,
                   "all 7 frames to arrive before the late result")
        feeder_ipc.publish_json(topics.RESULTS, feeder.result(late, False))
        status = wait_until(lambda: (s := http_json(f"http://127.0.0.1:{port}/api/status"))
                            ["results"]["on_newer_frame"] >= 1 and s, 20, "the overwritten frame to be counted")
        assert status["last_result"]["seq"] == late["seq"]
    finally:
        stop_publisher(proc, tmp_path / "work")


def first_jpeg(port: int, stream: str) -> np.ndarray:
    """The first frame of an MJPEG stream, decoded."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream/{stream}.mjpg", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        headers = b""
        while not headers.endswith(b"\r\n\r\n"):
            headers += resp.read(1)
        length = int(next(line.split(b":")[1] for line in headers.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        image = cv2.imdecode(np.frombuffer(resp.read(length), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


# ------------------------------------------------------------------------------------- IoT Core unreachable


@pytest.fixture
def bridged(tmp_path: Path) -> Iterator[tuple[Core, Mosquitto]]:
    broker = Mosquitto(tmp_path)
    core = Core(tmp_path / "core", broker_url=broker.url)
    yield core, broker
    core.close()
    broker.stop()


def test_while_iot_core_is_unreachable_messages_are_spooled_on_disk_and_sent_in_order_later(
        bridged: tuple[Core, Mosquitto], tmp_path: Path) -> None:
    core, broker = bridged
    (tmp_path / "core").mkdir(exist_ok=True)
    ring_dir = tmp_path / "shm"
    ring_dir.mkdir()
    feeder = Feeder(ring_dir)
    feeder_ipc = Ipc.connect(timeout=10, socket_path=str(core.host.socket_path),
                             token=register(core, "test.Feeder", {"accessControl": FEEDER_ACL}))
    iot = IotCoreLog(core)
    port = free_port()
    proc = run_publisher(core, tmp_path, ring_dir, {  # retryMaxSeconds: the default
        "port": port, "debounceResults": 2, "resultsPerSecond": 1000,
        "spoolMaxMessages": 6, "accessControl": access_control("greenlens")})
    results_topic, events_topic = f"greenlens/{THING}/results", f"greenlens/{THING}/events"
    try:
        assert wait_state(core, "RUNNING")
        wait_until(lambda: core.host.iotcore.connected, 20, "the bridge to connect")

        def step(present: bool) -> None:
            frame = feeder.frame()
            feeder_ipc.publish_json(topics.FRAMES, frame)
            feeder_ipc.publish_json(topics.RESULTS, feeder.result(frame, present))

        step(False)
        iot.wait(lambda ms: any(d and t == results_topic for t, _, d in ms), what="a result while online")
        broker.stop()
        broker.proc.wait(10)  # type: ignore[union-attr]
        wait_until(lambda: not core.host.iotcore.connected, 20, "the bridge to notice the broker is gone")
        for present in (True, True, True, True, True, True, True, False):  # seq 2..9; "appeared" at seq 3
            step(present)

        def all_spooled() -> dict[str, Any] | None:
            sp = http_json(f"http://127.0.0.1:{port}/api/status")["iot_core"]["spool"]
            return sp if sp["messages"] + sum(sp["overflowed"].values()) == 9 else None

        spool = wait_until(all_spooled, 30, "the 9 messages (8 results, 1 event) to be spooled or overflow")
        assert spool["messages"] == 6, "bounded at spoolMaxMessages"
        assert spool["overflowed"] == {"result": 3}, "9 messages (8 results, 1 event) for 6 places"
        on_disk = sorted((tmp_path / "work" / "spool").glob("*.json"))
        assert len(on_disk) == 6, "the spool is on disk, in the component's work dir"

        # A long outage: the publisher tried often enough for its backoff to reach its longest wait.
        wait_until(lambda: http_json(f"http://127.0.0.1:{port}/api/status")["iot_core"]["send_failures"] >= 8, 60,
                   "8 failed attempts while the broker is down")
        outage_ended = time.monotonic()
        broker.start()
        wait_until(lambda: core.host.iotcore.connected, 30, "the bridge to reconnect")
        reconnected = time.monotonic()
        msgs = iot.wait(lambda ms: any(d and t == events_topic and m["kind"] == "spool_overflow"
                                       for t, m, d in ms), 60, "the spool to drain and the overflow event")
        with iot.cond:
            drained = iot.times[len(msgs) - 1]
    finally:
        stop_publisher(proc, tmp_path / "work")
        feeder_ipc.close()
        feeder.close()
    print(f"broker back -> bridge reconnected {reconnected - outage_ended:.2f} s; reconnected -> spool drained "
          f"{drained - reconnected:.2f} s")
    assert drained - reconnected < 4.0, "the spool drains within seconds of IoT Core being reachable again"
    delivered = [(t, m) for t, m, d in msgs if d]
    seqs = [m["seq"] for t, m in delivered if t == results_topic]
    assert seqs == [1, 5, 6, 7, 8, 9], "the oldest (2, 3, 4) overflowed; the rest in order, once each"
    kinds = [m["kind"] for t, m in delivered if t == events_topic]
    assert kinds == ["appeared", "spool_overflow"]
    overflow = next(m for t, m in delivered if t == events_topic and m["kind"] == "spool_overflow")
    assert overflow["counters"]["lost_total"] == 3 and overflow["counters"]["overflowed_result"] == 3
    order = [m.get("seq", m.get("kind")) for t, m in delivered]
    assert order.index("appeared") < order.index(5), "the event spooled after seq 4 stays before seq 5"


def test_without_a_thing_name_it_reports_errored_with_one_clear_line(core: Core, tmp_path: Path) -> None:
    token = register(core, NAME, {"port": free_port(), "accessControl": access_control("greenlens")})
    env = {"SVCUID": token, "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(core.host.socket_path)}
    proc = start_publisher(tmp_path / "work", env={**env, "AWS_IOT_THING_NAME": ""})
    assert proc.wait(30) == 2
    assert wait_state(core, "ERRORED")
    errors = [line for line in (tmp_path / "work" / "stderr.log").read_text().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "$AWS_IOT_THING_NAME is not set" in errors[0], errors


def test_an_access_control_without_the_local_topics_is_errored_with_one_clear_line(core: Core,
                                                                                   tmp_path: Path) -> None:
    acl = access_control("greenlens")
    del acl["aws.greengrass.ipc.pubsub"]
    token = register(core, NAME, {"port": free_port(), "accessControl": acl})
    env = {"SVCUID": token, "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(core.host.socket_path),
           "AWS_IOT_THING_NAME": THING}
    proc = start_publisher(tmp_path / "work", env=env)
    assert proc.wait(30) == 2
    assert wait_state(core, "ERRORED")
    errors = [line for line in (tmp_path / "work" / "stderr.log").read_text().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "cannot subscribe" in errors[0] and "greenlens/frames" in errors[0], errors
    assert "UnauthorizedError" in errors[0]


def test_bad_settings_are_rejected_before_a_deployment_applies_them_and_good_ones_accepted(
        core: Core, tmp_path: Path) -> None:
    port = free_port()
    proc = run_publisher(core, tmp_path, tmp_path, {"port": port, "accessControl": access_control("greenlens")})
    hub = core.host.validation_hub

    def validate(config: dict[str, Any], deployment: str) -> tuple[str, str]:
        proposed = {"port": port, **config, "accessControl": access_control("greenlens")}
        return core.run(hub.validate(NAME, proposed, deployment, 30), timeout=40)

    try:
        assert wait_state(core, "RUNNING")
        status, message = validate({"port": 70000}, "d-port")
        assert status == "REJECTED" and "port=70000" in message and "from 0 to 65535" in message
        status, message = validate({"snapshotBucket": "My_Bucket"}, "d-bucket")
        assert status == "REJECTED" and "snapshotBucket='My_Bucket'" in message and "S3 bucket name" in message
        status, message = validate({"snapshotMaxCount": -1}, "d-retention")
        assert status == "REJECTED" and "snapshotMaxCount=-1" in message
        status, message = validate({"snapshotKeyPrefix": "g/{thing}/"}, "d-prefix")
        assert status == "REJECTED" and "unknown: {thing}" in message
        status, message = validate({"s3EndpointUrl": "localhost:4566"}, "d-endpoint")
        assert status == "REJECTED" and "s3EndpointUrl" in message
        status, message = validate({"snapshotBucket": "greenlens-snapshots", "snapshotMaxBytes": 1 << 20,
                                    "s3EndpointUrl": "http://127.0.0.1:4566"}, "d-good")
        assert status == "ACCEPTED", message
        # Nothing was applied and nothing broke: still RUNNING, still on its port, the old settings in force.
        status_doc = http_json(f"http://127.0.0.1:{port}/api/status")
        assert status_doc["config"]["snapshotBucket"] == "" and status_doc["config"]["port"] == port
        assert core.host.states[NAME][-1] == "RUNNING" and "ERRORED" not in core.host.states[NAME]
    finally:
        stop_publisher(proc, tmp_path / "work")
