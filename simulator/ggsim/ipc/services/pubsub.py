"""Local publish/subscribe: PublishToTopic and SubscribeToTopic (spec §4.3 and §6)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ggsim.nucleus.java_numbers import as_java_numbers

from ..errors import InvalidArgumentsError
from ..server import Call, IpcServer, Operation, Service

SERVICE_ID = "aws.greengrass.ipc.pubsub"
RECEIVE_ALL = "RECEIVE_ALL_MESSAGES"
RECEIVE_OTHERS = "RECEIVE_MESSAGES_FROM_OTHERS"


def split_levels(topic: str) -> list[str]:
    """Levels as the nucleus splits them (Java's split: trailing empty levels are dropped)."""
    levels = topic.split("/")
    while len(levels) > 1 and levels[-1] == "":
        levels.pop()
    return levels


def has_wildcard(topic_filter: str) -> bool:
    levels = split_levels(topic_filter)
    return "+" in levels or levels[-1] == "#"


def filter_matches(filter_levels: list[str], topic_levels: list[str]) -> bool:
    """Local pub/sub matching: `+` one level, a last `#` one or more levels (`a/#` does not match `a`)."""
    for i, level in enumerate(filter_levels):
        if level == "#" and i == len(filter_levels) - 1:
            return len(topic_levels) > i
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(eq=False)
class Subscription:
    topic_filter: str
    levels: list[str]
    component: str
    receive_all: bool
    deliver: Callable[[bytes], bool]


@dataclass(eq=False)
class _FilterNode:
    """One level of the subscription tree: the filters that end here, and those ending in `#` below it."""

    children: dict[str, _FilterNode] = field(default_factory=dict)
    ending: dict[Subscription, None] = field(default_factory=dict)
    multi_level: dict[Subscription, None] = field(default_factory=dict)  # filters "<path to here>/#"

    def empty(self) -> bool:
        return not (self.children or self.ending or self.multi_level)


class LocalBus:
    """The subscriptions of local pub/sub and the delivery of one publish to every matching one.

    Filters are kept in a tree of levels, so a publish visits only the branches its topic can match
    (its own levels, `+` and `#`): a client holding thousands of subscriptions on other topics does not
    slow every publish for everyone.
    """

    def __init__(self) -> None:
        self._root = _FilterNode()
        self.published = 0
        self.delivered = 0

    def add(self, sub: Subscription) -> Callable[[], None]:
        levels = sub.levels
        multi = levels[-1] == "#"
        path = levels[:-1] if multi else levels
        nodes = [self._root]
        for level in path:
            nodes.append(nodes[-1].children.setdefault(level, _FilterNode()))
        (nodes[-1].multi_level if multi else nodes[-1].ending)[sub] = None

        def remove() -> None:
            held = nodes[-1].multi_level if multi else nodes[-1].ending
            if held.pop(sub, 0) is not None:
                return
            for depth in range(len(path), 0, -1):  # prune the branches left empty
                if not nodes[depth].empty():
                    break
                parent = nodes[depth - 1]
                if parent.children.get(path[depth - 1]) is nodes[depth]:
                    del parent.children[path[depth - 1]]

        return remove

    def subscriptions(self) -> list[Subscription]:
        """Every subscription held."""
        found: list[Subscription] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            found += [*node.ending, *node.multi_level]
            stack += node.children.values()
        return found

    def matching(self, levels: list[str]) -> list[Subscription]:
        """The subscriptions whose filter matches a topic of these levels."""
        found: list[Subscription] = []
        stack = [(self._root, 0)]
        end = len(levels)
        while stack:
            node, i = stack.pop()
            if i == end:
                found += node.ending
                continue
            found += node.multi_level  # `#` matches one or more further levels
            for key in (levels[i], "+"):
                child = node.children.get(key)
                if child is not None:
                    stack.append((child, i + 1))
        return found

    def publish(self, topic: str, publisher: str, body_for: Callable[[], bytes]) -> int:
        """Deliver to every matching subscription; body_for() builds the event JSON once, lazily."""
        self.published += 1
        payload: bytes | None = None
        count = 0
        for sub in self.matching(split_levels(topic)):
            if not sub.receive_all and sub.component == publisher:
                continue
            if payload is None:
                payload = body_for()
            if sub.deliver(payload):
                count += 1
        self.delivered += count
        return count


class PubSubService(Service):
    def __init__(self, server: IpcServer) -> None:
        super().__init__(server)
        self.bus = LocalBus()

    def operations(self) -> list[Operation]:
        return [
            Operation("PublishToTopic", self.publish),
            Operation("SubscribeToTopic", self.subscribe, event_shape="SubscriptionResponseMessage"),
        ]

    def publish(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        topic = request.get("topic")
        self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#PublishToTopic", topic)
        if topic is None:
            raise InvalidArgumentsError("Publish topic must not be null")
        if not isinstance(topic, str):
            raise InvalidArgumentsError(f"Publish topic must be a string, got {type(topic).__name__}")
        if any(ch in topic for ch in "+#*"):
            raise InvalidArgumentsError("Publish topic must not contain a wildcard.")
        message = request.get("publishMessage")
        if not isinstance(message, dict):
            raise InvalidArgumentsError("publishMessage is required: one of jsonMessage or binaryMessage")
        context = {"topic": topic}
        if isinstance(message.get("jsonMessage"), dict):
            content = message["jsonMessage"].get("message")
            if content is not None and not isinstance(content, dict):
                raise InvalidArgumentsError("publishMessage.jsonMessage.message must be a JSON object")

            def body() -> bytes:
                return json.dumps({"jsonMessage": {"message": as_java_numbers(content), "context": context}},
                                  separators=(",", ":")).encode()
        elif isinstance(message.get("binaryMessage"), dict):
            data = message["binaryMessage"].get("message")
            if data is None:
                data = ""
            try:
                base64.b64decode(data, validate=True)
            except (ValueError, TypeError):
                raise InvalidArgumentsError("publishMessage.binaryMessage.message must be base64") from None

            def body() -> bytes:
                return json.dumps({"binaryMessage": {"message": data, "context": context}},
                                  separators=(",", ":")).encode()
        else:
            raise InvalidArgumentsError("publishMessage must hold exactly one of jsonMessage or binaryMessage")
        self.bus.publish(topic, call.component, body)
        return {}

    def subscribe(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        topic = request.get("topic")
        self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#SubscribeToTopic", topic)
        if not topic or not isinstance(topic, str):
            raise InvalidArgumentsError("Subscribe topic must not be empty")
        mode = request.get("receiveMode")
        if mode is None:
            mode = RECEIVE_OTHERS if has_wildcard(topic) else RECEIVE_ALL
        if mode not in (RECEIVE_ALL, RECEIVE_OTHERS):
            raise InvalidArgumentsError(f"receiveMode must be {RECEIVE_ALL} or {RECEIVE_OTHERS}, got {mode!r}")
        sub = Subscription(topic, split_levels(topic), call.component, mode == RECEIVE_ALL, call.send_event)
        call.on_close(self.bus.add(sub))
        return {}
