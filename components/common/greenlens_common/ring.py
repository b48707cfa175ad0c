"""The shared-memory frame ring: one writer process, many reader processes.

The ring is a plain file (by default under /dev/shm) mapped with ``mmap``. It is deliberately not
``multiprocessing.shared_memory``: on Python 3.11 every attach registers the segment with the resource
tracker, which unlinks it when the attaching process exits (design §9). Here only the owner (the
``RingWriter``) ever unlinks the file.

Layout (all integers little-endian)::

    header (4096 bytes)
      0  8s  magic            b"GLRING\\0\\1"
      8  I   layout version   1
     12  I   slot count
     16  Q   slot capacity    payload bytes per slot
     24  Q   slot stride      bytes from one slot to the next (slot header + capacity, page aligned)
     32  I   width            nominal frame size the ring was sized for
     36  I   height
     40  16s format           b"bgr24" (NUL padded)
     56  I   state            1 = open, 2 = closed by its owner (readers should reopen by name)
     60  I   owner pid
     64  Q   last seq         sequence number of the newest complete frame (0 = none yet)
    slot i at 4096 + i * stride
      0  Q   seq begin        seqlock: written first
      8  Q   seq end          written last
     16  d   captured_at      epoch seconds
     24  I   width
     28  I   height
     32  I   channels
     36  I   reserved
     40  Q   payload bytes
     64  ... payload (height * width * channels bytes, uint8, C order)

Frame ``n`` (1, 2, 3, ...) goes to slot ``(n - 1) % slot_count``. A writer first stores ``seq begin = n``,
then the payload, then ``seq end = n``. A reader of ``(slot, n)`` checks ``seq end == n`` before copying and
``seq begin == n`` after copying: if the writer started to overwrite the slot in between, ``seq begin`` has
moved on and the read returns ``None``: a reader never returns a torn frame. The ordering relies on the
stores becoming visible in program order, which holds on x86-64 (TSO); on weakly ordered CPUs a torn read
is possible in principle, though the per-frame Python overhead makes it very unlikely.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"GLRING\x00\x01"
LAYOUT_VERSION = 1
HEADER_SIZE = 4096
SLOT_HEADER_SIZE = 64
PAGE = 4096
FORMAT_BGR24 = "bgr24"
STATE_OPEN = 1
STATE_CLOSED = 2
DEFAULT_DIR_ENV = "GREENLENS_RING_DIR"
DEFAULT_DIR = "/dev/shm"

_HEADER = struct.Struct("<8sIIQQII16sIIQ")
_LAST_SEQ_OFFSET = 64
_STATE_OFFSET = 56
_SLOT = struct.Struct("<QQdIIIIQ")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class RingError(Exception):
    """A ring file that cannot be created, opened or written, with the reason."""


@dataclass(frozen=True)
class RingLayout:
    slot_count: int
    slot_capacity: int
    width: int
    height: int
    format: str = FORMAT_BGR24

    @property
    def slot_stride(self) -> int:
        return _round_up(SLOT_HEADER_SIZE + self.slot_capacity, PAGE)

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + self.slot_count * self.slot_stride


@dataclass(frozen=True)
class Frame:
    """A frame read from the ring; ``image`` is the reader's own copy (H x W x C uint8)."""

    seq: int
    slot: int
    captured_at: float
    image: np.ndarray


@dataclass(frozen=True)
class BorrowedFrame:
    """A frame viewed in place in the ring (see :meth:`RingReader.borrow`)."""

    seq: int
    slot: int
    captured_at: float
    image: np.ndarray
    _mm: mmap.mmap
    _base: int

    def intact(self) -> bool:
        """True while the writer has not begun to overwrite this frame's slot."""
        return _U64.unpack_from(self._mm, self._base)[0] == self.seq


def ring_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """The ring directory: the argument, else $GREENLENS_RING_DIR, else /dev/shm."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(DEFAULT_DIR_ENV) or DEFAULT_DIR)


def _round_up(n: int, k: int) -> int:
    return (n + k - 1) // k * k


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or "\x00" in name:
        raise RingError(f"ring name {name!r} is not valid: expected a plain file name such as 'greenlens-frames'")


def ring_bytes(slot_count: int, width: int, height: int, channels: int = 3) -> int:
    """Bytes of shared memory a ring of this shape needs (to check against /dev/shm's size)."""
    return RingLayout(slot_count, width * height * channels, width, height).file_size


class RingWriter:
    """The ring's owner: creates the file, writes frames, and is the only one that unlinks it."""

    def __init__(
        self,
        name: str,
        *,
        width: int,
        height: int,
        slot_count: int = 4,
        channels: int = 3,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        _check_name(name)
        if slot_count < 2:
            raise RingError(f"ring {name!r}: slot_count={slot_count} is too small: expected at least 2")
        if width <= 0 or height <= 0 or channels not in (1, 3, 4):
            raise RingError(
                f"ring {name!r}: frame size {width}x{height}x{channels} is not valid: "
                "expected positive width/height and 1, 3 or 4 channels"
            )
        self.name = name
        self.directory = ring_dir(directory)
        self.path = self.directory / name
        self.layout = RingLayout(slot_count, width * height * channels, width, height)
        self._seq = 0
        self._closed = False
        self._mm = self._create()
        self._buf = np.frombuffer(self._mm, dtype=np.uint8)

    def _create(self) -> mmap.mmap:
        layout = self.layout
        if not self.directory.is_dir():
            raise RingError(f"ring {self.name!r}: directory {self.directory} does not exist")
        free = _free_bytes(self.directory)
        if free is not None and free < layout.file_size:
            raise RingError(
                f"ring {self.name!r}: needs {layout.file_size} bytes ({layout.slot_count} slots of "
                f"{layout.width}x{layout.height}) but {self.directory} has only {free} bytes free; "
                "use fewer slots or a smaller frame, or give the container more shared memory (shm_size)"
            )
        _mark_closed_if_ring(self.path)
        tmp = self.directory / f".{self.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.fchmod(fd, 0o666)  # readers may run as other users
            try:
                # Reserve the pages now: a sparse tmpfs file would SIGBUS on the first write when full.
                os.posix_fallocate(fd, 0, layout.file_size)
            except OSError as exc:
                raise RingError(
                    f"ring {self.name!r}: cannot reserve {layout.file_size} bytes in {self.directory}: "
                    f"{exc.strerror}; give it more shared memory (shm_size) or use fewer slots"
                ) from exc
            mm = mmap.mmap(fd, layout.file_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        fmt = layout.format.encode()
        _HEADER.pack_into(
            mm, 0, b"\x00" * 8, LAYOUT_VERSION, layout.slot_count, layout.slot_capacity, layout.slot_stride,
            layout.width, layout.height, fmt, STATE_OPEN, os.getpid(), 0,
        )
        mm[0:8] = MAGIC  # last: a reader never sees a half-written header
        self._inode = os.stat(tmp).st_ino
        os.replace(tmp, self.path)
        return mm

    @property
    def last_seq(self) -> int:
        return self._seq

    def _slot_offset(self, slot: int) -> int:
        return HEADER_SIZE + slot * self.layout.slot_stride

    def write(self, frame: np.ndarray, captured_at: float | None = None) -> tuple[int, int]:
        """Copy ``frame`` (H x W [x C] uint8) into the next slot; returns ``(slot, seq)``."""
        if self._closed:
            raise RingError(f"ring {self.name!r} is closed")
        if frame.dtype != np.uint8:
            raise RingError(f"ring {self.name!r}: frame dtype {frame.dtype} is not supported: expected uint8")
        if frame.ndim == 2:
            height, width = frame.shape
            channels = 1
        elif frame.ndim == 3:
            height, width, channels = frame.shape
        else:
            raise RingError(f"ring {self.name!r}: frame shape {frame.shape} is not H x W or H x W x C")
        nbytes = height * width * channels
        if nbytes > self.layout.slot_capacity:
            raise RingError(
                f"ring {self.name!r}: frame {width}x{height}x{channels} ({nbytes} bytes) does not fit a slot "
                f"of {self.layout.slot_capacity} bytes (sized for {self.layout.width}x{self.layout.height})"
            )
        seq = self._seq + 1
        slot = (seq - 1) % self.layout.slot_count
        base = self._slot_offset(slot)
        mm = self._mm
        _U64.pack_into(mm, base, seq)  # seq begin: the slot is being rewritten from now on
        start = base + SLOT_HEADER_SIZE
        dest = self._buf[start : start + nbytes].reshape(frame.shape)
        np.copyto(dest, frame, casting="no")
        when = time.time() if captured_at is None else float(captured_at)
        struct.pack_into("<dIIIIQ", mm, base + 16, when, width, height, channels, 0, nbytes)
        _U64.pack_into(mm, base + 8, seq)  # seq end: the slot is complete
        _U64.pack_into(mm, _LAST_SEQ_OFFSET, seq)
        self._seq = seq
        return slot, seq

    def close(self, unlink: bool = True) -> None:
        """Mark the ring closed (readers see it) and, by default, remove its file."""
        if self._closed:
            return
        self._closed = True
        _U32.pack_into(self._mm, _STATE_OFFSET, STATE_CLOSED)
        del self._buf
        _close_mmap(self._mm)
        if unlink:
            try:
                # Only unlink the file if it is still ours (a newer writer may have replaced it).
                if os.stat(self.path).st_ino == self._inode:
                    self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> RingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RingReader:
    """Attaches to an existing ring by name; never modifies or unlinks it."""

    def __init__(self, name: str, *, directory: str | os.PathLike[str] | None = None) -> None:
        _check_name(name)
        self.name = name
        self.path = ring_dir(directory) / name
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise RingError(f"ring {name!r}: {self.path} does not exist (is greenlens.Capture running?)") from None
        except OSError as exc:
            raise RingError(f"ring {name!r}: cannot open {self.path}: {exc.strerror}") from exc
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE:
                raise RingError(f"ring {name!r}: {self.path} is {size} bytes, too small to be a frame ring")
            self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        (magic, version, slots, capacity, stride, width, height, fmt, _state, pid, _last) = _HEADER.unpack_from(
            self._mm, 0
        )
        if magic != MAGIC:
            self._mm.close()
            raise RingError(f"ring {name!r}: {self.path} is not a GreenLens frame ring (magic {magic!r})")
        if version != LAYOUT_VERSION:
            self._mm.close()
            raise RingError(
                f"ring {name!r}: layout version {version} is not supported: expected {LAYOUT_VERSION}"
            )
        self.layout = RingLayout(slots, capacity, width, height, fmt.rstrip(b"\x00").decode())
        if self.layout.slot_stride != stride or self.layout.file_size > size:
            self._mm.close()
            raise RingError(f"ring {name!r}: {self.path} header does not match its size (corrupt ring file)")
        self.owner_pid = pid
        self._buf = np.frombuffer(self._mm, dtype=np.uint8)

    @property
    def closed_by_owner(self) -> bool:
        """True once the writer closed this ring (a new one may exist under the same name)."""
        return _U32.unpack_from(self._mm, _STATE_OFFSET)[0] == STATE_CLOSED

    @property
    def last_seq(self) -> int:
        return _U64.unpack_from(self._mm, _LAST_SEQ_OFFSET)[0]

    def read(self, slot: int, seq: int, out: np.ndarray | None = None) -> Frame | None:
        """The frame ``seq`` from ``slot``, or None when it was overwritten (or not written yet).

        ``out``, when given, is a uint8 array of the frame's shape to copy into (no allocation).
        """
        if not 0 <= slot < self.layout.slot_count:
            raise RingError(f"ring {self.name!r}: slot {slot} out of range 0..{self.layout.slot_count - 1}")
        base = HEADER_SIZE + slot * self.layout.slot_stride
        mm = self._mm
        if _U64.unpack_from(mm, base + 8)[0] != seq:
            return None
        _b, _e, captured_at, width, height, channels, _r, nbytes = _SLOT.unpack_from(mm, base)
        if channels not in (1, 3, 4) or nbytes == 0 or nbytes != width * height * channels \
                or nbytes > self.layout.slot_capacity:
            return None  # metadata of a concurrent write: not a frame we can return
        shape = (height, width) if channels == 1 else (height, width, channels)
        start = base + SLOT_HEADER_SIZE
        src = self._buf[start : start + nbytes].reshape(shape)
        if out is None:
            image = src.copy()
        else:
            if out.shape != shape or out.dtype != np.uint8:
                if _U64.unpack_from(mm, base)[0] != seq:
                    return None
                raise RingError(f"ring {self.name!r}: out has shape {out.shape}/{out.dtype}, frame is {shape}/uint8")
            np.copyto(out, src)
            image = out
        if _U64.unpack_from(mm, base)[0] != seq:
            return None  # the writer began overwriting the slot while we copied
        return Frame(seq=seq, slot=slot, captured_at=captured_at, image=image)

    def borrow(self, slot: int, seq: int) -> BorrowedFrame | None:
        """A read-only view of frame ``seq`` in place (no copy), or None when it is already overwritten.

        The writer may overwrite the slot while the view is used: compute from it, then call
        ``intact()``; only when that is True was everything read from the view the frame ``seq``.
        """
        if not 0 <= slot < self.layout.slot_count:
            raise RingError(f"ring {self.name!r}: slot {slot} out of range 0..{self.layout.slot_count - 1}")
        base = HEADER_SIZE + slot * self.layout.slot_stride
        if _U64.unpack_from(self._mm, base + 8)[0] != seq:
            return None
        _b, _e, captured_at, width, height, channels, _r, nbytes = _SLOT.unpack_from(self._mm, base)
        if channels not in (1, 3, 4) or nbytes == 0 or nbytes != width * height * channels \
                or nbytes > self.layout.slot_capacity:
            return None
        shape = (height, width) if channels == 1 else (height, width, channels)
        start = base + SLOT_HEADER_SIZE
        view = self._buf[start : start + nbytes].reshape(shape)
        view.flags.writeable = False
        borrowed = BorrowedFrame(seq, slot, captured_at, view, self._mm, base)
        return borrowed if borrowed.intact() else None

    def latest(self) -> Frame | None:
        """The newest complete frame, or None when the ring holds none yet."""
        for _ in range(8):
            seq = self.last_seq
            if seq == 0:
                return None
            frame = self.read((seq - 1) % self.layout.slot_count, seq)
            if frame is not None:
                return frame
        return None

    def close(self) -> None:
        if getattr(self, "_buf", None) is not None:
            del self._buf
            _close_mmap(self._mm)

    def __enter__(self) -> RingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RingReaders:
    """One RingReader per ring name, for a consumer of frame descriptors: a new one once the owner replaced
    the ring (``closed_by_owner``) or when asked to (``reopen``); ``on_open(name)`` hears of each new one."""

    def __init__(self, directory: str | os.PathLike[str] | None = None,
                 on_open: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.on_open = on_open
        self._readers: dict[str, RingReader] = {}

    def get(self, name: str, reopen: bool = False) -> RingReader:
        """The reader of ring ``name``; RingError when it cannot be opened."""
        reader = self._readers.get(name)
        if reader is not None and (reopen or reader.closed_by_owner):
            reader.close()
            del self._readers[name]
            reader = None
        if reader is None:
            reader = RingReader(name, directory=self.directory)
            self._readers[name] = reader
            if self.on_open is not None:
                self.on_open(name)
        return reader

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


def _free_bytes(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _mark_closed_if_ring(path: Path) -> None:
    """Tell readers of a ring left under this name (by an earlier owner) that it is gone."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        if os.fstat(fd).st_size >= HEADER_SIZE and os.pread(fd, 8, 0) == MAGIC:
            os.pwrite(fd, _U32.pack(STATE_CLOSED), _STATE_OFFSET)
    finally:
        os.close(fd)


def _close_mmap(mm: mmap.mmap) -> None:
    try:
        mm.close()
    except BufferError:
        pass  # an array still views the mapping (e.g. in a traceback); it is unmapped when collected
