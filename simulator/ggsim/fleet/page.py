"""The fleet at a glance as a web page: what the terminal view (view.py) shows — each core device's health,
its latest deployment and execution status with the reason, its component versions, the clock scale —
read the same way (`device_rows`, Greengrass v2 APIs only) and refreshed in the browser every second.

`FleetPage` serves, on loopback by default:

- ``/``: the page (inline HTML, CSS and JavaScript: nothing is fetched from elsewhere), which polls
- ``/api/fleet``: ``{"title", "clock", "updated", "components": [...], "rows": [device_rows(...)]}``.

Rows are read at most every ``max_age`` seconds whatever the number of open pages."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .view import EXECUTION_COLOURS, HEALTH_COLOURS, component_columns, device_rows

__all__ = ["FleetPage"]

log = logging.getLogger("ggsim.fleet.page")


class FleetPage:
    """The page for the things ``things()`` names, read through the Greengrass v2 client ``gg``."""

    def __init__(self, gg: Any, things: Callable[[], Sequence[str]], clock: str, *, host: str = "127.0.0.1",
                 port: int = 0, components: Sequence[str] = (), title: str = "GreenLens fleet",
                 max_age: float = 0.5) -> None:
        self._gg = gg
        self._things = things
        self.clock = clock
        self.components = list(components)
        self.title = title
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> FleetPage:
        self._thread = threading.Thread(target=self._server.serve_forever, name="ggsim-fleet-page", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FleetPage:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> bytes:
        """The JSON the page polls (cached for ``max_age`` seconds)."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.max_age:
                rows = device_rows(self._gg, self._things())
                body = {"title": self.title, "clock": self.clock, "updated": time.strftime("%H:%M:%S"),
                        "components": component_columns(rows, self.components), "rows": rows}
                self._cached = (now, json.dumps(body).encode())
            return self._cached[1]


def _handler(page: FleetPage) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/html; charset=utf-8", _html(page.title).encode())
            elif path == "/api/fleet":
                try:
                    self._send(200, "application/json", page.snapshot())
                except Exception as exc:  # the control plane away: the page says so and keeps polling
                    log.warning("fleet page: cannot read the fleet: %s", exc)
                    self._send(502, "application/json", json.dumps({"error": str(exc)}).encode())
            else:
                self._send(404, "text/plain; charset=utf-8", f"no page at {path}: try /\n".encode())

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server hook's name
            log.debug("fleet page: " + format, *args)

    return Handler


_CSS_COLOURS = {"green": "#1a7f37", "red": "#cf222e", "yellow": "#9a6700", "cyan": "#0969da"}


def _html(title: str) -> str:
    colours = {"health": HEALTH_COLOURS, "execution": EXECUTION_COLOURS, "css": _CSS_COLOURS}
    return _PAGE.replace("__TITLE__", title).replace("__COLOURS__", json.dumps(colours))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
#meta { color: #59636e; margin-bottom: 1rem; }
#error { color: #cf222e; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #d1d9e0; padding: .35rem .7rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.execution .status { font-weight: 600; }
td.execution .reason { display: block; max-width: 32rem; font-size: .85rem; color: #59636e; }
</style></head>
<body>
<h1>__TITLE__</h1>
<div id="meta"><span id="clock"></span> · updated <span id="updated">never</span> <span id="error"></span></div>
<table id="fleet"><thead><tr id="head"></tr></thead><tbody id="rows"></tbody></table>
<script>
const COLOURS = __COLOURS__;
function cell(tr, cls, text, colour) {
  const td = document.createElement("td");
  td.className = cls;
  td.textContent = text;
  if (colour) td.style.color = COLOURS.css[colour];
  tr.appendChild(td);
  return td;
}
function draw(data) {
  document.getElementById("clock").textContent = data.clock;
  document.getElementById("updated").textContent = data.updated;
  document.getElementById("error").textContent = "";
  const head = document.getElementById("head");
  head.replaceChildren();
  for (const name of ["device", "health", "deployment", "execution", ...data.components, "clock"]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }
  const body = document.getElementById("rows");
  body.replaceChildren();
  for (const row of data.rows) {
    const tr = document.createElement("tr");
    tr.dataset.thing = row.thing;
    cell(tr, "device", row.thing);
    cell(tr, "health", row.health, COLOURS.health[row.health] || "yellow");
    cell(tr, "deployment", row.deployment);
    const td = cell(tr, "execution", "");
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = row.execution;
    status.style.color = COLOURS.css[COLOURS.execution[row.execution]] || "";
    td.appendChild(status);
    if (row.reason) {
      const reason = document.createElement("span");
      reason.className = "reason";
      reason.textContent = row.reason;
      td.appendChild(reason);
    }
    for (const name of data.components) {
      const c = cell(tr, "component", row.versions[name] || "-");
      c.dataset.component = name;
    }
    cell(tr, "clock", data.clock);
    body.appendChild(tr);
  }
}
async function refresh() {
  try {
    const answer = await fetch("/api/fleet", {cache: "no-store"});
    const data = await answer.json();
    if (!answer.ok) throw new Error(data.error || answer.statusText);
    draw(data);
  } catch (e) {
    document.getElementById("error").textContent = "(cannot read the fleet: " + e.message + ")";
  }
  setTimeout(refresh, 1000);
}
refresh();
</script>
</body></html>
"""
