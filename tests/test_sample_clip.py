"""scripts/make_sample_clip.py, the demo's camera for `make run`: a video of hot dog and other photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
SCRIPT = [sys.executable, str(REPO / "scripts" / "make_sample_clip.py")]


def test_the_clip_alternates_hot_dogs_and_other_food_a_few_seconds_each(tmp_path: Path) -> None:
    assert PHOTOS.is_dir(), f"the shared test photos are missing: {PHOTOS}"
    out = tmp_path / "clip.avi"
    made = subprocess.run([*SCRIPT, str(PHOTOS), "--out", str(out), "--count", "4", "--seconds", "1.5",
                           "--fps", "4", "--size", "160x120"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "4 photos, 24 frames at 4 fps" in made.stdout

    video = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 24 and video.get(cv2.CAP_PROP_FPS) == 4
    assert {f.shape for f in frames} == {(120, 160, 3)}
    # Six frames per photo: the same picture within a photo's run, a different one at each change.
    for start in range(0, 24, 6):
        run = frames[start:start + 6]
        assert max(cv2.absdiff(run[0], f).mean() for f in run) < 3
    assert all(cv2.absdiff(frames[i], frames[i + 6]).mean() > 10 for i in range(0, 18, 6))
    assert not list(tmp_path.glob(".*"))  # written under a temporary name, then renamed


def test_a_folder_without_the_photos_it_needs_is_a_clear_error(tmp_path: Path) -> None:
    def make() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SCRIPT, str(tmp_path), "--out", str(tmp_path / "clip.avi")], capture_output=True,
                              text=True, timeout=60)

    missing = make()
    assert missing.returncode == 2
    assert f"{tmp_path / 'hotdog'}: not found; expected {tmp_path} to hold hotdog/ and not_hotdog/" in missing.stderr
    (tmp_path / "hotdog").mkdir()
    empty = make()
    assert empty.returncode == 2 and f"{tmp_path / 'hotdog'}: 0 photos; the clip needs 6" in empty.stderr
    assert not (tmp_path / "clip.avi").exists()
