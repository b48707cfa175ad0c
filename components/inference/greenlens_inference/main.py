"""greenlens.Inference's entry point.

Under a nucleus: loads the model bundle (``--model-dir`` or the ``modelDir`` configuration key), reads
``greenlens.frame/1`` descriptors from ``greenlens/frames``, always infers the newest frame (pixels from the
shared-memory ring, or the inline JPEG), publishes ``greenlens.result/1`` on ``greenlens/results``, follows
configuration updates without a restart, and reports RUNNING, or ERRORED with one clear log line when its
model is missing, corrupt or does not load (it then waits for a configuration that fixes it).

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
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greenlens_common.ipc import Ipc, IpcError, Subscription

from .bundle import BundleError
from .component import InferenceComponent
from .config import ConfigError, InferenceConfig

log = logging.getLogger("greenlens.inference")

MODEL_DIR_ENV = "GREENLENS_MODEL_DIR"
NOT_INFERENCE_KEYS = frozenset({"accessControl"})
"""Keys of the component configuration that belong to the nucleus, not to the inference."""
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_ARG_KEYS = {"model_dir": "modelDir", "threads": "threads", "threshold": "threshold", "rule": "rule",
             "label_of_interest": "labelOfInterest", "top_k": "topK"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m greenlens_inference", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", help="--no-ipc only: image files or folders to run the model on "
                                              "(default: frame descriptors as JSON lines on stdin)")
    ap.add_argument("--no-ipc", action="store_true", help="run without a nucleus (development)")
    ap.add_argument("--model-dir", help=f"model bundle folder (default ${MODEL_DIR_ENV}); the modelDir "
                                        "configuration key wins under a nucleus")
    ap.add_argument("--threads", help="CPU threads of the interpreter")
    ap.add_argument("--threshold", help="verdict threshold, 0..1 (default: model.json's)")
    ap.add_argument("--rule", help="verdict rule: top1 or threshold (default: model.json's)")
    ap.add_argument("--label-of-interest", help="class the verdict is about (default: model.json's)")
    ap.add_argument("--top-k", help="classes listed in each result")
    ap.add_argument("--ring-dir", help="directory of the ring file (default $GREENLENS_RING_DIR or /dev/shm)")
    ap.add_argument("--ipc-timeout", type=float, default=10.0, help="seconds to wait for any IPC answer")
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line values, under their configuration key names (only those given)."""
    values = {key: getattr(args, attr) for attr, key in _ARG_KEYS.items() if getattr(args, attr) is not None}
    if "modelDir" not in values and os.environ.get(MODEL_DIR_ENV):
        values["modelDir"] = os.environ[MODEL_DIR_ENV]
    return values


class _Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ipc: Ipc | None = None
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()  # set by stop, reload or a fatal error: wakes the main loop
        self.fatal: Exception | None = None
        self._print_lock = threading.Lock()

    # -- events from other threads

    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    def on_signal(self, signum: int, _frame: object) -> None:
        # Setting events inside a signal handler could deadlock on a lock the main thread holds: a thread does it.
        threading.Thread(target=self.request_stop, name=f"signal-{signum}", daemon=True).start()

    def request_reload(self, key_path: list[str]) -> None:
        log.info("configuration changed (%s)", "/".join(key_path) or "all")
        self.reload.set()
        self.wake.set()

    def on_fatal(self, exc: Exception) -> None:
        self.fatal = exc
        self.wake.set()

    # -- publishing

    def publish_stdout(self, topic: str, message: dict[str, Any]) -> None:
        line = json.dumps({"topic": topic, "message": message})
        with self._print_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def publish_ipc(self, topic: str, message: dict[str, Any]) -> None:
        assert self.ipc is not None
        self.ipc.publish_json(topic, message, timeout=self.args.ipc_timeout)

    # -- configuration and state

    def load_config(self) -> InferenceConfig:
        base = InferenceConfig().updated(_overrides(self.args))
        if self.ipc is None:
            return base
        # Command-line values are defaults under a nucleus; the component configuration wins.
        return base.updated({k: v for k, v in self.ipc.get_configuration().items() if k not in NOT_INFERENCE_KEYS})

    def report(self, state: str) -> None:
        if self.ipc is not None:
            try:
                self.ipc.update_state(state)
            except IpcError as exc:
                log.error("%s", exc)

    def configure(self, component: InferenceComponent) -> str | None:
        """Load the configuration and apply it; None when it worked, else the one line that says why not."""
        try:
            component.configure(self.load_config())
            return None
        except BundleError as exc:
            component.report_error("model_refused", str(exc))
            line = f"greenlens.Inference: model refused: {exc}"
        except ConfigError as exc:
            line = f"greenlens.Inference: bad configuration: {exc}"
        engine = component.engine
        if engine is not None:
            line += f" (still running model {engine.bundle.name} {engine.bundle.version} as configured before)"
        return line

    # -- running

    def run(self) -> int:
        args = self.args
        if args.no_ipc:
            return self._run_local()
        if args.inputs:
            log.error("greenlens.Inference: image arguments are for --no-ipc only (under a nucleus frames come "
                      "from the frames topic)")
            return 2
        try:
            self.ipc = Ipc.connect(timeout=args.ipc_timeout)
        except IpcError as exc:
            log.error("greenlens.Inference cannot start: %s", exc)
            return 3
        try:
            return self._run_ipc()
        except IpcError as exc:
            log.error("greenlens.Inference stops: %s", exc)
            return 3
        finally:
            self.ipc.close()

    def _run_ipc(self) -> int:
        assert self.ipc is not None
        ipc = self.ipc
        ipc.subscribe_to_configuration_update(self.request_reload)
        component = InferenceComponent(self.publish_ipc, ring_dir=self.args.ring_dir, on_fatal=self.on_fatal)
        subscription: Subscription | None = None
        subscribed_topic: str | None = None
        healthy = False
        try:
            failure = self.configure(component)
            while True:
                if failure is not None:
                    log.error("%s", failure)
                    self.report("ERRORED")
                    healthy = False
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
                log.error("%s", failure)
                return 2
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
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = _Runner(args)
    signal.signal(signal.SIGTERM, runner.on_signal)
    signal.signal(signal.SIGINT, runner.on_signal)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())

