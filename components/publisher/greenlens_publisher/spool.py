"""A bounded on-disk spool of IoT Core messages, kept in order across restarts.

One file per message, ``<12-digit number>.json`` in the spool folder: the number gives the order and
survives a restart (a new spool object scans the folder). A file is written under a temporary name and
renamed, so a crash never leaves half a message. Bounds: a number of messages and of bytes; a message
that does not fit makes the oldest result overflow (events overflow only when no result is left; all
are counted by kind, never dropped silently). The message being sent is never pushed out. A full disk
frees room the same way: the oldest spooled results are removed (counted as ``disk_full`` overflow) so
that a new event still fits, and a new result is dropped rather than an event; a folder that cannot be
created or written is one clear log line and a counted drop, not a crash.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenlens_common.files import write_atomically

log = logging.getLogger("greenlens.publisher.spool")

_NAME = re.compile(r"^(\d{12})\.json$")


@dataclass(frozen=True)
class SpooledMessage:
    topic: str
    payload: bytes
    kind: str
    """``result`` or ``event`` (how overflow is counted; results overflow before events)."""
    number: int = 0
    """Its place in the spool (set by :meth:`Spool.peek`; give it back to :meth:`Spool.pop`)."""


class Spool:
    """See the module docstring. Thread-safe."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int, max_messages: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._index: deque[tuple[int, int, str]] = deque()  # (number, size, kind)
        self._bytes = 0
        self._next = 1
        self._inflight: int | None = None
        self.overflowed: Counter[str] = Counter()
        """Messages pushed out (the oldest first) to make room, by kind."""
        self.failed: Counter[str] = Counter()
        """Messages that could not be written (full disk, unwritable folder), by kind."""
        self.dropped_for_space: Counter[str] = Counter()
        """Of the overflowed messages, those removed because the disk was full, by kind."""
        self.corrupt = 0
        self.error: str | None = None
        """The last write problem, for /api/status (None once writes work again)."""
        self._load()

    # -- state

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "dir": str(self.directory), "messages": len(self._index), "bytes": self._bytes,
                "max_messages": self.max_messages, "max_bytes": self.max_bytes,
                "overflowed": dict(self.overflowed), "write_failed": dict(self.failed),
                "removed_disk_full": dict(self.dropped_for_space),
                "corrupt": self.corrupt, "error": self.error,
            }

    def _load(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            self.error = f"cannot use spool folder {self.directory}: {exc.strerror or exc}"
            log.error("spool: %s; messages IoT Core does not take will be counted as dropped", self.error)
            return
        found: list[tuple[int, int, str]] = []
        for entry in entries:
            m = _NAME.match(entry.name)
            if m is None:
                if entry.name.endswith(".tmp"):
                    _unlink(Path(entry.path))  # a write interrupted by a crash: never renamed, never complete
                continue
            try:
                size = entry.stat().st_size
            except OSError:
                continue
            found.append((int(m[1]), size, self._kind_of(Path(entry.path))))
        found.sort()
        self._index.extend(found)
        self._bytes = sum(size for _, size, _ in found)
        if found:
            self._next = found[-1][0] + 1
            log.info("spool: %d message(s) (%d bytes) left from before in %s will be sent first",
                     len(found), self._bytes, self.directory)

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}.json"

    # -- writing

    def set_limits(self, *, max_bytes: int, max_messages: int) -> None:
        """New bounds; if the spool holds more, the oldest overflow (counted)."""
        with self._lock:
            self.max_bytes, self.max_messages = max_bytes, max_messages
            self._make_room(0)

    def _make_room(self, size: int) -> None:
        while len(self._index) + (1 if size else 0) > self.max_messages or self._bytes + size > self.max_bytes:
            victim = self._victim()
            if victim is None:
                return
            number, old_size, kind = self._index[victim]
            del self._index[victim]
            _unlink(self._path(number))
            self._bytes -= old_size
            self.overflowed[kind] += 1

    def _victim(self, kind: str | None = None) -> int | None:
        """Index of the oldest result not being sent, else (unless only ``kind`` will do) of the oldest other
        message not being sent."""
        fallback = None
        for i, (number, _, k) in enumerate(self._index):
            if number == self._inflight:
                continue
            if k == "result":
                return i
            if fallback is None and kind is None:
                fallback = i
        return fallback

    @staticmethod
    def _write(path: Path, data: bytes) -> OSError | None:
        try:
            write_atomically(path, data)
        except OSError as exc:
            return exc
        return None

    def _drop_locked(self, index: int) -> None:
        number, size, kind = self._index[index]
        del self._index[index]
        _unlink(self._path(number))
        self._bytes -= size
        self.overflowed[kind] += 1
        self.dropped_for_space[kind] += 1
        n = sum(self.dropped_for_space.values())
        if n == 1 or n % 100 == 0:
            log.error("spool: the disk is full: the oldest spooled %s was removed to keep newer messages "
                      "(%d removed so far)", kind, n)

    @staticmethod
    def _kind_of(path: Path) -> str:
        try:
            return str(json.loads(path.read_bytes()).get("kind") or "unknown")
        except (OSError, ValueError, AttributeError):
            return "unknown"

    def append(self, message: SpooledMessage) -> bool:
        """Add a message at the tail; False (counted, logged) when it could not be written."""
        data = json.dumps({"topic": message.topic, "kind": message.kind,
                           "payload": message.payload.decode("utf-8")}).encode()
        with self._lock:
            if len(data) > self.max_bytes:
                self.overflowed[message.kind] += 1
                log.error("spool: a %s message of %d bytes is larger than the whole spool (%d bytes); dropped",
                          message.kind, len(data), self.max_bytes)
                return False
            self._make_room(len(data))
            number = self._next
            path = self._path(number)
            while True:
                problem = self._write(path, data)
                if problem is None:
                    break
                full = problem.errno in (errno.ENOSPC, errno.EDQUOT)
                victim = self._victim(kind="result") if full else None
                if victim is not None:  # a full disk: the oldest result makes room for this message
                    self._drop_locked(victim)
                    continue
                self.failed[message.kind] += 1
                why = "the disk is full" if full else (problem.strerror or str(problem))
                self.error = f"cannot write {path}: {why}"
                n = sum(self.failed.values())
                if n == 1 or n % 100 == 0:
                    log.error("spool: %s; %s message dropped (%d dropped so far)", self.error, message.kind, n)
                return False
            self.error = None
            self._next = number + 1
            self._index.append((number, len(data), message.kind))
            self._bytes += len(data)
            return True

    # -- reading (the head)

    def peek(self) -> SpooledMessage | None:
        """The oldest message (unreadable files are removed and counted as corrupt); it is not pushed out
        by overflow until :meth:`pop` or the next peek."""
        with self._lock:
            while self._index:
                number = self._index[0][0]
                try:
                    doc = json.loads(self._path(number).read_bytes())
                    self._inflight = number
                    return SpooledMessage(str(doc["topic"]), str(doc["payload"]).encode("utf-8"),
                                          str(doc.get("kind") or "unknown"), number)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.error("spool: %s is unreadable (%s); removed", self._path(number), exc)
                    self.corrupt += 1
                    self._remove_locked(number)
            return None

    def pop(self, number: int | None = None) -> None:
        """Remove message ``number`` (default: the oldest) after it was sent."""
        with self._lock:
            if number is None:
                if not self._index:
                    return
                number = self._index[0][0]
            self._remove_locked(number)

    def _remove_locked(self, number: int) -> None:
        if number == self._inflight:
            self._inflight = None
        for i, (n, size, _) in enumerate(self._index):
            if n == number:
                del self._index[i]
                _unlink(self._path(number))
                self._bytes -= size
                return


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
