"""A ring writer or reader in its own process, for tests/test_ring.py.

    ring_worker.py write-pattern DIR NAME SLOTS W H   writes uniform frames (value seq % 251) until stdin closes
    ring_worker.py read DIR NAME SLOT SEQ [SLOT SEQ ...] prints "slot seq sha256" or "slot seq none" per frame
    ring_worker.py write-random DIR NAME SLOTS W H N  writes N random frames, prints "slot seq sha256" each,
                                                      then waits for stdin to close
"""

from __future__ import annotations

import hashlib
import sys
import threading

import numpy as np
from greenlens_common.ring import RingReader, RingWriter


def _stdin_closed() -> threading.Event:
    done = threading.Event()

    def wait() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    return done


def main(argv: list[str]) -> int:
    mode, directory, name = argv[0], argv[1], argv[2]
    if mode == "read":
        pairs = [int(x) for x in argv[3:]]
        with RingReader(name, directory=directory) as reader:
            for slot, seq in zip(pairs[::2], pairs[1::2], strict=True):
                frame = reader.read(slot, seq)
                if frame is None:
                    print(slot, seq, "none", flush=True)
                else:
                    print(slot, seq, hashlib.sha256(frame.image.tobytes()).hexdigest(), flush=True)
        return 0
    slots, width, height = int(argv[3]), int(argv[4]), int(argv[5])
    done = _stdin_closed()
    with RingWriter(name, width=width, height=height, slot_count=slots, directory=directory) as writer:
        if mode == "write-random":
            rng = np.random.default_rng(7)
            for _ in range(int(argv[6])):
                image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                slot, seq = writer.write(image)
                print(slot, seq, hashlib.sha256(image.tobytes()).hexdigest(), flush=True)
            print("done", flush=True)
            done.wait()
        elif mode == "write-pattern":
            image = np.empty((height, width, 3), np.uint8)
            while not done.is_set():
                seq = writer.last_seq + 1
                image.fill(seq % 251)
                writer.write(image, captured_at=float(seq))
                if seq == 1:
                    print("ready", flush=True)
        else:
            print(f"unknown mode {mode!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
