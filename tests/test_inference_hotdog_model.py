"""greenlens.Model 3.0.0 (the trained hot dog classifier) through greenlens.Inference's classification path:
two classes from labels.txt, p(hotdog) from the softmax, the verdict by model.json's threshold — and
greenlens.App's dependency range takes it (but not the face detector)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import yaml
from ggsim.nucleus.resolver import Constraint
from greenlens_inference import Engine, load_bundle

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "components" / "model" / "bundles" / "efficientnet-lite0-hotdog"
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_bundle(BUNDLE))


def photo(label: str, name: str) -> object:
    frame = cv2.imread(str(PHOTOS / label / name), cv2.IMREAD_COLOR)
    assert frame is not None
    return frame


def test_the_bundle_states_two_classes_the_threshold_and_its_provenance() -> None:
    manifest = json.loads((BUNDLE / "model.json").read_text())
    assert (BUNDLE / "labels.txt").read_text().split() == ["hotdog", "not_hotdog"]
    assert manifest["output"] == {"kind": "logits", "shape": [1, 2], "activation": "softmax"}
    loi = manifest["label_of_interest"]
    assert loi["label"] == "hotdog" and loi["class_index"] == 0 and loi["rule"] == "threshold"
    training = manifest["source"]["training"]
    assert loi["threshold"] == training["threshold"]["value"]
    assert training["data"]["folder"] == "hotdog-photos" and len(training["data"]["content_sha256"]) == 64
    assert training["split"]["train"] + training["split"]["validation"] == training["data"]["photos"]
    assert {"seed", "validation_metrics", "recipe"} <= set(training)
    assert (BUNDLE / "model.tflite").stat().st_size <= 6 * 1024 * 1024


def test_a_hot_dog_and_another_food_get_the_verdicts_of_the_threshold(engine: Engine) -> None:
    threshold = engine.threshold
    hot = engine.infer(photo("hotdog", sorted(p.name for p in (PHOTOS / "hotdog").glob("sf_*"))[0]))
    for result in (hot, engine.infer(photo("not_hotdog", sorted(p.name for p in (PHOTOS / "not_hotdog").iterdir())[0]))):
        top = {t["label"]: t["score"] for t in result["top_k"]}
        assert set(top) == {"hotdog", "not_hotdog"}
        assert top["hotdog"] + top["not_hotdog"] == pytest.approx(1.0)
        verdict = result["verdict"]
        assert verdict["label"] == "hotdog" and verdict["score"] == pytest.approx(top["hotdog"])
        assert verdict["present"] == (verdict["score"] > threshold)
    assert hot["verdict"]["present"], hot["verdict"]


def test_the_other_class_can_be_the_label_of_interest(engine: Engine) -> None:
    frame = photo("hotdog", sorted(p.name for p in (PHOTOS / "hotdog").glob("sf_*"))[0])
    engine.set_label_of_interest("not_hotdog")
    try:
        engine.set_rule("top1")
        verdict = engine.infer(frame)["verdict"]
        assert verdict["label"] == "not_hotdog" and not verdict["present"]
    finally:
        engine.set_label_of_interest(None)
        engine.set_rule("threshold")


def accepted_by(component: str) -> set[str]:
    """The greenlens.Model versions of versions.yaml that `component`'s recipe accepts."""
    recipe = yaml.safe_load((REPO / "recipes" / f"{component}.yaml").read_text())
    requirement = recipe["ComponentDependencies"]["greenlens.Model"]["VersionRequirement"]
    accepted = Constraint("greenlens.Model", requirement, component)
    versions = yaml.safe_load((REPO / "components" / "model" / "versions.yaml").read_text())["versions"]
    return {v for v in versions if accepted.allows(v)}


def test_greenlens_app_accepts_the_hot_dog_models_and_inference_every_model() -> None:
    # 1.0.2 is in App's range: the build leaves it out unless asked (--include-broken), so nothing resolves to it
    assert accepted_by("greenlens.App") == {"1.0.0", "1.0.1", "1.0.2", "3.0.0", "3.0.1"}
    assert accepted_by("greenlens.Inference") == {"1.0.0", "1.0.1", "1.0.2", "2.0.0", "2.0.1", "3.0.0", "3.0.1"}
