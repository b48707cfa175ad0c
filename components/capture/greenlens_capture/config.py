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
=====================  ===================  =====================================================================

Numbers may arrive as floats (1 -> 1.0) or numeric strings; both are accepted when they mean the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenlens_common.config import ConfigError, KeyTable, integer, optional, real, text

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
    "source": ("source", _text),
    "fps": ("fps", real(0.0)),
    "width": ("width", integer(16, 7680)),
    "height": ("height", integer(16, 4320)),
    "cameraId": ("camera_id", _text),
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
