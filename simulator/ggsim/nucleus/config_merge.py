"""Configuration MERGE and RESET on plain trees (spec components §4.1): the one place these rules live.

A configuration is a plain JSON-like tree: dicts are containers, anything else (str, number, bool, None,
list) is a value. Every function here is pure: it returns a new tree and never changes its arguments.

* :func:`reset_configuration` removes the node each JSON pointer names (``""`` = everything). A pointer
  into a list element, or through a value, is logged and skipped (only whole lists can be reset), as the
  nucleus does.
* :func:`fill_defaults` adds what the recipe's default configuration has and the tree lacks; a value the
  tree already has (a deployed value) is never replaced by a default.
* :func:`merge_configuration` merges an update: objects merge recursively, lists and scalars replace (a
  value may change type, ``None`` is a value).

A deployment applies them in that order (reset, then defaults, then merge), so a reset node gets its
recipe default back. Timestamps are not a plain tree's business: ConfigStore.replace writes the result and
keeps a node the device changed after the deployment was created.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any

# config.py uses this module (ConfigStore.merge); the module import keeps that cycle harmless.
from ggsim.nucleus.pointer import parse_pointer

__all__ = ["fill_defaults", "merge_configuration", "reset_configuration"]

log = logging.getLogger(__name__)


def reset_configuration(tree: Mapping[str, Any], pointers: Iterable[str], component: str = "") -> dict[str, Any]:
    """``tree`` without the nodes the JSON ``pointers`` name; ``ValueError`` for text that is not a pointer."""
    out: dict[str, Any] = copy.deepcopy(dict(tree))
    for pointer in pointers:
        parts = parse_pointer(pointer)
        if not parts:
            out = {}
            continue
        node: Any = out
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if isinstance(node, dict):
                node.pop(parts[-1], None)
                continue
        if isinstance(node, list):
            log.error("reset of %s: pointer %r goes into a list; only whole lists can be reset", component, pointer)
    return out


def fill_defaults(tree: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``tree`` plus every default it lacks (containers filled recursively; its own values kept)."""
    out: dict[str, Any] = copy.deepcopy(dict(tree))
    for key, value in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(value) if not isinstance(value, Mapping) else fill_defaults({}, value)
        elif isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = fill_defaults(out[key], value)
    return out


def merge_configuration(tree: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``tree`` with ``update`` merged in: objects recursively, lists and scalars replace."""
    out: dict[str, Any] = copy.deepcopy(dict(tree))
    for key, value in update.items():
        if isinstance(value, Mapping):
            out[key] = merge_configuration(out[key] if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out
