"""greenlens.Capture's sources: real files, real photos, a real RTSP server that goes away and comes back."""

from __future__ import annotations

import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from greenlens_capture.imaging import letterbox
from greenlens_capture.sources import (
    FrameSource,
    Grabber,
    SourceOpenError,
    SourceStats,
    Stream,
    open_source,
)

from devsupport.ports import free_port

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
RTSP_SERVER = Path(__file__).parent / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


# ------------------------------------------------------------------------------------------ synthetic


def test_synthetic_scene_gives_moving_frames_at_the_configured_size() -> None:
    with open_source("synthetic", width=160, height=120, fps=60) as src:
        a = src.next_frame(0, timeout=5)
        assert a is not None
        b = src.next_frame(a.index, timeout=5)
        assert b is not None and b.index > a.index
    assert a.image.shape == b.image.shape == (120, 160, 3) and a.image.dtype == np.uint8
    assert not np.array_equal(a.image, b.image)
    assert b.captured_at >= a.captured_at


def test_a_slow_consumer_gets_the_newest_frame_not_the_next_one() -> None:
    # A live source (as a camera): it never waits for its consumer.
    with open_source("synthetic:live", width=64, height=48, fps=200) as src:
        first = src.next_frame(0, timeout=5)
        assert first is not None
        assert src.wait_for(lambda s: s.frames >= first.index + 5, timeout=5)
        newest = src.next_frame(first.index, timeout=5)
        assert newest is not None
        assert newest.index >= first.index + 5, "frames in between were skipped, not queued"


# ------------------------------------------------------------------------------------------ image folder


def test_image_folder_slideshow_of_the_shared_photos_is_letterboxed() -> None:
    assert PHOTOS.is_dir(), f"the shared test photos are missing: {PHOTOS}"
    files = sorted(p for p in PHOTOS.rglob("*.jpg"))
    with open_source(str(PHOTOS), width=320, height=240, fps=20) as src:
        first = src.next_frame(0, timeout=10)
        assert first is not None
        second = src.next_frame(first.index, timeout=10)
        assert second is not None
    # Frame n of the slideshow is the n-th photo in name order (subfolders included), letterboxed.
    for frame in (first, second):
        expected = letterbox(cv2.imread(str(files[frame.index - 1])), 320, 240)
        assert np.array_equal(frame.image, expected)
    assert second.image.shape == (240, 320, 3) and not np.array_equal(first.image, second.image)


def test_letterbox_keeps_the_aspect_ratio_on_black() -> None:
    tall = np.full((200, 100, 3), 200, np.uint8)
    out = letterbox(tall, 320, 240)
    assert out.shape == (240, 320, 3)
    assert out[:, :100].max() == 0 and out[:, -100:].max() == 0  # black side bars
    assert out[120, 160].tolist() == [200, 200, 200]


def test_image_folder_skips_and_counts_unreadable_images(tmp_path: Path) -> None:
    assert PHOTOS.is_dir(), f"the shared test photos are missing: {PHOTOS}"
    real = sorted(PHOTOS.rglob("*.jpg"))[0]
    (tmp_path / "a_broken.jpg").write_bytes(b"this is not a jpeg")
    shutil.copy(real, tmp_path / "b_real.jpg")
    with open_source(str(tmp_path), width=64, height=48, fps=100) as src:
        assert src.next_frame(0, timeout=5) is not None
        assert src.wait_for(lambda s: s.unreadable >= 1, timeout=5)
        assert src.stats().outages == 0


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(SourceOpenError, match=rf"cannot open image folder {tmp_path}: it has no images"):
        open_source(str(tmp_path), width=64, height=48, fps=5)


# ------------------------------------------------------------------------------------------ video file


def _write_numbered_video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (160, 120))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((120, 160, 3), 20 * i + 10, np.uint8))
    writer.release()


def test_video_file_loops(tmp_path: Path) -> None:
    video = tmp_path / "ten.avi"
    _write_numbered_video(video, 10)
    seen: list[int] = []
    with open_source(str(video), width=160, height=120, fps=30, source_fps=100) as src:
        index = 0
        while len(seen) < 40:
            frame = src.next_frame(index, timeout=5)
            assert frame is not None, "the file stopped producing frames"
            index = frame.index
            seen.append(round((float(frame.image.mean()) - 10) / 20))
        assert src.stats().outages == 0
    assert index > 10, "more frames than the file holds: it looped"
    wraps = [i for i in range(1, len(seen)) if seen[i] < seen[i - 1]]
    assert wraps, f"never went back to the start: {seen}"
    assert set(seen) <= set(range(10))


def test_a_file_opencv_cannot_decode_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceOpenError, match=rf"cannot open video file {bad}: OpenCV/FFmpeg cannot decode it"):
        open_source(str(bad), width=64, height=48, fps=5)


# ------------------------------------------------------------------------------------------ bad sources


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_an_unopenable_url_fails_fast_with_the_reason(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}/cam"
    started = time.monotonic()
    with pytest.raises(SourceOpenError, match=rf"cannot open stream {url}: connection refused by 127.0.0.1"):
        open_source(url, width=64, height=48, fps=5, open_timeout=3)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("/dev/video99", "cannot open camera /dev/video99: the device does not exist"),
        ("97", "cannot open camera 97: /dev/video97 does not exist"),
        ("no/such/clip.mp4", "source 'no/such/clip.mp4': no such file or folder"),
        ("", "source is empty"),
        ("rtsp://no-such-host.invalid/cam", "host 'no-such-host.invalid' cannot be resolved"),
    ],
)
def test_unusable_sources_name_themselves_and_the_reason(spec: str, reason: str) -> None:
    with pytest.raises(SourceOpenError, match=reason):
        open_source(spec, width=64, height=48, fps=5, open_timeout=3)


# ------------------------------------------------------------------------------------------ watchdog


class _HangsOnceGrabber(Grabber):
    """Its first stream blocks forever after two frames, as OpenCV can on a dead RTSP stream."""

    def __init__(self) -> None:
        self.description = "hanging test stream"
        self.frame_interval = None
        self.opens = 0
        self.release = threading.Event()

    def open(self) -> Stream:
        self.opens += 1
        return _HangingStream(self, hang=self.opens == 1)


class _HangingStream:
    def __init__(self, grabber: _HangsOnceGrabber, hang: bool) -> None:
        self.g, self.hang, self.n = grabber, hang, 0

    def read(self) -> np.ndarray | None:
        self.n += 1
        if self.hang and self.n > 2:
            self.g.release.wait(30)
            return None
        self.g.release.wait(0.01)  # a 100 fps camera
        return np.full((48, 64, 3), self.n % 256, np.uint8)

    def close(self) -> None:
        pass


def test_watchdog_abandons_a_stalled_read_and_reconnects() -> None:
    grabber = _HangsOnceGrabber()
    events = []
    src = FrameSource(grabber, 64, 48, stall_timeout=0.5, backoff_initial=0.05, on_event=events.append)
    with src:
        assert src.wait_for(lambda s: s.outages >= 1 and s.reconnects >= 1, timeout=10)
        before = src.stats().frames
        assert src.next_frame(before, timeout=5) is not None, "frames resume after the reconnect"
        grabber.release.set()
    stats = src.stats()
    assert grabber.opens >= 2 and stats.outages >= 1
    assert "no frame for" in (stats.last_error or "")
    assert [e.kind for e in events][:2] == ["source_lost", "source_restored"]


# ------------------------------------------------------------------------------------------ RTSP


class RtspServer:
    """tests/support/rtsp_server.py in the system python3 (GStreamer's RTSP server)."""

    def __init__(self, port: int, path: str = "cam") -> None:
        self.port, self.path = port, path
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20) -> str:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port), "--path", self.path, "--fps", "25"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"RTSP test server did not start: {line!r}")
        return line.split()[1]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} is needed for the GStreamer RTSP test server (scripts/debian-packages.txt)")
    server = RtspServer(free_port())
    yield server
    server.stop()


def test_rtsp_stream_survives_a_server_restart(rtsp_server: RtspServer) -> None:
    url = rtsp_server.start()
    events = []
    src = open_source(url, width=320, height=240, fps=25, open_timeout=5, read_timeout=3, stall_timeout=4,
                      backoff_initial=0.2, backoff_max=1.0, on_event=events.append)
    try:
        first = src.next_frame(0, timeout=10)
        assert first is not None and first.image.shape == (240, 320, 3)
        assert first.image.std() > 10, "a real test pattern, not a blank frame"

        rtsp_server.stop()
        assert src.wait_for(lambda s: s.outages >= 1, timeout=15), "the lost stream was noticed"
        lost: SourceStats = src.stats()
        assert not lost.connected

        rtsp_server.start()
        assert src.wait_for(lambda s: s.reconnects >= 1 and s.connected, timeout=30), "it reconnected"
        resumed_after = src.stats().frames
        resumed = src.next_frame(resumed_after, timeout=10)
        assert resumed is not None, "frames resume after the reconnect"
    finally:
        src.stop()
    stats = src.stats()
    assert stats.outages >= 1 and stats.reconnects >= 1
    kinds = [e.kind for e in events]
    assert "source_lost" in kinds and "source_restored" in kinds
    assert kinds.index("source_lost") < kinds.index("source_restored")


# ------------------------------------------------------------------------------------------ HTTP MJPEG


def test_http_mjpeg_camera_gives_frames_and_its_loss_is_an_outage() -> None:
    from tests.support.mjpeg_server import MjpegServer

    server = MjpegServer(width=160, height=120, fps=25)
    try:
        src = open_source(server.url, width=160, height=120, fps=25, open_timeout=5, read_timeout=2,
                          stall_timeout=3, backoff_initial=0.2, backoff_max=0.5)
        try:
            first = src.next_frame(0, timeout=10)
            assert first is not None and first.image.shape == (120, 160, 3)
            second = src.next_frame(first.index, timeout=10)
            assert second is not None and not np.array_equal(first.image, second.image)
            server.stop()
            assert src.wait_for(lambda s: s.outages >= 1 and not s.connected, timeout=15)
        finally:
            src.stop()
    finally:
        server.stop()


def test_a_source_used_as_a_context_manager_has_one_reader(tmp_path: Path) -> None:
    # open_source() starts the source; entering it with `with` must not start a second reader, which
    # would read the slideshow's images twice over and show them out of order.
    before = set(threading.enumerate())
    with open_source("synthetic", width=32, height=24, fps=50) as src:
        assert src.next_frame(0, timeout=5) is not None
        readers = [t for t in set(threading.enumerate()) - before if t.name.startswith("capture-reader-")]
        assert len(readers) == 1


# ------------------------------------------------------------------------------------------ on demand


def _frame_value(image: np.ndarray) -> int:
    return round((float(image.mean()) - 10) / 20)


@pytest.mark.parametrize("kind", ["file", "folder", "synthetic"])
def test_a_source_that_can_wait_is_read_on_demand(tmp_path: Path, kind: str) -> None:
    # A video file, an image folder or the synthetic scene: nothing is decoded that nobody takes (one frame
    # is prefetched), and a slow consumer gets every frame in order instead of skipping.
    if kind == "file":
        spec = tmp_path / "ten.avi"
        _write_numbered_video(spec, 10)
    elif kind == "folder":
        spec = tmp_path / "slides"
        spec.mkdir()
        for i in range(10):
            cv2.imwrite(str(spec / f"{i:02d}.png"), np.full((120, 160, 3), 20 * i + 10, np.uint8))
    else:
        spec = "synthetic"
    with open_source(str(spec), width=160, height=120, fps=30, source_fps=1000, stall_timeout=0.5) as src:
        taken: list[int] = []
        index = 0
        for _ in range(5):
            frame = src.next_frame(index, timeout=5)
            assert frame is not None
            index = frame.index
            taken.append(frame.index)
            if kind != "synthetic":
                assert _frame_value(frame.image) == (frame.index - 1) % 10, "the frames in order, none skipped"
            # the consumer is slow: far longer than 1 ms between takes at 1000 fps, and longer than the watchdog's
            # stall_timeout (waiting for a consumer is not a stalled read)
            assert not src.wait_for(lambda s: s.frames > len(taken) + 1, timeout=0.3 if _ else 0.8)
        assert taken == [1, 2, 3, 4, 5], "every frame taken, none skipped"
        assert src.stats().frames <= len(taken) + 1
        assert src.stats().outages == 0


def test_a_live_source_is_read_whether_or_not_anyone_takes_its_frames() -> None:
    with open_source("synthetic:live", width=64, height=48, fps=30, source_fps=200) as src:
        assert src.next_frame(0, timeout=5) is not None
        assert src.wait_for(lambda s: s.frames >= 30, timeout=5), "nobody takes frames, the reader goes on"
        newest = src.next_frame(1, timeout=5)
        assert newest is not None and newest.index >= 30
