"""How deep JSON-like values may nest: one limit for IPC requests and configuration values.

A JSON parser with a depth limit refuses a document nested deeper than the limit; ggsim applies the same
rule to what a component sends over IPC and to configuration values, so a hostile or careless value is
refused with a clear error instead of breaking a later step (Python's parser, the configuration tree and
the YAML writer of effectiveConfig.yaml all recurse). 128 levels is serde_json's default limit, far deeper
than any real request or configuration, and well inside what every later step handles (PyYAML writes
effectiveConfig.yaml up to about 300 levels).
"""

from __future__ import annotations

from typing import Any

#: Deepest nesting of objects and arrays accepted in an IPC request or a configuration value.
MAX_NESTING_DEPTH = 128


def nesting_depth_exceeds(value: Any, limit: int = MAX_NESTING_DEPTH) -> bool:
    """True when ``value`` nests dicts/lists (or tuples) more than ``limit`` levels deep; never recurses."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))
    return False

