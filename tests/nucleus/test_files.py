"""ggsim.files.write_atomically: a reader sees the old file or the new one, never half, and a failed write
leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from ggsim.files import write_atomically


def test_replaces_the_file_and_creates_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "state.json"
    write_atomically(target, '{"a": 1}')
    write_atomically(target, b'{"a": 2}')
    assert target.read_text() == '{"a": 2}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_text_is_written_as_utf8(tmp_path: Path) -> None:
    target = tmp_path / "recipe.yaml"
    write_atomically(target, "name: Caf\u00e9\n")
    assert target.read_bytes() == "name: Caf\u00e9\n".encode()


def test_a_failed_write_keeps_what_was_there_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "effectiveConfig.yaml"
    target.mkdir()  # renaming a file over a folder fails
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        write_atomically(target, "new")
    assert (target / "inside").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["effectiveConfig.yaml"]
