"""Hot dog accuracy through the whole graph: every photo of ../shared/data/hotdog-photos shown to
greenlens.Capture as a slideshow, verdicts read from greenlens/results on ggsim.

    python scripts/graph_accuracy.py [PHOTOS] [--model-version V] [--deploy build/deploy] [--source-fps 2]

Run `make build` first. --model-version deploys that greenlens.Model version (one that greenlens.App's
dependency range accepts: 1.x or 3.x) beside greenlens.App; without it the deployment resolves App's range (the
newest hot dog model). The JSON line names the model the results came from. Each folder (hotdog/, then not_hotdog/) is Capture's source for one loop of its
slideshow (photos / source-fps seconds); Capture publishes a frame when the slideshow shows a new photo, so
there is about one result per photo. Prints one line per folder, then a JSON line with recall (hot dogs
called hot dog), specificity (other food called not hot dog), precision and accuracy over the results.
Compare with components/inference/evaluate.py, the engine alone on the raw photos: here every photo is
first letterboxed to Capture's frame size, as a camera frame would be.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devsupport.roots import python_component_user

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def measure_folder(ggsim: list[str], deploy: Path, folder: Path, source_fps: float,
                   model_version: str | None) -> dict[str, Any]:
    photos = sum(1 for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    sub = subprocess.Popen([*ggsim, "--json", "pubsub", "sub", "greenlens/results"], stdout=subprocess.PIPE,
                           text=True, env=_env())
    assert sub.stdout is not None
    # Probe until the subscription is live (a probe comes back).
    selector = selectors.DefaultSelector()
    selector.register(sub.stdout, selectors.EVENT_READ)
    while True:
        subprocess.run([*ggsim, "pubsub", "pub", "greenlens/results", '{"probe": 1}'], check=True, env=_env(),
                       capture_output=True)
        if selector.select(timeout=0.5):
            sub.stdout.readline()
            break
    config = {"greenlens.Capture": {"MERGE": {"source": str(folder), "sourceFps": source_fps,
                                              "fps": 4 * source_fps, "cameraId": folder.name}}}
    deployed = subprocess.run([*ggsim, "deployment", "create", "-r", str(deploy / "recipes"), "-a", str(deploy / "artifacts"),
                    "-m", "greenlens.App=1.0.0", "-m", "greenlens.Capture=1.0.0",
                    *(["-m", f"greenlens.Model={model_version}"] if model_version else []), "-c", json.dumps(config),
                    "--wait", "--timeout", "600"], env=_env(), capture_output=True, text=True)
    if deployed.returncode != 0:
        sub.terminate()
        raise SystemExit(f"graph_accuracy: the deployment for {folder} failed:\n{deployed.stdout}{deployed.stderr}")
    first: float | None = None
    results = []
    for line in sub.stdout:
        message = json.loads(line)["json"]
        if message.get("source") != folder.name:  # probes, and frames of the previous source
            continue
        first = message["captured_at"] if first is None else first
        if message["captured_at"] - first >= photos / source_fps:  # one loop of the slideshow
            break
        results.append(message)
    sub.terminate()
    sub.wait(10)
    present = sum(1 for m in results if m["verdict"]["present"])
    models = sorted({f"{m['model']['name']} {m['model']['version']}" for m in results})
    return {"folder": folder.name, "photos": photos, "results": len(results), "present": present, "models": models}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="?", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--deploy", type=Path, default=REPO / "build" / "deploy", help="the build output")
    ap.add_argument("--source-fps", type=float, default=2.0, help="photos per second")
    ap.add_argument("--model-version", help="greenlens.Model version to deploy (default: App's range resolves it)")
    args = ap.parse_args(argv)
    args.photos, args.deploy = args.photos.resolve(), args.deploy.resolve()  # components run in other folders
    for needed in (args.photos / "hotdog", args.photos / "not_hotdog", args.deploy / "recipes"):
        if not needed.is_dir():
            print(f"graph_accuracy: {needed}: not found (photos need hotdog/ and not_hotdog/; run `make build`)",
                  file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="greenlens-accuracy-") as tmp:
        Path(tmp).chmod(0o755)  # the component user must reach the root (docs/ggsim.md, "Users, folders")
        root = Path(tmp) / "root"
        ggsim = [sys.executable, "-m", "ggsim.cli", "--root", str(root)]
        core = subprocess.Popen([*ggsim, "up", "--component-default-user", python_component_user()],
                                stderr=subprocess.DEVNULL, env=_env())
        try:
            while not (root / "cli_ipc_info" / "ggsim.json").exists():
                if core.poll() is not None:
                    print("graph_accuracy: ggsim up exited", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            counts = {}
            for label in ("hotdog", "not_hotdog"):
                counts[label] = measure_folder(ggsim, args.deploy, args.photos / label, args.source_fps,
                                               args.model_version)
                print(counts[label], flush=True)
        finally:
            core.send_signal(signal.SIGTERM)
            core.wait(60)
    hot, other = counts["hotdog"], counts["not_hotdog"]
    tp, fp = hot["present"], other["present"]
    fn, tn = hot["results"] - tp, other["results"] - fp
    print(json.dumps({"recall": round(tp / (tp + fn), 3), "specificity": round(tn / (tn + fp), 3),
                      "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                      "accuracy": round((tp + tn) / (tp + tn + fp + fn), 3), "source_fps": args.source_fps,
                      "models": sorted(set(hot["models"]) | set(other["models"])),
                      "hotdog": hot, "not_hotdog": other}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
