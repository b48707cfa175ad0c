"""Write the demo's sample clip: a dozen hot dog and not hot dog photos, a few seconds each, as one video.

    python scripts/make_sample_clip.py [PHOTOS] [--out build/sample/hotdog-demo.avi] [--count 12]
                                       [--seconds 3] [--fps 10] [--size 640x480]

PHOTOS (default ../shared/data/hotdog-photos) holds hotdog/ and not_hotdog/; the clip alternates them,
taking the first photos of each in name order, each letterboxed to the frame size. The photos' licenses
keep them out of the repository: the clip is written under build/ and never committed or published.
Exit status 2 with one line naming the folder when PHOTOS is not usable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ClipError(ValueError):
    """A photo folder or an option that cannot make a clip; the text says which and why."""


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = np.zeros((height, width, 3), np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    frame[y:y + h, x:x + w] = resized
    return frame


def pick_photos(photos: Path, count: int) -> list[Path]:
    """`count` photos alternating hotdog/ and not_hotdog/ (first in name order), hot dog first."""
    lists = []
    for label in ("hotdog", "not_hotdog"):
        folder = photos / label
        if not folder.is_dir():
            raise ClipError(f"{folder}: not found; expected {photos} to hold hotdog/ and not_hotdog/ photo folders")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if len(files) < (count + 1) // 2:
            raise ClipError(f"{folder}: {len(files)} photos; the clip needs {(count + 1) // 2}")
        lists.append(files)
    return [lists[i % 2][i // 2] for i in range(count)]


def write_clip(photos: list[Path], out: Path, *, seconds: float, fps: float, width: int, height: int) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if out.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(temporary), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise ClipError(f"{out}: OpenCV cannot write this video format (use .avi or .mp4)")
    frames = 0
    try:
        for photo in photos:
            image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
            if image is None:
                raise ClipError(f"{photo}: cannot be read as an image")
            frame = letterbox(image, width, height)
            for _ in range(max(1, round(seconds * fps))):
                writer.write(frame)
                frames += 1
    finally:
        writer.release()
    temporary.replace(out)
    return frames


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"{text!r}: expected at least 16x16")
    return w, h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="?", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "sample" / "hotdog-demo.avi")
    ap.add_argument("--count", type=int, default=12, help="photos in the clip (alternating hot dog / not)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds each photo is shown")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--size", type=_size, default=(640, 480))
    args = ap.parse_args(argv)
    try:
        if args.count < 1 or args.seconds <= 0 or args.fps <= 0:
            raise ClipError("--count, --seconds and --fps must be positive")
        chosen = pick_photos(args.photos, args.count)
        frames = write_clip(chosen, args.out, seconds=args.seconds, fps=args.fps, width=args.size[0],
                            height=args.size[1])
    except ClipError as exc:
        print(f"make_sample_clip: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(chosen)} photos, {frames} frames at {args.fps:g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
