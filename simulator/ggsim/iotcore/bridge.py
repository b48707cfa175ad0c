"""IoT Core as a real MQTT broker (e.g. Mosquitto on loopback), through paho-mqtt with MQTT 5.

Like the nucleus's MQTT client: QoS 1 publishes made while offline wait in a bounded spool and go out in
order on reconnect; QoS 0 publishes while offline are refused; subscriptions are renewed on reconnect.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import IotCoreError, MessageCallback, MqttMessage
from .topics import matches

log = logging.getLogger("ggsim.iotcore")

DEFAULT_SPOOL_BYTES = 2_621_440  # the nucleus spooler's default maxSizeInBytes


class _Sub:
    def __init__(self, bridge: MqttBridge, topic_filter: str, qos: int, callback: MessageCallback) -> None:
        self.bridge = bridge
        self.topic_filter = topic_filter
        self.qos = qos
        self.callback = callback

    def cancel(self) -> None:
        self.bridge._remove(self)


class MqttBridge:
    def __init__(self, url: str, *, client_id: str = "ggsim-core", spool_bytes: int = DEFAULT_SPOOL_BYTES,
                 connect_timeout: float = 10.0, will: MqttMessage | None = None) -> None:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"MQTT broker URL {url!r}: scheme must be mqtt:// (got {parsed.scheme!r})")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 1883
        self.url = f"mqtt://{self.host}:{self.port}"
        self.connect_timeout = connect_timeout
        self.spool_bytes = spool_bytes
        self._spool: collections.deque[MqttMessage] = collections.deque()
        self._spooled_bytes = 0
        self.spool_dropped = 0
        self._subs: list[_Sub] = []
        self._observers: list[MessageCallback] = []
        self._pending_subacks: dict[int, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=paho.MQTTv5)
        self._client.reconnect_delay_set(min_delay=1, max_delay=8)
        if will is not None:  # the broker publishes it when the connection is lost without a DISCONNECT
            self._client.will_set(will.topic, will.payload, will.qos, will.retain)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ---- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        try:
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
        except TimeoutError:
            log.warning("IoT Core bridge: %s not reachable yet; publishes are spooled until it is", self.url)

    async def stop(self, timeout: float = 2.0) -> None:
        """Disconnect cleanly, so that the broker does not publish the last will: end every subscription and
        wait for the broker's answers to all (UN)SUBSCRIBEs (an answer arriving after we closed the socket
        makes the broker see a broken connection before it reads our DISCONNECT), send DISCONNECT and wait
        until paho has written it, then stop paho's thread (stopping it at once may close the socket before
        the DISCONNECT is written)."""
        if self.connected:
            for sub in list(self._subs):
                sub.cancel()
            pending = [f for f in self._pending_subacks.values() if not f.done()]
            if pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout)
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._disconnected.wait(), timeout)
        else:
            self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # ---- paho callbacks (paho's thread) → the loop

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object,
                    props: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("IoT Core bridge: %s refused the connection: %s", self.url, reason)
            return
        self._call(self._connected_on_loop)

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, reason: object,
                       props: object = None) -> None:
        self._call(self._disconnected_on_loop, str(reason))

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        user = tuple(getattr(props, "UserProperty", None) or ())
        message = MqttMessage(
            topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos, retain=bool(msg.retain),
            user_properties=tuple((str(k), str(v)) for k, v in user),
            content_type=getattr(props, "ContentType", None),
            payload_format=getattr(props, "PayloadFormatIndicator", None),
            message_expiry_interval=getattr(props, "MessageExpiryInterval", None),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation_data=getattr(props, "CorrelationData", None), timestamp=time.time())
        self._call(self._deliver, message)

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reasons: list[object],
                      props: object = None) -> None:
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        self._call(self._suback, mid, "; ".join(failed) or None)

    def _on_unsubscribe(self, client: paho.Client, userdata: object, mid: int, reasons: object,
                        props: object = None) -> None:
        self._call(self._suback, mid, None)

    # ---- on the loop

    def _connected_on_loop(self) -> None:
        log.info("IoT Core bridge connected to %s", self.url)
        self._connected.set()
        self._disconnected.clear()
        for sub in self._subs:
            self._client.subscribe(sub.topic_filter, qos=sub.qos)
        while self._spool and self.connected:
            message = self._spool.popleft()
            self._spooled_bytes -= len(message.payload)
            self._send(message)

    def _disconnected_on_loop(self, reason: str) -> None:
        if self._connected.is_set():
            log.warning("IoT Core bridge lost %s: %s", self.url, reason)
        self._connected.clear()
        self._disconnected.set()

    def _deliver(self, message: MqttMessage) -> None:
        for sub in list(self._subs):
            if matches(sub.topic_filter, message.topic):
                sub.callback(message)

    def _suback(self, mid: int, failure: str | None) -> None:
        future = self._pending_subacks.pop(mid, None)
        if future is not None and not future.done():
            if failure:
                future.set_exception(IotCoreError(failure))
            else:
                future.set_result(None)

    # ---- interface

    def _send(self, message: MqttMessage) -> None:
        props = Properties(PacketTypes.PUBLISH)
        has_props = False
        for key, value in message.user_properties:
            props.UserProperty = (key, value)
            has_props = True
        for attr, value in (("ContentType", message.content_type),
                            ("PayloadFormatIndicator", message.payload_format),
                            ("MessageExpiryInterval", message.message_expiry_interval),
                            ("ResponseTopic", message.response_topic),
                            ("CorrelationData", message.correlation_data)):
            if value is not None:
                setattr(props, attr, value)
                has_props = True
        self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain,
                             properties=props if has_props else None)

    async def publish(self, message: MqttMessage) -> None:
        for observer in list(self._observers):
            observer(message)
        if self.connected:
            self._send(message)
            return
        if message.qos == 0:
            raise IotCoreError("Device is offline. Dropping QoS 0 message.")
        if self._spooled_bytes + len(message.payload) > self.spool_bytes:
            self.spool_dropped += 1
            raise IotCoreError(f"the spool is full ({self.spool_bytes} bytes); message not queued")
        self._spool.append(message)
        self._spooled_bytes += len(message.payload)

    async def subscribe(self, topic_filter: str, qos: int, callback: MessageCallback) -> _Sub:
        sub = _Sub(self, topic_filter, qos, callback)
        self._subs.append(sub)
        if not self.connected:
            return sub  # renewed on connect
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        result, mid = self._client.subscribe(topic_filter, qos=qos)
        if result != paho.MQTT_ERR_SUCCESS:
            self._subs.remove(sub)
            raise IotCoreError(paho.error_string(result))
        self._pending_subacks[mid] = future
        try:
            await asyncio.wait_for(future, 10.0)
        except (IotCoreError, TimeoutError) as exc:
            self._subs.remove(sub)
            raise IotCoreError(str(exc) or "no SUBACK within 10 s") from None
        return sub

    def _remove(self, sub: _Sub) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            if self.connected and not any(s.topic_filter == sub.topic_filter for s in self._subs):
                result, mid = self._client.unsubscribe(sub.topic_filter)
                if result == paho.MQTT_ERR_SUCCESS and self._loop is not None:
                    self._pending_subacks[mid] = self._loop.create_future()  # stop() waits for its UNSUBACK

    def observe(self, callback: MessageCallback) -> Callable[[], None]:
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None
