"""The AWS IoT Core MQTT proxy: PublishToIoTCore and SubscribeToIoTCore (spec §4.4)."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from ...iotcore import IotCoreError, MqttMessage
from ...iotcore.topics import filter_problem, publish_topic_problem
from ..errors import InvalidArgumentsError, ServiceError
from ..server import Call, Operation, Service

SERVICE_ID = "aws.greengrass.ipc.mqttproxy"
#: mqtt.maxMessageSizeInBytes default of the nucleus (IoT Core's 128 KB message limit).
MAX_PAYLOAD = 131072


def _qos(request: dict[str, Any]) -> int:
    qos = request.get("qos")
    if qos is None:
        raise InvalidArgumentsError("QoS is required")
    if str(qos) not in ("0", "1"):
        raise InvalidArgumentsError(f"Invalid QoS value: {qos}")
    return int(str(qos))


def _b64(value: Any, field: str) -> bytes:
    try:
        return base64.b64decode(value or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidArgumentsError(f"{field} must be standard base64") from None


def message_event(message: MqttMessage) -> dict[str, Any]:
    """IoTCoreMessage as the nucleus sends it (absent members left out)."""
    body: dict[str, Any] = {
        "topicName": message.topic,
        "payload": base64.b64encode(message.payload).decode(),
        "retain": message.retain,
        "payloadFormat": str(message.payload_format or 0),
    }
    if message.user_properties:
        body["userProperties"] = [{"key": k, "value": v} for k, v in message.user_properties]
    if message.message_expiry_interval is not None:
        body["messageExpiryIntervalSeconds"] = message.message_expiry_interval
    if message.correlation_data is not None:
        body["correlationData"] = base64.b64encode(message.correlation_data).decode()
    if message.response_topic is not None:
        body["responseTopic"] = message.response_topic
    if message.content_type is not None:
        body["contentType"] = message.content_type
    return {"message": body}


class IotCoreService(Service):
    def operations(self) -> list[Operation]:
        return [
            Operation("PublishToIoTCore", self.publish),
            Operation("SubscribeToIoTCore", self.subscribe, event_shape="IoTCoreMessage"),
        ]

    async def publish(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        topic = request.get("topicName")
        self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#PublishToIoTCore", topic)
        if not topic:
            raise InvalidArgumentsError("Topic is required")
        qos = _qos(request)
        if "payload" not in request:
            raise InvalidArgumentsError("Payload is required")
        payload = _b64(request.get("payload"), "payload")
        problem = publish_topic_problem(topic)
        if problem is None and len(payload) > MAX_PAYLOAD:
            problem = f"payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD} bytes"
        if problem:
            raise ServiceError(f"Publish to topic {topic} failed: {problem}")
        fmt = request.get("payloadFormat")
        message = MqttMessage(
            topic=topic, payload=payload, qos=qos, retain=bool(request.get("retain", False)),
            user_properties=tuple((str(p.get("key")), str(p.get("value")))
                                  for p in request.get("userProperties") or []),
            content_type=request.get("contentType"),
            payload_format=int(fmt) if fmt is not None else None,
            message_expiry_interval=request.get("messageExpiryIntervalSeconds"),
            response_topic=request.get("responseTopic"),
            correlation_data=_b64(request["correlationData"], "correlationData")
            if request.get("correlationData") is not None else None,
            timestamp=time.time())
        try:
            await self.backend.iotcore.publish(message)
        except IotCoreError as exc:
            raise ServiceError(f"Publish to topic {topic} failed: {exc}") from None
        return {}

    async def subscribe(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        topic = request.get("topicName")
        self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#SubscribeToIoTCore", topic)
        if not topic:
            raise InvalidArgumentsError("Topic is required")
        qos = _qos(request)
        problem = filter_problem(topic)
        if problem:
            raise ServiceError(f"Subscribe to topic {topic} failed with error {problem}")
        try:
            sub = await self.backend.iotcore.subscribe(topic, qos, lambda m: call.send_event(message_event(m)))
        except IotCoreError as exc:
            raise ServiceError(f"Subscribe to topic {topic} failed with error {exc}") from None
        call.on_close(sub.cancel)
        return {}
