"""JSON pointers (RFC 6901) as recipe variables and configuration RESET use them."""

from __future__ import annotations

from typing import Any

import pytest
from ggsim.nucleus.pointer import PointerError, parse_pointer, resolve_pointer

DOC: dict[str, Any] = {"a/b": 1, "m~n": 2, "~1": 3, "": 4, "list": [10, [20, 21]], "x": {"y": None}}


@pytest.mark.parametrize(("pointer", "tokens"), [
    ("", []),
    ("/", [""]),
    ("/a/b", ["a", "b"]),
    ("/a~1b", ["a/b"]),
    ("/m~0n", ["m~n"]),
    ("/~01", ["~1"]),  # ~1 is unescaped first: ~01 is the key "~1", not "~/" nor "/"
    ("/a//b/", ["a", "", "b", ""]),
    ("/~2", ["~2"]),  # an unknown escape is kept as written
])
def test_parse_unescapes_each_token(pointer: str, tokens: list[str]) -> None:
    assert parse_pointer(pointer) == tokens


@pytest.mark.parametrize("pointer", ["a", "a/b", " /a", "#/a"])
def test_a_pointer_is_empty_or_starts_with_a_slash(pointer: str) -> None:
    with pytest.raises(PointerError, match=rf"{pointer!r} is not a JSON pointer; it must be '' or start with '/'"):
        parse_pointer(pointer)


@pytest.mark.parametrize(("pointer", "value"), [
    ("", DOC),
    ("/a~1b", 1),
    ("/m~0n", 2),
    ("/~01", 3),
    ("/", 4),
    ("/list/0", 10),
    ("/list/1/1", 21),
    ("/x/y", None),
])
def test_resolve(pointer: str, value: Any) -> None:
    assert resolve_pointer(DOC, pointer) == value


@pytest.mark.parametrize("pointer", ["/missing", "/a/b", "/list/2", "/list/01", "/list/-", "/list/x", "/x/y/z",
                                     "no-slash"])
def test_resolve_raises_key_error_when_nothing_is_there(pointer: str) -> None:
    with pytest.raises(KeyError):
        resolve_pointer(DOC, pointer)
