"""aws.greengrass.TokenExchangeService: the container-credentials endpoint AWS SDKs in components use.

The real service serves the IoT credentials provider's temporary credentials on loopback at
``/2016-11-01/credentialprovider/`` and puts ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` in the nucleus's
top-level ``setenv``; each component already has ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (its SVCUID), which
an SDK sends as the ``Authorization`` header. ggsim serves the credentials the user configures: a JSON or
YAML file (``ggsim up --aws-credentials FILE``), else ggsim's own ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``.

The port is bound (and the URI known) when the core starts; the HTTP server behind it (aiohttp, ~11 MB of
a core's memory) is imported and started on the first connection, so a core whose components never ask for
credentials does not carry it. That first request waits in the socket's backlog meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["CREDENTIALS_PATH", "CredentialsError", "CredentialsServer", "StaticCredentials",
           "credentials_from_environment", "load_credentials_file"]

CREDENTIALS_PATH = "/2016-11-01/credentialprovider/"
FULL_URI_VARIABLE = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#: How long served credentials claim to be valid when the user's source does not say (SDKs refresh before).
DEFAULT_LIFETIME = dt.timedelta(hours=1)


class CredentialsError(ValueError):
    """A credentials file ggsim cannot use; the message names the file and the field."""


@dataclass(frozen=True)
class StaticCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str = ""
    expiration: str = ""  # ISO 8601, UTC; empty: one DEFAULT_LIFETIME from each request

    def document(self, now: dt.datetime) -> dict[str, str]:
        """The body the real endpoint returns (the ECS container-credentials format)."""
        expiration = self.expiration or (now + DEFAULT_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"AccessKeyId": self.access_key_id, "SecretAccessKey": self.secret_access_key,
                "Token": self.session_token, "Expiration": expiration}


def load_credentials_file(path: Path) -> StaticCredentials:
    """A JSON or YAML mapping: AccessKeyId, SecretAccessKey, optional Token (or SessionToken) and Expiration."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(f"{path}: cannot read the credentials file: {exc}") from exc
    if not isinstance(data, dict):
        raise CredentialsError(f"{path}: expected a mapping with AccessKeyId and SecretAccessKey")
    for key in ("AccessKeyId", "SecretAccessKey"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise CredentialsError(f"{path}: {key} is required and must be a non-empty string")
    token = data.get("Token", data.get("SessionToken", ""))
    expiration = data.get("Expiration", "")
    if isinstance(expiration, dt.datetime):
        expiration = expiration.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not isinstance(token, str) or not isinstance(expiration, str):
        raise CredentialsError(f"{path}: Token and Expiration must be strings")
    return StaticCredentials(data["AccessKeyId"], data["SecretAccessKey"], token, expiration)


def credentials_from_environment(environ: Mapping[str, str]) -> StaticCredentials | None:
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return StaticCredentials(key, secret, environ.get("AWS_SESSION_TOKEN", ""))


class CredentialsServer:
    """The loopback HTTP endpoint. `authenticate(token)` names the component an SVCUID belongs to, or None."""

    def __init__(self, credentials: StaticCredentials | None, authenticate: Callable[[str | None], str | None],
                 host: str = "localhost") -> None:
        self._credentials = credentials
        self._authenticate = authenticate
        self._host = host
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._serving: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def full_uri(self) -> str:
        return f"http://{self._host}:{self.port}{CREDENTIALS_PATH}"

    async def start(self) -> None:
        """Bind and listen; the HTTP server starts on the first connection (see the module's doc)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._first_connection, loop)

    def _first_connection(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._sock is not None
        loop.remove_reader(self._sock.fileno())
        self._serving = loop.create_task(self._serve(self._sock), name="ggsim-tes-http")

    async def _serve(self, sock: socket.socket) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)
            self._serving = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        elif self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None

    async def _handle(self, request: web.Request) -> web.Response:
        from aiohttp import web

        if request.path != CREDENTIALS_PATH:
            return _error(404, f"No such resource {request.path}; credentials are served at {CREDENTIALS_PATH}")
        if request.method != "GET":
            return _error(405, f"Method {request.method} not allowed; use GET")
        if self._authenticate(request.headers.get("Authorization")) is None:
            return _error(403, "Request is not authorized: the Authorization header must be a component's "
                               "AWS_CONTAINER_AUTHORIZATION_TOKEN")
        if self._credentials is None:
            return _error(500, "ggsim has no AWS credentials to serve: start it with --aws-credentials FILE or "
                               "with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment")
        body = self._credentials.document(dt.datetime.now(dt.UTC))
        return web.Response(text=json.dumps(body), content_type="application/json")

    @property
    def credentials(self) -> StaticCredentials | None:
        """What the endpoint serves (the core's token exchange role credentials)."""
        return self._credentials


def _error(status: int, message: str) -> Any:
    from aiohttp import web

    return web.Response(status=status, text=json.dumps({"message": message}), content_type="application/json")
