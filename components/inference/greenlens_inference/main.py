"""greenlens.Inference's entry point.

Under a nucleus: loads the model bundle (``--model-dir`` or the ``modelDir`` configuration key), reads
``greenlens.frame/1`` descriptors from ``greenlens/frames``, always infers the newest frame (pixels from the
shared-memory ring, or the inline JPEG), publishes ``greenlens.result/1`` on ``greenlens/results``, follows
configuration updates without a restart, and reports RUNNING once its model loaded and passed its golden
check. A model that is missing, corrupt, does not load or fails its golden check at start: one clear log
line, ERRORED and exit (so the deployment fails); later, a refused model or setting keeps the previous one
running. Proposed configurations are checked before a deployment applies them
(SubscribeToValidateConfigurationUpdates).

For development, without a nucleus::

    python -m greenlens_capture --no-ipc --source ../shared/data/hotdog-photos --fps 2 \\
      | python -m greenlens_inference --no-ipc --model-dir components/model/bundles/efficientnet-lite0
    python -m greenlens_inference --no-ipc --model-dir components/model/bundles/efficientnet-lite0 photos/

reads frame descriptors as JSON lines on stdin (the capture's ``--no-ipc`` output), or runs every image of
the files and folders given, and prints each message it would publish as one JSON line on stdout
(``{"topic": ..., "message": ...}``; logs go to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greenlens_common.ipc import Subscription
from greenlens_common.runner import ThreadRunner, add_runner_arguments, argument_parser

from .bundle import BundleError
from .component import COMPONENT, InferenceComponent
from .config import ConfigError, InferenceConfig

log = logging.getLogger("greenlens.inference")

MODEL_DIR_ENV = "GREENLENS_MODEL_DIR"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_ARG_KEYS = {"model_dir": "modelDir", "threads": "threads", "threshold": "threshold", "rule": "rule",
             "label_of_interest": "labelOfInterest", "top_k": "topK"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argument_parser("python -m greenlens_inference", __doc__)
    ap.add_argument("inputs", nargs="*", help="--no-ipc only: image files or folders to run the model on "
                                              "(default: frame descriptors as JSON lines on stdin)")
    ap.add_argument("--model-dir", help=f"model bundle folder (default ${MODEL_DIR_ENV}); the modelDir "
                                        "configuration key wins under a nucleus")
    ap.add_argument("--threads", help="CPU threads of the interpreter")
    ap.add_argument("--threshold", help="verdict threshold, 0..1 (default: model.json's)")
    ap.add_argument("--rule", help="verdict rule: top1 or threshold (default: model.json's)")
    ap.add_argument("--label-of-interest", help="class the verdict is about (default: model.json's)")
    ap.add_argument("--top-k", help="classes listed in each result")
    ap.add_argument("--ring-dir", help="directory of the ring file (default $GREENLENS_RING_DIR or /dev/shm)")
    add_runner_arguments(ap)
    return ap.parse_args(argv)


class _Runner(ThreadRunner[InferenceConfig]):
    name = COMPONENT
    log = log
    config_type = InferenceConfig
    arg_keys = _ARG_KEYS

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.fatal: Exception | None = None  # set with wake: the component cannot publish
        self.component: InferenceComponent | None = None  # set once it runs under the nucleus

    def on_fatal(self, exc: Exception) -> None:
        self.fatal = exc
        self.wake.set()

    def overrides(self) -> dict[str, Any]:
        values = super().overrides()
        if "modelDir" not in values and os.environ.get(MODEL_DIR_ENV):
            values["modelDir"] = os.environ[MODEL_DIR_ENV]
        return values

    def configure(self, component: InferenceComponent) -> str | None:
        """Load the configuration and apply it; None when it worked, else the one line that says why not.

        A refusal while a model runs keeps that model and its settings (an event says so); the component
        stays RUNNING, since a restart could only end BROKEN."""
        try:
            component.configure(self.load_config())
            return None
        except BundleError as exc:
            kind, line = "model_refused", f"greenlens.Inference: model refused: {exc}"
        except ConfigError as exc:
            kind, line = "configuration_refused", f"greenlens.Inference: bad configuration: {exc}"
        engine = component.engine
        if engine is not None:
            line += f" (still running model {engine.bundle.name} {engine.bundle.version} as configured before)"
        component.report_error(kind, line)
        return line

    def check_proposed(self, config: InferenceConfig) -> None:
        """A proposed configuration's model is loaded and golden-checked as it would run (loading a model and
        its golden check take a while: Runner.on_validate answers on a thread of its own)."""
        assert self.component is not None
        self.component.validate(config)

    def refusal(self, exc: Exception) -> str | None:
        if isinstance(exc, BundleError):
            return f"greenlens.Inference: model refused: {exc}"
        return super().refusal(exc)

    # -- running

    def run(self) -> int:
        args = self.args
        if args.no_ipc:
            return self._run_local()
        if args.inputs:
            log.error("greenlens.Inference: image arguments are for --no-ipc only (under a nucleus frames come "
                      "from the frames topic)")
            return 2
        return self.serve(self._run_ipc)

    def _run_ipc(self) -> int:
        assert self.ipc is not None
        ipc = self.ipc
        ipc.subscribe_to_configuration_update(self.request_reload)
        component = InferenceComponent(self.publish_ipc_nowait, ring_dir=self.args.ring_dir, on_fatal=self.on_fatal)
        self.component = component
        ipc.subscribe_to_validate_configuration_updates(self.on_validate)
        subscription: Subscription | None = None
        subscribed_topic: str | None = None
        healthy = False
        try:
            failure = self.configure(component)
            if failure is not None:  # no model yet: Startup fails (the deployment fails, ROLLBACK restores)
                return self.failed(failure)
            while True:
                if failure is not None:
                    log.error("%s", failure)  # the previous model keeps serving; still RUNNING
                elif component.engine is not None:
                    topic = component.config.frames_topic
                    if topic != subscribed_topic:
                        if subscription is not None:
                            subscription.close()
                        subscription = ipc.subscribe_json(topic, component.offer)
                        subscribed_topic = topic
                        component.start()
                        log.info("inferring the newest frame of %s; results on %s", topic,
                                 component.config.results_topic)
                    if not healthy:
                        self.report("RUNNING")
                        healthy = True
                while True:
                    self.wake.wait()
                    self.wake.clear()  # before the checks: whatever is set from now on wakes the next wait
                    if self.stop.is_set():
                        component.log_stats()
                        return 0
                    if self.fatal is not None:
                        log.error("greenlens.Inference stops: results cannot be published: %s", self.fatal)
                        return 3
                    if self.reload.is_set():
                        break
                self.reload.clear()
                failure = self.configure(component)
        finally:
            if subscription is not None:
                subscription.close()
            component.close()

    def _run_local(self) -> int:
        component = InferenceComponent(self.publish_stdout, ring_dir=self.args.ring_dir, on_fatal=self.on_fatal)
        try:
            failure = self.configure(component)
            if failure is not None:
                return self.failed(failure)  # no nucleus to report ERRORED to
            if self.args.inputs:
                return self._run_files(component, [Path(p) for p in self.args.inputs])
            return self._run_stdin(component)
        finally:
            component.close()

    def _run_files(self, component: InferenceComponent, inputs: list[Path]) -> int:
        import cv2

        files: list[Path] = []
        status = 0
        for path in inputs:
            if path.is_dir():
                files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            elif path.is_file():
                files.append(path)
            else:
                log.error("%s: no such file or folder", path)
                status = 1
        engine = component.engine
        assert engine is not None
        for seq, path in enumerate(files, start=1):
            if self.stop.is_set():
                break
            captured_at = time.time()
            t0 = time.monotonic()
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.error("%s: cannot be read as an image", path)
                status = 1
                continue
            read_ms = (time.monotonic() - t0) * 1000
            message = component.infer(engine, image, seq=seq, captured_at=captured_at, source=f"file:{path}")
            message["timings_ms"]["read"] = round(read_ms, 3)
            component.send(message)
        return status

    def _run_stdin(self, component: InferenceComponent) -> int:
        frames_topic = component.config.frames_topic
        eof = threading.Event()

        def read_lines() -> None:
            for number, line in enumerate(sys.stdin, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    component.rate_limited.warning("json", f"stdin line {number} is not JSON ({exc}); expected "
                                                           "a frame descriptor or {\"topic\", \"message\"}")
                    continue
                if isinstance(data, dict) and "topic" in data and "message" in data:
                    if data["topic"] != frames_topic:
                        continue  # the capture's events
                    data = data["message"]
                component.offer(data)
            eof.set()
            self.wake.set()

        component.start()
        threading.Thread(target=read_lines, name="stdin-frames", daemon=True).start()
        while not (self.stop.is_set() or eof.is_set() or self.fatal is not None):
            self.wake.wait()
            self.wake.clear()
        if eof.is_set() and not self.stop.is_set():
            component.wait_idle(timeout=60)
        component.log_stats()
        return 3 if self.fatal is not None else 0


def main(argv: Sequence[str] | None = None) -> int:
    return _Runner.main(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

