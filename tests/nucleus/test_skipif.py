"""Skipif (spec components §1.5): one grammar for loading a recipe and for running its step."""

from __future__ import annotations

from pathlib import Path

import pytest
from ggsim.nucleus.skipif import Skipif, SkipifError, parse_skipif, should_skip


def test_skipif(tmp_path: Path) -> None:
    marker = tmp_path / "present"
    marker.write_text("x")
    assert should_skip("onpath sh")
    assert not should_skip("onpath no-such-program-ggsim")
    assert should_skip("!onpath no-such-program-ggsim")
    assert should_skip(f"exists {marker}")
    assert not should_skip(f"exists {tmp_path / 'absent'}")
    assert not should_skip(f"! exists {marker}")
    home_file = Path.home() / ".ggsim-skipif-probe"
    assert should_skip("exists ~/.ggsim-skipif-probe") == home_file.exists()
    with pytest.raises(SkipifError, match=r"'running sh'.*expected 'onpath <executable>' or 'exists <file>'"):
        should_skip("running sh")


@pytest.mark.parametrize(("text", "parsed"), [
    ("onpath git", Skipif("onpath", "git")),
    ("  exists   /opt/my file  ", Skipif("exists", "/opt/my file")),
    ("!onpath python3", Skipif("onpath", "python3", negated=True)),
    ("! exists {work:path}/venv", Skipif("exists", "{work:path}/venv", negated=True)),
])
def test_parse_keeps_the_argument_as_written(text: str, parsed: Skipif) -> None:
    assert parse_skipif(text) == parsed


@pytest.mark.parametrize("text", [
    "", "onpath", "exists   ", "!!onpath sh", "running sh", "on path sh",
    # the nucleus's keywords are lower case, followed by spaces, and the argument is one line
    "ExIsTs /opt", "ONPATH sh", "Onpath sh", "exists\t/opt", "onpath\tsh", "exists /a\nb", "exists /a\u2028b",
])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(SkipifError, match="expected 'onpath <executable>' or 'exists <file>'"):
        parse_skipif(text)


def test_onpath_searches_the_given_path(tmp_path: Path) -> None:
    tool = tmp_path / "my-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert parse_skipif("onpath my-tool").holds(path=str(tmp_path))
    assert not parse_skipif("onpath my-tool").holds(path="/nonexistent")


def test_trimmed_as_java_trims(tmp_path: Path) -> None:
    marker = tmp_path / "present"
    marker.write_text("x")
    # control characters at the ends go (Java's trim), a no-break space does not: it is part of the name
    assert should_skip(f"\t\x0bexists {marker}\r\n")
    assert not should_skip(f"exists {marker}\u00a0")


def test_onpath_splits_path_as_the_nucleus_does(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
    tool = second / "my-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    # a comma or a space separates PATH entries for the nucleus, as a colon does
    assert parse_skipif("onpath my-tool").holds(path=f"{first},{second}")
    assert parse_skipif("onpath my-tool").holds(path=f"{first} {second}")
    # a name with a slash is looked up under each PATH folder, not in the current folder
    (second / "sub").mkdir()
    nested = second / "sub" / "tool"
    nested.write_text("#!/bin/sh\n")
    nested.chmod(0o755)
    assert parse_skipif("onpath sub/tool").holds(path=str(second))
    # the sane folders are searched even when PATH lacks them
    assert parse_skipif("onpath sh").holds(path=str(first))
    # without an execute bit (root included): not found
    tool.chmod(0o644)
    assert not parse_skipif("onpath my-tool").holds(path=str(second))


def test_exists_expands_the_nucleus_prefixes_and_no_other_tilde(tmp_path: Path) -> None:
    root = tmp_path / "greengrass"
    (root / "config").mkdir(parents=True)
    (root / "packages" / "recipes").mkdir(parents=True)
    (root / "work").mkdir()
    assert should_skip("exists ~root/work", root=root)
    assert should_skip("exists ~config/", root=root)
    assert should_skip("exists ~packages/recipes", root=root)
    assert not should_skip("exists ~packages/artifacts", root=root)
    # '~' alone and '~user/' are not expanded by the nucleus (Python's expanduser would)
    assert not should_skip("exists ~")
    assert not should_skip("exists ~root")
