"""JSON numbers as the Java nucleus hands them on: Gson parses an IPC request's JSON into
``Map<String, Object>``, which makes every JSON number a double (``1`` → ``1.0``).

Used where a value crossed IPC on the Java nucleus: local pub/sub JSON messages, UpdateConfiguration, a
local (greengrass-cli) deployment's configuration MERGE. A cloud deployment's configuration keeps its
integers (design §10).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["as_java_numbers"]


def as_java_numbers(value: Any) -> Any:
    """``value`` with every int turned into a float, in mappings and lists at any depth; bools, None,
    strings and floats stay as they are. Returns new containers, never changes ``value``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {k: as_java_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_java_numbers(v) for v in value]
    return value
