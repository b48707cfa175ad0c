"""Authorization rules of the nucleus (spec IPC §5) and the SVCUID token registry."""

from __future__ import annotations

import logging

import pytest
from ggsim.ipc.auth import Authorizer, TokenRegistry, compile_resource
from ggsim.ipc.errors import UnauthorizedError


@pytest.mark.parametrize(("resource", "request_", "allowed"), [
    ("*", "anything/at/all", True),
    ("greenlens/*", "greenlens/results", True),
    ("greenlens/*", "greenlens/", True),
    ("greenlens/*/x", "greenlens/a/b/x", True),
    ("test/#", "test/#", True),  # + and # are literal characters in STANDARD lookups
    ("test/#", "test/a", False),
    ("a/+/c", "a/b/c", False),
    ("lit${*}", "lit*", True),
    ("lit${*}", "litX", False),
    ("cost${$}", "cost$", True),
])
def test_standard_resource_matching(resource: str, request_: str, allowed: bool) -> None:
    assert bool(compile_resource(resource, mqtt_style=False).fullmatch(request_)) is allowed


@pytest.mark.parametrize(("resource", "request_", "allowed"), [
    ("a/#", "a", True),  # MQTT-style # covers zero levels too
    ("a/#", "a/b/c", True),
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/b/d/c", False),
    ("#", "x/y", True),
    ("a/#", "a/#", True),
    ("a/b#", "a/b#", True),  # a wildcard in an invalid position is literal
    ("a/b#", "a/bc", False),
    ("dev/*/x", "dev/1/2/x", True),
])
def test_mqtt_style_resource_matching(resource: str, request_: str, allowed: bool) -> None:
    assert bool(compile_resource(resource, mqtt_style=True).fullmatch(request_)) is allowed


def test_policies_principals_and_wildcard_operations(caplog: pytest.LogCaptureFixture) -> None:
    policies = {
        "app.A": {"aws.greengrass.ipc.pubsub": {
            "pub": {"Operations": ["aws.greengrass#PublishToTopic"], "Resources": ["results"]},
            "bad": {"operations": ["*"], "resources": ["what?"]}}},
        "app.B": {"aws.greengrass.ipc.pubsub": {"all": {"operations": ["*"], "resources": ["*"]}}},
    }
    auth = Authorizer(lambda: policies)
    with caplog.at_level(logging.ERROR):
        assert auth.is_authorized("app.A", "aws.greengrass.ipc.pubsub", "aws.greengrass#PublishToTopic", "results")
    assert any("what?" in r.getMessage() for r in caplog.records)  # an unescaped ? drops that resource
    assert not auth.is_authorized("app.A", "aws.greengrass.ipc.pubsub", "aws.greengrass#SubscribeToTopic", "results")
    assert auth.is_authorized("app.B", "aws.greengrass.ipc.pubsub", "aws.greengrass#SubscribeToTopic", "x")
    # A policy only grants operations registered for its service id.
    assert not auth.is_authorized("app.B", "aws.greengrass.ipc.pubsub", "aws.greengrass#PublishToIoTCore", "x")
    with pytest.raises(UnauthorizedError, match="app.C.*PublishToTopic.*on resource results"):
        auth.check("app.C", "aws.greengrass.ipc.pubsub", "aws.greengrass#PublishToTopic", "results")


def test_policy_changes_apply_on_the_next_call() -> None:
    policies: dict = {}
    revision = [0]
    auth = Authorizer(lambda: policies, lambda: revision[0])
    assert not auth.is_authorized("app.A", "aws.greengrass.ipc.pubsub", "aws.greengrass#PublishToTopic", "t")
    policies["app.A"] = {"aws.greengrass.ipc.pubsub": {"p": {"operations": ["*"], "resources": ["t"]}}}
    revision[0] += 1
    assert auth.is_authorized("app.A", "aws.greengrass.ipc.pubsub", "aws.greengrass#PublishToTopic", "t")


def test_tokens_are_unguessable_and_per_component() -> None:
    registry = TokenRegistry()
    a, b = registry.issue("app.A"), registry.issue("app.B")
    assert a != b and len(a) == 16 and a == a.upper()
    assert registry.issue("app.A") == a
    assert registry.lookup(a) == "app.A" and registry.lookup(b) == "app.B"
    assert registry.lookup("X" * 16) is None and registry.lookup(None) is None
    assert TokenRegistry().issue("app.A") != a
    registry.revoke("app.A")
    assert registry.lookup(a) is None
