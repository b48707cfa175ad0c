"""The configuration on disk: what a kill leaves is read back, and a loop of writes stays cheap."""

from __future__ import annotations

from pathlib import Path

from ggsim.nucleus.config import ConfigStore
from ggsim.nucleus.config_journal import ConfigJournal


def test_a_line_cut_short_by_a_kill_is_dropped_and_the_rest_replayed(tmp_path: Path) -> None:
    store = ConfigStore(journal=ConfigJournal(tmp_path))
    store.replace("c", {"a": 1}, 1.0)
    store.update("c", [], {"b": "two"}, 2.0)
    store.update("c", ["deep"], {"x": True}, 3.0)
    with open(tmp_path / "ggsim-config.tlog", "ab") as log:
        log.write(b'{"c":"c","k":[],"v":{"torn')  # what a kill in the middle of a write leaves

    again = ConfigStore(journal=ConfigJournal(tmp_path))
    assert again.load_persisted()
    assert again.get("c") == {"a": 1, "b": "two", "deep": {"x": True}}
    assert again.timestamp("c", ["b"]) == 2.0


def test_writes_in_a_loop_append_and_the_log_is_folded_when_big(tmp_path: Path) -> None:
    journal = ConfigJournal(tmp_path, compact_bytes=10_000)
    store = ConfigStore(journal=journal)
    store.replace("c", {"n": 0}, 1.0)
    snapshots_after_deployment = journal.snapshots
    for n in range(1, 1001):
        store.update("c", [], {"n": n}, 1.0 + n)
    assert journal.appends == 1000
    # ~40 bytes a line: the whole configuration was written a few times, not a thousand.
    assert 1 <= journal.snapshots - snapshots_after_deployment <= 5
    again = ConfigStore(journal=ConfigJournal(tmp_path))
    again.load_persisted()
    assert again.get("c") == {"n": 1000.0}
