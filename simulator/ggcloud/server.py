"""The control plane: one HTTP port on loopback serving moto (S3, STS, IoT, Secrets Manager and the rest of
what moto provides, in its server mode) and Greengrass v2, plus the IoT Jobs roll-out engine and, with a
broker, the Jobs MQTT API. A request goes to Greengrass v2 when it is signed for the ``greengrass``
service or its path starts with ``/greengrass/``; everything else to moto's own dispatcher, which picks the
service from the signature as it does in ``moto_server``. Every request's operation is recorded
(request_log.py); ``GET /_ggcloud/calls`` lists them with the IAM actions they need."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from moto.iot.models import IoTBackend, iot_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3.models import S3Backend, s3_backends
from werkzeug.serving import BaseWSGIServer, make_server

from . import api_model
from .api_model import ApiError
from .arns import ACCOUNT_ID
from .clock import Clock
from .core_devices import CoreDevices
from .greengrass import GreengrassService
from .jobs_mqtt import JobsMqtt
from .request_log import RequestLog
from .rollout import RolloutEngine

log = logging.getLogger("ggcloud")
SIGNING_NAME = "greengrass"
CALLS_PATH = "/_ggcloud/calls"


def _signed_service(environ: dict[str, Any]) -> str | None:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        return scope.split("/")[3]
    except IndexError:
        return None


class _QuietHandler(MotoRequestHandler):
    """moto's request handler, its access log at debug level instead of on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s", self.requestline, code)


class ControlPlane:
    """Everything behind one port. ``url`` once started; :meth:`stop` ends it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1",
                 clock: Clock | None = None, broker_url: str | None = None) -> None:
        self.host, self.port, self.region = host, port, region
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.engine = RolloutEngine(self.iot, self.clock, self.lock)
        self.devices = CoreDevices(self.iot, self.lock)
        self.greengrass = GreengrassService(region, self.iot, self.s3, self.engine, self.lock, self.devices)
        self.jobs = JobsMqtt(broker_url, self.engine, self.devices) if broker_url else None
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.request_log = RequestLog()

    def iot(self) -> IoTBackend:
        return iot_backends[ACCOUNT_ID][self.region]

    @staticmethod
    def s3() -> S3Backend:
        return s3_backends[ACCOUNT_ID]["aws"]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ControlPlane:
        self._server = make_server(self.host, self.port, self, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="ggcloud-http", daemon=True)
        self._thread.start()
        self.engine.start()
        if self.jobs:
            self.jobs.start()
        log.info("control plane on %s, region %s, %s", self.url, self.region, self.clock.describe())
        return self

    def stop(self) -> None:
        if self.jobs:
            self.jobs.stop()
        self.engine.stop()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- WSGI -------------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.requests += 1
        if environ.get("PATH_INFO") == CALLS_PATH and not environ.get("HTTP_AUTHORIZATION"):
            body = json.dumps([c.as_json() for c in self.request_log.calls()]).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        self.request_log.record(environ)
        service = _signed_service(environ)
        if service == SIGNING_NAME or (service is None and environ.get("PATH_INFO", "").startswith("/greengrass/")):
            return self._greengrass(environ, start_response)
        with self.lock:
            return list(self._moto(environ, start_response))

    def _greengrass(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", ""))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        try:
            op, labels = api_model.match(environ["REQUEST_METHOD"], raw_path)
            params = api_model.parse_request(op, labels, environ.get("QUERY_STRING", ""), body)
            result = self.greengrass.call(op.name, params)
            status, payload = api_model.response_body(op, result)
        except ApiError as e:
            log.info("greengrassv2 %s %s -> %s", environ["REQUEST_METHOD"], raw_path, e)
            status, payload = e.status, json.dumps(e.body()).encode()
            headers.append(("x-amzn-ErrorType", e.code))
        start_response(f"{status} {'OK' if status < 300 else 'ERROR'}",
                       [*headers, ("Content-Length", str(len(payload)))])
        return [payload]
