"""The frame plane's cost per frame: the shared-memory ring (greenlens_common.ring) written here and read in
another process, at 640x480 and 1280x720; beside it the inline-JPEG fallback (greenlens.Capture's
InlineTransport encode into a descriptor, greenlens_common's FrameReader decode).

Ring: `write` is RingWriter.write, `read` is RingReader.read (a copy) in the reader process; `handoff` is the
writer's round trip (write, tell the reader over a pipe, its read, its answer), an upper bound including
the pipe. Frames are real frames of the sample clip, letterboxed to each size.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from .common import load, python_process, sample_clip, stats_ms

SIZES = ((640, 480), (1280, 720))
FRAMES = 400
JPEG_FRAMES = 200
INLINE_MAX_BYTES = 6000  # greenlens.Capture's default inlineMaxBytes


def clip_frames(width: int, height: int, count: int = 8) -> list[Any]:
    import cv2
    from greenlens_capture.imaging import letterbox

    cap = cv2.VideoCapture(str(sample_clip()))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    out = []
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i * max(1, total // count))
        ok, frame = cap.read()
        if ok:
            out.append(letterbox(frame, width, height))
    cap.release()
    return out


def ring_case(width: int, height: int, frames: list[Any]) -> dict[str, Any]:
    from greenlens_common.ring import RingWriter

    name = f"greenlens-bench-plane-{os.getpid()}-{width}x{height}"
    writer = RingWriter(name, width=width, height=height, slot_count=4)
    reader = python_process(["-m", "bench.frameplane_reader"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, bufsize=1)
    writes, reads, trips = [], [], []
    torn = 0
    try:
        if reader.stdout.readline().strip() != "READY":
            raise RuntimeError("the ring reader did not start")
        for i in range(FRAMES + 20):
            t0 = time.perf_counter()
            slot, seq = writer.write(frames[i % len(frames)], captured_at=time.time())
            t1 = time.perf_counter()
            reader.stdin.write(f"{name} {slot} {seq}\n")
            reader.stdin.flush()
            ms, ok = reader.stdout.readline().split()
            t2 = time.perf_counter()
            if i >= 20:  # warm-up: page faults of the first passes over the slots
                writes.append((t1 - t0) * 1000)
                reads.append(float(ms))
                trips.append((t2 - t0) * 1000)
                torn += ok != "1"
    finally:
        reader.stdin.close()
        reader.wait(30)
        writer.close()
    w, r = stats_ms(writes), stats_ms(reads)
    return {"size": f"{width}x{height}", "frames": len(writes), "write_ms": w, "read_ms": r,
            "write_plus_read_ms_p50": round(w["p50"] + r["p50"], 3),
            "write_plus_read_ms_p99": round(w["p99"] + r["p99"], 3),
            "handoff_ms": stats_ms(trips), "unreadable": torn}


def jpeg_case(width: int, height: int, frames: list[Any]) -> dict[str, Any]:
    import json

    from greenlens_capture.sources import CapturedFrame
    from greenlens_capture.transport import InlineTransport
    from greenlens_common.frames import FrameReader

    transport = InlineTransport(INLINE_MAX_BYTES)
    reader = FrameReader()
    encodes, decodes, sizes = [], [], []
    shape = None
    for i in range(JPEG_FRAMES + 10):
        frame = CapturedFrame(frames[i % len(frames)], i + 1, time.time())
        t0 = time.perf_counter()
        descriptor = json.dumps(transport.send(frame, seq=i + 1, source="bench", dropped=0))
        t1 = time.perf_counter()
        image = reader.read(json.loads(descriptor))
        t2 = time.perf_counter()
        shape = image.shape if image is not None else None
        if i >= 10:
            encodes.append((t1 - t0) * 1000)
            decodes.append((t2 - t1) * 1000)
            sizes.append(len(descriptor))
    e, d = stats_ms(encodes), stats_ms(decodes)
    return {"size": f"{width}x{height}", "frames": len(encodes), "encode_ms": e, "decode_ms": d,
            "encode_plus_decode_ms_p50": round(e["p50"] + d["p50"], 3),
            "encode_plus_decode_ms_p99": round(e["p99"] + d["p99"], 3),
            "descriptor_bytes_mean": round(sum(sizes) / len(sizes)),
            "delivered_size": f"{shape[1]}x{shape[0]}" if shape else None}


def run() -> dict[str, Any]:
    load_before = load()
    ring, jpeg = [], []
    for width, height in SIZES:
        frames = clip_frames(width, height)
        ring.append(ring_case(width, height, frames))
        jpeg.append(jpeg_case(width, height, frames))
    return {"ring": ring, "inline_jpeg": jpeg, "inline_max_bytes": INLINE_MAX_BYTES,
            "note": "the inline JPEG is downscaled to at most 320 px and within inlineMaxBytes: not the same pixels",
            "loadavg_before": load_before, "loadavg_after": load()}
