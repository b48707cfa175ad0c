"""The HTTP side (aiohttp): the page, the MJPEG streams (per camera), /api/status, /metrics, /health, /healthz.

A stream viewer always gets the newest frame: each part is taken when the previous one has been
written, so a slow viewer skips frames instead of growing a queue. ``/cameras/<id>/project.mjpg`` and
``/cameras/<id>/device.mjpg`` are one camera's streams; ``/stream/project.mjpg`` and ``/stream/device.mjpg``
follow the first camera seen (a placeholder until there is one).

``/health`` is for a load balancer: 200 when every part is healthy, 503 naming the parts that are not
(IPC, IoT Core, S3 and the snapshot store, each camera). ``/healthz`` is liveness: 200 while the process
serves and its worker runs (with the same parts, for information).
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources
from typing import Any

from aiohttp import web

from .component import PublisherComponent
from .exposition import CONTENT_TYPE
from .frames import LatestImage

log = logging.getLogger("greenlens.publisher.web")

BOUNDARY = "greenlensframe"
COMPONENT_KEY: web.AppKey[PublisherComponent] = web.AppKey("component", PublisherComponent)
WATCHES_KEY: web.AppKey[dict[int, Watch]] = web.AppKey("watches", dict)
VIEWERS_KEY: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("viewers", set)


class Watch:
    """Wakes the asyncio side when a stream's image changes (updates come from worker threads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, image: LatestImage) -> None:
        self.loop = loop
        self.image = image
        self._event = asyncio.Event()
        image.listen(self._poke)

    def _poke(self) -> None:
        self.loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def changed(self, seen_version: int, timeout: float) -> None:
        """Return once the image's version is past ``seen_version`` (or after ``timeout``)."""
        event = self._event
        if self.image.version != seen_version:
            return
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass


def make_app(component: PublisherComponent) -> web.Application:
    app = web.Application()
    app[COMPONENT_KEY] = component
    app[WATCHES_KEY] = {}
    app.router.add_get("/", index)
    app.router.add_get("/stream/{stream:project|device}.mjpg", stream)
    app.router.add_get("/cameras/{camera}/{stream:project|device}.mjpg", stream)
    app.router.add_get("/api/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/healthz", healthz)
    app[VIEWERS_KEY] = set()
    app.on_shutdown.append(_end_streams)
    return app


def _watch(app: web.Application, image: LatestImage) -> Watch:
    watches = app[WATCHES_KEY]
    watch = watches.get(id(image))
    if watch is None:
        watch = watches[id(image)] = Watch(asyncio.get_running_loop(), image)
    return watch


async def _end_streams(app: web.Application) -> None:
    """Streams never end by themselves: end them so that a stop does not wait for the viewers."""
    for task in list(app[VIEWERS_KEY]):
        task.cancel()


async def index(request: web.Request) -> web.Response:
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def status(request: web.Request) -> web.Response:
    component = request.app[COMPONENT_KEY]
    return web.json_response(component.status(), headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.Response:
    component = request.app[COMPONENT_KEY]
    body = await asyncio.get_running_loop().run_in_executor(None, component.exposition.text)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


async def health(request: web.Request) -> web.Response:
    body = request.app[COMPONENT_KEY].health()
    return web.json_response(body, status=200 if body["status"] == "ok" else 503,
                             headers={"Cache-Control": "no-store"})


async def healthz(request: web.Request) -> web.Response:
    component = request.app[COMPONENT_KEY]
    ok = component.healthy
    body: dict[str, Any] = {"status": "ok" if ok else "worker stopped",
                            "iot_core_online": component.outbox.online}
    return web.json_response(body, status=200 if ok else 503)


async def stream(request: web.Request) -> web.StreamResponse:
    name = request.match_info["stream"]
    camera_id = request.match_info.get("camera")
    component = request.app[COMPONENT_KEY]
    if component.stream_image(name, camera_id) is None:
        known = ", ".join(c.id for c in component.cameras.all()) or "none yet"
        raise web.HTTPNotFound(text=f"no camera {camera_id!r} (cameras: {known})")
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        "Cache-Control": "no-cache, no-store", "Pragma": "no-cache", "Connection": "close",
    })
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    viewers = request.app[VIEWERS_KEY]
    viewers.add(task)
    try:
        while True:
            started = time.monotonic()
            image = component.stream_image(name, camera_id)
            assert image is not None  # cameras are never forgotten
            watch = _watch(request.app, image)
            jpeg = await loop.run_in_executor(None, image.jpeg)
            await response.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg.data)}\r\n"
                f"X-Frame-Seq: {jpeg.seq}\r\n\r\n".encode() + jpeg.data + b"\r\n")
            min_period = 1.0 / component.config.stream_max_fps
            pause = min_period - (time.monotonic() - started)
            if pause > 0:
                await asyncio.sleep(pause)  # pacing to streamMaxFps, not synchronisation
            await watch.changed(jpeg.version, timeout=5.0)  # a repeat every 5 s keeps idle connections alive
    except ConnectionResetError:
        pass  # the viewer went away
    finally:
        viewers.discard(task)
    return response
