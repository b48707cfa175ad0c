"""The host's platform attributes, as the Greengrass nucleus reports them (spec components §1.3).

`os` is `linux` (when /proc exists), `darwin`, `windows` or `unknown`; `architecture` is `amd64`,
`x86`, `arm`, `aarch64` or `unknown` — never `x86_64`. On ARM hosts `architecture.detail` carries the
`uname -m` value (armv6l, armv7l, armv8l, ...). Any attribute can be overridden (the nucleus's
`platformOverride`), which is how tests pretend to be another device.
"""

from __future__ import annotations

import os
import platform as _platform
import sys
from collections.abc import Mapping

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
