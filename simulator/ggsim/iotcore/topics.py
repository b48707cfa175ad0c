"""MQTT topic rules for IoT Core (MQTT 3.1.1/5 semantics, IoT Core's limits)."""

from __future__ import annotations

from paho.mqtt.client import topic_matches_sub

MAX_TOPIC_LENGTH = 256
MAX_SLASHES = 7


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching: `+` one level, `#` any levels including none; `$` topics only by explicit filters."""
    return topic_matches_sub(topic_filter, topic)


def publish_topic_problem(topic: str) -> str | None:
    """Why IoT Core would refuse to publish to `topic`, or None (spec IPC §4.4)."""
    if not topic:
        return "topic is empty"
    if "#" in topic or "+" in topic:
        return "topic must not contain the wildcards # or +"
    if len(topic.encode()) > MAX_TOPIC_LENGTH:
        return f"topic is longer than {MAX_TOPIC_LENGTH} bytes"
    if topic.count("/") > MAX_SLASHES:
        return f"topic has more than {MAX_SLASHES} forward slashes"
    return None


def filter_problem(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a valid MQTT subscription filter, or None."""
    if not topic_filter:
        return "topic filter is empty"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "# must be a whole last level"
        if "+" in level and level != "+":
            return "+ must be a whole level"
    return None
