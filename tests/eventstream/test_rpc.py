"""The RPC connection state machine on its own (sans-I/O): handshake, streams, and bounded state."""

from __future__ import annotations

import json

import pytest
from ggsim.eventstream import codec
from ggsim.eventstream.codec import Header, Message
from ggsim.eventstream.rpc import Connect, ProtocolError, Request, ServerConnection, StreamClosed


def frame(mtype: int, flags: int = 0, stream: int = 0, extra: list[Header] | None = None, payload: bytes = b"") -> bytes:
    headers = [Header.int32(":message-type", mtype), Header.int32(":message-flags", flags),
               Header.int32(":stream-id", stream)]
    return codec.encode(Message(headers + (extra or []), payload))


def connected() -> ServerConnection:
    conn = ServerConnection()
    [event] = conn.receive_data(frame(4, extra=[Header.string(":version", "0.1.0")],
                                      payload=json.dumps({"authToken": "T"}).encode()))
    assert event == Connect("0.1.0", "T")
    conn.send_connect_ack(True)
    return conn


def request(stream: int, op: str = "aws.greengrass#PublishToTopic") -> bytes:
    return frame(0, stream=stream, extra=[Header.string("operation", op)], payload=b"{}")


def test_streams_open_close_and_tolerate_duplicate_terminators() -> None:
    conn = connected()
    [req] = conn.receive_data(request(1))
    assert isinstance(req, Request) and req.operation == "aws.greengrass#PublishToTopic"
    assert conn.receive_data(frame(0, flags=2, stream=1)) == [StreamClosed(1)]
    assert conn.receive_data(frame(0, flags=2, stream=1) * 3) == []  # repeated terminators: nothing
    assert conn.receive_data(frame(0, flags=2, stream=2)) == []  # a terminate as a first message: ignored
    with pytest.raises(ProtocolError, match="without an operation"):
        conn.receive_data(frame(0, stream=3, payload=b"{}"))


def test_the_connection_keeps_nothing_per_finished_stream() -> None:
    conn = connected()
    for stream in range(1, 20_001):
        conn.receive_data(request(stream))
        conn.send_message(stream, "aws.greengrass#PublishToTopicResponse", {}, terminate=True)
        conn.receive_data(frame(0, flags=2, stream=stream))  # a client terminate after the response
    assert conn.open_streams == set()
    sizes = {name: len(value) for name, value in vars(conn).items() if isinstance(value, set | dict | list)}
    assert all(size <= 1 for size in sizes.values()), sizes


def test_header_types_are_checked() -> None:
    conn = ServerConnection()
    bad = codec.encode(Message([Header(":message-type", codec.HeaderType.INT64, 4),
                                Header.int32(":message-flags", 0), Header.int32(":stream-id", 0)]))
    with pytest.raises(ProtocolError, match="must be INT32"):
        conn.receive_data(bad)
