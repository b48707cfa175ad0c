"""AWS IoT Core as the nucleus's MQTT connection sees it: an embedded stand-in or a real broker.

`make_iotcore(None)` gives the in-process `EmbeddedBroker` (MQTT topic semantics, retained messages,
everything published kept for inspection); `make_iotcore("mqtt://127.0.0.1:1883")` a `MqttBridge` to a
real broker. Both offer the same small interface (`IotCore`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    user_properties: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    payload_format: int | None = None
    message_expiry_interval: int | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    timestamp: float = field(default=0.0, compare=False)


class IotCoreError(Exception):
    """A publish or subscribe IoT Core refused or could not take; the message says why."""


MessageCallback = Callable[[MqttMessage], None]


class Subscription(Protocol):
    def cancel(self) -> None: ...


class IotCore(Protocol):
    @property
    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, message: MqttMessage) -> None: ...

    async def subscribe(self, topic_filter: str, qos: int, callback: MessageCallback) -> Subscription: ...

    def observe(self, callback: MessageCallback) -> Callable[[], None]:
        """Call back for every message published to IoT Core by the device (for tests and the CLI)."""
        ...


def make_iotcore(broker_url: str | None = None, *, client_id: str = "ggsim-core",
                 will: MqttMessage | None = None) -> IotCore:
    """The embedded stand-in, or a bridge to ``broker_url`` with ``will`` as its MQTT last will."""
    if not broker_url:
        from .broker import EmbeddedBroker

        return EmbeddedBroker()
    from .bridge import MqttBridge

    return MqttBridge(broker_url, client_id=client_id, will=will)
