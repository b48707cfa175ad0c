"""The event-stream RPC layer of Greengrass IPC, server side, sans-I/O.

`ServerConnection` is fed the bytes a client sent and returns events (`Connect`, `Request`,
`StreamClosed`, `Ping`); its `send_*` methods return the bytes to write. It enforces the handshake, the
stream table and the header rules of ../shared/spec/greengrass-ipc.md §1.4 and §3, in the manner of h11:
no sockets, no clocks, no JSON knowledge beyond the CONNECT payload.
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from .codec import MAX_MESSAGE_SIZE, Decoder, FrameError, Header, HeaderType, Message, encode

PROTOCOL_VERSION = "0.1.0"
SHAPE_PREFIX = "aws.greengrass#"


class MessageType(IntEnum):
    APPLICATION_MESSAGE = 0
    APPLICATION_ERROR = 1
    PING = 2
    PING_RESPONSE = 3
    CONNECT = 4
    CONNECT_ACK = 5
    PROTOCOL_ERROR = 6
    INTERNAL_ERROR = 7


class Flags(IntFlag):
    NONE = 0
    CONNECTION_ACCEPTED = 1
    TERMINATE_STREAM = 2


class ProtocolError(Exception):
    """The peer broke the RPC rules; the connection must be closed (after sending `reply`, if any)."""

    def __init__(self, reason: str, reply: bytes = b"") -> None:
        super().__init__(reason)
        self.reply = reply


# ------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Connect:
    version: str | None
    auth_token: str | None


@dataclass(frozen=True)
class Request:
    stream_id: int
    operation: str
    payload: bytes
    service_model_type: str | None
    content_type: str | None


@dataclass(frozen=True)
class StreamClosed:
    """The client terminated a stream it had opened (first terminate only)."""

    stream_id: int


@dataclass(frozen=True)
class Ping:
    reply: bytes


Event = Connect | Request | StreamClosed | Ping


# ----------------------------------------------------------------------------------------- framing


_STREAM_ID_HEADER = b"\x0a:stream-id\x04"
_PRELUDE_LENGTHS = struct.Struct(">II")


@functools.lru_cache(maxsize=4096)
def _fixed_headers(mtype: int, flags: int, extra: tuple[Header, ...]) -> bytes:
    """The encoded headers that do not depend on the stream: the hot path encodes each set once."""
    message = Message([Header.int32(":message-type", mtype), Header.int32(":message-flags", flags), *extra])
    frame = encode(message)
    headers_len = _PRELUDE_LENGTHS.unpack_from(frame, 4)[0]
    return frame[12 : 12 + headers_len]


def _frame(mtype: MessageType, flags: int, stream_id: int, extra: tuple[Header, ...] | list[Header] = (),
           payload: bytes = b"") -> bytes:
    """One RPC frame; the three `:` headers are always there, INT32, as the clients require."""
    headers = (_fixed_headers(mtype, flags, tuple(extra)) + _STREAM_ID_HEADER
               + struct.pack(">i", stream_id))
    total = 16 + len(headers) + len(payload)
    if total > MAX_MESSAGE_SIZE:
        raise ProtocolError(f"outgoing message of {total} bytes exceeds the limit of {MAX_MESSAGE_SIZE}")
    prelude = _PRELUDE_LENGTHS.pack(total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


@functools.lru_cache(maxsize=512)
def _json_headers(shape: str) -> tuple[Header, ...]:
    return (Header.string(":content-type", "application/json"), Header.string("service-model-type", shape))


def dump_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _int32(message: Message, name: str) -> int:
    header = message.get(name)
    if header is None:
        raise ProtocolError(f"missing required header {name}")
    if header.type is not HeaderType.INT32:
        raise ProtocolError(f"header {name} must be INT32, got {header.type.name}")
    return int(header.value)


def _string(message: Message, name: str) -> str | None:
    header = message.get(name)
    if header is None or header.type is not HeaderType.STRING:
        return None
    return str(header.value)


class ServerConnection:
    """One client connection's RPC state: handshake, open streams, and framing in both directions."""

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE, pre_connect_size: int | None = None) -> None:
        """`pre_connect_size` caps the frames accepted until CONNECT is accepted (default: no extra cap)."""
        self._max_message_size = max_message_size
        self._decoder = Decoder(min(max_message_size, pre_connect_size or max_message_size))
        self.connected = False  # CONNECT received and accepted
        self._connect_seen = False
        self.open_streams: set[int] = set()
        self._highest_stream = 0

    @property
    def buffered(self) -> int:
        """Bytes of a frame received in part (0 between frames)."""
        return self._decoder.buffered

    # ---- receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """Decode and check what the client sent. Raises FrameError or ProtocolError on violations."""
        events: list[Event] = []
        for message in self._decoder.feed(data):
            event = self._receive_message(message)
            if event is not None:
                events.append(event)
        return events

    def _receive_message(self, message: Message) -> Event | None:
        mtype_value = _int32(message, ":message-type")
        flags = _int32(message, ":message-flags")
        stream_id = _int32(message, ":stream-id")
        try:
            mtype = MessageType(mtype_value)
        except ValueError:
            raise ProtocolError(f"unknown message type {mtype_value}", self.send_protocol_error()) from None

        if mtype is MessageType.CONNECT:
            if self._connect_seen:
                raise ProtocolError("a second CONNECT on one connection", self.send_protocol_error())
            self._connect_seen = True
            if stream_id != 0:
                raise ProtocolError(f"CONNECT on stream {stream_id}", self.send_protocol_error())
            version = _string(message, ":version")
            token: str | None = None
            try:
                body = json.loads(message.payload.decode("utf-8")) if message.payload else {}
                if isinstance(body, dict) and isinstance(body.get("authToken"), str):
                    token = body["authToken"]
            except (UnicodeDecodeError, json.JSONDecodeError):
                token = None
            return Connect(version, token)

        if not self.connected:
            raise ProtocolError(f"{mtype.name} before the CONNECT handshake completed", self.send_protocol_error())

        if mtype in (MessageType.APPLICATION_MESSAGE, MessageType.APPLICATION_ERROR):
            if stream_id <= 0:
                raise ProtocolError(f"{mtype.name} on stream id {stream_id}", self.send_protocol_error())
            terminate = bool(flags & Flags.TERMINATE_STREAM)
            if stream_id in self.open_streams:
                if terminate:
                    self.open_streams.discard(stream_id)
                    return StreamClosed(stream_id)
                return None  # no Greengrass operation streams client events: ignore
            if stream_id <= self._highest_stream:
                # Stream ids only grow: one not open and not new is closed. Duplicate terminators and late
                # messages on closed streams are tolerated (and nothing per closed stream is kept).
                return None
            # A new stream.
            self._highest_stream = stream_id
            if terminate:
                return None  # a terminate as the first message: ignored, as the nucleus does
            operation = _string(message, "operation")
            if not operation:
                raise ProtocolError(f"stream {stream_id} opened without an operation header",
                                    self.send_protocol_error())
            self.open_streams.add(stream_id)
            return Request(stream_id, operation, message.payload, _string(message, "service-model-type"),
                           _string(message, ":content-type"))

        if stream_id != 0:
            raise ProtocolError(f"{mtype.name} on stream id {stream_id}", self.send_protocol_error())
        if mtype is MessageType.PING:
            echoed = [h for h in message.headers if not h.name.startswith(":")]
            return Ping(_frame(MessageType.PING_RESPONSE, 0, 0, echoed, message.payload))
        if mtype is MessageType.PING_RESPONSE:
            return None
        if mtype in (MessageType.PROTOCOL_ERROR, MessageType.INTERNAL_ERROR):
            raise ProtocolError(f"client reported {mtype.name}: {message.payload[:200]!r}")
        raise ProtocolError(f"unexpected {mtype.name} from a client", self.send_protocol_error())

    # ---- sending

    def send_connect_ack(self, accepted: bool) -> bytes:
        self.connected = accepted
        if accepted:
            self._decoder.max_size = self._max_message_size
        return _frame(MessageType.CONNECT_ACK, Flags.CONNECTION_ACCEPTED if accepted else 0, 0)

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self.open_streams

    def _finish(self, stream_id: int, terminate: bool) -> None:
        if terminate:
            self.open_streams.discard(stream_id)

    def send_message(self, stream_id: int, shape: str, body: dict[str, Any], terminate: bool = False) -> bytes:
        """A response or stream event: JSON body with its shape name."""
        self._finish(stream_id, terminate)
        flags = Flags.TERMINATE_STREAM if terminate else Flags.NONE
        return _frame(MessageType.APPLICATION_MESSAGE, flags, stream_id, _json_headers(shape), dump_json(body))

    def send_raw_json(self, stream_id: int, shape: str, payload: bytes, terminate: bool = False) -> bytes:
        """Like send_message, with the JSON body already encoded (one encoding shared by many streams)."""
        self._finish(stream_id, terminate)
        flags = Flags.TERMINATE_STREAM if terminate else Flags.NONE
        return _frame(MessageType.APPLICATION_MESSAGE, flags, stream_id, _json_headers(shape), payload)

    def send_error(self, stream_id: int, shape: str, body: dict[str, Any]) -> bytes:
        """A modeled error; it always ends the stream."""
        self._finish(stream_id, True)
        return _frame(MessageType.APPLICATION_ERROR, Flags.TERMINATE_STREAM, stream_id, _json_headers(shape),
                      dump_json(body))

    def send_unsupported_operation(self, stream_id: int, operation: str) -> bytes:
        """The reply of the nucleus to an operation name its service model does not know (no shape)."""
        self._finish(stream_id, True)
        body = {"error": "Unsupported Operation", "message": f"{operation} is an unsupported operation."}
        return _frame(MessageType.APPLICATION_ERROR, Flags.TERMINATE_STREAM, stream_id,
                      [Header.string(":content-type", "application/json")], dump_json(body))

    def send_internal_error(self, stream_id: int) -> bytes:
        """The nucleus's reply to an unexpected failure inside a handler (text/plain, no shape)."""
        self._finish(stream_id, True)
        return _frame(MessageType.APPLICATION_ERROR, Flags.TERMINATE_STREAM, stream_id,
                      [Header.string(":content-type", "text/plain")], b"InternalServerError")

    def send_terminate(self, stream_id: int) -> bytes:
        """Server-side close of a stream: an empty message with TERMINATE_STREAM."""
        self._finish(stream_id, True)
        return _frame(MessageType.APPLICATION_MESSAGE, Flags.TERMINATE_STREAM, stream_id)

    @staticmethod
    def send_protocol_error() -> bytes:
        return _frame(MessageType.PROTOCOL_ERROR, 0, 0)


__all__ = [
    "Connect", "Event", "Flags", "FrameError", "MessageType", "Ping", "PROTOCOL_VERSION", "ProtocolError",
    "Request", "SHAPE_PREFIX", "ServerConnection", "StreamClosed", "dump_json",
]
