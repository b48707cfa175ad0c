"""Frame sources: a camera, an RTSP or HTTP/MJPEG stream, a looping video file, an image folder, a synthetic scene.

Every source is a :class:`Grabber` (how to open it) wrapped in a :class:`FrameSource`, which
- opens it once, synchronously: a source that cannot be opened at all raises SourceOpenError naming the
  source and the reason;
- then reads it on its own thread, bringing every frame to the configured size (letterboxed);
- a live source (camera, RTSP/HTTP stream, ``synthetic:live``) is read continuously, keeping only the newest
  frame (OpenCV's buffer is drained, so a slow consumer never gets stale frames and never blocks the camera);
- a source that can wait (video file, image folder, ``synthetic``) is read on demand: the next frame is
  decoded only once the previous one was taken (one frame prefetched), and not before its pacing interval, so
  nothing is decoded that no consumer takes and a slow consumer slows the playback instead of skipping;
- treats a failed read, or no frame for ``stall_timeout`` seconds (the watchdog: OpenCV's read can block
  forever), as an outage: logged, counted, reported to ``on_event``, and reconnected with exponential
  backoff. A reader stuck inside OpenCV is abandoned (it exits when its call returns), never waited for.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np

from .imaging import letterbox

log = logging.getLogger("greenlens.capture.source")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
DEFAULT_FFMPEG_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000|probesize;500000"
"""FFmpeg options for network streams unless $OPENCV_FFMPEG_CAPTURE_OPTIONS is set: RTSP over TCP (a
restarted server is noticed at once), and a short probe so a stream opens in well under a second."""


class SourceOpenError(Exception):
    """A source that cannot be opened; the text names the source and the reason."""


@dataclass(frozen=True)
class CapturedFrame:
    image: np.ndarray
    """H x W x 3 BGR uint8 at the configured size."""
    index: int
    """1, 2, 3, ...: frames this source produced so far (across reconnects)."""
    captured_at: float
    """Epoch seconds when the frame was read."""


@dataclass
class SourceStats:
    frames: int = 0
    outages: int = 0
    reconnects: int = 0
    connected: bool = False
    last_error: str | None = None
    unreadable: int = 0
    """Images of a folder that could not be decoded (skipped)."""


@dataclass(frozen=True)
class SourceEvent:
    kind: str
    """``source_lost`` or ``source_restored``."""
    source: str
    detail: str
    stats: SourceStats = field(default_factory=SourceStats)


class Stream(Protocol):
    def read(self) -> np.ndarray | None:
        """The next frame, or None when the stream is lost or ended (it will be reopened)."""

    def close(self) -> None: ...


class Grabber(ABC):
    """How to open one source; each open gives a new :class:`Stream` (owned by one reader thread)."""

    description: str
    frame_interval: float | None = None
    """Seconds between frames for sources that are not real time (None: reads block at the source's pace)."""
    live: bool = True
    """A real-time source (camera, stream): read continuously, newest frame kept. False: a source that can wait
    (file, folder, synthetic), read on demand — the next frame only after the previous one was taken."""

    @abstractmethod
    def open(self) -> Stream:
        """Open the source, or raise SourceOpenError with the reason."""


# ----------------------------------------------------------------------------------------------- OpenCV


class _VideoCaptureStream:
    def __init__(self, cap: cv2.VideoCapture, loop: bool) -> None:
        self.cap = cap
        self.loop = loop

    def read(self) -> np.ndarray | None:
        ok, image = self.cap.read()
        if not ok and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
        return image if ok else None

    def close(self) -> None:
        self.cap.release()


class VideoCaptureGrabber(Grabber):
    """A camera (index or /dev/video path), a network stream URL or a video file, through OpenCV."""

    def __init__(
        self,
        target: int | str,
        *,
        kind: str,
        open_timeout: float = 5.0,
        read_timeout: float = 5.0,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        if kind not in ("camera", "stream", "file"):
            raise ValueError(f"kind {kind!r}: expected camera, stream or file")
        self.target = target
        self.kind = kind
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.width, self.height, self.fps = width, height, fps
        self.description = f"camera {target}" if kind == "camera" else redact_url(str(target))
        self.live = kind != "file"

    def _params(self) -> list[int]:
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000)]

    def open(self) -> Stream:
        if self.kind == "camera":
            cap = self._open_camera()
        elif self.kind == "stream":
            if not os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS"):
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = DEFAULT_FFMPEG_OPTIONS
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, self._params())
            if not cap.isOpened():
                cap.release()
                raise SourceOpenError(f"cannot open stream {self.description}: {_stream_reason(str(self.target))}")
        else:
            path = Path(str(self.target))
            if not path.is_file():
                raise SourceOpenError(f"cannot open video file {path}: no such file")
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, self._params())
            if not cap.isOpened():
                cap.release()
                raise SourceOpenError(f"cannot open video file {path}: OpenCV/FFmpeg cannot decode it")
            file_fps = cap.get(cv2.CAP_PROP_FPS)
            fps = self.fps or (file_fps if 0 < file_fps <= 240 else 25.0)
            self.frame_interval = 1.0 / fps
        return _VideoCaptureStream(cap, loop=self.kind == "file")

    def _open_camera(self) -> cv2.VideoCapture:
        target = self.target
        if isinstance(target, str) and not Path(target).exists():
            raise SourceOpenError(f"cannot open camera {target}: the device does not exist")
        if isinstance(target, int) and not Path(f"/dev/video{target}").exists() and os.path.isdir("/dev"):
            raise SourceOpenError(f"cannot open camera {target}: /dev/video{target} does not exist "
                                  "(no camera, or not passed into the container)")
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2, self._params())
        if not cap.isOpened():
            cap.release()
            raise SourceOpenError(f"cannot open camera {target}: V4L2 refused it (busy, or not a capture device)")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.width and self.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        return cap


def redact_url(url: str) -> str:
    """``url`` without its password (``rtsp://user:***@host/path``), fit for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _stream_reason(url: str) -> str:
    """Why a stream URL did not open, as far as a TCP connection can tell."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return "the URL has no host"
    default_port = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}.get(parts.scheme, 0)
    try:
        port = parts.port or default_port
    except ValueError:
        return "the URL's port is not a number"
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
    except socket.gaierror as exc:
        return f"host {host!r} cannot be resolved ({exc.strerror})"
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port} (no server listening)"
    except TimeoutError:
        return f"no answer from {host}:{port} within 2 s"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    return (f"{host}:{port} accepts connections but no video stream could be opened there "
            "(wrong path, authentication, or unsupported codec)")


# ----------------------------------------------------------------------------------------------- folder


class _FolderStream:
    def __init__(self, grabber: ImageFolderGrabber) -> None:
        self.g = grabber

    def read(self) -> np.ndarray | None:
        g = self.g
        for _ in range(len(g.files)):
            path = g.files[g.position % len(g.files)]
            g.position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            g.unreadable += 1
            log.warning("image folder %s: cannot decode %s, skipped", g.folder, path.name)
        return None  # not one readable image: an outage

    def close(self) -> None:
        pass


class ImageFolderGrabber(Grabber):
    """The images of a folder (and its subfolders), in name order, shown as a looping slideshow."""

    def __init__(self, folder: str | os.PathLike[str], fps: float) -> None:
        if not fps > 0:
            raise SourceOpenError(f"image folder {folder}: slideshow fps {fps!r} must be > 0")
        self.folder = Path(folder)
        self.description = f"image folder {self.folder}"
        self.live = False
        self.frame_interval = 1.0 / fps
        self.files: list[Path] = []
        self.position = 0
        self.unreadable = 0

    def open(self) -> Stream:
        if not self.folder.is_dir():
            raise SourceOpenError(f"cannot open image folder {self.folder}: not a directory")
        self.files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise SourceOpenError(f"cannot open image folder {self.folder}: it has no images "
                                  f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return _FolderStream(self)


# -------------------------------------------------------------------------------------------- synthetic


class _SyntheticStream:
    def __init__(self, grabber: SyntheticGrabber) -> None:
        self.g = grabber

    def read(self) -> np.ndarray | None:
        g = self.g
        g.count += 1
        return synthetic_frame(g.count, g.width, g.height)

    def close(self) -> None:
        pass


class SyntheticGrabber(Grabber):
    """Generated frames (a moving scene with a frame counter): no camera, no files.

    Read on demand like a file, unless ``live`` (spec ``synthetic:live``): then it behaves as a camera at
    ``fps`` (read continuously, newest frame kept, frames nobody took are skipped).
    """

    def __init__(self, width: int, height: int, fps: float, live: bool = False) -> None:
        if not fps > 0:
            raise SourceOpenError(f"synthetic source: fps {fps!r} must be > 0")
        self.width, self.height = width, height
        self.frame_interval = 1.0 / fps
        self.live = live
        self.description = "synthetic (live)" if live else "synthetic"
        self.count = 0

    def open(self) -> Stream:
        return _SyntheticStream(self)


def synthetic_frame(n: int, width: int, height: int) -> np.ndarray:
    """Frame ``n`` of the synthetic scene: a drifting colour gradient, a bouncing sausage, the frame number."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = ((x + n * 3) % 256).astype(np.uint8)
    image[..., 1] = ((y + n * 2) % 256).astype(np.uint8)
    image[..., 2] = 96
    cx = int((0.5 + 0.4 * math.sin(n / 15)) * width)
    cy = int((0.5 + 0.3 * math.cos(n / 11)) * height)
    axes = (max(2, width // 8), max(1, height // 16))
    cv2.ellipse(image, (cx, cy), axes, (n * 4) % 180, 0, 360, (40, 70, 200), -1)
    scale = max(0.4, height / 480)
    cv2.putText(image, f"GreenLens #{n}", (10, max(20, int(30 * scale))), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    return image


# ------------------------------------------------------------------------------------------ the source


class FrameSource:
    """A grabber read on its own thread; always hands out the newest frame. See the module docstring."""

    def __init__(
        self,
        grabber: Grabber,
        width: int,
        height: int,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stall_timeout: float = 10.0,
        on_event: Callable[[SourceEvent], None] | None = None,
    ) -> None:
        self.grabber = grabber
        self.width, self.height = width, height
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.stall_timeout = stall_timeout
        self.on_event = on_event
        self.description = grabber.description
        self._stats = SourceStats()
        self._latest: CapturedFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._generation = 0
        self._last_frame_mono = 0.0
        self._taken = 0  # index of the newest frame a consumer took (next_frame)
        self._idle = False  # an on-demand reader waiting for its frame to be taken (not a stall)
        self._threads: list[threading.Thread] = []
        self._started = False

    # -- lifecycle

    def start(self) -> FrameSource:
        """Open the source (SourceOpenError if it cannot be) and start reading it; once only."""
        if self._started:
            return self  # open_source() has started it; `with open_source(...)` must not start a 2nd reader
        stream = self.grabber.open()
        self._started = True
        with self._cond:
            self._stats.connected = True
            self._last_frame_mono = time.monotonic()
        self._spawn_reader(stream)
        watchdog = threading.Thread(target=self._watchdog, name="capture-watchdog", daemon=True)
        watchdog.start()
        self._threads.append(watchdog)
        log.info("source %s opened", self.description)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))  # a reader stuck in OpenCV is left behind (daemon)

    def __enter__(self) -> FrameSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumers

    def latest(self) -> CapturedFrame | None:
        with self._cond:
            return self._latest

    def next_frame(self, after: int, timeout: float) -> CapturedFrame | None:
        """The newest frame with ``index > after``, waiting up to ``timeout`` s for one (None if none came)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._stop.is_set() or (self._latest is not None and self._latest.index > after), timeout
            )
            if self._latest is not None and self._latest.index > after:
                if self._latest.index > self._taken:
                    self._taken = self._latest.index
                    if not self.grabber.live:
                        # A file, folder or synthetic frame read ahead enters the pipeline now: that is its
                        # capture instant (a live frame keeps the time it was grabbed).
                        self._latest = replace(self._latest, captured_at=time.time())
                    self._cond.notify_all()  # an on-demand reader may read the next one
                return self._latest
            return None

    def stats(self) -> SourceStats:
        with self._cond:
            s = self._stats
            unreadable = getattr(self.grabber, "unreadable", 0)
            return SourceStats(s.frames, s.outages, s.reconnects, s.connected, s.last_error, unreadable)

    def wait_for(self, predicate: Callable[[SourceStats], bool], timeout: float) -> bool:
        """Wait until ``predicate(stats)`` holds (True) or ``timeout`` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.stats()), timeout)

    # -- reader threads

    def _spawn_reader(self, stream: Stream | None) -> None:
        with self._cond:
            gen = self._generation
        t = threading.Thread(target=self._read_loop, args=(gen, stream), name=f"capture-reader-{gen}", daemon=True)
        t.start()
        self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _current(self, gen: int) -> bool:
        return not self._stop.is_set() and gen == self._generation

    def _wait_until_taken(self, gen: int) -> bool:
        """On-demand reading: wait until the newest frame was taken; False when this reader should end."""
        with self._cond:
            if self._latest is None or self._taken >= self._latest.index:
                return self._current(gen)
            self._idle = True
            try:
                self._cond.wait_for(lambda: not self._current(gen) or self._latest is None
                                    or self._taken >= self._latest.index)
            finally:
                self._idle = False
                self._last_frame_mono = time.monotonic()  # the stall watchdog counts from here
            return self._current(gen)

    def _read_loop(self, gen: int, stream: Stream | None) -> None:
        next_due = time.monotonic()
        on_demand = not self.grabber.live
        while self._current(gen):
            if on_demand and not self._wait_until_taken(gen):
                break
            if stream is None:
                stream = self._reconnect(gen)
                if stream is None:
                    return
                next_due = time.monotonic()
            try:
                image = stream.read()
                error = None if image is not None else "the stream ended or a read failed"
            except Exception as exc:  # OpenCV raises cv2.error on some broken streams
                image, error = None, f"read failed: {exc}"
            if not self._current(gen):
                break  # the watchdog replaced this reader while it was blocked
            if image is None:
                stream.close()
                stream = None
                self._outage(gen, error or "read failed")
                continue
            try:
                frame_image = letterbox(image, self.width, self.height)
            except (ValueError, cv2.error) as exc:
                stream.close()
                stream = None
                self._outage(gen, f"unusable frame: {exc}")
                continue
            now = time.time()
            with self._cond:
                if gen != self._generation:
                    break
                self._stats.frames += 1
                self._latest = CapturedFrame(frame_image, self._stats.frames, now)
                self._last_frame_mono = time.monotonic()
                self._cond.notify_all()
            interval = self.grabber.frame_interval
            if interval:
                next_due += interval
                delay = next_due - time.monotonic()
                if delay < -interval:
                    next_due = time.monotonic()  # fell behind: do not burst to catch up
                elif delay > 0 and self._stop.wait(delay):
                    break
        if stream is not None:
            stream.close()

    def _outage(self, gen: int, reason: str) -> None:
        with self._cond:
            if gen != self._generation or self._stop.is_set():
                return
            self._stats.outages += 1
            self._stats.connected = False
            self._stats.last_error = reason
            n = self._stats.outages
            self._cond.notify_all()
        detail = f"{self.description}: {reason}; reconnecting (outage {n})"
        log.warning("source lost: %s", detail)
        self._emit("source_lost", detail)

    def _reconnect(self, gen: int) -> Stream | None:
        delay = self.backoff_initial
        attempt = 0
        while self._current(gen):
            if self._stop.wait(delay):
                return None
            attempt += 1
            try:
                stream = self.grabber.open()
            except SourceOpenError as exc:
                with self._cond:
                    self._stats.last_error = str(exc)
                log.info("reconnect attempt %d to %s failed: %s; next in %.1f s", attempt, self.description, exc,
                         min(delay * 2, self.backoff_max))
                delay = min(delay * 2, self.backoff_max)
                continue
            with self._cond:
                if gen != self._generation or self._stop.is_set():
                    stream.close()
                    return None
                self._stats.reconnects += 1
                self._stats.connected = True
                self._last_frame_mono = time.monotonic()
                self._cond.notify_all()
            detail = f"{self.description}: reconnected after {attempt} attempt(s)"
            log.warning("source restored: %s", detail)
            self._emit("source_restored", detail)
            return stream
        return None

    def _watchdog(self) -> None:
        interval = self.grabber.frame_interval or 0.0
        limit = max(self.stall_timeout, 3 * interval)
        while not self._stop.wait(min(1.0, limit / 4)):
            with self._cond:
                stalled = (self._stats.connected and not self._idle
                           and time.monotonic() - self._last_frame_mono > limit)
                gen = self._generation
            if not stalled:
                continue
            self._outage(gen, f"no frame for {limit:.1f} s (stalled read abandoned)")
            with self._cond:
                if gen != self._generation:
                    continue
                self._generation += 1
                self._cond.notify_all()
            self._spawn_reader(None)

    def _emit(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(SourceEvent(kind, self.description, detail, self.stats()))
            except Exception:
                log.exception("source event handler failed")


# ---------------------------------------------------------------------------------------------- parsing


def make_grabber(
    spec: str | int,
    *,
    width: int,
    height: int,
    fps: float,
    source_fps: float | None = None,
    open_timeout: float = 5.0,
    read_timeout: float = 5.0,
) -> Grabber:
    """The grabber for a source spec; SourceOpenError when the spec names nothing usable.

    ``spec``: ``synthetic`` (``synthetic:live``: as a camera); a camera index (``0``) or device
    (``/dev/video0``); an ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://`` URL; a video file; a folder
    of images.
    ``source_fps`` paces files, folders and the synthetic scene (default: the file's own rate, else ``fps``).
    """
    timeouts = {"open_timeout": open_timeout, "read_timeout": read_timeout}
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return VideoCaptureGrabber(int(spec), kind="camera", width=width, height=height, fps=fps, **timeouts)
    text = spec.strip()
    if not text:
        raise SourceOpenError("source is empty: expected a camera index, /dev/video path, stream URL, "
                              "video file, image folder or 'synthetic'")
    if text == "synthetic" or text.startswith("synthetic:"):
        return SyntheticGrabber(width, height, source_fps or fps, live=text == "synthetic:live")
    if text.startswith("/dev/video"):
        return VideoCaptureGrabber(text, kind="camera", width=width, height=height, fps=fps, **timeouts)
    scheme = urlsplit(text).scheme.lower()
    if scheme in STREAM_SCHEMES:
        return VideoCaptureGrabber(text, kind="stream", **timeouts)
    if scheme == "file":
        text = urlsplit(text).path
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderGrabber(path, source_fps or fps)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise SourceOpenError(f"source {text}: a single image; give the folder that holds it instead")
        return VideoCaptureGrabber(path, kind="file", fps=source_fps, **timeouts)
    raise SourceOpenError(
        f"source {text!r}: no such file or folder, and not a camera index, /dev/video path, "
        f"{'/'.join(s + '://' for s in STREAM_SCHEMES)} URL or 'synthetic'"
    )


def open_source(
    spec: str | int,
    *,
    width: int,
    height: int,
    fps: float,
    source_fps: float | None = None,
    open_timeout: float = 5.0,
    read_timeout: float = 5.0,
    stall_timeout: float = 10.0,
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
    on_event: Callable[[SourceEvent], None] | None = None,
) -> FrameSource:
    """Open and start a source (see :func:`make_grabber`); raises SourceOpenError with the reason."""
    grabber = make_grabber(spec, width=width, height=height, fps=fps, source_fps=source_fps,
                           open_timeout=open_timeout, read_timeout=read_timeout)
    source = FrameSource(grabber, width, height, backoff_initial=backoff_initial, backoff_max=backoff_max,
                         stall_timeout=stall_timeout, on_event=on_event)
    return source.start()
