"""The AWS event-stream binary format, sans-I/O: bytes in, messages out, and back.

A message is a prelude (total length, headers length, prelude CRC), a headers section, a payload and a
message CRC; integers are big-endian and both CRCs are CRC-32 (zlib). See
../shared/spec/greengrass-ipc.md §2. Nothing here knows about sockets or the RPC layer.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

PRELUDE_SIZE = 12
CRC_SIZE = 4
MIN_MESSAGE_SIZE = PRELUDE_SIZE + CRC_SIZE
#: Current aws-c-event-stream limit for a whole message (and, since 2025-02, for its headers).
MAX_MESSAGE_SIZE = 24 * 1024 * 1024
MAX_HEADER_NAME_SIZE = 255
MAX_HEADER_VALUE_SIZE = 32767
MAX_HEADERS = 1024


class HeaderType(IntEnum):
    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    BYTE_BUF = 6
    STRING = 7
    TIMESTAMP = 8
    UUID = 9


_FIXED = {
    HeaderType.BYTE: struct.Struct(">b"),
    HeaderType.INT16: struct.Struct(">h"),
    HeaderType.INT32: struct.Struct(">i"),
    HeaderType.INT64: struct.Struct(">q"),
    HeaderType.TIMESTAMP: struct.Struct(">q"),
}
_PRELUDE = struct.Struct(">III")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class FrameError(ValueError):
    """The bytes are not a valid event-stream message; the connection cannot continue."""


class CrcError(FrameError):
    pass


class SizeError(FrameError):
    pass


class Header(NamedTuple):
    name: str
    type: HeaderType
    value: Any = None

    @classmethod
    def int32(cls, name: str, value: int) -> Header:
        return cls(name, HeaderType.INT32, value)

    @classmethod
    def string(cls, name: str, value: str) -> Header:
        return cls(name, HeaderType.STRING, value)

    @classmethod
    def boolean(cls, name: str, value: bool) -> Header:
        return cls(name, HeaderType.BOOL_TRUE if value else HeaderType.BOOL_FALSE, value)


@dataclass
class Message:
    headers: list[Header] = field(default_factory=list)
    payload: bytes = b""

    def get(self, name: str) -> Header | None:
        """The header of that name (case-insensitive, as the C library compares), or None."""
        for header in self.headers:
            if header.name == name:
                return header
        lowered = name.lower()
        for header in self.headers:
            if header.name.lower() == lowered:
                return header
        return None

    def value(self, name: str, default: Any = None) -> Any:
        header = self.get(name)
        return default if header is None else header.value


# ---------------------------------------------------------------------------------------- encoding


def _encode_header(header: Header) -> bytes:
    name = header.name.encode("utf-8")
    if not 1 <= len(name) <= MAX_HEADER_NAME_SIZE:
        raise SizeError(f"header name {header.name!r} must be 1..{MAX_HEADER_NAME_SIZE} bytes")
    out = bytes([len(name)]) + name
    htype = HeaderType(header.type)
    if htype in (HeaderType.BOOL_TRUE, HeaderType.BOOL_FALSE):
        return out + bytes([htype])
    if htype in _FIXED:
        return out + bytes([htype]) + _FIXED[htype].pack(header.value)
    if htype is HeaderType.UUID:
        raw = header.value.bytes if isinstance(header.value, uuid.UUID) else bytes(header.value)
        if len(raw) != 16:
            raise SizeError(f"header {header.name!r}: a UUID value is 16 bytes, got {len(raw)}")
        return out + bytes([htype]) + raw
    raw = header.value.encode("utf-8") if htype is HeaderType.STRING else bytes(header.value)
    if len(raw) > MAX_HEADER_VALUE_SIZE:
        raise SizeError(f"header {header.name!r}: value of {len(raw)} bytes exceeds {MAX_HEADER_VALUE_SIZE}")
    return out + bytes([htype]) + _U16.pack(len(raw)) + raw


def encode(message: Message, max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """The wire bytes of one message."""
    if len(message.headers) > MAX_HEADERS:
        raise SizeError(f"{len(message.headers)} headers exceed the limit of {MAX_HEADERS}")
    headers = b"".join(_encode_header(h) for h in message.headers)
    total = MIN_MESSAGE_SIZE + len(headers) + len(message.payload)
    if total > max_size:
        raise SizeError(f"message of {total} bytes exceeds the limit of {max_size}")
    prelude = _PRELUDE.pack(total, len(headers), 0)[:8]
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + headers + message.payload
    return body + _U32.pack(zlib.crc32(body))


# ---------------------------------------------------------------------------------------- decoding


_VARIABLE = (HeaderType.BYTE_BUF, HeaderType.STRING)
_TYPES = tuple(HeaderType)


def _decode_headers(data: bytes) -> list[Header]:
    headers: list[Header] = []
    pos, end = 0, len(data)
    try:
        while pos < end:
            if len(headers) >= MAX_HEADERS:
                raise SizeError(f"more than {MAX_HEADERS} headers")
            name_len = data[pos]
            if name_len == 0:
                raise FrameError("header with an empty name")
            name_end = pos + 1 + name_len
            if name_end >= end:
                raise FrameError("headers section truncated while reading a header name")
            name = data[pos + 1 : name_end].decode("utf-8")
            type_byte = data[name_end]
            if type_byte > 9:
                raise FrameError(f"header {name!r} has unknown type {type_byte}")
            htype = _TYPES[type_byte]
            pos = name_end + 1
            if htype is HeaderType.BOOL_TRUE or htype is HeaderType.BOOL_FALSE:
                value: Any = htype is HeaderType.BOOL_TRUE
            elif htype in _VARIABLE:
                if pos + 2 > end:
                    raise FrameError(f"headers section truncated while reading the length of {name!r}")
                length = (data[pos] << 8) | data[pos + 1]
                pos += 2
                if length > MAX_HEADER_VALUE_SIZE:
                    raise SizeError(f"header {name!r}: value of {length} bytes exceeds {MAX_HEADER_VALUE_SIZE}")
                if pos + length > end:
                    raise FrameError(f"headers section truncated while reading the value of {name!r}")
                raw = data[pos : pos + length]
                pos += length
                value = raw.decode("utf-8") if htype is HeaderType.STRING else bytes(raw)
            elif htype is HeaderType.UUID:
                if pos + 16 > end:
                    raise FrameError(f"headers section truncated while reading the value of {name!r}")
                value = uuid.UUID(bytes=bytes(data[pos : pos + 16]))
                pos += 16
            else:
                fmt = _FIXED[htype]
                if pos + fmt.size > end:
                    raise FrameError(f"headers section truncated while reading the value of {name!r}")
                (value,) = fmt.unpack_from(data, pos)
                pos += fmt.size
            headers.append(Header(name, htype, value))
    except UnicodeDecodeError as exc:
        raise FrameError(f"a header name or string value is not UTF-8: {exc}") from None
    return headers


def decode(frame: bytes) -> Message:
    """One complete message from exactly its bytes."""
    decoder = Decoder(max_size=max(len(frame), MIN_MESSAGE_SIZE))
    messages = decoder.feed(frame)
    if len(messages) != 1 or decoder.buffered:
        raise FrameError(f"expected exactly one message, got {len(messages)} and {decoder.buffered} spare bytes")
    return messages[0]


class Decoder:
    """Incremental decoder: feed it bytes as they arrive, get whole messages back.

    Any violation (bad CRC, impossible lengths, malformed headers) raises FrameError; the decoder is then
    unusable, as the stream has lost its framing.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._failed = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        return list(self._iter_feed(data))

    def _iter_feed(self, data: bytes) -> Iterator[Message]:
        if self._failed:
            raise FrameError("decoder already failed")
        self._buf += data
        try:
            while len(self._buf) >= PRELUDE_SIZE:
                total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buf, 0)
                if zlib.crc32(self._buf[:8]) != prelude_crc:
                    raise CrcError(f"prelude CRC mismatch (got {prelude_crc:#010x})")
                if total < MIN_MESSAGE_SIZE:
                    raise SizeError(f"total length {total} is below the minimum of {MIN_MESSAGE_SIZE}")
                if total > self.max_size:
                    raise SizeError(f"message of {total} bytes exceeds the limit of {self.max_size}")
                if headers_len > total - MIN_MESSAGE_SIZE:
                    raise SizeError(f"headers length {headers_len} does not fit in a message of {total} bytes")
                if len(self._buf) < total:
                    return
                frame = bytes(self._buf[:total])
                del self._buf[:total]
                (message_crc,) = _U32.unpack_from(frame, total - CRC_SIZE)
                if zlib.crc32(frame[: total - CRC_SIZE]) != message_crc:
                    raise CrcError(f"message CRC mismatch (got {message_crc:#010x})")
                headers = _decode_headers(frame[PRELUDE_SIZE : PRELUDE_SIZE + headers_len])
                yield Message(headers, frame[PRELUDE_SIZE + headers_len : total - CRC_SIZE])
        except FrameError:
            self._failed = True
            raise
