"""A misbehaving client ends only its own connection; the server and every other client go on."""

from __future__ import annotations

import json
import random
import socket
import struct
import zlib

import pytest
from ggsim.eventstream import codec
from ggsim.eventstream.codec import Header, Message

from tests.ipc.conftest import ALL_PUBSUB, Core
from tests.support.agents import IpcCallError


def frame(mtype: int, flags: int = 0, stream: int = 0, extra: list[Header] | None = None,
          payload: bytes = b"") -> bytes:
    headers = [Header.int32(":message-type", mtype), Header.int32(":message-flags", flags),
               Header.int32(":stream-id", stream)]
    return codec.encode(Message(headers + (extra or []), payload))


def connect_frame(token: str) -> bytes:
    return frame(4, extra=[Header.string(":version", "0.1.0")], payload=json.dumps({"authToken": token}).encode())


def raw_client(core: Core) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(core.host.socket_path))
    return sock


def read_message(sock: socket.socket) -> Message | None:
    decoder = codec.Decoder()
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        msgs = decoder.feed(data)
        if msgs:
            return msgs[0]


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed the connection (reads reach EOF, after any final frames)."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True


def still_serves(core: Core) -> None:
    a = core.component("test.HealthA", {"accessControl": ALL_PUBSUB})
    b = core.component("test.HealthB", {"accessControl": ALL_PUBSUB})
    stream, _ = a.call("subscribe_to_topic", {"topic": "health"})
    b.call("publish_to_topic", {"topic": "health", "publishMessage": {"jsonMessage": {"message": {"ok": True}}}})
    assert a.next_event(stream)["event"]["jsonMessage"]["message"] == {"ok": True}


def test_a_bad_token_is_rejected_with_access_denied(core: Core, api: str) -> None:
    agent = core.component("test.Real", {}, api=api, token="NOT-A-TOKEN")
    with pytest.raises(IpcCallError) as err:
        agent.call("get_configuration", {})
    assert err.value.type == "AccessDeniedError"
    still_serves(core)


def test_connect_ack_rejection_on_the_wire(core: Core) -> None:
    sock = raw_client(core)
    sock.sendall(connect_frame("WRONG"))
    ack = read_message(sock)
    assert ack is not None
    assert (ack.value(":message-type"), ack.value(":message-flags")) == (5, 0)
    assert closed_by_server(sock)


@pytest.mark.parametrize("garbage", [
    pytest.param(b"\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 4, id="bad-prelude-crc"),
    pytest.param(bytes(bytearray(frame(4))[:-1] + b"\x00"), id="bad-message-crc"),
    pytest.param(struct.pack(">II", 2 ** 31, 0) + struct.pack(">I", zlib.crc32(struct.pack(">II", 2 ** 31, 0))),
                 id="oversize-length"),
    pytest.param(frame(0, stream=1, extra=[Header.string("operation", "aws.greengrass#PublishToTopic")]),
                 id="request-before-connect"),
    pytest.param(codec.encode(Message([Header.string(":message-type", "0")])), id="string-message-type"),
])
def test_malformed_frames_end_that_connection_only(core: Core, garbage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    healthy = core.component("test.Healthy", {"accessControl": ALL_PUBSUB})
    healthy.call("get_configuration", {})
    sock = raw_client(core)
    sock.sendall(garbage)
    assert closed_by_server(sock)
    still_serves(core)
    healthy.call("get_configuration", {})  # the earlier connection is untouched
    assert any("closed" in r.getMessage() and ("error" in r.getMessage()) for r in caplog.records)


def test_client_vanishing_mid_stream(core: Core) -> None:
    token = core.call_soon(lambda: (core.host.config.merge("test.Vanish", {"accessControl": ALL_PUBSUB}),
                                    core.host.tokens.issue("test.Vanish"))[1])
    sock = raw_client(core)
    sock.sendall(connect_frame(token))
    assert read_message(sock).value(":message-flags") == 1
    request = json.dumps({"topic": "vanish"}).encode()
    sock.sendall(frame(0, stream=1, extra=[Header.string("operation", "aws.greengrass#SubscribeToTopic"),
                                           Header.string(":content-type", "application/json"),
                                           Header.string("service-model-type",
                                                         "aws.greengrass#SubscribeToTopicRequest")],
                       payload=request))
    response = read_message(sock)
    assert response.value("service-model-type") == "aws.greengrass#SubscribeToTopicResponse"
    half = frame(0, stream=2, payload=b"x" * 100)
    sock.sendall(half[: len(half) // 2])
    sock.close()
    still_serves(core)
    bus = core.server.services["pubsub"].bus
    assert core.call_soon(lambda: [s.topic_filter for s in bus.subscriptions()]).count("vanish") == 0


def test_fuzzed_frames_never_take_the_server_down(core: Core) -> None:
    rng = random.Random(1234)
    token = core.call_soon(lambda: core.host.tokens.issue("test.Fuzz"))
    valid = [connect_frame(token),
             frame(0, stream=1, extra=[Header.string("operation", "aws.greengrass#GetConfiguration")], payload=b"{}"),
             frame(0, flags=2, stream=1), frame(2, payload=b"ping"),
             frame(0, stream=2, extra=[Header.string("operation", "aws.greengrass#PublishToTopic")],
                   payload=b'{"topic": "f", "publishMessage": {"jsonMessage": {"message": [1]}}}')]
    for _ in range(150):
        wire = bytearray(b"".join(rng.sample(valid, rng.randint(1, len(valid)))))
        mode = rng.randrange(4)
        if mode == 0:
            for _ in range(rng.randint(1, 5)):
                wire[rng.randrange(len(wire))] = rng.randrange(256)
        elif mode == 1:
            wire = wire[: rng.randrange(1, len(wire))]
        elif mode == 2:
            wire = bytearray(rng.randbytes(rng.randint(1, 200)))
        sock = raw_client(core)
        try:
            sock.sendall(bytes(wire))
            sock.shutdown(socket.SHUT_WR)
            closed_by_server(sock)
        except OSError:
            pass
        finally:
            sock.close()
    still_serves(core)
    assert core.server.stats.protocol_errors > 0


def test_a_subscriber_that_does_not_read_gets_bounded_buffering_and_counted_drops(tmp_path) -> None:
    from ggsim.ipc.server import IpcServer

    core = Core(tmp_path)
    try:
        core.run(core.server.close())
        small = IpcServer(core.host.backend(), max_buffer=64 * 1024)
        core.run(small.start())
        core.server = small
        token = core.call_soon(lambda: (core.host.config.merge("test.Slow", {"accessControl": ALL_PUBSUB}),
                                        core.host.tokens.issue("test.Slow"))[1])
        sock = raw_client(core)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(connect_frame(token))
        assert read_message(sock).value(":message-flags") == 1
        sock.sendall(frame(0, stream=1, extra=[Header.string("operation", "aws.greengrass#SubscribeToTopic")],
                           payload=b'{"topic": "flood"}'))
        assert read_message(sock).value("service-model-type") == "aws.greengrass#SubscribeToTopicResponse"
        # The slow client now stops reading. A publisher floods it with 2 MB of messages.
        publisher = core.component("test.Flood", {"accessControl": ALL_PUBSUB})
        payload = {"topic": "flood", "publishMessage": {"binaryMessage": {"message": "A" * 8000}}}
        for _ in range(250):
            publisher.call("publish_to_topic", payload)
        stats = small.stats
        assert stats.events_dropped > 0
        assert stats.events_sent + stats.events_dropped == 250
        slow_conn = next(c for c in small.connections if c.component == "test.Slow")
        assert slow_conn.writer.transport.get_write_buffer_size() <= 64 * 1024 + 20_000
        still_serves(core)
        sock.close()
    finally:
        core.close()


def test_a_root_too_long_for_a_socket_path_still_serves(tmp_path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    core = Core(deep)
    try:
        assert len(str(core.host.socket_path)) >= 108
        work = deep / "work" / "test.Long"
        work.mkdir(parents=True)
        token = core.call_soon(lambda: (core.host.config.merge("test.Long", {"k": "v"}),
                                        core.host.tokens.issue("test.Long"))[1])
        from tests.support.agents import AgentProcess

        # The nucleus gives such components the relative path from their work folder.
        agent = AgentProcess({"SVCUID": token, "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT":
                              "../../ipc.socket"}, cwd=str(work))
        core.agents.append(agent)
        assert agent.call("get_configuration", {"keyPath": ["k"]})["value"] == {"k": "v"}
    finally:
        core.close()
    assert not (deep / "ipc.socket").exists()
