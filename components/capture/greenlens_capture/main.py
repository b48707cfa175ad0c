"""greenlens.Capture's entry point.

Under a nucleus: reads its configuration over IPC, follows configuration updates without a restart,
publishes ``greenlens.frame/1`` descriptors on ``greenlens/frames`` and events on ``greenlens/events``,
and reports RUNNING, or ERRORED with one clear log line when its source cannot be opened.

For development, without a nucleus::

    python -m greenlens_capture --no-ipc --source synthetic --max-frames 10

prints each message it would publish as one JSON line on stdout (logs go to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from greenlens_common.ipc import Ipc, IpcError
from greenlens_common.ring import RingError

from .component import CaptureComponent
from .config import CaptureConfig, ConfigError
from .sources import SourceOpenError

log = logging.getLogger("greenlens.capture")

NOT_CAPTURE_KEYS = frozenset({"accessControl"})
"""Keys of the component configuration that belong to the nucleus, not to the capture."""

_ARG_KEYS = {"source": "source", "fps": "fps", "width": "width", "height": "height", "camera_id": "cameraId",
             "transport": "transport", "ring_name": "ringName", "ring_slots": "ringSlots",
             "source_fps": "sourceFps"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m greenlens_capture", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-ipc", action="store_true", help="run without a nucleus (development)")
    ap.add_argument("--source", help="camera index or /dev/video path, stream URL, video file, image folder, "
                                     "or 'synthetic'")
    ap.add_argument("--fps", help="frames per second to publish")
    ap.add_argument("--width")
    ap.add_argument("--height")
    ap.add_argument("--camera-id", help="the 'source' field of the frame descriptors")
    ap.add_argument("--transport", choices=["ring", "inline"])
    ap.add_argument("--ring-name")
    ap.add_argument("--ring-slots")
    ap.add_argument("--source-fps", help="pace of files, folders and the synthetic scene")
    ap.add_argument("--ring-dir", help="directory of the ring file (default $GREENLENS_RING_DIR or /dev/shm)")
    ap.add_argument("--max-frames", type=int, help="stop after publishing this many frames")
    ap.add_argument("--ipc-timeout", type=float, default=10.0, help="seconds to wait for any IPC answer")
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line values, under their configuration key names (only those given)."""
    return {key: getattr(args, attr) for attr, key in _ARG_KEYS.items() if getattr(args, attr) is not None}


class _Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ipc: Ipc | None = None
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.interrupt = threading.Event()  # set by stop or reload: wakes the capture loop

    def request_stop(self) -> None:
        self.stop.set()
        self.interrupt.set()

    def on_signal(self, signum: int, _frame: object) -> None:
        # A signal handler runs between two bytecodes of the main thread, possibly while it holds the lock
        # of the very Event it waits on: setting events here could deadlock. A short thread does it.
        threading.Thread(target=self.request_stop, name=f"signal-{signum}", daemon=True).start()

    def request_reload(self, key_path: list[str]) -> None:
        log.info("configuration changed (%s)", "/".join(key_path) or "all")
        self.reload.set()
        self.interrupt.set()

    def publish_stdout(self, topic: str, message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"topic": topic, "message": message}) + "\n")
        sys.stdout.flush()

    def publish_ipc(self, topic: str, message: dict[str, Any]) -> None:
        assert self.ipc is not None
        self.ipc.publish_json(topic, message, timeout=self.args.ipc_timeout)

    def load_config(self) -> CaptureConfig:
        base = CaptureConfig()
        if self.ipc is None:
            return base.updated(_overrides(self.args))
        # Command-line values are defaults under a nucleus; the component configuration wins.
        return base.updated(_overrides(self.args)).updated(
            {k: v for k, v in self.ipc.get_configuration().items() if k not in NOT_CAPTURE_KEYS}
        )

    def report(self, state: str) -> None:
        if self.ipc is not None:
            try:
                self.ipc.update_state(state)
            except IpcError as exc:
                log.error("%s", exc)

    def run(self) -> int:
        args = self.args
        publish: Callable[[str, dict[str, Any]], None]
        if args.no_ipc:
            publish = self.publish_stdout
        else:
            try:
                self.ipc = Ipc.connect(timeout=args.ipc_timeout)
            except IpcError as exc:
                log.error("greenlens.Capture cannot start: %s", exc)
                return 3
            self.ipc.timeout = args.ipc_timeout
            publish = self.publish_ipc
        try:
            return self._run(publish)
        except IpcError as exc:
            log.error("greenlens.Capture stops: %s", exc)
            return 3
        finally:
            if self.ipc is not None:
                self.ipc.close()

    def _run(self, publish: Callable[[str, dict[str, Any]], None]) -> int:
        try:
            config = self.load_config()
        except (ConfigError, IpcError) as exc:
            return self._failed(f"greenlens.Capture: bad configuration: {exc}")
        if self.ipc is not None:
            self.ipc.subscribe_to_configuration_update(self.request_reload)
        component = CaptureComponent(config, publish, ring_dir=self.args.ring_dir)
        try:
            try:
                component.start()
            except (SourceOpenError, RingError) as exc:
                code = self._failed(f"greenlens.Capture cannot start: {exc}")
                if self.ipc is None:
                    return code
                if not self._wait_for_new_config(component):
                    return code
            self.report("RUNNING")
            log.info("capturing %s (%s) at %g fps, %dx%d, transport %s", component.config.camera_id,
                     component.source.description if component.source else "?", component.config.fps,
                     component.config.width, component.config.height, component.config.transport)
            while not self.stop.is_set():
                component.run(self.interrupt, max_frames=self.args.max_frames)
                if self.args.max_frames is not None and component.counters.published >= self.args.max_frames:
                    break
                if self.reload.is_set() and not self.stop.is_set():
                    self.reload.clear()
                    self.interrupt.clear()
                    try:
                        component.apply(self.load_config())
                    except (ConfigError, IpcError) as exc:
                        log.error("configuration update refused, keeping the previous one: %s", exc)
                    except (SourceOpenError, RingError) as exc:
                        self._failed(f"greenlens.Capture cannot apply the new configuration: {exc}")
                        if not self._wait_for_new_config(component):
                            return 2
                        self.report("RUNNING")
            c = component.snapshot()
            log.info("stopped: published %d frames, dropped %d, outages %d, reconnects %d", c.published,
                     c.dropped, c.outages, c.reconnects)
            return 0
        finally:
            component.close()

    def _failed(self, line: str) -> int:
        log.error("%s", line)
        self.report("ERRORED")
        return 2

    def _wait_for_new_config(self, component: CaptureComponent) -> bool:
        """After ERRORED: wait (without a crash loop) for a configuration that works, or for the stop."""
        while True:
            if not self.interrupt.wait(1.0):
                continue
            if self.stop.is_set():
                return False
            self.reload.clear()
            self.interrupt.clear()
            try:
                component.apply(self.load_config())
                return True
            except (ConfigError, IpcError, SourceOpenError, RingError) as exc:
                self._failed(f"greenlens.Capture still cannot start: {exc}")


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
