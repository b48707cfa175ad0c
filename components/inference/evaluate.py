"""Score a greenlens.Model version on a labelled photo folder: a JSON report and a PNG to look at.

    python components/inference/evaluate.py [PHOTOS] [--model-version V | --bundle DIR] [--out DIR]
                                            [--threads N] [--threshold T] [--limit N]

PHOTOS holds `hotdog/` (positives) and `not_hotdog/` (negatives); the default is the repo-relative
../shared/data/hotdog-photos. The model is a version of components/model/versions.yaml (default: 1.0.0) or a
bundle folder. Each photo goes through greenlens.Inference's engine once (decode, preprocess, the TFLite
model on `--threads` CPU threads); the verdict's score is p(label of interest).

Figures, for the model's own rule (model.json label_of_interest.rule and threshold) and for the other rule:
accuracy, precision, recall, specificity, the confusion matrix; ROC AUC from the scores; the interpreter's
latency p50/p99 (ms) on this CPU. Prints a summary, and writes OUT/evaluation-<name>-<version>.json (every
figure, and each photo's score) and .png (ROC and precision-recall curves with the operating point, the
confusion matrix, and a contact sheet of the misclassified photos with their scores). The PNG shows the
photos: keep it local (OUT defaults to build/evaluation, which git ignores).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from greenlens_inference import BundleError, Engine, load_bundle
from greenlens_inference.verdict import check_threshold

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
MODEL_DIR = REPO / "components" / "model"
DEFAULT_VERSION = "1.0.0"
DEFAULT_OUT = REPO / "build" / "evaluation"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CLASSES = {"hotdog": True, "not_hotdog": False}
CONTACT_SHEET_MAX = 48


class EvaluationError(ValueError):
    """Bad input to the evaluation; the message names the file, field or value and what is expected."""


# --- inputs ----------------------------------------------------------------------------------------------


def bundle_of_version(version: str, model_dir: Path = MODEL_DIR) -> Path:
    """The bundle folder that greenlens.Model `version` ships (components/model/versions.yaml)."""
    versions_file = model_dir / "versions.yaml"
    versions = (yaml.safe_load(versions_file.read_text()) or {}).get("versions") or {}
    entry = versions.get(version)
    if not isinstance(entry, dict) or "bundle" not in entry:
        known = ", ".join(sorted(str(v) for v in versions))
        raise EvaluationError(f"{versions_file}: no greenlens.Model version {version!r}; expected one of {known}")
    return model_dir / "bundles" / str(entry["bundle"])


def labelled_photos(photos: Path, limit: int | None = None) -> list[tuple[Path, bool]]:
    """(path, is hot dog) for every image in photos/hotdog and photos/not_hotdog, sorted by name."""
    found: list[tuple[Path, bool]] = []
    for folder, truth in CLASSES.items():
        sub = photos / folder
        if not sub.is_dir():
            raise EvaluationError(f"{sub}: not found; expected a folder of {folder} photos")
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EvaluationError(f"{sub}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        found += [(p, truth) for p in files[:limit]]
    return found


# --- figures ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    path: Path
    truth: bool
    score: float
    is_top: bool
    inference_ms: float


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def confusion(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, specificity and the confusion matrix of boolean arrays."""
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    tn = int(np.sum(~truth & ~predicted))
    fn = int(np.sum(truth & ~predicted))
    return {
        "n": int(truth.size),
        "accuracy": _ratio(tp + tn, truth.size),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        # rows: truth (not hot dog, hot dog); columns: verdict (not present, present)
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """The chance that a random positive outscores a random negative (ties count half)."""
    pos, neg = scores[truth], scores[~truth]
    if not pos.size or not neg.size:
        return None
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return round(float(wins / (pos.size * neg.size)), 4)


def roc_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="stable")
    t = truth[order]
    tpr = np.concatenate([[0.0], np.cumsum(t) / max(1, t.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(~t) / max(1, (~t).sum())])
    return fpr, tpr


def pr_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) as the threshold goes down through the scores."""
    order = np.argsort(-scores, kind="stable")
    t = truth[order]
    tp = np.cumsum(t)
    return tp / max(1, t.sum()), tp / np.arange(1, t.size + 1)


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)), 3) if values else 0.0


def score_photos(engine: Engine, photos: list[tuple[Path, bool]]) -> list[Scored]:
    from rich.console import Console
    from rich.progress import track

    scored = []
    for path, truth in track(photos, description="evaluating", transient=True, console=Console(stderr=True)):
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise EvaluationError(f"{path}: cannot be decoded as an image")
        result = engine.infer(frame)
        verdict = result["verdict"]
        is_top = bool(result["top_k"]) and result["top_k"][0]["index"] == engine.label_of_interest[1]
        scored.append(Scored(path, truth, float(verdict["score"]), is_top, result["timings_ms"]["inference"]))
    return scored


def report(bundle_info: dict[str, Any], rule: str, threshold: float, scored: list[Scored], photos: Path,
           threads: int) -> dict[str, Any]:
    truth = np.array([s.truth for s in scored])
    scores = np.array([s.score for s in scored])
    by_rule = {"top1": np.array([s.is_top for s in scored]), "threshold": scores > threshold}
    predicted = by_rule[rule]
    by_source: dict[str, Any] = {}
    sources = np.array([s.path.name.split("_", 1)[0] for s in scored])
    for source in sorted(set(sources)):
        mask = sources == source
        by_source[source] = confusion(truth[mask], predicted[mask])
    latencies = [s.inference_ms for s in scored]
    return {
        "schema": "greenlens.evaluation/1",
        "model": bundle_info,
        "photos": {"folder": photos.name, "hotdog": int(truth.sum()), "not_hotdog": int((~truth).sum())},
        "rule": rule,
        "threshold": threshold,
        "metrics": {**confusion(truth, predicted), "roc_auc": roc_auc(truth, scores)},
        "rules": {name: confusion(truth, p) for name, p in by_rule.items()},
        "by_source": by_source,
        "latency_ms": {"threads": threads, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                       "what": "interpreter set_tensor + invoke + get_tensor, per photo"},
        "photos_scored": [
            {"photo": f"{s.path.parent.name}/{s.path.name}", "hotdog": s.truth, "score": round(s.score, 5),
             "present": bool(p)}
            for s, p in zip(scored, predicted, strict=True)
        ],
    }


# --- the picture -----------------------------------------------------------------------------------------


def _thumbnail(path: Path, size: int = 160) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def write_png(document: dict[str, Any], scored: list[Scored], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.array([s.truth for s in scored])
    scores = np.array([s.score for s in scored])
    m = document["metrics"]
    label = document["model"].get("label", "hotdog")
    wrong = [(s, p) for s, p in zip(scored, (x["present"] for x in document["photos_scored"]), strict=True)
             if p != s.truth]
    # the most confident mistakes first (missed hot dogs with the lowest score, false alarms with the highest),
    # half of the sheet for each kind when both are there
    misses = sorted((sp for sp in wrong if sp[0].truth), key=lambda sp: sp[0].score)
    alarms = sorted((sp for sp in wrong if not sp[0].truth), key=lambda sp: -sp[0].score)
    half = CONTACT_SHEET_MAX // 2
    n_misses = min(len(misses), max(half, CONTACT_SHEET_MAX - len(alarms)))
    shown = misses[:n_misses] + alarms[: CONTACT_SHEET_MAX - n_misses]
    columns = 8
    sheet_rows = max(1, -(-len(shown) // columns))
    fig = plt.figure(figsize=(16, 6.4 + 2.3 * sheet_rows), dpi=80)
    top, bottom = fig.subfigures(2, 1, height_ratios=[6.4, 2.3 * sheet_rows])
    model = document["model"]
    latency = document["latency_ms"]
    rule = document["rule"] + (f" > {document['threshold']:g}" if document["rule"] == "threshold" else "")
    top.suptitle(
        f"greenlens.Model {model['version']} ({model['name']}) on {document['photos']['folder']}: "
        f"{m['n']} photos, rule {rule}\n"
        f"accuracy {m['accuracy']} · recall {m['recall']} · precision {m['precision']} · "
        f"specificity {m['specificity']} · latency p50 {latency['p50']} ms, p99 {latency['p99']} ms "
        f"({latency['threads']} thread{'s' if latency['threads'] != 1 else ''})",
        fontsize=14, fontweight="bold")
    roc, pr, cm = top.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 0.9], "wspace": 0.45})
    top.subplots_adjust(top=0.84, bottom=0.1)
    fpr, tpr = roc_curve(truth, scores)
    roc.plot(fpr, tpr, lw=2, color="tab:blue", label=f"ROC (AUC {m['roc_auc']})")
    roc.plot([0, 1], [0, 1], ls=":", color="grey")
    if m["specificity"] is not None and m["recall"] is not None:
        roc.plot(1 - m["specificity"], m["recall"], "o", ms=10, color="tab:red", label="operating point")
    roc.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (recall)",
            title="ROC curve", xlim=(0, 1), ylim=(0, 1.02))
    roc.legend(loc="lower right")
    roc.grid(alpha=0.3)

    recall, precision = pr_curve(truth, scores)
    pr.plot(recall, precision, lw=2, color="tab:green", label="precision-recall")
    if m["precision"] is not None and m["recall"] is not None:
        pr.plot(m["recall"], m["precision"], "o", ms=10, color="tab:red", label="operating point")
    pr.axhline(truth.mean(), ls=":", color="grey", label="chance")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", xlim=(0, 1), ylim=(0, 1.02))
    pr.legend(loc="lower left")
    pr.grid(alpha=0.3)

    matrix = np.array(m["confusion_matrix"])
    cm.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, matrix.max()) * 1.3)
    for (i, j), value in np.ndenumerate(matrix):
        cm.text(j, i, str(value), ha="center", va="center", fontsize=20, fontweight="bold")
    cm.set_xticks([0, 1], [f"not {label}", label])
    cm.set_yticks([0, 1], [f"not {label}", label])
    cm.set(xlabel="verdict", ylabel="truth", title="Confusion matrix")
    bottom.suptitle(f"Misclassified photos: {len(misses)} missed hot dogs, {len(alarms)} false alarms "
                    "(the most confident mistakes of each first)", fontsize=13,
                    fontweight="bold")
    axes = bottom.subplots(sheet_rows, columns, squeeze=False)
    bottom.subplots_adjust(top=1 - 0.8 / (2.3 * sheet_rows), bottom=0.02, hspace=0.45)
    for ax in axes.flat:
        ax.axis("off")
    if not shown:
        axes[0, 0].text(0, 0.5, "none", fontsize=14)
    for k, (s, _) in enumerate(shown):
        ax = axes[k // columns, k % columns]
        ax.axis("on")
        ax.imshow(_thumbnail(s.path))
        ax.set_xticks([])
        ax.set_yticks([])
        kind, colour = ("missed hot dog", "tab:red") if s.truth else ("false alarm", "tab:orange")
        for spine in ax.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(3)
        ax.set_title(f"{kind}\np={s.score:.3f}  {s.path.name[:22]}", fontsize=9, color=colour)
    if len(wrong) > len(shown):
        bottom.text(0.5, 0.0, f"... and {len(wrong) - len(shown)} more misclassified photos (see the JSON report)",
                 ha="center", fontsize=11)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, bbox_inches="tight")
    plt.close(fig)


# --- command ---------------------------------------------------------------------------------------------


def evaluate(bundle_dir: Path, photos: Path, out: Path, threads: int = 1, threshold: float | None = None,
             limit: int | None = None) -> tuple[dict[str, Any], Path, Path]:
    """Score the bundle on the photos; write the JSON report and the PNG into out; return (report, json, png)."""
    bundle = load_bundle(bundle_dir)
    loi = bundle.label_of_interest
    value = check_threshold(loi["threshold"] if threshold is None else threshold)
    engine = Engine(bundle, threads=threads, threshold=value, rule="threshold")
    scored = score_photos(engine, labelled_photos(photos, limit))
    info = {**bundle.model_info(), "label": loi["label"]}
    document = report(info, str(loi["rule"]), value, scored, photos, threads)
    stem = f"evaluation-{bundle.name}-{bundle.version}"
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    write_png(document, scored, png_path)
    return document, json_path, png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="?", type=Path, default=DEFAULT_PHOTOS, help="folder of labelled photos")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model-version", help=f"a greenlens.Model version of versions.yaml (default {DEFAULT_VERSION})")
    which.add_argument("--bundle", type=Path, help="a model bundle folder instead of a version")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON report and the PNG")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--threshold", type=float, help="threshold rule's threshold (default: model.json's)")
    parser.add_argument("--limit", type=int, help="use only the first N photos of each class")
    args = parser.parse_args(argv)
    try:
        bundle_dir = args.bundle or bundle_of_version(args.model_version or DEFAULT_VERSION)
        document, json_path, png_path = evaluate(bundle_dir, args.photos, args.out, args.threads, args.threshold,
                                                 args.limit)
    except (BundleError, EvaluationError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    m, latency = document["metrics"], document["latency_ms"]
    model = document["model"]
    rule = document["rule"] + (f" > {document['threshold']:g}" if document["rule"] == "threshold" else "")
    print(f"greenlens.Model {model['version']} ({model['name']}), rule {rule}, {m['n']} photos of "
          f"{document['photos']['folder']}:")
    print(f"  accuracy {m['accuracy']}  precision {m['precision']}  recall {m['recall']}  "
          f"specificity {m['specificity']}  ROC AUC {m['roc_auc']}")
    print(f"  confusion: tp={m['tp']} fp={m['fp']} tn={m['tn']} fn={m['fn']}   latency p50 {latency['p50']} ms, "
          f"p99 {latency['p99']} ms ({latency['threads']} thread(s))")
    print(f"  report {json_path}\n  picture {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
