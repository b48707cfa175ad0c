"""Local pub/sub through ggsim with the real awsiotsdk client (V1 and V2 APIs), spec IPC §4.3 and §6."""

from __future__ import annotations

import base64

import pytest

from tests.ipc.conftest import ALL_PUBSUB, Core
from tests.support.agents import IpcCallError


def json_publish(topic: str, message: dict) -> dict:
    return {"topic": topic, "publishMessage": {"jsonMessage": {"message": message}}}


def binary_publish(topic: str, data: bytes) -> dict:
    return {"topic": topic, "publishMessage": {"binaryMessage": {"message": base64.b64encode(data).decode()}}}


def test_json_and_binary_messages_reach_a_subscriber_in_another_process(core: Core, api: str) -> None:
    sub = core.component("test.Sub", {"accessControl": ALL_PUBSUB}, api=api)
    pub = core.component("test.Pub", {"accessControl": ALL_PUBSUB}, api=api)
    stream, response = sub.call("subscribe_to_topic", {"topic": "greenlens/frames"})
    assert response == {}
    pub.call("publish_to_topic", json_publish("greenlens/frames", {"seq": 7, "label": "hotdog"}))
    pub.call("publish_to_topic", binary_publish("greenlens/frames", b"\x00\xffpixels"))

    first = sub.next_event(stream)["event"]
    # The Java nucleus delivers JSON numbers as doubles; the context names the topic published to.
    assert first == {"jsonMessage": {"message": {"seq": 7.0, "label": "hotdog"},
                                     "context": {"topic": "greenlens/frames"}}}
    second = sub.next_event(stream)["event"]
    assert base64.b64decode(second["binaryMessage"]["message"]) == b"\x00\xffpixels"
    assert second["binaryMessage"]["context"] == {"topic": "greenlens/frames"}


def test_wildcards_follow_the_nucleus_rules(core: Core) -> None:
    sub = core.component("test.Sub", {"accessControl": ALL_PUBSUB})
    pub = core.component("test.Pub", {"accessControl": ALL_PUBSUB})
    plus, _ = sub.call("subscribe_to_topic", {"topic": "a/+/c"})
    hash_, _ = sub.call("subscribe_to_topic", {"topic": "a/#"})
    for topic in ("a", "a/b/c", "a/x/y/z", "b/b/c"):
        pub.call("publish_to_topic", json_publish(topic, {"t": topic}))
    pub.call("publish_to_topic", json_publish("end", {}))  # not matched by either: marks nothing
    # `a/#` needs at least one more level: "a" is not delivered to it (unlike MQTT).
    assert sub.next_event(hash_)["event"]["jsonMessage"]["context"]["topic"] == "a/b/c"
    assert sub.next_event(hash_)["event"]["jsonMessage"]["context"]["topic"] == "a/x/y/z"
    assert sub.next_event(plus)["event"]["jsonMessage"]["context"]["topic"] == "a/b/c"
    pub.call("publish_to_topic", json_publish("a/q/c", {}))
    assert sub.next_event(plus)["event"]["jsonMessage"]["context"]["topic"] == "a/q/c"


def test_own_messages_depend_on_receive_mode_and_its_default(core: Core) -> None:
    me = core.component("test.Me", {"accessControl": ALL_PUBSUB})
    other = core.component("test.Other", {"accessControl": ALL_PUBSUB})
    exact, _ = me.call("subscribe_to_topic", {"topic": "t/1"})  # no wildcard: default RECEIVE_ALL
    wild, _ = me.call("subscribe_to_topic", {"topic": "t/+"})  # wildcard: default FROM_OTHERS
    explicit, _ = me.call("subscribe_to_topic", {"topic": "t/1", "receiveMode": "RECEIVE_MESSAGES_FROM_OTHERS"})
    me.call("publish_to_topic", json_publish("t/1", {"from": "me"}))
    other.call("publish_to_topic", json_publish("t/1", {"from": "other"}))
    assert sub_from(me, exact) == "me"
    assert sub_from(me, exact) == "other"
    # Own message suppressed on the other two: the first they see is the other component's.
    assert sub_from(me, wild) == "other"
    assert sub_from(me, explicit) == "other"


def sub_from(agent, stream: int) -> str:
    return agent.next_event(stream)["event"]["jsonMessage"]["message"]["from"]


def test_closed_subscription_stops_delivery_and_fires_closed(core: Core, api: str) -> None:
    sub = core.component("test.Sub", {"accessControl": ALL_PUBSUB}, api=api)
    pub = core.component("test.Pub", {"accessControl": ALL_PUBSUB})
    first, _ = sub.call("subscribe_to_topic", {"topic": "x"})
    second, _ = sub.call("subscribe_to_topic", {"topic": "x"})
    sub.close_stream(first)
    assert sub.next_event(first) == {"stream": first, "closed": True}
    pub.call("publish_to_topic", json_publish("x", {"n": 1}))
    assert sub.next_event(second)["event"]["jsonMessage"]["message"] == {"n": 1.0}
    bus = core.server.services["pubsub"].bus
    assert core.call_soon(lambda: len(bus.subscriptions())) == 1


@pytest.mark.parametrize("topic", ["a/+", "a/#", "a*b"])
def test_publishing_to_a_wildcard_topic_is_refused(core: Core, topic: str) -> None:
    pub = core.component("test.Pub", {"accessControl": ALL_PUBSUB})
    with pytest.raises(IpcCallError) as err:
        pub.call("publish_to_topic", json_publish(topic, {}))
    assert err.value.type == "InvalidArgumentsError"
    assert err.value.message == "Publish topic must not contain a wildcard."


def test_unauthorized_publish_and_subscribe_name_operation_and_resource(core: Core, api: str) -> None:
    policy = {"aws.greengrass.ipc.pubsub": {"p": {"operations": ["aws.greengrass#PublishToTopic"],
                                                  "resources": ["greenlens/*"]}}}
    comp = core.component("test.Limited", {"accessControl": policy}, api=api)
    comp.call("publish_to_topic", json_publish("greenlens/results", {}))
    with pytest.raises(IpcCallError) as err:
        comp.call("publish_to_topic", json_publish("secret/topic", {}))
    assert err.value.type == "UnauthorizedError"
    assert "aws.greengrass#PublishToTopic" in err.value.message and "secret/topic" in err.value.message
    with pytest.raises(IpcCallError) as err:
        comp.call("subscribe_to_topic", {"topic": "greenlens/results"})
    assert err.value.type == "UnauthorizedError"
    assert "aws.greengrass#SubscribeToTopic" in err.value.message


def test_a_component_without_any_policy_is_denied(core: Core) -> None:
    comp = core.component("test.NoPolicy", {})
    with pytest.raises(IpcCallError) as err:
        comp.call("publish_to_topic", json_publish("a", {}))
    assert err.value.type == "UnauthorizedError"


def test_the_subscription_tree_delivers_exactly_what_the_matching_rule_matches() -> None:
    """Subscriptions live in a tree of levels (a publish visits only what may match): it must agree with
    filter_matches for every filter and topic, also after subscriptions close."""
    import random

    from ggsim.ipc.services.pubsub import LocalBus, Subscription, filter_matches, split_levels

    rng = random.Random(11)
    bus = LocalBus()
    held: dict[int, tuple[Subscription, object]] = {}
    for _ in range(2000):
        topic_filter = "/".join(rng.choice(["a", "b", "+", "#", ""]) for _ in range(rng.randint(1, 4)))
        sub = Subscription(topic_filter, split_levels(topic_filter), "x", True, lambda _payload: True)
        held[id(sub)] = (sub, bus.add(sub))
    for key in rng.sample(sorted(held), 700):
        held.pop(key)[1]()  # type: ignore[operator]
    for _ in range(2000):
        levels = split_levels("/".join(rng.choice(["a", "b", "c", ""]) for _ in range(rng.randint(1, 5))))
        expected = {id(sub) for sub, _ in held.values() if filter_matches(sub.levels, levels)}
        assert {id(sub) for sub in bus.matching(levels)} == expected, levels
    for _, remove in held.values():
        remove()  # type: ignore[operator]
    assert bus.subscriptions() == [] and bus.matching(["a"]) == []
