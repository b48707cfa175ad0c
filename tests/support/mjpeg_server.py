"""An HTTP MJPEG (multipart/x-mixed-replace) camera for tests, in a thread of the test process."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "greenlensframe"


class MjpegServer:
    """Serves numbered grey frames as an MJPEG stream on http://127.0.0.1:<port>/stream.mjpg."""

    def __init__(self, width: int = 160, height: int = 120, fps: float = 25.0) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.stopped = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                n = 0
                while not server.stopped.is_set():
                    n += 1
                    image = np.full((server.height, server.width, 3), (n * 7) % 256, np.uint8)
                    cv2.putText(image, str(n), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
                    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                    try:
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    server.stopped.wait(1 / server.fps)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
