"""Which AWS operation each request to the control plane invoked, and the IAM action that allows it — so a
rehearsal can tell which permissions a real account needs (the README's policies are tested this way).

The operation is found the way the service finds it, from botocore's model of the service the request is
signed for (the credential scope of its SigV4 Authorization header): ``Action=`` for the query protocol
(STS), ``X-Amz-Target`` for the JSON protocol (Secrets Manager), the HTTP method, path template and the
query keys and required headers it names for the REST protocols (S3, IoT, Greengrass v2); of several
operations that fit, the one that asks most of them (``/{Bucket}?location``, CopyObject's
``x-amz-copy-source``) and then has the fewest path labels wins.

IAM actions are ``<prefix>:<Operation>`` (prefix ``greengrass`` for Greengrass v2) except where the
Service Authorization Reference maps an operation to another action: S3's HeadBucket and ListObjects(V2)
need ``s3:ListBucket``, HeadObject ``s3:GetObject``, the multipart upload steps ``s3:PutObject``,
ListBuckets ``s3:ListAllMyBuckets``. S3 actions apply to the bucket (``arn:aws:s3:::BUCKET``) or, for
object operations, to the object (``arn:aws:s3:::BUCKET/KEY``); other actions are reported with
resource ``*``. Greengrass v2's CreateDeployment and CancelDeployment also need the IoT actions the
reference lists as their dependent actions (`DEPENDENT_ACTIONS`)."""

from __future__ import annotations

import functools
import io
import re
import threading
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.session
from botocore.model import ServiceModel

from .api_model import Route, path_pattern

__all__ = ["DEPENDENT_ACTIONS", "Call", "RequestLog", "iam_actions"]

SERVICES = ("s3", "sts", "iot", "secretsmanager", "greengrassv2")
IAM_PREFIX = {"greengrassv2": "greengrass"}
S3_ACTIONS = {"HeadBucket": "s3:ListBucket", "ListObjects": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket",
              "HeadObject": "s3:GetObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
              "CompleteMultipartUpload": "s3:PutObject", "ListBuckets": "s3:ListAllMyBuckets"}
_DEPLOYMENT_IOT = ["iot:CancelJob", "iot:DeleteThingShadow", "iot:DescribeJob", "iot:DescribeThing",
                   "iot:DescribeThingGroup", "iot:GetThingShadow", "iot:UpdateJob", "iot:UpdateThingShadow"]
#: (service, operation) -> the other IAM actions the call needs (Service Authorization Reference, Greengrass V2)
DEPENDENT_ACTIONS = {("greengrassv2", "CreateDeployment"): ["iot:CreateJob", *_DEPLOYMENT_IOT],
                     ("greengrassv2", "CancelDeployment"): _DEPLOYMENT_IOT}


@dataclass(frozen=True)
class Call:
    """One request: the botocore service name, the operation, who signed it, what it touched."""

    service: str
    operation: str
    access_key: str | None = None
    bucket: str | None = None
    key: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "actions": iam_actions(self)}


def iam_actions(call: Call) -> list[tuple[str, str]]:
    """(IAM action, resource) pairs the call needs, the first being its own action."""
    if call.service == "s3":
        action = S3_ACTIONS.get(call.operation, f"s3:{call.operation}")
        if call.bucket is None:
            resource = "*"
        elif call.key is not None and call.operation not in ("HeadBucket", "ListObjects", "ListObjectsV2"):
            resource = f"arn:aws:s3:::{call.bucket}/{call.key}"
        else:
            resource = f"arn:aws:s3:::{call.bucket}"
        return [(action, resource)]
    own = f"{IAM_PREFIX.get(call.service, call.service)}:{call.operation}"
    return [(own, "*"), *((a, "*") for a in DEPENDENT_ACTIONS.get((call.service, call.operation), []))]


@functools.cache
def _models() -> dict[str, ServiceModel]:
    """signing name -> service model, for the services the control plane answers."""
    session = botocore.session.get_session()
    models = {}
    for name in SERVICES:
        model = session.get_service_model(name)
        models[model.metadata.get("signingName") or model.metadata["endpointPrefix"]] = model
    return models


@dataclass(frozen=True)
class _Route(Route):
    """A REST operation's route, with what its request must also carry to be that operation."""

    query_keys: tuple[str, ...]
    headers: tuple[str, ...]  # the WSGI names of the required headers (CopyObject: x-amz-copy-source)


@functools.cache
def _routes(service: str) -> list[_Route]:
    model = next(m for m in _models().values() if m.service_name == service)
    routes = []
    for name in model.operation_names:
        op = model.operation_model(name)
        regex, labels = path_pattern(op.http["requestUri"])
        query = op.http["requestUri"].partition("?")[2]
        required = set(op.input_shape.required_members) if op.input_shape else set()
        members = op.input_shape.members if op.input_shape else {}
        keys = [k.split("=")[0] for k in query.split("&") if k]
        keys += [m.serialization.get("name", n) for n, m in members.items()
                 if n in required and m.serialization.get("location") == "querystring"]
        headers = ["HTTP_" + m.serialization.get("name", n).upper().replace("-", "_") for n, m in members.items()
                   if n in required and m.serialization.get("location") == "header"]
        routes.append(_Route(op, op.http["method"], re.compile(f"^{regex}/?$"), labels, tuple(keys),
                             tuple(headers)))
    return routes


def _signature(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """(signing service, access key id) from a SigV4 Authorization header."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        return scope[3], scope[0]
    except IndexError:
        return None, None


class RequestLog:
    """The calls made so far, in order (thread-safe; ``record`` leaves the request readable)."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._lock = threading.Lock()

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def record(self, environ: dict[str, Any]) -> Call | None:
        call = identify(environ)
        if call is not None:
            with self._lock:
                self._calls.append(call)
        return call


def identify(environ: dict[str, Any]) -> Call | None:
    """The call a WSGI request makes; None when it is not one for a service served here. A request is a
    service's by its SigV4 signature, or Greengrass v2's when unsigned under ``/greengrass/`` (a core's
    data-plane call: on AWS the device's certificate authenticates it; ``access_key`` None)."""
    signing, access_key = _signature(environ)
    if signing is None and environ.get("PATH_INFO", "").startswith("/greengrass/"):
        signing = "greengrass"
    model = _models().get(signing or "")
    if model is None:
        return None
    protocol = model.metadata["protocol"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if protocol == "query":
        action = query.get("Action", [None])[0]
        if action is None and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
            action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        return Call(model.service_name, action or "?", access_key)
    if protocol == "json":
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return Call(model.service_name, target.rsplit(".", 1)[-1] or "?", access_key)
    path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    path = path.split("?", 1)[0]
    fitting = []
    for route in _routes(model.service_name):
        m = route.pattern.match(path)
        if (m and route.method == environ.get("REQUEST_METHOD") and all(k in query for k in route.query_keys)
                and all(h in environ for h in route.headers)):
            fitting.append((route, m))
    if not fitting:
        return Call(model.service_name, "?", access_key)
    route, m = max(fitting, key=lambda f: (len(f[0].query_keys) + len(f[0].headers), -len(f[0].labels)))
    labels = {k: unquote(v) for k, v in zip(route.labels, m.groups(), strict=True)}
    return Call(model.service_name, route.operation.name, access_key, labels.get("Bucket"), labels.get("Key"))
