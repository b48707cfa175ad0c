"""greenlens.StreamPublisher's entry point.

Under a nucleus: reads its configuration over IPC and follows its updates without a restart; subscribes
to ``greenlens/frames``, ``greenlens/results`` and ``greenlens/events``; serves the page and the MJPEG
streams over HTTP; publishes results (sampled to ``resultsPerSecond``) and events to IoT Core on
``<topicPrefix>/<AWS_IOT_THING_NAME>/results`` and ``.../events``, spooling them to disk while IoT Core is
unreachable; reports RUNNING once the HTTP server listens.

For development, without a nucleus::

    python -m greenlens_capture --no-ipc --source ../shared/data/hotdog-photos --fps 5 \\
      | python -m greenlens_publisher --no-ipc

reads the JSON lines ``{"topic": ..., "message": ...}`` other components print in --no-ipc mode on
stdin, and prints what it would send to IoT Core as JSON lines ``{"iot_core": topic, "payload": ...}``
on stdout (logs go to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from greenlens_common import topics
from greenlens_common.ipc import IpcError
from greenlens_common.runner import (
    Runner,
    add_runner_arguments,
    argument_parser,
    print_json_line,
)

from .cloud import COMPONENT
from .component import PublisherComponent
from .config import ConfigError, PublisherConfig
from .web import make_app

log = logging.getLogger("greenlens.publisher")

CAMERAS_TOPIC: str = getattr(topics, "CAMERAS", "greenlens/cameras")
"""Each camera's status (``source``, ``state``, ``reason``), published by greenlens.Capture."""

THING_ENV = "AWS_IOT_THING_NAME"

_ARG_KEYS = {"host": "host", "port": "port", "topic_prefix": "topicPrefix",
             "results_per_second": "resultsPerSecond", "debounce_results": "debounceResults",
             "spool_dir": "spoolDir", "spool_max_bytes": "spoolMaxBytes",
             "spool_max_messages": "spoolMaxMessages", "mqtt_qos": "mqttQos",
             "snapshot_bucket": "snapshotBucket", "snapshot_key_prefix": "snapshotKeyPrefix",
             "snapshot_region": "snapshotRegion", "s3_endpoint_url": "s3EndpointUrl",
             "snapshot_dir": "snapshotDir", "snapshot_max_count": "snapshotMaxCount",
             "snapshot_max_bytes": "snapshotMaxBytes", "retry_max_seconds": "retryMaxSeconds",
             "frame_stale_seconds": "frameStaleSeconds"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argument_parser("python -m greenlens_publisher", __doc__,
                         no_ipc_help="run without a nucleus (development): messages on stdin, IoT Core messages "
                                     "on stdout")
    ap.add_argument("--host", help="HTTP address (default 127.0.0.1)")
    ap.add_argument("--port", help="HTTP port (default 8080; 0 picks a free one)")
    ap.add_argument("--thing-name", help=f"thing name in the IoT Core topics (default ${THING_ENV})")
    ap.add_argument("--topic-prefix")
    ap.add_argument("--results-per-second")
    ap.add_argument("--debounce-results")
    ap.add_argument("--mqtt-qos")
    ap.add_argument("--spool-dir", help="spool folder (relative to the work dir, the current directory)")
    ap.add_argument("--spool-max-bytes")
    ap.add_argument("--spool-max-messages")
    ap.add_argument("--snapshot-bucket", help="S3 bucket of the event snapshots (default: none)")
    ap.add_argument("--snapshot-key-prefix", help="key prefix, with {thingName} and {camera} placeholders")
    ap.add_argument("--snapshot-region")
    ap.add_argument("--s3-endpoint-url", help="an S3 endpoint override (e.g. the local control plane's)")
    ap.add_argument("--snapshot-dir", help="the snapshot store's folder (relative to the work dir)")
    ap.add_argument("--snapshot-max-count")
    ap.add_argument("--snapshot-max-bytes")
    ap.add_argument("--retry-max-seconds")
    ap.add_argument("--frame-stale-seconds", help="/health calls a camera stale after this long without a frame")
    ap.add_argument("--ring-dir", help="directory of the frame ring (default $GREENLENS_RING_DIR or /dev/shm)")
    add_runner_arguments(ap)
    return ap.parse_args(argv)


class _Runner(Runner[PublisherConfig]):
    name = COMPONENT
    log = log
    config_type = PublisherConfig
    arg_keys = _ARG_KEYS

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.component: PublisherComponent | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop = asyncio.Event()
        self.reload = asyncio.Event()

    def on_reload(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.reload.set)

    # -- IoT Core

    def send_stdout(self, topic: str, payload: bytes) -> None:
        print_json_line({"iot_core": topic, "payload": json.loads(payload)})

    def send_ipc(self, topic: str, payload: bytes) -> None:
        assert self.ipc is not None and self.component is not None
        self.ipc.publish_to_iot_core(topic, payload, qos=self.component.config.mqtt_qos,
                                     timeout=self.args.ipc_timeout)

    # -- inputs

    def read_stdin(self, dispatch: dict[str, Callable[[Any, str], None]]) -> None:
        for n, line in enumerate(sys.stdin, 1):
            line = line.strip()
            if not line:
                continue
            try:
                doc = json.loads(line)
                topic, message = doc["topic"], doc["message"]
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("stdin line %d ignored: expected a JSON object {\"topic\": ..., \"message\": ...} "
                            "(%s)", n, exc)
                continue
            handler = dispatch.get(topic)
            if handler is not None:
                handler(message, topic)
        log.info("stdin closed: no more messages; still serving")

    # -- running

    def run(self) -> int:
        try:
            return asyncio.run(self._main())
        except KeyboardInterrupt:
            return 0

    def _on_signal(self, signum: int) -> None:
        self.signalled = signum
        self.stop.set()

    async def _main(self) -> int:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        if not await self.loop.run_in_executor(None, self.connect):
            return 3
        try:
            return await self._serve()
        except IpcError as exc:
            return self.stops(exc)
        finally:
            if self.component is not None:
                self.component.close()
            if self.ipc is not None:
                self.ipc.close()

    async def _serve(self) -> int:
        assert self.loop is not None
        try:
            config = await self.loop.run_in_executor(None, self.load_config)
        except ConfigError as exc:
            return self.failed(f"greenlens.StreamPublisher: bad configuration: {exc}")
        thing = self.args.thing_name or os.environ.get(THING_ENV) or ("local" if self.ipc is None else "")
        if not thing:
            return self.failed(f"greenlens.StreamPublisher cannot start: ${THING_ENV} is not set (the nucleus "
                               "sets it; it names the IoT Core topics)")
        send = self.send_stdout if self.ipc is None else self.send_ipc
        self.component = component = PublisherComponent(config, thing_name=thing, send=send,
                                                         ring_dir=self.args.ring_dir, work_dir=os.getcwd())
        component.start()
        dispatch = {topics.FRAMES: component.on_frame, topics.RESULTS: component.on_result,
                    topics.EVENTS: component.on_event}
        if self.ipc is None:
            dispatch[CAMERAS_TOPIC] = component.on_camera
            threading.Thread(target=self.read_stdin, args=(dispatch,), name="publisher-stdin", daemon=True).start()
        else:
            ipc = self.ipc
            component.ipc_problem = "subscribing"
            try:
                await self.loop.run_in_executor(None, lambda: [ipc.subscribe_json(t, h) for t, h in dispatch.items()])
                await self.loop.run_in_executor(None, lambda: ipc.subscribe_to_configuration_update(
                    self.request_reload))
                await self.loop.run_in_executor(None, lambda: ipc.subscribe_to_validate_configuration_updates(
                    self.on_validate))
            except IpcError as exc:
                return self.failed(f"greenlens.StreamPublisher cannot subscribe: {exc} (does the recipe's "
                                   "accessControl grant aws.greengrass#SubscribeToTopic on greenlens/frames, "
                                   "greenlens/results and greenlens/events?)")
            try:  # camera status is optional: a recipe (or a Capture) without it still runs
                await self.loop.run_in_executor(None, lambda: ipc.subscribe_json(CAMERAS_TOPIC, component.on_camera))
            except IpcError as exc:
                log.warning("no camera status (%s): the page and /health judge cameras by their frames only", exc)
            component.ipc_problem = None
        runner = web.AppRunner(make_app(component), access_log=None)
        await runner.setup()
        try:
            site = await self._listen(runner, config)
        except OSError as exc:
            await runner.cleanup()
            return self.failed(f"greenlens.StreamPublisher cannot listen on {config.host}:{config.port}: "
                               f"{exc.strerror or exc}; set the host/port configuration")
        await self.loop.run_in_executor(None, self.report, "RUNNING")
        try:
            while not self.stop.is_set():
                stop_wait = asyncio.ensure_future(self.stop.wait())
                reload_wait = asyncio.ensure_future(self.reload.wait())
                await asyncio.wait({stop_wait, reload_wait}, return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                reload_wait.cancel()
                if self.reload.is_set() and not self.stop.is_set():
                    self.reload.clear()
                    site = await self._reconfigure(runner, site)
            log.info("stopping: %s", json.dumps({k: component.status()[k] for k in ("frames", "results")}))
            return 0
        finally:
            await runner.cleanup()

    async def _listen(self, runner: web.AppRunner, config: PublisherConfig) -> web.TCPSite:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        where = ", ".join(f"http://{a[0]}:{a[1]}/" for a in runner.addresses if isinstance(a, tuple)) or site.name
        log.info("serving %s (per camera streams /cameras/<id>/project.mjpg and device.mjpg, the first camera's "
                 "on /stream/project.mjpg and /stream/device.mjpg; /api/status, /metrics, /health)", where)
        return site

    async def _reconfigure(self, runner: web.AppRunner, site: web.TCPSite) -> web.TCPSite:
        assert self.loop is not None and self.component is not None
        old = self.component.config
        new = await self.loop.run_in_executor(None, self.reload_config)
        if new is None:
            return site
        self.component.apply(new)
        if (new.host, new.port) != (old.host, old.port):
            await site.stop()
            try:
                return await self._listen(runner, new)
            except OSError as exc:
                log.error("cannot listen on %s:%d (%s); staying on %s:%d", new.host, new.port,
                          exc.strerror or exc, old.host, old.port)
                return await self._listen(runner, old)
        return site


def main(argv: Sequence[str] | None = None) -> int:
    return _Runner.main(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
