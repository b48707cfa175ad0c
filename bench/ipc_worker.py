"""A pub/sub load worker for the IPC benchmark: ggsim through awsiotsdk, or Mosquitto through paho.

    python -m bench.ipc_worker {ggsim|mqtt} sub TOPIC EXPECTED
    python -m bench.ipc_worker {ggsim|mqtt} pub TOPIC COUNT SIZE RATE   (RATE 0 = as fast as possible)

Payloads start with (seq, send time); a subscriber prints READY once subscribed, then one JSON line with
what it received and each message's latency. Both transports get the same worker, so they compare.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
import time
from collections import deque

HEADER = struct.Struct(">qd")


class Counter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def got(self, payload: bytes) -> None:
        now = time.time()
        _, sent = HEADER.unpack_from(payload)
        with self.lock:
            if not self.count:
                self.first = now
            self.count += 1
            self.last = now
            self.latencies.append(now - sent)
            if self.count >= self.expected:
                self.done.set()

    def report(self) -> None:
        print(json.dumps({"count": self.count, "first": self.first, "last": self.last,
                          "latencies": self.latencies}), flush=True)


def ggsim_client():  # noqa: ANN201 - the SDK's types
    from awsiot.greengrasscoreipc import connect
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    return GreengrassCoreIPCClientV2(client=connect(timeout=10))


def mqtt_client():  # noqa: ANN201
    import paho.mqtt.client as paho

    host, port = os.environ["BENCH_MQTT"].rsplit(":", 1)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect(host, int(port))
    client.loop_start()
    connected.wait(10)
    return client


def subscribe(transport: str, topic: str, expected: int) -> None:
    counter = Counter(expected)
    if transport == "ggsim":
        from awsiot.greengrasscoreipc.model import ReceiveMode

        ipc = ggsim_client()
        ipc.subscribe_to_topic(topic=topic, receive_mode=ReceiveMode.RECEIVE_ALL_MESSAGES,
                               on_stream_event=lambda e: counter.got(e.binary_message.message))
    else:
        client = mqtt_client()
        subscribed = threading.Event()
        client.on_message = lambda c, u, m: counter.got(m.payload)
        client.on_subscribe = lambda *a: subscribed.set()
        client.subscribe(topic, qos=0)
        subscribed.wait(10)
    print("READY", flush=True)
    # Stop at the expected count, or when the stream has gone quiet (messages may be dropped by design).
    while not counter.done.wait(0.5):
        if counter.count and time.time() - counter.last > 3:
            break
        if not counter.count and sys.stdin.closed:
            break
    counter.report()
    os._exit(0)


def publish(transport: str, topic: str, count: int, size: int, rate: float) -> None:
    filler = b"x" * max(0, size - HEADER.size)
    interval = 1.0 / rate if rate > 0 else 0.0
    start = time.time()
    if transport == "ggsim":
        from awsiot.greengrasscoreipc.model import BinaryMessage, PublishMessage

        ipc = ggsim_client()
        window: deque = deque()
        for seq in range(count):
            if interval:
                delay = start + seq * interval - time.time()
                if delay > 0:
                    time.sleep(delay)
            payload = HEADER.pack(seq, time.time()) + filler
            window.append(ipc.publish_to_topic_async(
                topic=topic, publish_message=PublishMessage(binary_message=BinaryMessage(message=payload))))
            while len(window) > (64 if not interval else 4):
                window.popleft().result(30)
        for future in window:
            future.result(30)
    else:
        client = mqtt_client()
        for seq in range(count):
            if interval:
                delay = start + seq * interval - time.time()
                if delay > 0:
                    time.sleep(delay)
            info = client.publish(topic, HEADER.pack(seq, time.time()) + filler, qos=0)
            if seq % 64 == 0:
                info.wait_for_publish(30)
        client.loop_stop()
    print(json.dumps({"sent": count, "elapsed": time.time() - start}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    transport, role, topic, *rest = sys.argv[1:]
    if role == "sub":
        subscribe(transport, topic, int(rest[0]))
    else:
        publish(transport, topic, int(rest[0]), int(rest[1]), float(rest[2]))
