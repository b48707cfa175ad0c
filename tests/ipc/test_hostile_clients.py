"""Hostile or careless clients over the real socket: what they may make the server hold is bounded.

The socket is open to every local user; these clients speak raw event-stream (or the real awsiotsdk client
where one can) against an IPC server with its real limits, shortened where a test would otherwise wait.
"""

from __future__ import annotations

import json
import logging

import pytest
from ggsim.eventstream import codec
from ggsim.eventstream.codec import Header, Message
from ggsim.ipc.limits import ConnectionLimits
from ggsim.nucleus.nesting import MAX_NESTING_DEPTH

from tests.ipc.conftest import ALL_PUBSUB, Core
from tests.ipc.test_robustness import closed_by_server, connect_frame, frame, raw_client, still_serves
from tests.support.agents import IpcCallError


class RawClient:
    """A client that writes raw frames and reads every frame the server sends, in order."""

    def __init__(self, core: Core, timeout: float = 10.0) -> None:
        self.sock = raw_client(core)
        self.sock.settimeout(timeout)
        self.decoder = codec.Decoder()
        self.received: list[Message] = []

    def connect(self, token: str) -> Message:
        self.sock.sendall(connect_frame(token))
        return self.next()

    def next(self) -> Message:
        while not self.received:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.received += self.decoder.feed(data)
        return self.received.pop(0)

    def request(self, stream: int, operation: str, body: dict | bytes) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.sock.sendall(frame(0, stream=stream, payload=payload, extra=[
            Header.string("operation", f"aws.greengrass#{operation}"),
            Header.string(":content-type", "application/json")]))

    def close(self) -> None:
        self.sock.close()


def token_for(core: Core, component: str, configuration: dict | None = None) -> str:
    def register() -> str:
        if configuration is not None:
            core.host.config.merge(component, configuration)
        return core.host.tokens.issue(component)

    return core.call_soon(register)


def max_size_frame() -> bytes:
    """A valid PublishToTopic frame of the largest size the decoder accepts after CONNECT."""
    headers = [Header.int32(":message-type", 0), Header.int32(":message-flags", 0), Header.int32(":stream-id", 1)]
    overhead = len(codec.encode(Message(headers)))
    return codec.encode(Message(headers, b"x" * (codec.MAX_MESSAGE_SIZE - overhead)))


@pytest.fixture
def quick_core(tmp_path) -> Core:
    core = Core(tmp_path, limits=ConnectionLimits(connect_timeout=0.5, frame_timeout=0.5))
    yield core
    core.close()


def test_a_frame_larger_than_a_connect_is_refused_at_its_prelude(core: Core) -> None:
    sock = raw_client(core)
    big = max_size_frame()
    try:
        sock.sendall(big[: 256 * 1024])  # the server closes without waiting for the other 23.75 MiB
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_server(sock)
    assert core.call_soon(lambda: len(core.server.connections)) == 0
    still_serves(core)


def test_a_connection_that_never_sends_connect_is_closed_after_the_deadline(quick_core: Core) -> None:
    silent = raw_client(quick_core)
    half_connect = raw_client(quick_core)
    half_connect.sendall(connect_frame("WHATEVER")[:20])
    assert closed_by_server(silent)
    assert closed_by_server(half_connect)


def test_half_a_frame_after_connect_is_closed_after_the_deadline_and_an_idle_client_is_not(
        quick_core: Core) -> None:
    token = token_for(quick_core, "test.Careless", {"accessControl": ALL_PUBSUB})
    idle, half = RawClient(quick_core), RawClient(quick_core)
    for client in (idle, half):
        assert client.connect(token).value(":message-flags") == 1
    publish = frame(0, stream=1, payload=b'{"topic": "t", "publishMessage": {"jsonMessage": {"message": {}}}}',
                    extra=[Header.string("operation", "aws.greengrass#PublishToTopic")])
    half.sock.sendall(publish[: len(publish) // 2])
    assert closed_by_server(half.sock)
    idle.sock.settimeout(1.5)  # three frame deadlines: a client between frames may stay as long as it likes
    with pytest.raises(TimeoutError):
        idle.sock.recv(1)
    idle.sock.settimeout(10)
    idle.request(1, "PublishToTopic", {"topic": "t", "publishMessage": {"jsonMessage": {"message": {}}}})
    assert idle.next().value(":message-flags") == 2  # the response, terminating its stream


def test_a_flood_of_unauthenticated_connections_closes_the_oldest_and_components_still_connect(
        tmp_path) -> None:
    core = Core(tmp_path, limits=ConnectionLimits(max_unauthenticated=8, max_connections=16))
    try:
        flood = [raw_client(core) for _ in range(40)]
        assert closed_by_server(flood[0])  # the oldest made room for the newer ones
        still_serves(core)
        held = core.call_soon(lambda: len(core.server.connections))
        assert held <= 16
    finally:
        core.close()


def test_one_component_may_hold_a_bounded_number_of_connections(tmp_path) -> None:
    core = Core(tmp_path, limits=ConnectionLimits(max_connections_per_component=3))
    try:
        token = token_for(core, "test.Greedy")
        held = [RawClient(core) for _ in range(3)]
        assert [c.connect(token).value(":message-flags") for c in held] == [1, 1, 1]
        extra = RawClient(core)
        assert extra.connect(token).value(":message-flags") == 0  # refused: CONNECT_ACK without "accepted"
        held[0].close()
        assert RawClient(core).connect(token).value(":message-flags") == 1  # room again once one closed
    finally:
        core.close()


def test_streams_per_connection_are_limited_with_a_service_error(core: Core) -> None:
    limit = core.server.limits.max_streams_per_connection
    client = RawClient(core)
    client.connect(token_for(core, "test.Hoarder", {"accessControl": ALL_PUBSUB}))
    extra = 10
    for stream in range(1, limit + extra + 1):
        client.request(stream, "SubscribeToTopic", {"topic": f"hoard/{stream}"})
    replies = [client.next() for _ in range(limit + extra)]
    refused = [m for m in replies if m.value(":message-type") == 1]
    assert len(refused) == extra
    assert {m.value("service-model-type") for m in refused} == {"aws.greengrass#ServiceError"}
    assert f"{limit} open streams" in json.loads(refused[0].payload)["message"]
    # a closed stream frees its place
    client.sock.sendall(frame(0, flags=2, stream=1))
    client.request(limit + extra + 1, "SubscribeToTopic", {"topic": "hoard/again"})
    assert client.next().value(":message-type") == 0
    still_serves(core)


def test_a_request_nested_100000_deep_gets_an_invalid_arguments_error(core: Core) -> None:
    client = RawClient(core)
    client.connect(token_for(core, "test.Deep", {"accessControl": ALL_PUBSUB}))
    deep = b'{"topic": "t", "publishMessage": {"jsonMessage": {"message": {"a": ' + b"[" * 100_000 + \
        b"]" * 100_000 + b"}}}}"
    client.request(1, "PublishToTopic", deep)
    reply = client.next()
    assert (reply.value(":message-type"), reply.value("service-model-type")) == \
        (1, "aws.greengrass#InvalidArgumentsError")
    assert f"deeper than the limit of {MAX_NESTING_DEPTH} levels" in json.loads(reply.payload)["message"]
    client.request(3, "PublishToTopic", {"topic": "t", "publishMessage": {"jsonMessage": {"message": {}}}})
    assert client.next().value(":message-type") == 0  # the connection goes on


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_configuration_nested_400_deep_is_refused_and_the_configuration_stays_usable(core: Core) -> None:
    agent = core.component("test.DeepConfig", {"threshold": 1})
    with pytest.raises(IpcCallError) as err:
        agent.call("update_configuration", {"keyPath": ["deep"], "timestamp": 2e9, "valueToMerge": nested(400)})
    assert err.value.type == "InvalidArgumentsError"
    assert "deeper than the limit of 128 levels" in err.value.message
    agent.call("update_configuration", {"keyPath": ["fine"], "timestamp": 2e9, "valueToMerge": nested(100)})
    value = agent.call("get_configuration", {"keyPath": []})["value"]
    assert "deep" not in value and value["threshold"] == 1 and "fine" in value


def test_log_lines_about_refused_clients_are_rate_limited(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ggsim.ipc")
    for _ in range(100):
        client = RawClient(core)
        assert client.connect("NOT-A-TOKEN").value(":message-flags") == 0  # logged before the refusal is sent
        client.close()
    rejected = [r for r in caplog.records if r.getMessage().startswith("IPC connection rejected")]
    assert len(rejected) == 1, [r.getMessage() for r in caplog.records][:5]

