"""The Java nucleus's numbers: every JSON number that crossed IPC comes back a double (design §10)."""

from __future__ import annotations

from ggsim.nucleus.java_numbers import as_java_numbers


def test_ints_become_floats_at_any_depth_and_nothing_else_changes() -> None:
    value = {"a": [1, {"b": 2}], "c": False, "d": None, "e": "3", "f": 1.5, "g": True}
    converted = as_java_numbers(value)
    assert converted == {"a": [1.0, {"b": 2.0}], "c": False, "d": None, "e": "3", "f": 1.5, "g": True}
    assert type(converted["a"][0]) is float and converted["c"] is False and converted["g"] is True
    assert value["a"][0] == 1 and type(value["a"][0]) is int, "the input is left as it was"
