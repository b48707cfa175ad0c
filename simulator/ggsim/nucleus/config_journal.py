"""ConfigJournal: the configuration store on disk, so that a kill -9 of ggsim loses no configuration write.

As the nucleus keeps config.tlog (an append-only transaction log) beside its config.yaml, ggsim keeps:

    <root>/config/ggsim-config-snapshot.json   every component's configuration (values and timestamps)
    <root>/config/ggsim-config.tlog            one JSON line per IPC UpdateConfiguration since that snapshot

An UpdateConfiguration appends one line (one write(2) on an O_APPEND descriptor, before the IPC answer), so
a component writing configuration in a loop costs a small append per write, not a rewrite of the whole
configuration. Whole-configuration changes (a deployment's writes, a rollback, a removed component) and a
log grown past ``compact_bytes`` write a new snapshot (write, then rename over the old one) and empty the
log. The bytes reach the kernel before the answer, which is what survives a kill of ggsim; there is no
fsync per write, so a power cut may lose the last writes (the nucleus does not sync each write either).

Loading: the snapshot, then every complete line of the log in order (a line cut short by a kill is
dropped).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ggsim.files import write_atomically

__all__ = ["ConfigJournal"]

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "ggsim-config-snapshot.json"
LOG_FILE = "ggsim-config.tlog"
DEFAULT_COMPACT_BYTES = 4 * 1024 * 1024


class ConfigJournal:
    """A snapshot file plus an append-only log of the changes made since it (see the module docstring)."""

    def __init__(self, config_dir: Path, *, compact_bytes: int = DEFAULT_COMPACT_BYTES) -> None:
        self.snapshot_path = config_dir / SNAPSHOT_FILE
        self.log_path = config_dir / LOG_FILE
        self.compact_bytes = compact_bytes
        self._fd: int | None = None
        self._log_size = 0
        #: Counters, for tests and the manual's numbers.
        self.appends = 0
        self.snapshots = 0

    def load(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The snapshot (None if there is none) and the logged changes since it, oldest first."""
        snapshot: dict[str, Any] | None = None
        try:
            data = json.loads(self.snapshot_path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                snapshot = data
            else:
                log.error("%s: expected a JSON object; ignoring it", self.snapshot_path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s); ignoring it", self.snapshot_path, exc)
        entries: list[dict[str, Any]] = []
        try:
            raw = self.log_path.read_bytes()
        except FileNotFoundError:
            raw = b""
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("%s line %d is incomplete (ggsim was killed while writing it); dropped",
                            self.log_path, number)
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return snapshot, entries

    def append(self, entry: dict[str, Any]) -> None:
        """Log one change (one write; the snapshot is rewritten only when the log has grown too big)."""
        data = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        fd = self._open()
        os.write(fd, data)
        self._log_size += len(data)
        self.appends += 1

    def needs_snapshot(self) -> bool:
        return self._log_size >= self.compact_bytes

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Write the whole configuration (write, then rename) and empty the log."""
        write_atomically(self.snapshot_path, json.dumps(snapshot, separators=(",", ":"), default=str))
        self.close()
        self.log_path.unlink(missing_ok=True)
        self._log_size = 0
        self.snapshots += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._log_size = os.fstat(self._fd).st_size
        return self._fd
