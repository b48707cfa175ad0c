"""The HTTP side (aiohttp): the page, the MJPEG streams, /api/status and /healthz.

A stream viewer always gets the newest frame: each part is taken when the previous one has been
written, so a slow viewer skips frames instead of growing a queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources
from typing import Any

from aiohttp import web

from .component import PublisherComponent
from .frames import LatestImage

log = logging.getLogger("greenlens.publisher.web")

BOUNDARY = "greenlensframe"
COMPONENT_KEY: web.AppKey[PublisherComponent] = web.AppKey("component", PublisherComponent)
WATCHES_KEY: web.AppKey[dict[str, Watch]] = web.AppKey("watches", dict)
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
    loop = asyncio.get_running_loop()
    app[WATCHES_KEY] = {"project": Watch(loop, component.project), "device": Watch(loop, component.device)}
    app.router.add_get("/", index)
    app.router.add_get("/stream/project.mjpg", stream)
    app.router.add_get("/stream/device.mjpg", stream)
    app.router.add_get("/api/status", status)
    app.router.add_get("/healthz", healthz)
    app[VIEWERS_KEY] = set()
    app.on_shutdown.append(_end_streams)
    return app


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


async def healthz(request: web.Request) -> web.Response:
    component = request.app[COMPONENT_KEY]
    ok = component.healthy
    body: dict[str, Any] = {"status": "ok" if ok else "worker stopped",
                            "iot_core_online": component.outbox.online}
    return web.json_response(body, status=200 if ok else 503)


async def stream(request: web.Request) -> web.StreamResponse:
    name = "project" if request.path.endswith("project.mjpg") else "device"
    component = request.app[COMPONENT_KEY]
    watch = request.app[WATCHES_KEY][name]
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        "Cache-Control": "no-cache, no-store", "Pragma": "no-cache", "Connection": "close",
    })
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    version = -1
    task = asyncio.current_task()
    assert task is not None
    viewers = request.app[VIEWERS_KEY]
    viewers.add(task)
    try:
        while True:
            started = time.monotonic()
            jpeg = await loop.run_in_executor(None, watch.image.jpeg)
            version = jpeg.version
            await response.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg.data)}\r\n"
                f"X-Frame-Seq: {jpeg.seq}\r\n\r\n".encode() + jpeg.data + b"\r\n")
            min_period = 1.0 / component.config.stream_max_fps
            pause = min_period - (time.monotonic() - started)
            if pause > 0:
                await asyncio.sleep(pause)  # pacing to streamMaxFps, not synchronisation
            await watch.changed(version, timeout=5.0)  # a repeat every 5 s keeps idle connections alive
    except ConnectionResetError:
        pass  # the viewer went away
    finally:
        viewers.discard(task)
    return response
