"""A lifecycle step's ``Skipif`` (spec components §1.5): parsed when a recipe is loaded, evaluated when the
step is about to run.

The grammar: ``onpath <executable>`` (the executable is found on PATH) or ``exists <file>`` (the file or
folder exists; ``~`` is expanded), keywords case-insensitive, optionally after a ``!`` that negates it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

__all__ = ["Skipif", "SkipifError", "parse_skipif", "should_skip"]

KINDS = ("onpath", "exists")


class SkipifError(ValueError):
    """A Skipif expression that is neither ``onpath <exe>`` nor ``exists <file>`` (optionally negated)."""


@dataclass(frozen=True)
class Skipif:
    kind: str  # "onpath" or "exists"
    argument: str
    negated: bool = False

    def holds(self, *, path: str | None = None) -> bool:
        """Whether the step is skipped now; ``path`` replaces ``$PATH`` for ``onpath``."""
        if self.kind == "onpath":
            found = shutil.which(self.argument, path=path if path is not None else os.environ.get("PATH")) is not None
        else:
            found = os.path.exists(os.path.expanduser(self.argument))
        return found != self.negated


def parse_skipif(expression: str) -> Skipif:
    """The parsed expression; `SkipifError` (its message quotes the expression) when it is not one."""
    text = expression.strip()
    negated = text.startswith("!")
    if negated:
        text = text[1:].strip()
    parts = text.split(None, 1)
    if len(parts) != 2 or parts[0].lower() not in KINDS:
        raise SkipifError(
            f"Skipif {expression!r}: expected 'onpath <executable>' or 'exists <file>' (optionally with a leading '!')"
        )
    return Skipif(kind=parts[0].lower(), argument=parts[1].strip(), negated=negated)


def should_skip(expression: str, *, path: str | None = None) -> bool:
    """Parse and evaluate ``expression`` (raises `SkipifError` when it is not a Skipif)."""
    return parse_skipif(expression).holds(path=path)
