"""greenlens.Capture's entry point.

Under a nucleus: reads its configuration over IPC, follows configuration updates without a restart,
publishes ``greenlens.frame/1`` descriptors on ``greenlens/frames`` and events on ``greenlens/events``,
subscribes to ``greenlens/results`` for flow control (``maxFramesInFlight`` > 0), and reports RUNNING, or ERRORED with one clear log line when its source cannot be opened.

For development, without a nucleus::

    python -m greenlens_capture --no-ipc --source synthetic --max-frames 10

prints each message it would publish as one JSON line on stdout (logs go to stderr).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from greenlens_common import topics
from greenlens_common.ipc import IpcError, Subscription
from greenlens_common.ring import RingError
from greenlens_common.runner import ThreadRunner, add_runner_arguments, argument_parser

from .component import COMPONENT, CaptureComponent
from .config import CaptureConfig, ConfigError
from .sources import SourceOpenError

log = logging.getLogger("greenlens.capture")

_ARG_KEYS = {"source": "source", "fps": "fps", "width": "width", "height": "height", "camera_id": "cameraId",
             "transport": "transport", "ring_name": "ringName", "ring_slots": "ringSlots",
             "source_fps": "sourceFps"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argument_parser("python -m greenlens_capture", __doc__)
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
    add_runner_arguments(ap)
    return ap.parse_args(argv)


class _Runner(ThreadRunner[CaptureConfig]):
    name = COMPONENT
    log = log
    config_type = CaptureConfig
    arg_keys = _ARG_KEYS
    results_subscription: Subscription | None = None

    def follow_results(self, component: CaptureComponent) -> None:
        """Flow control needs the results: subscribe to greenlens/results once it is on (under a nucleus).

        A refused subscription (no accessControl for it) leaves flow control off, with one warning.
        """
        if self.ipc is None or component.config.max_in_flight <= 0 or self.results_subscription is not None:
            return
        try:
            self.results_subscription = self.ipc.subscribe_json(topics.RESULTS,
                                                                lambda msg, _topic: component.on_result(msg))
        except IpcError as exc:
            log.warning("flow control off (frames are published at fps, newest first): %s", exc)
            return
        component.flow.enabled = True

    def run(self) -> int:
        return self.serve(lambda: self._run(self.publish_stdout if self.ipc is None else self.publish_ipc_nowait))

    def _run(self, publish: Callable[[str, dict[str, Any]], None]) -> int:
        try:
            config = self.load_config()
        except (ConfigError, IpcError) as exc:
            return self.failed(f"greenlens.Capture: bad configuration: {exc}")
        if self.ipc is not None:
            self.ipc.subscribe_to_configuration_update(self.request_reload)
        component = CaptureComponent(config, publish, ring_dir=self.args.ring_dir)
        try:
            try:
                component.start()
            except (SourceOpenError, RingError) as exc:
                code = self.failed(f"greenlens.Capture cannot start: {exc}")
                if self.ipc is None:
                    return code
                if not self._wait_for_new_config(component):
                    return code
            self.follow_results(component)
            self.report("RUNNING")
            cfg = component.config
            log.info("capturing %s (%s) at %g fps, %dx%d, transport %s, flow control %s", cfg.camera_id,
                     component.source.description if component.source else "?", cfg.fps, cfg.width, cfg.height,
                     cfg.transport, f"{cfg.max_in_flight} frames in flight, {cfg.in_flight_timeout:g} s timeout"
                     if component.flow.enabled and cfg.max_in_flight > 0 else "off")
            while not self.stop.is_set():
                component.run(self.wake, max_frames=self.args.max_frames)
                if self.args.max_frames is not None and component.counters.published >= self.args.max_frames:
                    break
                if self.reload.is_set() and not self.stop.is_set():
                    self.reload.clear()
                    self.wake.clear()
                    new = self.reload_config()
                    if new is None:
                        continue
                    try:
                        component.apply(new)
                        self.follow_results(component)
                    except (SourceOpenError, RingError) as exc:
                        self.failed(f"greenlens.Capture cannot apply the new configuration: {exc}")
                        if not self._wait_for_new_config(component):
                            return 2
                        self.follow_results(component)
                        self.report("RUNNING")
            c = component.snapshot()
            log.info("stopped: published %d frames, dropped %d, outages %d, reconnects %d, flow-control "
                     "timeouts %d", c.published, c.dropped, c.outages, c.reconnects, c.in_flight_timeouts)
            return 0
        finally:
            component.close()

    def _wait_for_new_config(self, component: CaptureComponent) -> bool:
        """After ERRORED: wait (without a crash loop) for a configuration that works, or for the stop."""
        while True:
            if not self.wake.wait(1.0):
                continue
            if self.stop.is_set():
                return False
            self.reload.clear()
            self.wake.clear()
            try:
                component.apply(self.load_config())
                return True
            except (ConfigError, IpcError, SourceOpenError, RingError) as exc:
                self.failed(f"greenlens.Capture still cannot start: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    return _Runner.main(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
