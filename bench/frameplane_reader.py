"""The reading side of the frame-plane benchmark, in its own process: for each "NAME SLOT SEQ" line on
stdin, read (copy) that frame from the ring and answer one line with the read's milliseconds."""

from __future__ import annotations

import sys
import time


def main() -> None:
    from greenlens_common.ring import RingReader

    readers: dict[str, RingReader] = {}
    print("READY", flush=True)
    for line in sys.stdin:
        name, slot, seq = line.split()
        reader = readers.get(name)
        if reader is None:
            reader = readers[name] = RingReader(name)
        t0 = time.perf_counter()
        frame = reader.read(int(slot), int(seq))
        ms = (time.perf_counter() - t0) * 1000
        sys.stdout.write(f"{ms:.6f} {int(frame is not None)}\n")
        sys.stdout.flush()
    for reader in readers.values():
        reader.close()


if __name__ == "__main__":
    main()
