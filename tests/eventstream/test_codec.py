"""The event-stream codec on its own: test vectors, round trips (hypothesis) and every rejection."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from ggsim.eventstream import codec
from ggsim.eventstream.codec import CrcError, Decoder, FrameError, Header, HeaderType, Message, SizeError
from hypothesis import given, settings
from hypothesis import strategies as st

EMPTY = bytes.fromhex("00000010000000000" "5c248eb7d98c8ff")
CONNECT_ACK = bytes.fromhex(
    "00000047000000373" "74cfe3f0d3a6d6573736167652d7479706504000000050e3a6d6573736167652d666c6167730400000001"
    "0a3a73747265616d2d69640400000000e237e27d")


def test_spec_test_vectors() -> None:
    assert codec.encode(Message()) == EMPTY
    ack = Message([Header.int32(":message-type", 5), Header.int32(":message-flags", 1),
                   Header.int32(":stream-id", 0)])
    assert codec.encode(ack) == CONNECT_ACK
    assert codec.decode(CONNECT_ACK) == ack


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda s: len(s.encode()) <= 255)
headers = st.one_of(
    st.builds(lambda n, v: Header(n, HeaderType.BOOL_TRUE if v else HeaderType.BOOL_FALSE, v), names, st.booleans()),
    st.builds(lambda n, v: Header(n, HeaderType.BYTE, v), names, st.integers(-128, 127)),
    st.builds(lambda n, v: Header(n, HeaderType.INT16, v), names, st.integers(-(2 ** 15), 2 ** 15 - 1)),
    st.builds(lambda n, v: Header(n, HeaderType.INT32, v), names, st.integers(-(2 ** 31), 2 ** 31 - 1)),
    st.builds(lambda n, v: Header(n, HeaderType.INT64, v), names, st.integers(-(2 ** 63), 2 ** 63 - 1)),
    st.builds(lambda n, v: Header(n, HeaderType.TIMESTAMP, v), names, st.integers(-(2 ** 63), 2 ** 63 - 1)),
    st.builds(lambda n, v: Header(n, HeaderType.BYTE_BUF, v), names, st.binary(max_size=300)),
    st.builds(lambda n, v: Header(n, HeaderType.STRING, v), names, st.text(max_size=100)),
    st.builds(lambda n, v: Header(n, HeaderType.UUID, uuid.UUID(bytes=v)), names, st.binary(min_size=16, max_size=16)),
)
messages = st.builds(Message, st.lists(headers, max_size=8), st.binary(max_size=2000))


@given(st.lists(messages, min_size=1, max_size=5), st.integers(1, 64))
@settings(max_examples=200, deadline=None)
def test_round_trip_in_arbitrary_chunks(msgs: list[Message], chunk: int) -> None:
    wire = b"".join(codec.encode(m) for m in msgs)
    decoder = Decoder()
    out: list[Message] = []
    for i in range(0, len(wire), chunk):
        out += decoder.feed(wire[i : i + chunk])
    assert out == msgs
    assert decoder.buffered == 0


@given(messages, st.data())
@settings(max_examples=200, deadline=None)
def test_any_flipped_bit_is_detected_or_decodes_to_a_valid_message(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(codec.encode(msg))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(FrameError):
        # A changed prelude breaks the prelude CRC or the lengths; anything else breaks the message CRC.
        decoded = Decoder().feed(bytes(wire))
        if not decoded:
            raise FrameError("incomplete")


def test_bad_prelude_crc() -> None:
    wire = bytearray(EMPTY)
    wire[8] ^= 0xFF
    with pytest.raises(CrcError, match="prelude CRC"):
        Decoder().feed(bytes(wire))


def test_bad_message_crc() -> None:
    wire = bytearray(CONNECT_ACK)
    wire[20] ^= 0x01
    with pytest.raises(CrcError, match="message CRC"):
        Decoder().feed(bytes(wire))


def prelude(total: int, headers_len: int) -> bytes:
    head = struct.pack(">II", total, headers_len)
    return head + struct.pack(">I", zlib.crc32(head))


def test_oversize_length_is_refused_before_reading_the_body() -> None:
    with pytest.raises(SizeError, match="exceeds the limit"):
        Decoder(max_size=1024).feed(prelude(10_000, 0))
    with pytest.raises(SizeError, match="below the minimum"):
        Decoder().feed(prelude(8, 0))
    with pytest.raises(SizeError, match="does not fit"):
        Decoder().feed(prelude(20, 10))


def test_encoder_limits() -> None:
    with pytest.raises(SizeError):
        codec.encode(Message([Header.string("x" * 256, "v")]))
    with pytest.raises(SizeError):
        codec.encode(Message([Header.string("big", "v" * 40_000)]))
    with pytest.raises(SizeError):
        codec.encode(Message(payload=b"x" * 100), max_size=50)


def test_a_failed_decoder_stays_failed() -> None:
    decoder = Decoder()
    with pytest.raises(FrameError):
        decoder.feed(b"\x00" * 16)
    with pytest.raises(FrameError, match="already failed"):
        decoder.feed(EMPTY)
