"""greenlens.Inference's engine on the committed model bundles and real photos (../shared/data)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from greenlens_common import messages
from greenlens_inference import BundleError, Engine, build_result_message, load_bundle
from greenlens_inference.ssd import generate_anchors, non_max_suppression

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
BUNDLES = REPO / "components" / "model" / "bundles"
HOTDOG_BUNDLE = BUNDLES / "efficientnet-lite0"
FACE_BUNDLE = BUNDLES / "face-detection-short-range"
FACE_PHOTO = Path(__file__).resolve().parent / "data" / "faces" / "grace_hopper.jpg"

# Picked by running the model once: unmistakable hot dogs, and food that is clearly something else.
CLEAR_HOTDOGS = ["sf_1011661.jpg", "sf_1013916.jpg", "sf_1000288.jpg"]
CLEAR_NEGATIVES = ["sf_100135.jpg", "sf_100274.jpg"]
# Not a hot dog (a cheeseburger-like photo) where "hotdog" is the runner-up (p about 0.3): the rules disagree.
RUNNER_UP_HOTDOG = "sf_100148.jpg"


def photo(folder: str, name: str) -> np.ndarray:
    path = PHOTOS / folder / name
    assert path.is_file(), f"test photo {path} is missing: the tests need ../shared/data beside the repo"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} cannot be decoded"
    return image


def fixed_sample(per_class: int = 20) -> list[tuple[Path, bool]]:
    """Every k-th photo of each class (sorted by name): a fixed mix of both photo sources."""
    sample = []
    for folder, truth in (("hotdog", True), ("not_hotdog", False)):
        files = sorted((PHOTOS / folder).glob("*.jpg"))
        assert len(files) >= per_class, f"{PHOTOS / folder}: expected at least {per_class} photos"
        sample += [(p, truth) for p in files[:: len(files) // per_class][:per_class]]
    return sample


@pytest.fixture(scope="module")
def hotdog_engine() -> Engine:
    return Engine(HOTDOG_BUNDLE, threads=2)


@pytest.fixture(scope="module")
def face_engine() -> Engine:
    return Engine(FACE_BUNDLE, threads=1)


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    target = tmp_path / "efficientnet-lite0"
    shutil.copytree(HOTDOG_BUNDLE, target)
    return target


def edit_manifest(bundle_dir: Path, edit) -> None:
    path = bundle_dir / "model.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


# --- hot dog / not hot dog --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLEAR_HOTDOGS)
def test_clear_hot_dog_photos_are_hot_dogs(hotdog_engine: Engine, name: str) -> None:
    result = hotdog_engine.infer(photo("hotdog", name))
    assert result["verdict"]["label"] == "hotdog"
    assert result["verdict"]["present"] is True
    assert result["top_k"][0]["index"] == 934
    assert result["top_k"][0]["label"].startswith("hotdog")


@pytest.mark.parametrize("name", CLEAR_NEGATIVES)
def test_clear_other_food_is_not_hot_dog(hotdog_engine: Engine, name: str) -> None:
    result = hotdog_engine.infer(photo("not_hotdog", name))
    assert result["verdict"]["present"] is False
    assert result["verdict"]["score"] < 0.05
    assert result["top_k"][0]["index"] != 934


def test_accuracy_on_a_fixed_sample_of_40_photos() -> None:
    engine = Engine(HOTDOG_BUNDLE, threads=2)
    correct = {"top1": 0, "threshold": 0}
    sample = fixed_sample()
    for path, truth in sample:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        for rule in correct:
            engine.set_rule(rule)
            correct[rule] += engine.infer(frame)["verdict"]["present"] == truth
    assert len(sample) == 40
    assert correct["top1"] / 40 >= 0.75, correct
    assert correct["threshold"] / 40 >= 0.75, correct


def test_result_has_top_k_scores_and_timings(hotdog_engine: Engine) -> None:
    result = hotdog_engine.infer(photo("hotdog", CLEAR_HOTDOGS[0]))
    scores = [entry["score"] for entry in result["top_k"]]
    assert len(scores) == 5
    assert scores == sorted(scores, reverse=True)
    assert 0.0 < sum(scores) <= 1.0 + 1e-6
    assert result["detections"] == []
    assert set(result["timings_ms"]) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in result["timings_ms"].values())
    assert result["timings_ms"]["inference"] > 0


def test_threshold_and_rule_change_the_verdict_at_run_time() -> None:
    engine = Engine(HOTDOG_BUNDLE)
    frame = photo("not_hotdog", RUNNER_UP_HOTDOG)
    assert engine.rule == "top1" and engine.threshold == pytest.approx(0.1)  # model.json's defaults
    first = engine.infer(frame)
    score = first["verdict"]["score"]
    assert first["top_k"][0]["index"] != 934 and 0.1 < score < 0.9
    assert first["verdict"]["present"] is False  # not top-1
    engine.set_rule("threshold")
    assert engine.infer(frame)["verdict"]["present"] is True  # p(hotdog) > 0.1
    engine.set_threshold(min(1.0, score + 0.05))
    assert engine.infer(frame)["verdict"]["present"] is False
    engine.set_threshold(max(0.0, score - 0.05))
    assert engine.infer(frame)["verdict"]["present"] is True
    assert Engine(HOTDOG_BUNDLE, rule="threshold", threshold=0.95).infer(frame)["verdict"]["present"] is False


def test_threads_change_at_run_time_without_changing_results() -> None:
    engine = Engine(HOTDOG_BUNDLE, threads=1)
    frame = photo("hotdog", CLEAR_HOTDOGS[1])
    one = engine.infer(frame)
    engine.set_threads(2)
    assert engine.threads == 2
    two = engine.infer(frame)
    assert [e["index"] for e in one["top_k"]] == [e["index"] for e in two["top_k"]]
    assert two["verdict"]["score"] == pytest.approx(one["verdict"]["score"], abs=1e-4)


def test_settings_change_safely_while_another_thread_infers() -> None:
    engine = Engine(HOTDOG_BUNDLE, threads=1)
    frame = photo("hotdog", CLEAR_HOTDOGS[1])
    results: list[dict] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def worker() -> None:
        try:
            for _ in range(30):
                results.append(engine.infer(frame))
                started.set()
        except BaseException as exc:  # reported below
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(timeout=60)
    for i in range(10):
        engine.set_threads(1 + i % 2)
        engine.set_threshold(0.05 * i)
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors, errors
    assert len(results) == 30 and all(r["top_k"][0]["index"] == 934 for r in results)


@pytest.mark.parametrize(
    ("setter", "value", "words"),
    [
        ("set_threshold", 1.5, "threshold is 1.5"),
        ("set_threshold", "high", "threshold is 'high'"),
        ("set_rule", "top5", "rule is 'top5'; expected one of top1, threshold"),
        ("set_threads", 0, "threads is 0"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(hotdog_engine: Engine, setter: str, value, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        getattr(hotdog_engine, setter)(value)


def test_gray_and_bgra_frames_are_accepted_and_bad_frames_refused(hotdog_engine: Engine) -> None:
    frame = photo("hotdog", CLEAR_HOTDOGS[1])
    bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    assert hotdog_engine.infer(bgra)["verdict"]["present"] is True
    assert hotdog_engine.infer(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))["top_k"]
    with pytest.raises(ValueError, match="frame: dtype is float32; expected uint8"):
        hotdog_engine.infer(frame.astype(np.float32))
    with pytest.raises(ValueError, match=r"frame: shape is \(10, 10, 2\)"):
        hotdog_engine.infer(np.zeros((10, 10, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="frame: expected a numpy array"):
        hotdog_engine.infer(b"jpeg bytes")


def test_result_message_is_a_small_json_greenlens_result(hotdog_engine: Engine) -> None:
    result = hotdog_engine.infer(photo("hotdog", CLEAR_HOTDOGS[0]))
    message = build_result_message(
        result, hotdog_engine.bundle.model_info(), seq=42, captured_at=1700000000.25, source="file:sample"
    )
    encoded = json.dumps(message)
    assert len(encoded.encode()) < 10_000  # fits one Greengrass IPC frame (nucleus lite cap)
    decoded = json.loads(encoded)
    assert messages.validate(decoded, expect=messages.RESULT) == messages.RESULT
    assert encoded == json.dumps({  # the fields in the order Inference has always sent them
        "schema": "greenlens.result/1", "seq": 42, "captured_at": 1700000000.25, "source": "file:sample",
        "model": hotdog_engine.bundle.model_info(), "verdict": result["verdict"], "top_k": result["top_k"],
        "detections": [], "timings_ms": result["timings_ms"]})
    assert decoded["schema"] == "greenlens.result/1"
    assert decoded["seq"] == 42 and decoded["captured_at"] == 1700000000.25 and decoded["source"] == "file:sample"
    manifest = json.loads((HOTDOG_BUNDLE / "model.json").read_text())
    assert decoded["model"] == {"name": "efficientnet-lite0", "version": manifest["version"],
                                "sha256": manifest["sha256"], "task": "classification"}
    assert decoded["verdict"] == {"label": "hotdog", "present": True, "score": result["verdict"]["score"]}
    assert decoded["top_k"] == result["top_k"] and decoded["timings_ms"] == result["timings_ms"]
    with pytest.raises(messages.MessageError, match="field seq: -1 is less than the minimum of 0"):
        build_result_message(result, hotdog_engine.bundle.model_info(), seq=-1, captured_at=1.0, source="x")
    decoded["verdict"]["present"] = "yes"
    with pytest.raises(messages.MessageError, match="field verdict/present: 'yes' is not of type 'boolean'"):
        messages.validate(decoded, expect=messages.RESULT)


# --- face detection ------------------------------------------------------------------------------------


def test_short_range_anchors_follow_mediapipe_layout() -> None:
    anchors = generate_anchors(load_bundle(FACE_BUNDLE).output["anchors"])
    assert anchors.shape == (896, 4)  # 16x16x2 (stride 8) + 8x8x6 (stride 16)
    assert np.allclose(anchors[:2, :2], [[0.5 / 16, 0.5 / 16]] * 2)
    assert np.allclose(anchors[512, :2], [0.5 / 8, 0.5 / 8]) and np.allclose(anchors[-1, :2], [7.5 / 8, 7.5 / 8])
    assert np.all(anchors[:, 2:] == 1.0)  # fixed_anchor_size


def test_nms_merges_overlapping_boxes_and_keeps_separate_ones() -> None:
    boxes = np.array(
        [[0.10, 0.10, 0.30, 0.30], [0.12, 0.10, 0.32, 0.30], [0.60, 0.60, 0.80, 0.80], [0.5, 0.5, 0.5, 0.5]],
        dtype=np.float32,
    )
    scores = np.array([0.9, 0.6, 0.7, 0.95], dtype=np.float32)
    weighted = non_max_suppression(boxes, scores, 0.3, weighted=True, max_detections=10)
    # best first; the zero-area box stands alone; the two overlapping boxes become one, score-weighted
    assert [round(score, 2) for _, score, _ in weighted] == [0.95, 0.9, 0.7]
    assert np.allclose(weighted[1][0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5)
    assert sorted(weighted[1][2].tolist()) == [0, 1]
    plain = non_max_suppression(boxes, scores, 0.3, weighted=False, max_detections=2)
    assert len(plain) == 2 and np.allclose(plain[1][0], boxes[0])


@pytest.mark.parametrize(("folder", "name"), [("hotdog", CLEAR_HOTDOGS[0]), ("not_hotdog", CLEAR_NEGATIVES[0])])
def test_face_detector_finds_no_face_in_food(face_engine: Engine, folder: str, name: str) -> None:
    result = face_engine.infer(photo(folder, name))
    assert result["detections"] == []
    assert result["verdict"]["label"] == "face" and result["verdict"]["present"] is False


def face_box(engine: Engine, frame: np.ndarray) -> list[float]:
    result = engine.infer(frame)
    assert result["verdict"]["present"] is True, result
    assert len(result["detections"]) == 1, result["detections"]
    detection = result["detections"][0]
    assert detection["label"] == "face" and detection["score"] > 0.6
    return detection["box"]


def test_face_detector_finds_the_face_where_it_is(face_engine: Engine) -> None:
    frame = cv2.imread(str(FACE_PHOTO), cv2.IMREAD_COLOR)
    x0, y0, x1, y1 = face_box(face_engine, frame)
    # The face (eyes to chin) lies around the middle, upper half of the portrait.
    assert 0.25 < x0 < 0.4 and 0.6 < x1 < 0.8 and 0.15 < y0 < 0.32 and 0.5 < y1 < 0.65

    message = build_result_message(
        face_engine.infer(frame), face_engine.bundle.model_info(), seq=0, captured_at=0.0, source="photo"
    )
    messages.validate(json.loads(json.dumps(message)), expect=messages.RESULT)
    assert message["model"]["task"] == "detection" and message["detections"][0]["box"] == [x0, y0, x1, y1]

    # Mirrored, the box mirrors.
    mx0, my0, mx1, my1 = face_box(face_engine, cv2.flip(frame, 1))
    assert mx0 == pytest.approx(1 - x1, abs=0.04) and mx1 == pytest.approx(1 - x0, abs=0.04)
    assert my0 == pytest.approx(y0, abs=0.04) and my1 == pytest.approx(y1, abs=0.04)

    # On a wide canvas (letterboxed for the square input) the box maps back to the frame's coordinates.
    h, w = frame.shape[:2]
    canvas = np.full((h, 3 * w, 3), 255, dtype=np.uint8)
    canvas[:, w : 2 * w] = frame
    cx0, cy0, cx1, cy1 = face_box(face_engine, canvas)
    assert cx0 == pytest.approx((1 + x0) / 3, abs=0.03) and cx1 == pytest.approx((1 + x1) / 3, abs=0.03)
    assert cy0 == pytest.approx(y0, abs=0.05) and cy1 == pytest.approx(y1, abs=0.05)


# --- bad bundles -----------------------------------------------------------------------------------------


def test_committed_bundles_load_and_describe_themselves() -> None:
    hotdog = load_bundle(HOTDOG_BUNDLE)
    assert hotdog.task == "classification" and len(hotdog.labels) == 1000
    assert hotdog.labels[934].startswith("hotdog") and hotdog.label_of_interest["class_index"] == 934
    face = load_bundle(FACE_BUNDLE)
    assert face.task == "detection" and face.labels == ["face"]


def test_corrupt_model_file_is_refused_with_the_sha256_error(bundle_copy: Path) -> None:
    model = bundle_copy / "model.tflite"
    data = bytearray(model.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.tflite: sha256 mismatch") as err:
        load_bundle(bundle_copy)
    assert str(model) in str(err.value) and json.loads((bundle_copy / "model.json").read_text())["sha256"] in str(
        err.value
    )


def test_model_the_runtime_cannot_load_is_refused(bundle_copy: Path) -> None:
    import hashlib

    garbage = b"this is not a flatbuffer" * 100
    (bundle_copy / "model.tflite").write_bytes(garbage)
    edit_manifest(bundle_copy, lambda m: m.update(sha256=hashlib.sha256(garbage).hexdigest()))
    with pytest.raises(BundleError, match=r"model\.tflite: the .* runtime cannot load it .*expected a TensorFlow Lite"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: m.pop("task"), "missing required field 'task'"),
        (lambda m: m["input"].pop("shape"), "missing required field 'input.shape'"),
        (lambda m: m["label_of_interest"].pop("class_index"), "missing required field 'label_of_interest.class_index'"),
        (lambda m: m["label_of_interest"].update(threshold=1.5), "field 'label_of_interest.threshold' has value 1.5"),
        (lambda m: m.update(task="segmentation"), "field 'task' has value \"segmentation\""),
        (lambda m: m["label_of_interest"].update(class_index=1000), "class_index 1000 is out of range; expected 0..999"),
        (lambda m: m["input"]["resize"].update(crop=[200, 200]), "input.resize.crop is \\[200, 200\\]"),
    ],
)
def test_bad_model_json_names_the_field(bundle_copy: Path, edit, words: str) -> None:
    edit_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=words) as err:
        load_bundle(bundle_copy)
    assert "model.json" in str(err.value)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("model.json", r"model\.json: not found; a model bundle folder needs model\.json"),
        ("model.tflite", r"model\.tflite: model file not found"),
        ("labels.txt", r"labels\.txt: labels file not found"),
    ],
)
def test_missing_bundle_file_is_named(bundle_copy: Path, name: str, words: str) -> None:
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match=words):
        load_bundle(bundle_copy)


def test_labels_that_do_not_fit_the_model_are_refused(bundle_copy: Path) -> None:
    (bundle_copy / "labels.txt").write_text("hotdog\nnot hotdog\n")
    with pytest.raises(BundleError, match=r"labels\.txt: has 2 labels; the model's output has 1000 classes"):
        load_bundle(bundle_copy)


def test_model_json_that_is_not_json_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "model.json").write_text("{name: efficientnet")
    with pytest.raises(BundleError, match=r"model\.json: not valid JSON"):
        load_bundle(bundle_copy)


def test_prepare_then_run_is_infer_and_a_frame_prepared_for_another_model_is_refused(
        hotdog_engine: Engine, face_engine: Engine) -> None:
    frame = photo("hotdog", CLEAR_HOTDOGS[0])
    prepared = hotdog_engine.prepare(frame)
    assert prepared.tensor.shape == (1, 224, 224, 3) and prepared.preprocess_ms > 0
    two_steps, one_call = hotdog_engine.run(prepared), hotdog_engine.infer(frame)
    assert two_steps["verdict"] == one_call["verdict"] and two_steps["top_k"] == one_call["top_k"]
    with pytest.raises(ValueError, match="prepared for model efficientnet-lite0 1.0.0, not for face-detection"):
        face_engine.run(prepared)
