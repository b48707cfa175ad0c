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
    ("  ExIsTs /opt/my file  ", Skipif("exists", "/opt/my file")),
    ("!onpath python3", Skipif("onpath", "python3", negated=True)),
    ("! exists {work:path}/venv", Skipif("exists", "{work:path}/venv", negated=True)),
])
def test_parse_keeps_the_argument_as_written_and_folds_the_keyword(text: str, parsed: Skipif) -> None:
    assert parse_skipif(text) == parsed


@pytest.mark.parametrize("text", ["", "onpath", "exists   ", "!!onpath sh", "running sh", "on path sh"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(SkipifError, match="expected 'onpath <executable>' or 'exists <file>'"):
        parse_skipif(text)


def test_onpath_searches_the_given_path(tmp_path: Path) -> None:
    tool = tmp_path / "my-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert parse_skipif("onpath my-tool").holds(path=str(tmp_path))
    assert not parse_skipif("onpath my-tool").holds(path="/nonexistent")
