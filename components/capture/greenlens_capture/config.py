"""greenlens.Capture's configuration: its keys, their defaults, and clear errors for bad values.

Component configuration keys (recipe ``ComponentConfiguration.DefaultConfiguration``):

=====================  ===================  =====================================================================
key                    default              meaning
=====================  ===================  =====================================================================
source                 ``synthetic``        camera index or /dev/video path, rtsp:// or http(s):// URL, video file,
                                            image folder, ``synthetic`` (read on demand) or ``synthetic:live``
                                            (behaves as a camera)
fps                    10                   frames per second published (the newest frame at each tick)
width, height          640, 480             frame size in the ring (frames are letterboxed to it)
cameraId               ``camera``           the ``source`` field of every frame descriptor
transport              ``ring``             ``ring`` (pixels in shared memory) or ``inline`` (a small JPEG)
ringName               ``greenlens-frames`` file name of the ring in the ring directory
ringSlots              4                    slots in the ring (4 x 1280x720 fits Docker's 64 MB /dev/shm)
sourceFps              (none)               pace of files, folders and the synthetic scene (default: the file's
                                            own rate, else ``fps``)
inlineMaxBytes         6000                 largest inline JPEG (IPC frames are capped at 10,000 bytes)
openTimeoutSeconds     5                    OpenCV open timeout for cameras and streams
readTimeoutSeconds     5                    OpenCV read timeout
stallTimeoutSeconds    10                   watchdog: no frame for this long is an outage
maxBackoffSeconds      30                   longest wait between reconnect attempts
maxFramesInFlight      2                    flow control: frame n+k is not published before a result for a frame
                                            >= n came back on greenlens/results (k = this; 0 = off)
inFlightTimeoutSeconds 1                    flow control: publish anyway after waiting this long for a result
                                            (counted; no result at all: published at ``fps`` until one comes)
cameras                (none)               several cameras: a list of objects, each with ``id`` (its camera id)
                                            and any of the keys above but ``cameraId`` (the keys above are their
                                            defaults); each camera's ring is ``<ringName>-<id>`` unless it names
                                            its own. None or an empty list: one camera, the keys above.
=====================  ===================  =====================================================================

Numbers may arrive as floats (1 -> 1.0) or numeric strings; both are accepted when they mean the same.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from greenlens_common.config import ConfigError, KeyTable, integer, optional, real, text

from .sources import STREAM_SCHEMES

log = logging.getLogger("greenlens.capture.config")


@dataclass(frozen=True)
class CaptureConfig:
    source: str = "synthetic"
    fps: float = 10.0
    width: int = 640
    height: int = 480
    camera_id: str = "camera"
    transport: str = "ring"
    ring_name: str = "greenlens-frames"
    ring_slots: int = 4
    source_fps: float | None = None
    inline_max_bytes: int = 6000
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    stall_timeout: float = 10.0
    max_backoff: float = 30.0
    max_in_flight: int = 2
    in_flight_timeout: float = 1.0

    def source_settings(self) -> tuple[Any, ...]:
        """What a change of requires reopening the source."""
        return (self.source, self.width, self.height, self.fps, self.source_fps, self.open_timeout,
                self.read_timeout, self.stall_timeout, self.max_backoff)

    def updated(self, mapping: Mapping[str, Any]) -> CaptureConfig:
        """This configuration with the keys of ``mapping`` (component configuration names) applied."""
        return _KEYS.updated(self, mapping)


CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A camera id: it names the camera's ring, its MJPEG URL and its metrics label."""


def _camera_id(key: str, value: Any) -> str:
    if not isinstance(value, str) or not CAMERA_ID.match(value):
        raise ConfigError(f"configuration {key}={value!r}: expected a camera id of letters, digits, '_', '.' "
                          "and '-' (at most 64, starting with a letter or digit), e.g. 'front-door'")
    return value


def _source(key: str, value: Any) -> str:
    """A source string that can name something: a camera that is absent is a run-time condition (retried),
    a string that cannot name any source is refused here."""
    spec = _text(key, value)
    expected = (f"expected a camera index, /dev/video path, {'/'.join(s + '://' for s in STREAM_SCHEMES)} URL, "
                "video file, image folder, 'synthetic' or 'synthetic:live'")
    if spec.startswith("synthetic") and spec not in ("synthetic", "synthetic:live"):
        raise ConfigError(f"configuration {key}={value!r}: {expected}")
    if spec.lstrip("-").isdigit() and spec.startswith("-"):
        raise ConfigError(f"configuration {key}={value!r}: a camera index is >= 0; {expected}")
    if "://" in spec:
        parts = urlsplit(spec)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if not parts.path:
                raise ConfigError(f"configuration {key}={value!r}: a file:// URL names a path; {expected}")
        elif scheme not in STREAM_SCHEMES:
            raise ConfigError(f"configuration {key}={value!r}: the scheme {scheme or '(none)'!r} is not "
                              f"supported; {expected}")
        elif not parts.hostname:
            raise ConfigError(f"configuration {key}={value!r}: the URL names no host; {expected}")
    return spec


def _text(key: str, value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and key == "source":
        value = str(int(value)) if float(value).is_integer() else str(value)  # camera index 0 -> "0"
    return text(key, value)


def _transport(key: str, value: Any) -> str:
    if value not in ("ring", "inline"):
        raise ConfigError(f"configuration {key}={value!r}: expected 'ring' or 'inline'")
    return str(value)


def _ring_name(key: str, value: Any) -> str:
    name = _text(key, value)
    if "/" in name or name.startswith("."):
        raise ConfigError(f"configuration {key}={value!r}: expected a plain file name such as 'greenlens-frames'")
    return name


_KEYS = KeyTable(log, {
    "source": ("source", _source),
    "fps": ("fps", real(0.0)),
    "width": ("width", integer(16, 7680)),
    "height": ("height", integer(16, 4320)),
    "cameraId": ("camera_id", _camera_id),
    "transport": ("transport", _transport),
    "ringName": ("ring_name", _ring_name),
    "ringSlots": ("ring_slots", integer(2, 64)),
    "sourceFps": ("source_fps", optional(real(0.0))),
    "inlineMaxBytes": ("inline_max_bytes", integer(1000, 9000)),
    "openTimeoutSeconds": ("open_timeout", real(0.0)),
    "readTimeoutSeconds": ("read_timeout", real(0.0)),
    "stallTimeoutSeconds": ("stall_timeout", real(0.0)),
    "maxBackoffSeconds": ("max_backoff", real(0.0)),
    "maxFramesInFlight": ("max_in_flight", integer(0, 64)),
    "inFlightTimeoutSeconds": ("in_flight_timeout", real(0.0)),
})
CONFIG_KEYS = _KEYS.names

CAMERA_KEYS = frozenset(CONFIG_KEYS) - {"cameraId"} | {"id"}
"""The keys of one entry of ``cameras``."""


@dataclass(frozen=True)
class CaptureSettings:
    """The whole component configuration: the single-camera keys (``base``) and the ``cameras`` list.

    :attr:`cameras` is what runs: one :class:`CaptureConfig` per camera, in the list's order; the list's
    entries are checked whenever it is updated (ConfigError names the camera, the key and the value)."""

    base: CaptureConfig = CaptureConfig()
    entries: tuple[Mapping[str, Any], ...] | None = None
    cameras: tuple[CaptureConfig, ...] = (CaptureConfig(),)

    def updated(self, mapping: Mapping[str, Any]) -> CaptureSettings:
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"configuration is a {type(mapping).__name__}, expected an object of keys")
        base = self.base.updated({k: v for k, v in mapping.items() if k != "cameras"})
        entries = self.entries
        if "cameras" in mapping:
            entries = _entries(mapping["cameras"])
        return CaptureSettings(base, entries, _cameras(base, entries))


def _entries(value: Any) -> tuple[Mapping[str, Any], ...] | None:
    if isinstance(value, str) and value.strip().startswith("["):  # the command line's --cameras
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"configuration cameras={value!r}: not JSON ({exc})") from None
    if value is None or value == "" or value == []:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(e, Mapping) for e in value):
        raise ConfigError(f"configuration cameras={value!r}: expected a list of objects, each with an 'id' "
                          "and the camera's settings, e.g. [{\"id\": \"door\", \"source\": \"0\"}]")
    return tuple(dict(e) for e in value)


def _cameras(base: CaptureConfig, entries: tuple[Mapping[str, Any], ...] | None) -> tuple[CaptureConfig, ...]:
    if entries is None:
        return (base,)
    cameras: list[CaptureConfig] = []
    seen: dict[str, int] = {}
    rings: dict[str, str] = {}
    for i, entry in enumerate(entries):
        where = f"cameras[{i}]"
        if "id" not in entry:
            raise ConfigError(f"configuration {where}: no 'id': each camera needs an id, e.g. 'front-door'")
        camera_id = _camera_id(f"{where}.id", entry["id"])
        where = f"camera {camera_id!r} ({where})"
        unknown = sorted(set(entry) - CAMERA_KEYS)
        if unknown:
            raise ConfigError(f"configuration {where}: unknown setting {unknown[0]!r} (a camera takes: "
                              f"{', '.join(sorted(CAMERA_KEYS))})")
        if camera_id in seen:
            raise ConfigError(f"configuration {where}: duplicate camera id {camera_id!r} (also cameras[{seen[camera_id]}])"
                              "; each camera needs its own id")
        seen[camera_id] = i
        settings = {k: v for k, v in entry.items() if k != "id"}
        settings.setdefault("ringName", f"{base.ring_name}-{camera_id}")
        try:
            config = _KEYS.updated(base, {**settings, "cameraId": camera_id})
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if config.transport == "ring":
            if config.ring_name in rings:
                raise ConfigError(f"configuration {where}: ringName {config.ring_name!r} is also camera "
                                  f"{rings[config.ring_name]!r}'s ring; each camera needs its own ring")
            rings[config.ring_name] = camera_id
        cameras.append(config)
    return tuple(cameras)
