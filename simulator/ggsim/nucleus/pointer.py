"""JSON pointers (RFC 6901) as Greengrass uses them: recipe variables' ``{configuration:/a/b}`` and a
deployment's configuration ``RESET`` list.

``""`` names the whole document; any other pointer starts with ``/`` and its tokens are separated by ``/``,
with ``~1`` standing for ``/`` and ``~0`` for ``~`` (``~1`` is replaced first, so ``~01`` is ``~1``).
A list element is named by its index in decimal without leading zeros.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PointerError", "parse_pointer", "resolve_pointer"]


class PointerError(ValueError):
    """Text that is not a JSON pointer: neither ``""`` nor starting with ``/``."""


def parse_pointer(pointer: str) -> list[str]:
    """The unescaped tokens of ``pointer`` (``""`` → ``[]``, ``"/"`` → ``[""]``); `PointerError` if it is not one."""
    if pointer == "":
        return []
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise PointerError(f"{pointer!r} is not a JSON pointer; it must be '' or start with '/'")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value ``pointer`` names in ``document`` (the object itself, not a copy); `KeyError` when there is
    none or ``pointer`` is not a JSON pointer."""
    try:
        tokens = parse_pointer(pointer)
    except PointerError:
        raise KeyError(pointer) from None
    node = document
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise KeyError(pointer)
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or (len(token) > 1 and token[0] == "0") or int(token) >= len(node):
                raise KeyError(pointer)
            node = node[int(token)]
        else:
            raise KeyError(pointer)
    return node
