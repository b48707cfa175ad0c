"""components/inference/evaluate.py: the hot dog verdict's precision/recall/accuracy on labelled photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVALUATE = REPO / "components" / "inference" / "evaluate.py"
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EVALUATE), *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )


def test_evaluate_prints_both_rules_and_a_json_line() -> None:
    done = run(str(PHOTOS), "--limit", "6", "--threshold", "0.2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("hotdog verdict, rule top-1") and "precision" in lines[0]
    assert lines[1].startswith("hotdog verdict, rule threshold > 0.2")
    report = json.loads(lines[-1])
    top1, threshold = report["rules"]["top1"], report["rules"]["threshold"]
    assert top1["n"] == threshold["n"] == 12  # 6 per class
    assert top1["tp"] + top1["fn"] == 6 and top1["tn"] + top1["fp"] == 6
    assert top1["accuracy"] == round((top1["tp"] + top1["tn"]) / 12, 4)
    assert threshold["threshold"] == 0.2
    assert report["bundle"]["name"] == "efficientnet-lite0" and report["bundle"]["task"] == "classification"


def test_evaluate_names_a_folder_that_is_not_a_labelled_photo_set(tmp_path: Path) -> None:
    (tmp_path / "hotdog").mkdir()
    done = run(str(tmp_path))
    assert done.returncode != 0
    assert f"{tmp_path / 'hotdog'}: holds no images" in done.stderr
    (tmp_path / "hotdog" / "a.jpg").write_bytes(b"not a jpeg")
    done = run(str(tmp_path))
    assert f"{tmp_path / 'not_hotdog'}: not found; expected a folder of not_hotdog photos" in done.stderr
    (tmp_path / "not_hotdog").mkdir()
    (tmp_path / "not_hotdog" / "b.jpg").write_bytes(b"not a jpeg either")
    done = run(str(tmp_path))
    assert done.returncode != 0
    assert f"{tmp_path / 'hotdog' / 'a.jpg'}: cannot be decoded as an image" in done.stderr
