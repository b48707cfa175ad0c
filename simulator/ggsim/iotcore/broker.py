"""The embedded IoT Core stand-in: an in-process MQTT topic space with retained messages."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from . import MessageCallback, MqttMessage
from .topics import matches


class _Sub:
    def __init__(self, broker: EmbeddedBroker, topic_filter: str, callback: MessageCallback) -> None:
        self.broker = broker
        self.topic_filter = topic_filter
        self.callback = callback

    def cancel(self) -> None:
        if self in self.broker._subs:
            self.broker._subs.remove(self)


class EmbeddedBroker:
    """What the device publishes is delivered to matching subscribers and kept in `history`."""

    def __init__(self, history: int = 1_000) -> None:
        self._subs: list[_Sub] = []
        self._observers: list[MessageCallback] = []
        self.retained: dict[str, MqttMessage] = {}
        self.history: collections.deque[MqttMessage] = collections.deque(maxlen=history)

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._subs.clear()

    async def publish(self, message: MqttMessage) -> None:
        self.inject(message)

    def inject(self, message: MqttMessage) -> None:
        """A message arriving at IoT Core (from the device or, in tests, from 'the cloud')."""
        if not message.timestamp:
            message = MqttMessage(**{**message.__dict__, "timestamp": time.time()})
        self.history.append(message)
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        for observer in list(self._observers):
            observer(message)
        for sub in list(self._subs):
            if matches(sub.topic_filter, message.topic):
                sub.callback(message)

    async def subscribe(self, topic_filter: str, qos: int, callback: MessageCallback) -> _Sub:
        sub = _Sub(self, topic_filter, callback)
        self._subs.append(sub)
        for message in list(self.retained.values()):
            if matches(topic_filter, message.topic):
                callback(message)
        return sub

    def observe(self, callback: MessageCallback) -> Callable[[], None]:
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None
