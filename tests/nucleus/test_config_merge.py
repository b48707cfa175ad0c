"""Configuration MERGE and RESET on plain trees (spec components §4.1): the rules a deployment applies."""

from __future__ import annotations

import logging

import pytest
from ggsim.nucleus.config_merge import fill_defaults, merge_configuration, reset_configuration

TREE = {"Interval": "60", "Camera": {"url": "rtsp://cam", "fps": 30}, "List": [1, 2, 3], "Name": "x"}


def test_reset_removes_the_named_nodes() -> None:
    assert reset_configuration(TREE, ["/Camera/fps", "/Name", "/NotThere", "/Camera/nope/deeper"]) == {
        "Interval": "60", "Camera": {"url": "rtsp://cam"}, "List": [1, 2, 3]}


def test_reset_of_the_empty_pointer_removes_everything_and_later_pointers_still_apply() -> None:
    assert reset_configuration(TREE, [""]) == {}
    assert reset_configuration(TREE, ["/Interval", ""]) == {}


def test_reset_unescapes_pointer_tokens() -> None:
    assert reset_configuration({"a/b": 1, "m~n": 2, "keep": 3}, ["/a~1b", "/m~0n"]) == {"keep": 3}


def test_reset_into_a_list_element_or_through_a_value_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ggsim.nucleus.config_merge"):
        assert reset_configuration(TREE, ["/List/0", "/Name/0"], "comp.A") == TREE
    assert "reset of comp.A: pointer '/List/0' goes into a list; only whole lists can be reset" in caplog.text


def test_reset_refuses_text_that_is_not_a_pointer() -> None:
    with pytest.raises(ValueError, match="JSON pointer"):
        reset_configuration(TREE, ["Camera"])


def test_defaults_fill_what_is_missing_and_never_replace_a_value() -> None:
    defaults = {"Interval": "10", "Camera": {"url": "default", "exposure": "auto"}, "New": {"a": [1]}}
    assert fill_defaults(TREE, defaults) == {
        "Interval": "60", "Camera": {"url": "rtsp://cam", "fps": 30, "exposure": "auto"}, "List": [1, 2, 3],
        "Name": "x", "New": {"a": [1]}}
    # a value where the defaults have an object stays a value
    assert fill_defaults({"Camera": "off"}, defaults)["Camera"] == "off"


def test_merge_objects_recursively_lists_and_scalars_replace() -> None:
    update = {"Camera": {"fps": 5, "extra": {"k": True}}, "List": [9], "Interval": None, "Name": {"first": "y"}}
    assert merge_configuration(TREE, update) == {
        "Interval": None, "Camera": {"url": "rtsp://cam", "fps": 5, "extra": {"k": True}}, "List": [9],
        "Name": {"first": "y"}}


def test_the_functions_never_change_their_arguments() -> None:
    tree = {"Obj": {"x": 1}, "L": [1]}
    update = {"Obj": {"y": 2}, "L": [2]}
    defaults = {"Obj": {"z": 3}}
    merged = merge_configuration(tree, update)
    filled = fill_defaults(tree, defaults)
    reset = reset_configuration(tree, ["/Obj/x"])
    merged["L"].append(5)
    filled["Obj"]["x"] = 7
    assert tree == {"Obj": {"x": 1}, "L": [1]} and update == {"Obj": {"y": 2}, "L": [2]}
    assert defaults == {"Obj": {"z": 3}} and reset == {"Obj": {}, "L": [1]}
