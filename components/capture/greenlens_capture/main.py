"""greenlens.Capture's entry point.

Under a nucleus: reads its configuration over IPC, follows configuration updates without a restart,
publishes ``greenlens.frame/1`` descriptors on ``greenlens/frames`` and events on ``greenlens/events``,
each camera's state (``greenlens.camera/1``) on ``greenlens/cameras``, subscribes to ``greenlens/results`` for
flow control (``maxFramesInFlight`` > 0), and reports RUNNING. Each camera (``cameras``, or the single-camera
keys) has its own reader thread and ring; a camera that cannot be opened is retried and reported, never an
error of the component. Proposed configurations are checked before a deployment applies them
(SubscribeToValidateConfigurationUpdates): a bad one is refused naming the camera and the setting.

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
from greenlens_common.runner import ThreadRunner, add_runner_arguments, argument_parser

from .cameras import Cameras
from .component import COMPONENT
from .config import CaptureSettings, ConfigError
from .sources import SourceOpenError, make_grabber

log = logging.getLogger("greenlens.capture")

_ARG_KEYS = {"source": "source", "fps": "fps", "width": "width", "height": "height", "camera_id": "cameraId",
             "transport": "transport", "ring_name": "ringName", "ring_slots": "ringSlots",
             "source_fps": "sourceFps", "cameras": "cameras"}


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
    ap.add_argument("--cameras", help="several cameras, as JSON: [{\"id\": \"door\", \"source\": \"0\"}, "
                                      "{\"id\": \"yard\", \"source\": \"rtsp://...\", \"fps\": 5}]")
    ap.add_argument("--ring-dir", help="directory of the ring file (default $GREENLENS_RING_DIR or /dev/shm)")
    ap.add_argument("--max-frames", type=int, help="stop after publishing this many frames")
    add_runner_arguments(ap)
    return ap.parse_args(argv)


class _Runner(ThreadRunner[CaptureSettings]):
    name = COMPONENT
    log = log
    config_type = CaptureSettings
    arg_keys = _ARG_KEYS
    results_subscription: Subscription | None = None

    def follow_results(self, cameras: Cameras, settings: CaptureSettings) -> None:
        """Flow control needs the results: subscribe to greenlens/results once a camera has it on (under a
        nucleus). A refused subscription (no accessControl for it) leaves flow control off, with one warning.
        """
        if self.ipc is None or self.results_subscription is not None \
                or all(c.max_in_flight <= 0 for c in settings.cameras):
            return
        try:
            self.results_subscription = self.ipc.subscribe_json(topics.RESULTS,
                                                                lambda msg, _topic: cameras.on_result(msg))
        except IpcError as exc:
            log.warning("flow control off (frames are published at fps, newest first): %s", exc)
            return
        cameras.enable_flow_control()

    def run(self) -> int:
        if self.args.no_ipc:
            return self.serve(lambda: self._run(self.publish_stdout, self.publish_stdout))
        return self.serve(lambda: self._run(self.publish_ipc_nowait, self.publish_ipc))

    def _run(self, publish: Callable[[str, dict[str, Any]], None],
             publish_status: Callable[[str, dict[str, Any]], None]) -> int:
        if self.ipc is not None:
            self.ipc.subscribe_to_configuration_update(self.request_reload)
            self.ipc.subscribe_to_validate_configuration_updates(self.on_validate)
        try:
            settings = self.load_config()
        except (ConfigError, IpcError) as exc:
            code = self.failed(f"greenlens.Capture: bad configuration: {exc}")
            if self.ipc is None:
                return code
            found = self._wait_for_new_config()
            if found is None:
                return code
            settings = found
        if self.ipc is None and not self._sources_open(settings):
            return 2
        cameras = Cameras(publish, ring_dir=self.args.ring_dir, max_frames=self.args.max_frames,
                          on_finished=self.wake.set, publish_status=publish_status)
        try:
            cameras.apply(settings.cameras)
            self.follow_results(cameras, settings)
            self.report("RUNNING")
            while not self.stop.is_set():
                self.wake.wait()
                self.wake.clear()
                if self.args.max_frames is not None and cameras.all_finished():
                    break
                if self.reload.is_set() and not self.stop.is_set():
                    self.reload.clear()
                    new = self.reload_config()
                    if new is None:
                        continue
                    cameras.apply(new.cameras)
                    self.follow_results(cameras, new)
            for worker in cameras.snapshot():
                c = worker.component.snapshot()
                log.info("camera %s stopped: published %d frames, dropped %d, outages %d, reconnects %d, "
                         "flow-control timeouts %d", worker.camera_id, c.published, c.dropped, c.outages,
                         c.reconnects, c.in_flight_timeouts)
            return 0
        finally:
            cameras.close()

    def _sources_open(self, settings: CaptureSettings) -> bool:
        """Development (``--no-ipc``): a camera that cannot be opened is one clear line and exit 2 at once
        (under a nucleus it is retried and reported instead)."""
        for config in settings.cameras:
            try:
                make_grabber(config.source, width=config.width, height=config.height, fps=config.fps,
                             source_fps=config.source_fps, open_timeout=config.open_timeout,
                             read_timeout=config.read_timeout).open().close()
            except SourceOpenError as exc:
                self.failed(f"greenlens.Capture cannot start: {exc}")
                return False
        return True

    def _wait_for_new_config(self) -> CaptureSettings | None:
        """After ERRORED: wait (without a crash loop) for a configuration that is valid, or for the stop."""
        while True:
            self.wake.wait()
            if self.stop.is_set():
                return None
            self.reload.clear()
            self.wake.clear()
            try:
                return self.load_config()
            except (ConfigError, IpcError) as exc:
                self.failed(f"greenlens.Capture: still a bad configuration: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    return _Runner.main(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
