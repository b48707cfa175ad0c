"""PublishToIoTCore / SubscribeToIoTCore: the embedded stand-in and the bridge to a real Mosquitto."""

from __future__ import annotations

import base64
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.ipc.conftest import Core
from tests.support.agents import IpcCallError
from tests.support.mosquitto import Mosquitto

MQTT_ALL = {"aws.greengrass.ipc.mqttproxy": {"all": {"operations": ["*"], "resources": ["*"]}}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_publish_reaches_the_embedded_iot_core_with_qos_retain_and_user_properties(core: Core, api: str) -> None:
    seen: queue.Queue = queue.Queue()
    core.call_soon(lambda: core.host.iotcore.observe(seen.put))
    comp = core.component("test.Pub", {"accessControl": MQTT_ALL}, api=api)
    comp.call("publish_to_iot_core", {"topicName": "greenlens/thing-1/results", "qos": "1", "retain": True,
                                       "payload": b64(b'{"verdict":"hotdog"}'),
                                       "userProperties": [{"key": "schema", "value": "greenlens.result/1"}]})
    message = seen.get(timeout=5)
    assert message.topic == "greenlens/thing-1/results"
    assert message.payload == b'{"verdict":"hotdog"}'
    assert (message.qos, message.retain) == (1, True)
    assert message.user_properties == (("schema", "greenlens.result/1"),)


def test_subscriber_gets_retained_and_new_messages_with_mqtt_wildcards(core: Core) -> None:
    pub = core.component("test.Pub", {"accessControl": MQTT_ALL})
    sub = core.component("test.Sub", {"accessControl": MQTT_ALL})
    pub.call("publish_to_iot_core", {"topicName": "cmd/a", "qos": "0", "retain": True, "payload": b64(b"r")})
    stream, response = sub.call("subscribe_to_iot_core", {"topicName": "cmd/#", "qos": "1"})
    assert response == {}
    retained = sub.next_event(stream)["event"]["message"]
    assert (retained["topicName"], base64.b64decode(retained["payload"]), retained["retain"]) == ("cmd/a", b"r", True)
    pub.call("publish_to_iot_core", {"topicName": "cmd/b/c", "qos": "0", "payload": b64(b"x"),
                                      "contentType": "text/plain"})
    event = sub.next_event(stream)["event"]["message"]
    assert event["topicName"] == "cmd/b/c" and event["contentType"] == "text/plain"
    assert event["payloadFormat"] == "0"


@pytest.mark.parametrize(("request_", "error", "text"), [
    ({"topicName": "a/#", "qos": "0", "payload": ""}, "ServiceError", "wildcards"),
    ({"topicName": "a/" + "b/" * 8 + "c", "qos": "0", "payload": ""}, "ServiceError", "forward slashes"),
    ({"topicName": "big", "qos": "0", "payload": b64(b"x" * 131073)}, "ServiceError", "131072"),
    ({"topicName": "t", "payload": ""}, "InvalidArgumentsError", "QoS is required"),
    ({"topicName": "t", "qos": "0"}, "InvalidArgumentsError", "Payload is required"),
])
def test_iot_core_limits_are_enforced(core: Core, request_: dict, error: str, text: str) -> None:
    comp = core.component("test.Pub", {"accessControl": MQTT_ALL})
    with pytest.raises(IpcCallError) as err:
        comp.call("publish_to_iot_core", request_)
    assert err.value.type == error and text in err.value.message


def test_mqtt_policies_use_mqtt_wildcards(core: Core) -> None:
    policy = {"aws.greengrass.ipc.mqttproxy": {"p": {"operations": ["aws.greengrass#PublishToIoTCore"],
                                                     "resources": ["greenlens/+/results/#"]}}}
    comp = core.component("test.Pub", {"accessControl": policy})
    comp.call("publish_to_iot_core", {"topicName": "greenlens/t1/results", "qos": "0", "payload": ""})
    comp.call("publish_to_iot_core", {"topicName": "greenlens/t1/results/x/y", "qos": "0", "payload": ""})
    with pytest.raises(IpcCallError) as err:
        comp.call("publish_to_iot_core", {"topicName": "greenlens/t1/events", "qos": "0", "payload": ""})
    assert err.value.type == "UnauthorizedError" and "greenlens/t1/events" in err.value.message


# ----------------------------------------------------------------------------- bridged to Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture
def bridged(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Core]:
    c = Core(tmp_path / "core", broker_url=mosquitto.url)
    yield c
    c.close()


def paho_client(broker: Mosquitto) -> tuple[paho.Client, queue.Queue]:
    received: queue.Queue = queue.Queue()
    connected = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = lambda c, u, m: received.put(m)
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert connected.wait(5)
    return client, received


def test_bridge_carries_publishes_to_mosquitto_and_back(bridged: Core, mosquitto: Mosquitto, api: str) -> None:
    client, received = paho_client(mosquitto)
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe("greenlens/#", qos=1)
    assert subscribed.wait(5)
    comp = bridged.component("test.Pub", {"accessControl": MQTT_ALL}, api=api)
    comp.call("publish_to_iot_core", {"topicName": "greenlens/t/events", "qos": "1", "payload": b64(b"appeared"),
                                       "userProperties": [{"key": "k", "value": "v"}]})
    message = received.get(timeout=5)
    assert (message.topic, message.payload) == ("greenlens/t/events", b"appeared")
    assert message.properties.UserProperty == [("k", "v")]

    stream, _ = comp.call("subscribe_to_iot_core", {"topicName": "greenlens/t/config", "qos": "1"})
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("origin", "cloud")
    client.publish("greenlens/t/config", b"threshold=0.2", qos=1, properties=props)
    event = comp.next_event(stream)["event"]["message"]
    assert base64.b64decode(event["payload"]) == b"threshold=0.2"
    assert event["userProperties"] == [{"key": "origin", "value": "cloud"}]
    client.loop_stop()
    client.disconnect()


def test_bridge_spools_qos1_while_the_broker_is_down_and_refuses_qos0(bridged: Core, mosquitto: Mosquitto) -> None:
    # A persistent-session subscriber stands for the cloud side: the broker keeps its messages.
    received: queue.Queue = queue.Queue()
    subscribed = threading.Event()

    def cloud_client() -> paho.Client:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cloud", clean_session=False,
                             protocol=paho.MQTTv311)
        client.on_message = lambda c, u, m: received.put(m.payload)
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        return client

    cloud = cloud_client()
    cloud.subscribe("t/#", qos=1)
    assert subscribed.wait(5)
    cloud.loop_stop()
    cloud.disconnect()

    comp = bridged.component("test.Pub", {"accessControl": MQTT_ALL})
    bridge = bridged.host.iotcore
    mosquitto.stop()
    bridged.run(wait_until(lambda: not bridge.connected))
    with pytest.raises(IpcCallError) as err:
        comp.call("publish_to_iot_core", {"topicName": "t/q0", "qos": "0", "payload": b64(b"lost")})
    assert "offline" in err.value.message
    for i in range(3):
        comp.call("publish_to_iot_core", {"topicName": "t/q1", "qos": "1", "payload": b64(f"m{i}".encode())})
    mosquitto.start()
    bridged.run(wait_until(lambda: bridge.connected, timeout=20))
    comp.call("publish_to_iot_core", {"topicName": "t/q1", "qos": "1", "payload": b64(b"marker")})
    cloud = cloud_client()
    payloads = []
    while not payloads or payloads[-1] != b"marker":
        payloads.append(received.get(timeout=10))
    assert payloads == [b"m0", b"m1", b"m2", b"marker"]  # spooled in order, nothing lost but the QoS 0
    cloud.loop_stop()
    cloud.disconnect()


async def wait_until(predicate, timeout: float = 10.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)
