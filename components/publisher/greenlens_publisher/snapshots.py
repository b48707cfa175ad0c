"""The snapshot store: event snapshots (JPEG) waiting on disk, in order, until S3 has them.

Two files per snapshot in the store's folder: ``<12-digit number>.jpg`` (the image) and ``.json`` (where it
goes: bucket, key, its size and sha256, the camera). The number gives the upload order and survives a restart.
Each file is written under a temporary name and renamed, the JSON last, so a crash never leaves half a
snapshot. Bounds: a number of snapshots and of bytes; a snapshot that does not fit drops the oldest (the one
being uploaded last) — each drop counted by reason, logged and handed to ``on_drop`` (the component sends a
``snapshot_dropped`` event), never silent. A full disk is a counted drop of the new snapshot, not a crash.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenlens_common.files import write_atomically

log = logging.getLogger("greenlens.publisher.snapshots")

_META = re.compile(r"^(\d{12})\.json$")


@dataclass(frozen=True)
class Snapshot:
    number: int
    bucket: str
    key: str
    camera: str
    size: int
    sha256: str

    def claim(self) -> dict[str, Any]:
        """What an event carries about it (the claim check: where the image is, never the image)."""
        return {"bucket": self.bucket, "key": self.key, "size": self.size, "sha256": self.sha256,
                "content_type": "image/jpeg"}


@dataclass(frozen=True)
class Drop:
    snapshot: Snapshot
    reason: str
    """``count_limit``, ``bytes_limit``, ``too_large`` or ``write_failed``."""
    detail: str


class SnapshotStore:
    """See the module docstring. Thread-safe."""

    def __init__(self, directory: str | os.PathLike[str], *, max_count: int, max_bytes: int,
                 on_drop: Callable[[Drop], None] | None = None) -> None:
        self.directory = Path(directory)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.on_drop = on_drop
        self._lock = threading.Lock()
        self._items: list[Snapshot] = []
        self._bytes = 0
        self._next = 1
        self._inflight: int | None = None
        self.dropped: Counter[str] = Counter()
        """Snapshots dropped, by reason (see :class:`Drop`)."""
        self.stored = 0
        self.error: str | None = None
        self._load()

    # -- state

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"dir": str(self.directory), "snapshots": len(self._items), "bytes": self._bytes,
                    "max_count": self.max_count, "max_bytes": self.max_bytes, "stored": self.stored,
                    "dropped": dict(self.dropped), "error": self.error}

    def _load(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            self.error = f"cannot use snapshot folder {self.directory}: {exc.strerror or exc}"
            log.error("snapshots: %s; snapshots will be counted as dropped", self.error)
            return
        for name in names:
            if name.endswith(".tmp"):
                _unlink(self.directory / name)
                continue
            m = _META.match(name)
            if m is None:
                continue
            try:
                doc = json.loads((self.directory / name).read_text())
                snap = Snapshot(int(m[1]), str(doc["bucket"]), str(doc["key"]), str(doc["camera"]),
                                int(doc["size"]), str(doc["sha256"]))
                if not self._jpg(snap.number).is_file():
                    raise ValueError("its .jpg is missing")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("snapshots: %s is unreadable (%s); removed", self.directory / name, exc)
                self._unlink_files(int(m[1]))
                continue
            self._items.append(snap)
            self._bytes += snap.size
        if self._items:
            self._next = self._items[-1].number + 1
            log.info("snapshots: %d snapshot(s) (%d bytes) left from before in %s will be uploaded first",
                     len(self._items), self._bytes, self.directory)

    def _jpg(self, number: int) -> Path:
        return self.directory / f"{number:012d}.jpg"

    def _meta(self, number: int) -> Path:
        return self.directory / f"{number:012d}.json"

    def _unlink_files(self, number: int) -> None:
        _unlink(self._meta(number))
        _unlink(self._jpg(number))

    # -- writing

    def set_limits(self, *, max_count: int, max_bytes: int) -> None:
        """New bounds; if the store holds more, the oldest are dropped (counted, reported)."""
        with self._lock:
            self.max_count, self.max_bytes = max_count, max_bytes
            drops = self._make_room(0)
        self._report(drops)

    def _make_room(self, size: int) -> list[Drop]:
        drops: list[Drop] = []
        while True:
            over_count = len(self._items) + (1 if size else 0) > self.max_count
            over_bytes = self._bytes + size > self.max_bytes
            if not (over_count or over_bytes):
                return drops
            victim = next((s for s in self._items if s.number != self._inflight), None)
            if victim is None:
                return drops
            self._items.remove(victim)
            self._unlink_files(victim.number)
            self._bytes -= victim.size
            reason = "count_limit" if over_count else "bytes_limit"
            setting = (f"snapshotMaxCount={self.max_count}" if over_count
                       else f"snapshotMaxBytes={self.max_bytes}")
            self.dropped[reason] += 1
            drops.append(Drop(victim, reason, f"the snapshot store is full ({setting}): the oldest snapshot "
                                              f"{victim.key} was dropped before it reached S3"))

    def add(self, jpeg: bytes, *, bucket: str, key: str, camera: str) -> Snapshot:
        """Store a snapshot at the tail; its :class:`Snapshot` (whose claim goes in the event) even when it
        could not be stored (then it is a counted, reported drop)."""
        snap = Snapshot(0, bucket, key, camera, len(jpeg), hashlib.sha256(jpeg).hexdigest())
        drops: list[Drop] = []
        with self._lock:
            snap = Snapshot(self._next, bucket, key, camera, snap.size, snap.sha256)
            if snap.size > self.max_bytes:
                self.dropped["too_large"] += 1
                drops.append(Drop(snap, "too_large", f"a snapshot of {snap.size} bytes is larger than the whole "
                                                     f"store (snapshotMaxBytes={self.max_bytes}): {key} dropped"))
            else:
                drops = self._make_room(snap.size)
                if self._write(snap, jpeg):
                    self._next += 1
                    self._items.append(snap)
                    self._bytes += snap.size
                    self.stored += 1
                else:
                    self.dropped["write_failed"] += 1
                    drops.append(Drop(snap, "write_failed", f"{self.error}: snapshot {key} dropped"))
        self._report(drops)
        return snap

    def _write(self, snap: Snapshot, jpeg: bytes) -> bool:
        meta = json.dumps({"bucket": snap.bucket, "key": snap.key, "camera": snap.camera, "size": snap.size,
                           "sha256": snap.sha256}).encode()
        try:
            write_atomically(self._jpg(snap.number), jpeg)
            write_atomically(self._meta(snap.number), meta)  # last: a .json names a complete snapshot
        except OSError as exc:
            self._unlink_files(snap.number)
            why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
            self.error = f"cannot write a snapshot in {self.directory}: {why}"
            return False
        self.error = None
        return True

    def _report(self, drops: list[Drop]) -> None:
        for drop in drops:
            total = sum(self.dropped.values())
            log.error("snapshots: %s (%d dropped so far)", drop.detail, total)
            if self.on_drop is not None:
                self.on_drop(drop)

    # -- reading (the head)

    def peek(self) -> tuple[Snapshot, bytes] | None:
        """The oldest snapshot and its bytes; it is not dropped by the bounds until :meth:`pop`."""
        with self._lock:
            while self._items:
                snap = self._items[0]
                try:
                    data = self._jpg(snap.number).read_bytes()
                except OSError as exc:
                    log.error("snapshots: %s is unreadable (%s); removed", self._jpg(snap.number), exc)
                    self.dropped["unreadable"] += 1
                    self._remove_locked(snap.number)
                    continue
                self._inflight = snap.number
                return snap, data
            return None

    def release(self, number: int) -> None:
        """Snapshot ``number`` is not being uploaded any more (the attempt failed): the bounds may drop it."""
        with self._lock:
            if self._inflight == number:
                self._inflight = None

    def pop(self, number: int) -> None:
        """Remove snapshot ``number`` (S3 has it)."""
        with self._lock:
            self._remove_locked(number)

    def _remove_locked(self, number: int) -> None:
        if number == self._inflight:
            self._inflight = None
        for i, snap in enumerate(self._items):
            if snap.number == number:
                del self._items[i]
                self._unlink_files(number)
                self._bytes -= snap.size
                return


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
