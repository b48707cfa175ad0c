"""greenlens.Model: the committed bundles are what versions.yaml says, and the build reproduces them byte for byte.

The rebuild (slow: a throwaway build venv of about 2.2 GB, the hot dog model trained again on
../shared/data/hotdog-photos; a few minutes) always runs in CI (CI=true); elsewhere GREENLENS_SKIP_MODEL_REBUILD=1
skips it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "components" / "model"
BUNDLES = MODEL / "bundles"
BUNDLE_FILES = ("model.tflite", "labels.txt", "model.json")
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entries() -> dict[str, dict]:
    data = yaml.safe_load((MODEL / "versions.yaml").read_text())
    assert data["component"] == "greenlens.Model"
    return {str(version): entry for version, entry in data["versions"].items()}


def versions() -> dict[str, str]:
    return {version: entry["bundle"] for version, entry in entries().items()}


def test_versions_yaml_maps_each_version_to_one_committed_bundle() -> None:
    mapping = versions()
    assert mapping["1.0.0"] == "efficientnet-lite0"
    assert mapping["2.0.0"] == "face-detection-short-range"
    assert mapping["3.0.0"] == "efficientnet-lite0-hotdog"
    assert len(set(mapping.values())) == len(mapping), "one greenlens.Model version per bundle"
    for version, bundle in mapping.items():
        folder = BUNDLES / bundle
        manifest = json.loads((folder / "model.json").read_text())
        assert manifest["name"] == entries()[version].get("derived_from", bundle)
        assert manifest["version"] == version
        assert sha256(folder / manifest["model_file"]) == manifest["sha256"], f"{folder}: model.tflite vs model.json"
    assert sorted(p.name for p in BUNDLES.iterdir() if p.is_dir()) == sorted(mapping.values())


def rebuild_skipped() -> bool:
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return not in_ci and os.environ.get("GREENLENS_SKIP_MODEL_REBUILD") == "1"


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(rebuild_skipped(), reason="GREENLENS_SKIP_MODEL_REBUILD=1 outside CI")
def test_rebuild_in_a_throwaway_venv_gives_the_committed_bundles() -> None:
    with tempfile.TemporaryDirectory(prefix="greenlens-model-rebuild-") as scratch:
        root = Path(scratch)
        out = root / "bundles"
        cmd = [
            sys.executable, str(MODEL / "build_model.py"),
            # the bundles built from packages (and photos); the build derives the golden versions from them
            *(arg for e in entries().values() if "derived_from" not in e for arg in ("--bundle", e["bundle"])),
            "--venv", str(root / "venv"), "--work-dir", str(root / "work"), "--out", str(out),
            "--photos", str(PHOTOS),
        ]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1700)
        assert done.returncode == 0, done.stdout[-4000:]
        rebuilt = json.loads((out / "efficientnet-lite0" / "model.json").read_text())
        committed = json.loads((BUNDLES / "efficientnet-lite0" / "model.json").read_text())
        assert sha256(out / "efficientnet-lite0" / "model.tflite") == rebuilt["sha256"]
        assert rebuilt["sha256"] == committed["sha256"] == sha256(BUNDLES / "efficientnet-lite0" / "model.tflite")
        for bundle in versions().values():
            for name in BUNDLE_FILES:
                assert (out / bundle / name).read_bytes() == (BUNDLES / bundle / name).read_bytes(), (
                    f"rebuilt {bundle}/{name} differs from the committed one"
                )
        # the golden versions derived from them, golden sets included (every file of the folder)
        for bundle in (e["bundle"] for e in entries().values() if "derived_from" in e):
            committed_files = sorted(p.relative_to(BUNDLES / bundle) for p in (BUNDLES / bundle).rglob("*"))
            assert sorted(p.relative_to(out / bundle) for p in (out / bundle).rglob("*")) == committed_files
            for name in committed_files:
                if (BUNDLES / bundle / name).is_file():
                    assert (out / bundle / name).read_bytes() == (BUNDLES / bundle / name).read_bytes(), (
                        f"rebuilt {bundle}/{name} differs from the committed one")
