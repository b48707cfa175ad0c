"""The Greengrass v2 wire format, read from botocore's own service model (greengrassv2/2020-11-30).

The model gives each operation's HTTP method and path, where each input member travels (path, query string,
body), the members' types and limits, and each output shape. This module turns an HTTP request into the
operation's parameters, refuses bad ones with the field named (:class:`ApiError`, a ValidationException as
the service sends it), and turns an operation's result into the JSON body the service returns."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.session
from botocore.model import OperationModel, Shape

SERVICE = "greengrassv2"
API_VERSION = "2020-11-30"
MODEL = botocore.session.get_session().get_service_model(SERVICE, API_VERSION)


@dataclass
class ApiError(Exception):
    """An error as the service returns it: its code (the error shape's name), HTTP status and body members."""

    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return MODEL.shape_for(self.code).metadata["error"]["httpStatusCode"]

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def validation_error(fields: list[tuple[str, str]], reason: str = "FIELD_VALIDATION_FAILED") -> ApiError:
    """A ValidationException naming each bad field (``fields``: (name, what is wrong))."""
    message = "; ".join(f"{name}: {problem}" for name, problem in fields)
    return ApiError("ValidationException", message,
                    {"reason": reason, "fields": [{"name": n, "message": m} for n, m in fields]})


def not_found(resource_type: str, resource_id: str, message: str) -> ApiError:
    return ApiError("ResourceNotFoundException", message,
                    {"resourceId": resource_id, "resourceType": resource_type})


def conflict(resource_type: str, resource_id: str, message: str) -> ApiError:
    return ApiError("ConflictException", message, {"resourceId": resource_id, "resourceType": resource_type})


@dataclass(frozen=True)
class Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]


def path_pattern(request_uri: str) -> tuple[str, tuple[str, ...]]:
    """A botocore ``requestUri``'s path (``/{Bucket}/{Key+}``) as a regex source and its label names."""
    path = request_uri.split("?")[0]
    labels = tuple(re.findall(r"{(\w+)\+?}", path))
    regex = re.escape(path).replace(r"\{", "{").replace(r"\}", "}").replace(r"\+}", "+}")
    regex = re.sub(r"{\w+\+}", "(.+)", regex)
    return re.sub(r"{\w+}", "([^/]+)", regex), labels


def _routes() -> list[Route]:
    routes = []
    for name in MODEL.operation_names:
        op = MODEL.operation_model(name)
        regex, labels = path_pattern(op.http["requestUri"])
        routes.append(Route(op, op.http["method"], re.compile(f"^{regex}$"), labels))
    # literal paths before templated ones (/deployments/{id} must not swallow nothing it should not)
    return sorted(routes, key=lambda r: len(r.labels))


ROUTES = _routes()


def match(method: str, raw_path: str) -> tuple[OperationModel, dict[str, str]]:
    """The operation an HTTP request calls, and its path labels (percent-decoded)."""
    path = raw_path.split("?")[0]
    known_path = False
    for route in ROUTES:
        m = route.pattern.match(path)
        if m:
            known_path = True
            if route.method == method:
                return route.operation, {k: unquote(v) for k, v in zip(route.labels, m.groups(), strict=True)}
    raise validation_error([("path", f"{method} {path} is no Greengrass v2 operation")]
                           if known_path else [("path", f"no Greengrass v2 operation at {path}")],
                           reason="UNKNOWN_OPERATION")


def _from_text(shape: Shape, text: str, name: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise validation_error([(name, f"{text!r} is not an integer")]) from None
    if shape.type_name == "boolean":
        return text.lower() == "true"
    if shape.type_name == "list":
        return [text]
    return text


def parse_request(op: OperationModel, labels: dict[str, str], query: str, body: bytes) -> dict[str, Any]:
    """The operation's parameters from the path labels, the query string and the JSON body."""
    params: dict[str, Any] = {}
    shape = op.input_shape
    if shape is None:
        return params
    qs = parse_qs(query, keep_blank_values=True)
    payload: dict[str, Any] = {}
    if body.strip():
        try:
            payload = json.loads(body)
        except ValueError as e:
            raise validation_error([("body", f"not JSON: {e}")], reason="CANNOT_PARSE") from None
        if not isinstance(payload, dict):
            raise validation_error([("body", "must be a JSON object")], reason="CANNOT_PARSE")
    for name, member in shape.members.items():
        where = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if where == "uri":
            params[name] = labels[wire]
        elif where == "querystring":
            if wire in qs:
                values = qs[wire]
                params[name] = (values if member.type_name == "list"
                                else _from_text(member, values[0], name))
        elif where is None and name in payload:
            params[name] = _decode_blobs(member, payload[name], name)
    unknown = sorted(set(payload) - set(shape.members))
    if unknown:
        raise validation_error([(u, "is not a member of " + shape.name) for u in unknown])
    problems = list(check(shape, params, ""))
    if problems:
        raise validation_error(problems)
    return params


def _decode_blobs(shape: Shape, value: Any, path: str) -> Any:
    if shape.type_name == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise validation_error([(path, "is not base64")], reason="CANNOT_PARSE") from None
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _decode_blobs(shape.members[k], v, f"{path}.{k}") if k in shape.members else v
                for k, v in value.items()}
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _decode_blobs(shape.value, v, f"{path}.{k}") for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_decode_blobs(shape.member, v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "long": (int,), "boolean": (bool,), "double": (int, float),
    "float": (int, float), "blob": (bytes,), "structure": (dict,), "map": (dict,), "list": (list,),
    "timestamp": (int, float, str, dt.datetime),
}


def check(shape: Shape, value: Any, path: str) -> list[tuple[str, str]]:
    """What is wrong with ``value`` against ``shape`` (type, required members, min/max, enum, pattern),
    each as (field path, problem); empty when nothing is."""
    name = path or shape.name
    kinds = _TYPES.get(shape.type_name, (object,))
    if not isinstance(value, kinds) or (shape.type_name in ("integer", "long") and isinstance(value, bool)):
        return [(name, f"must be a {shape.type_name}, not {type(value).__name__}")]
    problems: list[tuple[str, str]] = []
    meta = shape.metadata
    size = len(value) if isinstance(value, (str, bytes, list, dict)) else value
    if "min" in meta and isinstance(size, (int, float)) and size < meta["min"]:
        what = "at least" if isinstance(value, (int, float)) else "at least length"
        problems.append((name, f"must be {what} {meta['min']}"))
    if "max" in meta and isinstance(size, (int, float)) and size > meta["max"]:
        what = "at most" if isinstance(value, (int, float)) else "at most length"
        problems.append((name, f"must be {what} {meta['max']}"))
    if shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            problems.append((name, f"{value!r} is not one of {', '.join(shape.enum)}"))
        pattern = meta.get("pattern")
        if pattern and not _matches(pattern, value):
            problems.append((name, f"{value!r} does not match {pattern}"))
    elif shape.type_name == "structure":
        for required in meta.get("required", []):
            if required not in value:
                problems.append((f"{path}.{required}" if path else required, "is required"))
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key not in shape.members:
                problems.append((sub, f"is not a member of {shape.name}"))
            else:
                problems += check(shape.members[key], item, sub)
    elif shape.type_name == "map":
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            problems += check(shape.key, key, f"{sub} (key)")
            problems += check(shape.value, item, sub)
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            problems += check(shape.member, item, f"{name}[{i}]")
    return problems


def _encode(shape: Shape, value: Any) -> Any:
    if value is None:
        return None
    if shape.type_name == "timestamp":
        return value.timestamp() if isinstance(value, dt.datetime) else value
    if shape.type_name == "blob":
        return base64.b64encode(value).decode()
    if shape.type_name == "structure":
        return {k: _encode(shape.members[k], v) for k, v in value.items() if v is not None}
    if shape.type_name == "map":
        return {k: _encode(shape.value, v) for k, v in value.items()}
    if shape.type_name == "list":
        return [_encode(shape.member, v) for v in value]
    return value


def response_body(op: OperationModel, result: dict[str, Any]) -> tuple[int, bytes]:
    """The HTTP status and JSON body of an operation's result (members not in the output shape are a bug
    here, and fail loudly)."""
    status = op.http.get("responseCode", 200)
    shape = op.output_shape
    if shape is None:
        return status, b""
    extra = set(result) - set(shape.members)
    if extra:
        raise AssertionError(f"{op.name} result has members its output shape lacks: {sorted(extra)}")
    return status, json.dumps(_encode(shape, result)).encode()


def _matches(pattern: str, value: str) -> bool:
    """The model's patterns are Java regular expressions; one Python cannot compile is not enforced."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True
