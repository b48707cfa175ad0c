"""One camera as the publisher sees it, keyed by the ``source`` field of its frame descriptors and results:
its two streams, its debouncer, its counters, its frame descriptors (sequence numbers are per camera), and
the status greenlens.Capture reports for it (connected, reconnecting, missing) on ``greenlens/cameras``."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .annotate import placeholder
from .debounce import Debouncer
from .frames import LatestImage
from .metrics import PipelineMetrics

DESCRIPTORS_KEPT = 256

_URL_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def url_id(source: str) -> str:
    """The camera's id in URLs (``/cameras/<id>/project.mjpg``): the source with anything but letters, digits
    and ``_.-`` replaced by ``_``."""
    return _URL_SAFE.sub("_", source) or "_"


@dataclass
class CameraStatus:
    state: str = "unknown"
    """What greenlens.Capture said last (``connected``, ``reconnecting``, ``missing``...), ``unknown`` before."""
    reason: str = ""
    at: float = 0.0
    skipped: int | None = None
    """Frames greenlens.Inference skipped for this camera, when it says so."""


@dataclass
class Camera:
    source: str
    id: str
    device: LatestImage
    project: LatestImage
    debouncer: Debouncer
    metrics: PipelineMetrics = field(default_factory=PipelineMetrics)
    status: CameraStatus = field(default_factory=CameraStatus)
    descriptors: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)
    pending_frame: dict[str, Any] | None = None
    last_result: dict[str, Any] | None = None
    last_change: dict[str, Any] | None = None
    last_frame_at: float = 0.0
    """time.monotonic() of its newest frame descriptor (0: none yet)."""
    events_sent: int = 0

    def remember(self, descriptor: dict[str, Any]) -> None:
        self.descriptors[int(descriptor["seq"])] = descriptor
        while len(self.descriptors) > DESCRIPTORS_KEPT:
            self.descriptors.popitem(last=False)


class Cameras:
    """Every camera seen so far, in the order first seen. Thread-safe; ``on_new(camera)`` hears of each new
    one (the HTTP side makes its stream watches)."""

    def __init__(self, debounce: int, jpeg_quality: int) -> None:
        self._lock = threading.Lock()
        self._by_source: OrderedDict[str, Camera] = OrderedDict()
        self._debounce = debounce
        self._quality = jpeg_quality
        self._listeners: list[Callable[[Camera], None]] = []

    def listen(self, on_new: Callable[[Camera], None]) -> None:
        with self._lock:
            self._listeners.append(on_new)
            existing = list(self._by_source.values())
        for camera in existing:
            on_new(camera)

    def get(self, source: str) -> Camera:
        """The camera of ``source``, created at its first message."""
        with self._lock:
            camera = self._by_source.get(source)
            if camera is not None:
                return camera
            taken = {c.id for c in self._by_source.values()}
            cid = url_id(source)
            n = 2
            while cid in taken:
                cid, n = f"{url_id(source)}-{n}", n + 1
            camera = Camera(source, cid,
                            LatestImage("device", placeholder(640, 480, "waiting for frames"), self._quality),
                            LatestImage("project", placeholder(640, 480, "waiting for results"), self._quality),
                            Debouncer(self._debounce))
            self._by_source[source] = camera
            listeners = list(self._listeners)
        for on_new in listeners:
            on_new(camera)
        return camera

    def by_id(self, cid: str) -> Camera | None:
        with self._lock:
            return next((c for c in self._by_source.values() if c.id == cid), None)

    def first(self) -> Camera | None:
        with self._lock:
            return next(iter(self._by_source.values()), None)

    def all(self) -> list[Camera]:
        with self._lock:
            return list(self._by_source.values())

    def configure(self, debounce: int, jpeg_quality: int) -> None:
        with self._lock:
            self._debounce, self._quality = debounce, jpeg_quality
            cameras = list(self._by_source.values())
        for camera in cameras:
            camera.debouncer.set_k(debounce)
            camera.device.quality = camera.project.quality = jpeg_quality

    def set_status(self, msg: Mapping[str, Any]) -> Camera | None:
        """A ``greenlens.camera/1`` message from greenlens.Capture (``camera``: the id its frames carry as
        ``source``; ``state``; ``detail``: the reason); None when it names no camera."""
        source = msg.get("camera")
        if not isinstance(source, str) or not source:
            return None
        camera = self.get(source)
        state = msg.get("state")
        if isinstance(state, str) and state:
            camera.status.state = state
        reason = msg.get("detail")
        camera.status.reason = reason if isinstance(reason, str) else ""
        camera.status.at = time.time()
        return camera
