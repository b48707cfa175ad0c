"""greenlens.StreamPublisher as a process in --no-ipc mode: HTTP endpoints, slow viewers, bad input."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from greenlens_common import messages, topics

from tests.support.publisher import Feeder, NoIpcPublisher, http_json, start_publisher, wait_until


@pytest.fixture
def publisher(tmp_path: Path) -> Iterator[NoIpcPublisher]:
    p = NoIpcPublisher(tmp_path)
    yield p
    if p.proc.poll() is None:
        p.stop()


def read_part(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """The next MJPEG part from a raw socket: (X-Frame-Seq, JPEG bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "the stream closed"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n") if b": " in line)
    length = int(fields[b"Content-Length"])
    while len(rest) < length + 2:
        chunk = sock.recv(65536)
        assert chunk, "the stream closed"
        rest += chunk
    buf[:] = rest[length + 2:]
    return int(fields[b"X-Frame-Seq"]), rest[:length]


def test_status_health_page_and_streams_before_and_after_frames(publisher: NoIpcPublisher) -> None:
    status = wait_until(publisher.status, 30, "the HTTP server")
    assert status["frames"]["received"] == 0 and status["last_result"] is None
    assert status["results"]["latency_ms"] == {"p50": None, "p99": None, "samples": 0}
    assert status["iot_core"]["results_topic"] == "greenlens/local/results"
    assert status["config"]["resultsPerSecond"] == 1.0 and status["config"]["debounceResults"] == 3
    assert http_json(f"{publisher.url}/healthz") == {"status": "ok", "iot_core_online": True}
    import urllib.request

    with urllib.request.urlopen(f"{publisher.url}/", timeout=5) as resp:
        page = resp.read().decode()
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "streams.project" in page and "/api/status" in page and "/health" in page

    feeder = Feeder(publisher.ring_dir)
    try:
        frames = [feeder.frame() for _ in range(5)]
        for frame in frames:
            publisher.send(topics.FRAMES, frame)
            publisher.send(topics.RESULTS, feeder.result(frame, True))
        status = publisher.wait_status(lambda s: s["results"]["processed"] == 5, "5 results processed")
    finally:
        feeder.close()
    assert status["results"]["received"] == 5
    assert status["results"]["latency_ms"]["samples"] == 5 and status["results"]["latency_ms"]["p99"] >= 0
    assert status["last_result"]["text"] == "HOTDOG 0.90" and status["debounced"]["present"] is True
    assert status["dropped_frames"] == 0
    with urllib.request.urlopen(f"{publisher.url}/stream/project.mjpg", timeout=5) as viewer:
        assert viewer.readline() == b"--greenlensframe\r\n"
        publisher.stop()  # a viewer still attached does not hold the stop up (exit 0 within 20 s)
    kinds = [(m["iot_core"], m["payload"].get("kind")) for m in publisher.cloud]
    assert ("greenlens/local/events", "appeared") in kinds


def test_a_slow_viewer_gets_the_newest_frame_not_a_backlog(publisher: NoIpcPublisher) -> None:
    wait_until(publisher.status, 30, "the HTTP server")
    feeder = Feeder(publisher.ring_dir, slots=8)
    sock = socket.create_connection(("127.0.0.1", publisher.port))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.sendall(b"GET /stream/device.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(4096)
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert b"multipart/x-mixed-replace; boundary=greenlensframe" in head
        buf[:] = rest
        first_seq, _ = read_part(sock, buf)
        assert first_seq == 0, "a placeholder until the first frame"

        # The viewer reads nothing while 300 frames go by.
        for _ in range(300):
            publisher.send(topics.FRAMES, feeder.frame())
        publisher.wait_status(lambda s: s["frames"]["received"] == 300, "300 frames")
        seqs = []
        while not seqs or seqs[-1] != 300:
            seqs.append(read_part(sock, buf)[0])
    finally:
        sock.close()
        feeder.close()
    print("parts read by the slow viewer:", seqs)
    assert len(seqs) < 40, f"what sat in socket buffers, then the newest frame, not 300 queued frames: {seqs}"
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_bad_messages_are_counted_and_named_not_fatal(publisher: NoIpcPublisher) -> None:
    wait_until(publisher.status, 30, "the HTTP server")
    assert publisher.proc.stdin is not None
    publisher.proc.stdin.write("this is not json\n")
    publisher.send(topics.RESULTS, {"schema": "greenlens.result/1", "seq": 1})
    publisher.send(topics.FRAMES, {"schema": "greenlens.frame/2", "seq": 1})
    publisher.send(topics.FRAMES, messages.frame_message(source="cam", seq=1, captured_at=1.0, width=32,
                                                         height=32, dropped=0, ring=("no-such-ring", 0, 1)))
    status = publisher.wait_status(lambda s: s["frames"]["unreadable"] == 1, "the unreadable frame")
    assert status["results"]["invalid_messages"] == 2
    log = publisher.stop()
    assert "stdin line 1 ignored: expected a JSON object" in log
    assert "field (message): 'captured_at' is a required property" in log
    assert "schema 'greenlens.frame/2' has major version 2" in log
    assert "ring 'no-such-ring'" in log and "does not exist (is greenlens.Capture running?)" in log


def test_bad_configuration_and_a_busy_port_are_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    bad = start_publisher(tmp_path / "a", "--no-ipc", "--port", "70000", stdin=subprocess.DEVNULL)
    assert bad.wait(30) == 2
    assert "configuration port='70000': expected an integer from 0 to 65535" in (tmp_path / "a" / "stderr.log").read_text()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start_publisher(tmp_path / "b", "--no-ipc", "--port", str(port), stdin=subprocess.DEVNULL)
        assert proc.wait(30) == 2
    errors = [line for line in (tmp_path / "b" / "stderr.log").read_text().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0], errors
    assert "address already in use" in errors[0].lower()
