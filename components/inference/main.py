"""greenlens.Inference entry point (sketch): the engine on image files, one greenlens.result/1 JSON line each.

    python components/inference/main.py --bundle components/model/bundles/efficientnet-lite0 photo.jpg ...

The component's IPC wiring (frame descriptors in from greenlens.Capture, the shared-memory ring, results
out on local pub/sub, threads/threshold from its configuration) is a later step; it will feed frames to the
same `Engine` and publish the same `build_result_message` output.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from greenlens_inference import BundleError, Engine, build_result_message  # noqa: E402
from greenlens_inference.verdict import RULES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path, help="image files to run the model on")
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder (holds model.json)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--threshold", type=float, help="verdict threshold (default: model.json's)")
    parser.add_argument("--rule", choices=RULES, help="verdict rule (default: model.json's)")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        engine = Engine(args.bundle, args.threads, threshold=args.threshold, rule=args.rule, top_k=args.top_k)
    except (BundleError, ValueError) as exc:
        print(f"main: {exc}", file=sys.stderr)
        return 2
    status = 0
    for seq, path in enumerate(args.images):
        captured_at = time.time()
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            print(f"main: {path}: cannot be read as an image", file=sys.stderr)
            status = 1
            continue
        message = build_result_message(
            engine.infer(frame), engine.bundle.model_info(), seq=seq, captured_at=captured_at, source=f"file:{path}"
        )
        print(json.dumps(message), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
