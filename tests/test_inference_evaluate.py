"""components/inference/evaluate.py: any greenlens.Model version scored on a labelled folder, a JSON report and
a PNG. The photos are copied from ../shared/data into tmp_path at test time (they may not enter the repo)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parents[1]
EVALUATE = REPO / "components" / "inference" / "evaluate.py"
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EVALUATE), *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four photos of each class, two from each source (sf_, tp_)."""
    root = tmp_path_factory.mktemp("labelled")
    for label in ("hotdog", "not_hotdog"):
        (root / label).mkdir()
        for prefix in ("sf_", "tp_"):
            for photo in sorted((PHOTOS / label).glob(f"{prefix}*.jpg"))[:2]:
                shutil.copy(photo, root / label / photo.name)
    return root


@pytest.mark.parametrize(("version", "name"), [("1.0.0", "efficientnet-lite0"), ("3.0.0", "efficientnet-lite0-hotdog")])
def test_a_version_is_scored_into_a_json_report_and_a_png(
        small_folder: Path, tmp_path: Path, version: str, name: str) -> None:
    done = run(str(small_folder), "--model-version", version, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"greenlens.Model {version} ({name}), rule ")
    report = json.loads((tmp_path / f"evaluation-{name}-{version}.json").read_text())
    assert report["model"]["version"] == version and report["model"]["name"] == name
    assert report["photos"] == {"folder": small_folder.name, "hotdog": 4, "not_hotdog": 4}
    m = report["metrics"]
    for key in ("accuracy", "precision", "recall", "specificity", "roc_auc"):
        assert m[key] is None or 0.0 <= m[key] <= 1.0, (key, m[key])
    assert m["n"] == 8 and m["tp"] + m["fn"] == 4 and m["tn"] + m["fp"] == 4
    assert m["confusion_matrix"] == [[m["tn"], m["fp"]], [m["fn"], m["tp"]]]
    assert m["accuracy"] == round((m["tp"] + m["tn"]) / 8, 4)
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    scored = report["photos_scored"]
    assert len(scored) == 8 and {s["photo"].split("/")[0] for s in scored} == {"hotdog", "not_hotdog"}
    present = [s for s in scored if s["present"]]
    assert len(present) == m["tp"] + m["fp"]
    assert set(report["rules"]) == {"top1", "threshold"} and set(report["by_source"]) == {"sf", "tp"}
    if report["rule"] == "threshold":
        assert all((s["score"] > report["threshold"]) == s["present"] for s in scored)
    png = cv2.imread(str(tmp_path / f"evaluation-{name}-{version}.png"))
    assert png is not None and png.shape[0] > 400 and png.shape[1] > 800


def test_a_bundle_folder_can_be_scored_instead_of_a_version(small_folder: Path, tmp_path: Path) -> None:
    bundle = REPO / "components" / "model" / "bundles" / "efficientnet-lite0"
    done = run(str(small_folder), "--bundle", str(bundle), "--out", str(tmp_path), "--threshold", "0.2")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "evaluation-efficientnet-lite0-1.0.0.json").read_text())
    assert report["threshold"] == 0.2 and report["rules"]["threshold"]["n"] == 8


def test_an_unknown_version_is_named_with_the_known_ones(small_folder: Path, tmp_path: Path) -> None:
    done = run(str(small_folder), "--model-version", "9.9.9", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "no greenlens.Model version '9.9.9'; expected one of 1.0.0, 1.0.1, 1.0.2, 2.0.0, 2.0.1, 3.0.0, 3.0.1" in done.stderr
    assert not list(tmp_path.iterdir())


def test_evaluate_names_a_folder_that_is_not_a_labelled_photo_set(tmp_path: Path) -> None:
    (tmp_path / "hotdog").mkdir()
    out = tmp_path / "out"
    done = run(str(tmp_path), "--out", str(out))
    assert done.returncode != 0
    assert f"{tmp_path / 'hotdog'}: holds no images" in done.stderr
    (tmp_path / "hotdog" / "a.jpg").write_bytes(b"not a jpeg")
    done = run(str(tmp_path), "--out", str(out))
    assert f"{tmp_path / 'not_hotdog'}: not found; expected a folder of not_hotdog photos" in done.stderr
    (tmp_path / "not_hotdog").mkdir()
    (tmp_path / "not_hotdog" / "b.jpg").write_bytes(b"not a jpeg either")
    done = run(str(tmp_path), "--out", str(out))
    assert done.returncode != 0
    assert f"{tmp_path / 'hotdog' / 'a.jpg'}: cannot be decoded as an image" in done.stderr
