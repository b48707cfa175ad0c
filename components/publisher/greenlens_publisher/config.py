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
retryMaxSeconds        2                longest wait between attempts to reach IoT Core while it is unreachable
streamMaxFps           15               most frames per second sent to one MJPEG viewer
jpegQuality            80               JPEG quality of the streams and the snapshots (1..100)
snapshotBucket         (empty)          S3 bucket of the event snapshots (empty: events carry no snapshot)
snapshotKeyPrefix      ``greenlens/     the snapshot's key prefix; ``{thingName}`` and ``{camera}`` are filled in
                       {thingName}/
                       {camera}/``
snapshotRegion         (empty)          the bucket's AWS region (empty: $AWS_REGION, else us-east-1)
s3EndpointUrl          (empty)          an S3 endpoint override (local use: the control plane's moto S3)
snapshotDir            ``snapshots``    the snapshot store's folder (relative: under the work dir); snapshots
                                        wait there until S3 has them
snapshotMaxCount       1000             the store's bound in snapshots (the oldest are dropped, counted, logged
                                        and reported by a ``snapshot_dropped`` event)
snapshotMaxBytes       104857600        the store's bound in bytes (same)
frameStaleSeconds      10               /health calls a camera stale when its newest frame is older than this
=====================  ===============  ===========================================================================

All of them but spoolDir and snapshotDir are applied without a restart (a new host/port rebinds the HTTP
server); a new spoolDir or snapshotDir is used from the next start (a warning says so). A deployment that
proposes a bad value is refused before it applies (SubscribeToValidateConfigurationUpdates), naming the key.
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
    retry_max_seconds: float = 2.0
    stream_max_fps: float = 15.0
    jpeg_quality: int = 80
    snapshot_bucket: str = ""
    snapshot_key_prefix: str = "greenlens/{thingName}/{camera}/"
    snapshot_region: str = ""
    s3_endpoint_url: str = ""
    snapshot_dir: str = "snapshots"
    snapshot_max_count: int = 1000
    snapshot_max_bytes: int = 100 * 1024 * 1024
    frame_stale_seconds: float = 10.0

    def snapshot_prefix(self, thing_name: str, camera: str) -> str:
        """The key prefix of ``camera``'s snapshots (placeholders filled in)."""
        return self.snapshot_key_prefix.replace("{thingName}", thing_name).replace("{camera}", camera)

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


# S3's rules for bucket names (general purpose buckets): 3-63 characters of lowercase letters, digits, dots
# and hyphens, beginning and ending with a letter or digit, no two adjacent dots, not an IP address.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def _bucket(key: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    name = value.strip() if isinstance(value, str) else value
    if not isinstance(name, str) or not _BUCKET.match(name) or ".." in name or _IP.match(name):
        raise ConfigError(f"configuration {key}={value!r}: expected an S3 bucket name (3 to 63 lowercase letters, "
                          "digits, dots and hyphens, beginning and ending with a letter or digit), or empty for "
                          "no snapshots")
    return name


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_KEY_TEXT = re.compile(r"^[A-Za-z0-9!_.*'()/=-]*$")


def _key_prefix(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"configuration {key}={value!r}: expected a text (an S3 key prefix)")
    unknown = sorted(set(_PLACEHOLDER.findall(value)) - {"thingName", "camera"})
    bare = _PLACEHOLDER.sub("", value)
    if unknown or not _KEY_TEXT.match(bare) or value.startswith("/") or len(value) > 512:
        raise ConfigError(f"configuration {key}={value!r}: expected an S3 key prefix of letters, digits and "
                          "/!_.*'()=- with the placeholders {thingName} and {camera} only"
                          + (f" (unknown: {', '.join('{' + u + '}' for u in unknown)})" if unknown else ""))
    return value


def _endpoint(key: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+(/\S*)?$", value.strip()):
        raise ConfigError(f"configuration {key}={value!r}: expected an http:// or https:// URL, or empty for AWS")
    return value.strip()


def _region(key: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not re.match(r"^[a-z]{2}(-[a-z]+)+-\d+$", value.strip()):
        raise ConfigError(f"configuration {key}={value!r}: expected an AWS region such as 'us-east-1', or empty")
    return value.strip()


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
    "snapshotBucket": ("snapshot_bucket", _bucket),
    "snapshotKeyPrefix": ("snapshot_key_prefix", _key_prefix),
    "snapshotRegion": ("snapshot_region", _region),
    "s3EndpointUrl": ("s3_endpoint_url", _endpoint),
    "snapshotDir": ("snapshot_dir", text),
    "snapshotMaxCount": ("snapshot_max_count", integer(1)),
    "snapshotMaxBytes": ("snapshot_max_bytes", integer(1024)),
    "frameStaleSeconds": ("frame_stale_seconds", real(0.0)),
})
CONFIG_KEYS = _KEYS.names
