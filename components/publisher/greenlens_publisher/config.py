"""greenlens.StreamPublisher's configuration: its keys, their defaults, and clear errors for bad values.

Component configuration keys (recipe ``ComponentConfiguration.DefaultConfiguration``):

=====================  ===============  ===========================================================================
key                    default          meaning
=====================  ===============  ===========================================================================
host                   ``127.0.0.1``    address the HTTP server (page, MJPEG streams, /api/status) listens on
port                   8080             its TCP port
topicPrefix            ``greenlens``    IoT Core topics are ``<topicPrefix>/<thing name>/results`` and ``/events``
resultsPerSecond       1                result messages sent to IoT Core per second: a token bucket of N tokens
                                        refilled at N/s (bursts up to N). Results are sampled: the newest
                                        result goes, with a summary of those it stands for; 0 sends no
                                        results (events always go, unlimited)
debounceResults        3                consecutive results that must agree before "appeared"/"gone" is sent
mqttQos                0                QoS of PublishToIoTCore: 0 (a failure while offline comes back at once
                                        and the message goes to this component's disk spool) or 1
spoolDir               ``spool``        the disk spool's folder (relative: under the component's work dir)
spoolMaxBytes          10485760         the spool's bound in bytes (the oldest messages overflow, counted)
spoolMaxMessages       10000            the spool's bound in messages
retryMaxSeconds        30               longest wait between attempts to reach IoT Core while it is unreachable
streamMaxFps           15               most frames per second sent to one MJPEG viewer
jpegQuality            80               JPEG quality of the streams (1..100)
=====================  ===============  ===========================================================================

All of them but spoolDir are applied without a restart (a new host/port rebinds the HTTP server); a new
spoolDir is used from the next start (a warning says so).
Numbers may arrive as floats (1 -> 1.0) or numeric strings; both are accepted when they mean the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenlens_common.config import ConfigError, KeyTable, integer, real, text

log = logging.getLogger("greenlens.publisher.config")


@dataclass(frozen=True)
class PublisherConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    topic_prefix: str = "greenlens"
    results_per_second: float = 1.0
    debounce_results: int = 3
    mqtt_qos: int = 0
    spool_dir: str = "spool"
    spool_max_bytes: int = 10 * 1024 * 1024
    spool_max_messages: int = 10_000
    retry_max_seconds: float = 30.0
    stream_max_fps: float = 15.0
    jpeg_quality: int = 80

    def updated(self, mapping: Mapping[str, Any]) -> PublisherConfig:
        """This configuration with the keys of ``mapping`` (component configuration names) applied."""
        return _KEYS.updated(self, mapping)

    def as_keys(self) -> dict[str, Any]:
        """The configuration under its component configuration key names (for /api/status)."""
        return _KEYS.as_keys(self)


_TOPIC_PART = re.compile(r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$")


def _topic_prefix(key: str, value: Any) -> str:
    prefix = text(key, value).strip("/")
    if not _TOPIC_PART.match(prefix) or prefix.count("/") > 4:
        raise ConfigError(f"configuration {key}={value!r}: expected topic levels of letters, digits and _.:- "
                          "separated by '/', at most 5 levels, no MQTT wildcards (e.g. 'greenlens')")
    return prefix


_KEYS = KeyTable(log, {
    "host": ("host", text),
    "port": ("port", integer(0, 65535)),
    "topicPrefix": ("topic_prefix", _topic_prefix),
    "resultsPerSecond": ("results_per_second", real(0.0, positive=False)),
    "debounceResults": ("debounce_results", integer(1, 1000)),
    "mqttQos": ("mqtt_qos", integer(0, 1)),
    "spoolDir": ("spool_dir", text),
    "spoolMaxBytes": ("spool_max_bytes", integer(1024)),
    "spoolMaxMessages": ("spool_max_messages", integer(1)),
    "retryMaxSeconds": ("retry_max_seconds", real(0.0)),
    "streamMaxFps": ("stream_max_fps", real(0.0)),
    "jpegQuality": ("jpeg_quality", integer(1, 100)),
})
CONFIG_KEYS = _KEYS.names
