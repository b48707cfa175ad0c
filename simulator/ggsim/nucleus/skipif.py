"""A lifecycle step's ``Skipif`` (spec components §1.5): parsed when a recipe is loaded, evaluated when the
step is about to run — matched exactly as the nucleus matches it (GenericExternalService.shouldSkip):

* the expression is trimmed as Java's ``String.trim`` does (every character up to U+0020, nothing else); a
  leading ``!`` negates it, and what follows is trimmed again;
* the rest must match ``(exists|onpath) +(.+)`` as a whole: the keyword in lower case only (``Exists`` is
  refused), then one or more spaces (a tab is refused), then the argument up to the end — no line break in
  it (Java's ``.`` matches neither ``\\n``, ``\\r``, U+0085, U+2028 nor U+2029);
* ``exists <file>``: the nucleus's ``deTilde`` first — ``~/`` is the nucleus user's home, ``~root/`` the
  Greengrass root, ``~config/`` its ``config`` folder, ``~packages/`` its ``packages`` folder; any other ``~``
  stays as written. A relative path is relative to the nucleus's own working directory (not the
  component's). The check is made by the nucleus process (its user), as ``Files.exists`` does.
* ``onpath <exe>``: ``Exec.which`` — ``~/`` expanded; an absolute name must be executable; any other name
  (slashes included) is looked up under each folder of the nucleus's own search path: its PATH split on
  ``[ :,] *`` (so a space or a comma separates entries too), then ``/usr/local/bin``, ``/bin``, ``/usr/bin``,
  ``/sbin``, ``/usr/sbin`` when they exist. "Executable" is the nucleus's ``Files.isExecutable``: the
  execute permission for the nucleus's user, which a folder has too. The component's Setenv PATH plays no
  part.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Skipif", "SkipifError", "nucleus_search_path", "parse_skipif", "should_skip"]

KINDS = ("onpath", "exists")
#: The nucleus's SKIP_COMMAND_REGEX with Java's meaning of ``.`` (no line terminator).
_EXPRESSION = re.compile(r"(exists|onpath) +([^\n\r\u0085\u2028\u2029]+)")
#: Folders the nucleus adds to its search path when they exist ("some level of sanity").
_SANE_FOLDERS = ("/usr/local/bin", "/bin", "/usr/bin", "/sbin", "/usr/sbin")
_HOME_PREFIX = "~/"
#: deTilde's prefixes below the root: ~root/, ~config/, ~packages/
_ROOT_PREFIXES = {"~root/": "", "~config/": "config", "~packages/": "packages"}


class SkipifError(ValueError):
    """A Skipif expression that is neither ``onpath <exe>`` nor ``exists <file>`` (optionally negated)."""


def _java_trim(text: str) -> str:
    """Java's ``String.trim``: strip every character up to U+0020 at both ends, and only those."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def _de_tilde(path: str, root: Path | None) -> str:
    """The nucleus's KernelCommandLine.deTilde."""
    if path.startswith(_HOME_PREFIX):
        path = str(_home() / path[len(_HOME_PREFIX):])
    if root is not None:
        for prefix, below in _ROOT_PREFIXES.items():
            if path.startswith(prefix):
                path = str(Path(root, below) / path[len(prefix):])
    return path


def nucleus_search_path(path: str | None = None) -> list[Path]:
    """The folders ``onpath`` searches: ``path`` (default: ggsim's PATH) split as the nucleus splits it, then
    the sane folders that exist, each once, in order."""
    text = os.environ.get("PATH", "") if path is None else path
    folders: list[Path] = []
    if text:
        for entry in re.split(r"[ :,] *", text):
            folder = _home() / entry[len(_HOME_PREFIX):] if entry.startswith(_HOME_PREFIX) else Path(entry)
            if folder not in folders:
                folders.append(folder)
    for sane in _SANE_FOLDERS:
        folder = Path(sane)
        if folder.is_dir() and folder not in folders:
            folders.append(folder)
    return folders


def _which(name: str, path: str | None) -> bool:
    """The nucleus's Exec.which: whether ``name`` is found (executable for ggsim's user)."""
    if name.startswith(_HOME_PREFIX):
        name = str(_home() / name[2:])
    if name.startswith("/"):
        return os.access(name, os.X_OK)
    return any(os.access(folder / name, os.X_OK) for folder in nucleus_search_path(path))


@dataclass(frozen=True)
class Skipif:
    kind: str  # "onpath" or "exists"
    argument: str
    negated: bool = False

    def holds(self, *, path: str | None = None, root: Path | None = None) -> bool:
        """Whether the step is skipped now; ``path`` replaces ggsim's PATH for ``onpath``; ``root`` is the
        Greengrass root ``~root/``, ``~config/`` and ``~packages/`` stand for."""
        if self.kind == "onpath":
            found = _which(self.argument, path)
        else:
            found = os.path.exists(_de_tilde(self.argument, root))
        return found != self.negated


def parse_skipif(expression: str) -> Skipif:
    """The parsed expression; `SkipifError` (its message quotes the expression) when it is not one."""
    text = _java_trim(expression)
    negated = text.startswith("!")
    if negated:
        text = _java_trim(text[1:])
    match = _EXPRESSION.fullmatch(text)
    if match is None:
        raise SkipifError(
            f"Skipif {expression!r}: expected 'onpath <executable>' or 'exists <file>' (the keyword in lower "
            "case, then spaces; optionally with a leading '!')"
        )
    return Skipif(kind=match.group(1), argument=match.group(2), negated=negated)


def should_skip(expression: str, *, path: str | None = None, root: Path | None = None) -> bool:
    """Parse and evaluate ``expression`` (raises `SkipifError` when it is not a Skipif)."""
    return parse_skipif(expression).holds(path=path, root=root)
