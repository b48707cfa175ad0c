"""Platforms (spec components §1.3): the host's attributes, manifest matching and Selections filtering."""

from __future__ import annotations

import pytest
from ggsim.nucleus.platform import (
    detect_platform,
    filter_selections,
    normalize_architecture,
    platform_matches,
    platform_value_problem,
)

AMD64 = {"os": "linux", "architecture": "amd64"}
AARCH64 = {"os": "linux", "architecture": "aarch64"}


@pytest.mark.parametrize(
    ("requirement", "device", "matches"),
    [
        ({}, AMD64, True),
        ({"os": "linux", "architecture": "amd64"}, AMD64, True),
        ({"os": "linux", "architecture": "x86_64"}, AMD64, False),  # the trap: devices report amd64
        ({"architecture": "/amd64|aarch64/"}, AARCH64, True),
        ({"architecture": "/amd/"}, AMD64, False),  # regex must match the whole value
        ({"architecture.detail": "/armv7l/"}, AARCH64, False),  # regex on a missing attribute fails
        ({"architecture.detail": "*"}, AMD64, True),  # wildcard matches a missing attribute
        ({"architecture.detail": None}, AMD64, True),
        ({"os": "all", "architecture": "any"}, AMD64, True),
        ({"gpu": "all"}, AMD64 | {"gpu": "nvidia"}, False),  # all/any are wildcards only for os/architecture
        ({"os": "Linux"}, AMD64, False),  # exact values are case-sensitive
        ({"gpu": "nvidia"}, AMD64 | {"gpu": "nvidia"}, True),
    ],
)
def test_platform_matching(requirement: dict, device: dict, matches: bool) -> None:
    assert platform_matches(requirement, device) is matches


@pytest.mark.parametrize(
    ("machine", "architecture"),
    [("x86_64", "amd64"), ("AMD64", "amd64"), ("aarch64", "aarch64"), ("arm64", "aarch64"), ("armv7l", "arm"),
     ("armv6l", "arm"), ("i686", "x86"), ("riscv64", "unknown")],
)
def test_architecture_names_follow_the_nucleus(machine: str, architecture: str) -> None:
    assert normalize_architecture(machine) == architecture
    assert detect_platform(machine=machine)["architecture"] == architecture


def test_arm_detail_and_overrides() -> None:
    assert detect_platform(machine="armv7l")["architecture.detail"] == "armv7l"
    assert "architecture.detail" not in detect_platform(machine="x86_64")
    overridden = detect_platform({"architecture": "aarch64", "gpu": "nvidia"}, machine="x86_64")
    assert overridden["architecture"] == "aarch64" and overridden["gpu"] == "nvidia"
    with pytest.raises(ValueError, match="must map a string attribute name to a string value"):
        detect_platform({"cores": 4})  # type: ignore[dict-item]



def test_selectors_at_deeper_levels_and_non_selector_siblings_are_dropped() -> None:
    lifecycle = {
        "Run": {"Script": {"small": "s", "all": "a", "stray": "dropped"}, "Timeout": {"all": 7}},
        "Install": {"big": "install big"},
    }
    selectors = {"big", "small", "all"}
    assert filter_selections(lifecycle, ["small", "all"], selectors) == {"Run": {"Script": "s", "Timeout": 7}}
    assert filter_selections(lifecycle, ["big", "all"], selectors) == {
        "Run": {"Script": "a", "Timeout": 7},
        "Install": "install big",
    }


@pytest.mark.parametrize("value", ["*", "linux", "amd64", "9x", "/amd64|aarch64/", "/.*/"])
def test_platform_values_that_a_manifest_may_use(value: str) -> None:
    assert platform_value_problem(value) is None


@pytest.mark.parametrize(("value", "problem"), [
    ("/(amd/", "invalid regular expression '/(amd/'"),
    ("-linux", "'-linux' must be '*', a /regular expression/, or a value starting with a letter or digit"),
    ("", "'' must be '*'"),
])
def test_platform_values_that_a_manifest_may_not_use(value: str, problem: str) -> None:
    assert (platform_value_problem(value) or "").startswith(problem)
