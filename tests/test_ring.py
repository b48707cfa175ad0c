"""The shared-memory frame ring: frames cross processes intact, overwrites are detected, no torn frames."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from greenlens_common.ring import RingError, RingReader, RingWriter, ring_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

WORKER = Path(__file__).parent / "support" / "ring_worker.py"


def _worker(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


@pytest.fixture
def shm_dir(tmp_path: Path) -> Iterator[Path]:
    # Under /dev/shm when the machine has it (as in production), else the test's tmp dir.
    base = Path("/dev/shm")
    if base.is_dir() and os.access(base, os.W_OK):
        d = base / f"greenlens-test-{os.getpid()}-{tmp_path.name}"
        d.mkdir()
        yield d
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    else:
        yield tmp_path


def test_frames_written_here_are_read_intact_by_another_process(shm_dir: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (72, 128, 3), dtype=np.uint8) for _ in range(3)]
    with RingWriter("frames", width=128, height=72, slot_count=4, directory=shm_dir) as writer:
        ids = [writer.write(f) for f in frames]
        proc = _worker("read", shm_dir, "frames", *[x for pair in ids for x in pair])
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    got = [line.split() for line in out.splitlines()]
    assert got == [[str(s), str(q), hashlib.sha256(f.tobytes()).hexdigest()] for (s, q), f in zip(ids, frames, strict=True)]


def test_frames_written_by_another_process_are_read_here(shm_dir: Path) -> None:
    proc = _worker("write-random", shm_dir, "cam", 3, 64, 48, 5)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        if line.strip() == "done":
            break
        lines.append(line.split())
    try:
        with RingReader("cam", directory=shm_dir) as reader:
            assert (reader.layout.slot_count, reader.layout.width, reader.layout.height) == (3, 64, 48)
            results = {int(q): reader.read(int(s), int(q)) for s, q, _ in lines}
            latest = reader.latest()
    finally:
        proc.communicate(timeout=60)
    digests = {int(q): h for _, q, h in lines}
    # 5 frames into 3 slots: frames 1 and 2 were overwritten, 3..5 are intact.
    assert results[1] is None and results[2] is None
    for seq in (3, 4, 5):
        frame = results[seq]
        assert frame is not None and frame.image.shape == (48, 64, 3)
        assert hashlib.sha256(frame.image.tobytes()).hexdigest() == digests[seq]
    assert latest is not None and latest.seq == 5
    assert proc.returncode == 0
    assert not (shm_dir / "cam").exists(), "the owner unlinks its ring when it closes"


def test_reader_in_another_process_never_sees_a_torn_frame(shm_dir: Path) -> None:
    # A writer in another process rewrites two large slots as fast as it can while we read: every frame
    # returned must be whole (all bytes equal to seq % 251) and match its metadata.
    proc = _worker("write-pattern", shm_dir, "race", 2, 640, 480)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    good = overwritten = 0
    try:
        with RingReader("race", directory=shm_dir) as reader:
            out = np.empty((480, 640, 3), np.uint8)
            for _ in range(1500):
                last = reader.last_seq
                if last == 0:
                    continue
                for seq in (last, max(1, last - 1)):
                    frame = reader.read((seq - 1) % 2, seq, out=out)
                    if frame is None:
                        overwritten += 1
                        continue
                    good += 1
                    assert frame.captured_at == float(seq)
                    lo, hi = int(frame.image.min()), int(frame.image.max())
                    assert lo == hi == seq % 251, f"torn frame {seq}: bytes {lo}..{hi}"
    finally:
        proc.communicate(timeout=60)
    assert good > 100
    assert proc.returncode == 0


@settings(max_examples=40, deadline=None)
@given(slots=st.integers(2, 6), writes=st.integers(1, 20), width=st.integers(1, 40), height=st.integers(1, 30),
       channels=st.sampled_from([1, 3]))
def test_a_slot_holds_its_frame_until_it_is_overwritten(tmp_path_factory: pytest.TempPathFactory, slots: int,
                                                        writes: int, width: int, height: int, channels: int) -> None:
    d = tmp_path_factory.mktemp("ring")
    rng = np.random.default_rng(writes)
    shape = (height, width) if channels == 1 else (height, width, channels)
    with RingWriter("p", width=width, height=height, channels=channels, slot_count=slots, directory=d) as writer:
        written = []
        for _ in range(writes):
            image = rng.integers(0, 256, shape, dtype=np.uint8)
            written.append((writer.write(image, captured_at=123.5), image))
        with RingReader("p", directory=d) as reader:
            for (slot, seq), image in written:
                frame = reader.read(slot, seq)
                if seq > writes - slots:
                    assert frame is not None and np.array_equal(frame.image, image)
                    assert frame.captured_at == 123.5
                else:
                    assert frame is None, f"frame {seq} was overwritten by frame {seq + slots}"
            latest = reader.latest()
            assert latest is not None and latest.seq == writes and np.array_equal(latest.image, written[-1][1])


def test_smaller_frames_fit_and_larger_ones_are_refused_clearly(tmp_path: Path) -> None:
    with RingWriter("sizes", width=32, height=24, directory=tmp_path) as writer, \
            RingReader("sizes", directory=tmp_path) as reader:
        small = np.full((10, 20, 3), 9, np.uint8)
        slot, seq = writer.write(small)
        frame = reader.read(slot, seq)
        assert frame is not None and frame.image.shape == (10, 20, 3)
        with pytest.raises(RingError, match=r"frame 64x48x3 .* does not fit a slot"):
            writer.write(np.zeros((48, 64, 3), np.uint8))
        with pytest.raises(RingError, match="dtype float32"):
            writer.write(np.zeros((24, 32, 3), np.float32))


def test_empty_ring_has_no_latest_frame(tmp_path: Path) -> None:
    with RingWriter("empty", width=8, height=8, directory=tmp_path), RingReader("empty", directory=tmp_path) as r:
        assert r.latest() is None
        assert r.read(0, 1) is None


def test_only_the_owner_unlinks_and_readers_learn_it_closed(tmp_path: Path) -> None:
    writer = RingWriter("owned", width=8, height=8, directory=tmp_path)
    reader = RingReader("owned", directory=tmp_path)
    reader.close()
    assert (tmp_path / "owned").exists(), "a reader never removes the ring"
    reader = RingReader("owned", directory=tmp_path)
    assert not reader.closed_by_owner
    writer.close()
    assert reader.closed_by_owner
    assert not (tmp_path / "owned").exists()
    reader.close()


def test_a_new_owner_under_the_same_name_closes_the_old_ring_for_its_readers(tmp_path: Path) -> None:
    old = RingWriter("same", width=8, height=8, directory=tmp_path)
    reader = RingReader("same", directory=tmp_path)
    new = RingWriter("same", width=16, height=16, directory=tmp_path)
    assert reader.closed_by_owner
    old.close()  # must not remove the new owner's file
    assert (tmp_path / "same").exists()
    with RingReader("same", directory=tmp_path) as fresh:
        assert fresh.layout.width == 16
    new.close()
    reader.close()


def test_missing_or_foreign_ring_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RingError, match=r"ring 'nope': .*nope does not exist"):
        RingReader("nope", directory=tmp_path)
    (tmp_path / "junk").write_bytes(b"x" * 8192)
    with pytest.raises(RingError, match="not a GreenLens frame ring"):
        RingReader("junk", directory=tmp_path)
    with pytest.raises(RingError, match="not valid"):
        RingWriter("../escape", width=8, height=8, directory=tmp_path)


def test_a_ring_larger_than_the_free_shared_memory_is_refused_with_the_sizes(tmp_path: Path) -> None:
    with pytest.raises(RingError, match=r"needs \d+ bytes .* has only \d+ bytes free"):
        RingWriter("huge", width=1920, height=1080, slot_count=10_000_000, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_default_ring_fits_dockers_64_mb_shm() -> None:
    assert ring_bytes(4, 1280, 720) < 64 * 1024 * 1024


def test_a_borrowed_frame_is_read_in_place_and_knows_when_it_was_overwritten(tmp_path: Path) -> None:
    with RingWriter("borrow", width=16, height=8, slot_count=2, directory=tmp_path) as writer, \
            RingReader("borrow", directory=tmp_path) as reader:
        slot, seq = writer.write(np.full((8, 16, 3), 5, np.uint8))
        borrowed = reader.borrow(slot, seq)
        assert borrowed is not None and borrowed.intact()
        assert int(borrowed.image.sum()) == 5 * 8 * 16 * 3
        assert not borrowed.image.flags.writeable
        writer.write(np.full((8, 16, 3), 6, np.uint8))
        assert borrowed.intact(), "the other slot was written"
        writer.write(np.full((8, 16, 3), 7, np.uint8))
        assert not borrowed.intact(), "its slot was rewritten: whatever was computed from it is void"
        assert reader.borrow(slot, seq) is None
        del borrowed
