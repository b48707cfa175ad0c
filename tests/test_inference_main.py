"""components/inference/main.py (sketch entry point): image files in, greenlens.result/1 JSON lines out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from greenlens_inference import check_result_message

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "components" / "inference" / "main.py"
FACE_BUNDLE = REPO / "components" / "model" / "bundles" / "face-detection-short-range"
FACE_PHOTO = Path(__file__).resolve().parent / "data" / "faces" / "grace_hopper.jpg"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MAIN), *args], capture_output=True, text=True, timeout=120)


def test_main_prints_one_result_message_per_image_and_names_unreadable_ones(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    done = run("--bundle", str(FACE_BUNDLE), "--threshold", "0.6", str(FACE_PHOTO), str(broken))
    assert done.returncode == 1
    assert f"main: {broken}: cannot be read as an image" in done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    message = json.loads(lines[0])
    check_result_message(message)
    assert message["seq"] == 0 and message["source"] == f"file:{FACE_PHOTO}"
    assert message["model"]["name"] == "face-detection-short-range" and message["verdict"]["present"] is True


def test_main_refuses_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    done = run("--bundle", str(tmp_path), str(FACE_PHOTO))
    assert done.returncode == 2
    assert f"{tmp_path / 'model.json'}: not found; a model bundle folder needs model.json" in done.stderr
