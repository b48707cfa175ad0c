"""A container credentials endpoint as the nucleus's token exchange service serves it: GET with the
``Authorization`` token gives AccessKeyId/SecretAccessKey/Token/Expiration (what botocore's container
provider reads from AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CredentialsEndpoint:
    def __init__(self, token: str = "test-tes-token") -> None:
        self.token = token
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                endpoint.requests += 1
                if self.headers.get("Authorization") != endpoint.token:
                    self.send_error(403, "bad authorization token")
                    return
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                body = json.dumps({"AccessKeyId": "ASIATESTTES", "SecretAccessKey": "testing",
                                   "Token": "tes-session", "Expiration": expires}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def env(self) -> dict[str, str]:
        """What the nucleus sets for a component that depends on aws.greengrass.TokenExchangeService."""
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{self.server.server_port}/2016-11-01/"
                                                      "credentialprovider/",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.token}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
