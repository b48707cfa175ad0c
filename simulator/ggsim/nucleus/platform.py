"""Platforms (spec components §1.3): the host's attributes, and which recipe manifest and Selections fit them.

The host: `os` is `linux` (when /proc exists), `darwin`, `windows` or `unknown`; `architecture` is `amd64`,
`x86`, `arm`, `aarch64` or `unknown` — never `x86_64`. On ARM hosts `architecture.detail` carries the
`uname -m` value (armv6l, armv7l, armv8l, ...). Any attribute can be overridden (the nucleus's
`platformOverride`), which is how tests pretend to be another device.

A manifest's `Platform` maps attribute names to a value each: `*` (or, for `os` and `architecture`, `all` or
`any`) matches anything, `/regex/` a device value the regular expression matches in full, anything else
that exact value. `Selections` pick, at every level of a recipe's global `Lifecycle`, the first selector key
a manifest lists (then `all`).
"""

from __future__ import annotations

import os
import platform as _platform
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

_ARM_DETAILS = ("armv6l", "armv7l", "armv8l", "armv6b", "armv7b", "armv8b")


def normalize_architecture(machine: str) -> str:
    """Map a `uname -m` value to the nucleus's architecture name."""
    m = machine.strip().lower()
    if m in ("x86_64", "amd64", "x64"):
        return "amd64"
    if m in ("i386", "i486", "i586", "i686", "x86"):
        return "x86"
    if m in ("aarch64", "arm64"):
        return "aarch64"
    if m.startswith("arm"):
        return "arm"
    return "unknown"


def detect_os() -> str:
    if sys.platform.startswith("linux"):
        return "linux" if os.path.isdir("/proc") else "unknown"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform.startswith("win"):
        return "windows"
    return "unknown"


def detect_platform(overrides: Mapping[str, str] | None = None, *, machine: str | None = None) -> dict[str, str]:
    """The device attributes used to match recipe manifests.

    `machine` replaces `uname -m` (for tests); `overrides` replaces or adds attributes, string values only.
    """
    raw_machine = machine if machine is not None else _platform.machine()
    attributes = {"os": detect_os(), "architecture": normalize_architecture(raw_machine)}
    if attributes["architecture"] in ("arm", "aarch64") and raw_machine.lower() in _ARM_DETAILS:
        attributes["architecture.detail"] = raw_machine.lower()
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"platform override {key!r}: {value!r} must map a string attribute name to a string value"
            )
        attributes[key] = value
    return attributes


# --------------------------------------------------------------------------- manifests and selections


def _is_regex(value: str) -> bool:
    return len(value) >= 2 and value.startswith("/") and value.endswith("/")


def platform_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a manifest's platform attribute value, or None when it can."""
    if value == "*":
        return None
    if _is_regex(value):
        try:
            re.compile(value[1:-1])
        except re.error as exc:
            return f"invalid regular expression {value!r}: {exc}"
        return None
    if not value or not value[0].isalnum():
        return f"{value!r} must be '*', a /regular expression/, or a value starting with a letter or digit"
    return None


def platform_matches(requirement: Mapping[str, str | None], device: Mapping[str, str]) -> bool:
    """Whether a manifest's `Platform` is satisfied by the device attributes (spec §1.3)."""
    for key, want in requirement.items():
        if want is None or want == "*":
            continue
        if key in ("os", "architecture") and want in ("all", "any"):
            continue
        have = device.get(key)
        if _is_regex(want):
            if not have or not have.strip():
                return False
            if re.fullmatch(want[1:-1], have) is None:
                return False
            continue
        if have != want:
            return False
    return True


def filter_selections(node: Any, priority: Sequence[str], selectors: set[str]) -> Any:
    """Keep, at every mapping level that has selector keys, only the first selector present in `priority`.

    Returns None when a level has selectors but none of `priority` (the caller drops that key).
    Non-selector siblings of selector keys are dropped, as the nucleus does.
    """
    if not isinstance(node, dict):
        return node
    lowered = {k.lower(): k for k in node}
    if any(k in selectors for k in lowered):
        for choice in priority:
            if choice in lowered:
                return filter_selections(node[lowered[choice]], priority, selectors)
        return None
    out: dict[str, Any] = {}
    for key, value in node.items():
        filtered = filter_selections(value, priority, selectors)
        if filtered is not None or value is None:
            out[key] = filtered
    return out
