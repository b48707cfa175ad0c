"""The message contracts between GreenLens components: JSON Schemas, validation and builders.

Every message is a JSON object whose ``schema`` field names its contract and major version, e.g.
``greenlens.frame/1`` (a minor may follow: ``greenlens.frame/1.2``). Components are versioned apart, so a
consumer accepts any message of the major it knows and ignores fields it does not know (every schema
allows additional properties); a message of another major is rejected with a clear error.

The schemas below are the one definition of each contract; JSON Schema files for consumers that are not
Python are written from them: ``python -m greenlens_common.messages --write-schemas DIR``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator

FRAME = "greenlens.frame"
RESULT = "greenlens.result"
EVENT = "greenlens.event"
CAMERA = "greenlens.camera"
MAJOR = 1
CAMERA_STATES = ("connected", "reconnecting", "missing", "removed")
"""A camera's states in greenlens.camera/1: frames flow; its source was lost and is being reopened; it
cannot be opened (never was, or not since its configuration changed) and is retried; it left the
configuration (its last message)."""

_SCHEMA_ID = re.compile(r"^(?P<name>[a-z][a-z0-9_.-]*)/(?P<major>[0-9]+)(\.[0-9]+)?$")


def _schema_field(name: str) -> dict[str, Any]:
    return {"type": "string", "pattern": rf"^{re.escape(name)}/{MAJOR}(\.[0-9]+)?$"}


_NUM = {"type": "number"}
_NONNEG_INT = {"type": "integer", "minimum": 0}
_POS_INT = {"type": "integer", "minimum": 1}
_SCORE = {"type": "number", "minimum": 0, "maximum": 1}

FRAME_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "greenlens.frame/1",
    "title": "A captured frame: where its pixels are (ring slot or inline JPEG), when and from what",
    "type": "object",
    "required": ["schema", "source", "seq", "captured_at", "width", "height", "format", "dropped"],
    "properties": {
        "schema": _schema_field(FRAME),
        "source": {"type": "string", "minLength": 1},
        "seq": _POS_INT,
        "captured_at": {"type": "number", "minimum": 0, "description": "epoch seconds"},
        "width": _POS_INT,
        "height": _POS_INT,
        "format": {"const": "bgr24"},
        "dropped": {**_NONNEG_INT, "description": "frames the source skipped so far"},
        "ring": {
            "type": "object",
            "required": ["name", "slot", "slot_seq"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
                "slot": _NONNEG_INT,
                "slot_seq": _POS_INT,
            },
        },
        "jpeg": {"type": "string", "contentEncoding": "base64", "minLength": 4},
    },
    "oneOf": [{"required": ["ring"]}, {"required": ["jpeg"]}],
}

RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "greenlens.result/1",
    "title": "What the model saw in one frame",
    "type": "object",
    "required": ["schema", "seq", "captured_at", "source", "model", "verdict", "top_k", "detections",
                 "timings_ms"],
    "properties": {
        "schema": _schema_field(RESULT),
        "seq": _NONNEG_INT,
        "captured_at": {"type": "number", "minimum": 0},
        "source": {"type": "string", "minLength": 1},
        "model": {
            "type": "object",
            "required": ["name", "version", "sha256", "task"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "version": {"type": "string", "minLength": 1},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "task": {"enum": ["classification", "detection"]},
            },
        },
        "verdict": {
            "type": "object",
            "required": ["label", "present", "score"],
            "properties": {"label": {"type": "string"}, "present": {"type": "boolean"}, "score": _SCORE},
        },
        "top_k": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "label", "score"],
                "properties": {"index": _NONNEG_INT, "label": {"type": "string"}, "score": _NUM},
            },
        },
        "detections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label", "score", "box"],
                "properties": {
                    "label": {"type": "string"},
                    "score": _NUM,
                    "box": {"description": "[x0, y0, x1, y1], normalised to the frame (0..1)", "type": "array",
                            "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 4, "maxItems": 4},
                },
            },
        },
        "timings_ms": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
        "skipped": {**_NONNEG_INT, "description": "frame descriptors of this result's camera "
                                                  "(source) that Inference never processed, so far (a newer "
                                                  "frame of the same camera came first)"},
        "overwritten": {**_NONNEG_INT, "description": "frames of any camera whose ring slot was reused before "
                                                      "Inference read them, so far"},
        "capture_dropped": {**_NONNEG_INT, "description": "the frame descriptor's dropped (frames the camera "
                                                          "produced that Capture never published)"},
    },
}

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "greenlens.event/1",
    "title": "Something a component wants operators to know (a lost camera, a recovery, an error)",
    "type": "object",
    "required": ["schema", "component", "kind", "at", "detail"],
    "properties": {
        "schema": _schema_field(EVENT),
        "component": {"type": "string", "minLength": 1},
        "kind": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "at": {"type": "number", "minimum": 0},
        "detail": {"type": "string"},
        "counters": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}

CAMERA_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "greenlens.camera/1",
    "title": "One camera's state, published by greenlens.Capture on greenlens/cameras at every change and "
             "every few seconds (a consumer that starts later learns every camera's state)",
    "type": "object",
    "required": ["schema", "camera", "state", "at", "detail"],
    "properties": {
        "schema": _schema_field(CAMERA),
        "camera": {"type": "string", "minLength": 1, "description": "the camera id: the 'source' field of its "
                                                                    "frame descriptors and results"},
        "state": {"enum": list(CAMERA_STATES)},
        "at": {"type": "number", "minimum": 0, "description": "epoch seconds"},
        "since": {"type": "number", "minimum": 0, "description": "epoch seconds: when this state began"},
        "detail": {"type": "string", "description": "the reason (why it is missing or reconnecting), or what "
                                                    "it reads"},
        "source": {"type": "string", "description": "what the camera reads (URL credentials redacted)"},
        "ring": {"type": ["string", "null"], "description": "its ring's name (null: inline transport)"},
        "fps": {"type": "number", "minimum": 0},
        "width": _POS_INT,
        "height": _POS_INT,
        "counters": {"type": "object", "additionalProperties": {"type": "number"},
                     "description": "published, dropped, outages, reconnects, open_failures so far"},
    },
}

SCHEMAS: dict[str, dict[str, Any]] = {FRAME: FRAME_SCHEMA, RESULT: RESULT_SCHEMA, EVENT: EVENT_SCHEMA,
                                      CAMERA: CAMERA_SCHEMA}
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in SCHEMAS.items()}
# Every frame and result is checked on the hot path: a compiled validator (about 6 µs a message instead of
# 75) says whether a message is valid; only a message it refuses goes through jsonschema, for the error that
# names the field. The schemas use no keyword whose meaning differs between draft 7 (fastjsonschema) and
# 2020-12 (tests/test_messages.py checks that both agree on generated messages).
_FAST = {name: fastjsonschema.compile({k: v for k, v in schema.items() if k != "$schema"})
         for name, schema in SCHEMAS.items()}


class MessageError(ValueError):
    """A message that does not satisfy its contract; the text names the field, the value and the rule."""


class UnsupportedSchemaError(MessageError):
    """A message of a schema (or major version) this code does not read."""


def schema_of(msg: Mapping[str, Any]) -> tuple[str, int]:
    """``("greenlens.frame", 1)`` for a message whose schema is ``greenlens.frame/1[.minor]``."""
    if not isinstance(msg, Mapping):
        raise MessageError(f"message is a {type(msg).__name__}, expected a JSON object")
    sid = msg.get("schema")
    if not isinstance(sid, str):
        raise MessageError(f"message has no 'schema' string (got {sid!r}); expected e.g. 'greenlens.frame/1'")
    m = _SCHEMA_ID.match(sid)
    if m is None:
        raise MessageError(f"schema {sid!r} is not of the form '<name>/<major>', e.g. 'greenlens.frame/1'")
    return m["name"], int(m["major"])


def validate(msg: Mapping[str, Any], expect: str | None = None) -> str:
    """Check ``msg`` against its contract; returns the schema name (e.g. ``greenlens.frame``).

    ``expect`` (a schema name) additionally requires the message to be of that kind.
    Raises UnsupportedSchemaError for an unknown schema or another major, MessageError otherwise.
    """
    name, major = schema_of(msg)
    if name not in SCHEMAS:
        raise UnsupportedSchemaError(f"schema {msg['schema']!r} is unknown: expected one of "
                                     + ", ".join(f"{n}/{MAJOR}" for n in SCHEMAS))
    if expect is not None and name != expect:
        raise UnsupportedSchemaError(f"expected a {expect}/{MAJOR} message, got {msg['schema']!r}")
    if major != MAJOR:
        raise UnsupportedSchemaError(
            f"schema {msg['schema']!r} has major version {major}; this component reads {name}/{MAJOR} only "
            f"(update the component to read {name}/{major})"
        )
    try:
        _FAST[name](msg)
        return name
    except fastjsonschema.JsonSchemaException as exc:
        fast_error = str(exc)
    errors = sorted(_VALIDATORS[name].iter_errors(msg), key=lambda e: list(e.absolute_path))
    if not errors:
        raise MessageError(f"{name}/{MAJOR} message: {fast_error}")
    err = errors[0]
    where = "/".join(str(p) for p in err.absolute_path) or "(message)"
    raise MessageError(f"{name}/{MAJOR} message: field {where}: {err.message}")


def frame_message(
    *,
    source: str,
    seq: int,
    captured_at: float,
    width: int,
    height: int,
    dropped: int,
    ring: tuple[str, int, int] | None = None,
    jpeg: bytes | None = None,
) -> dict[str, Any]:
    """A ``greenlens.frame/1`` descriptor; give ``ring=(name, slot, slot_seq)`` or ``jpeg=<bytes>``."""
    if (ring is None) == (jpeg is None):
        raise MessageError("a frame message carries exactly one of ring=(name, slot, slot_seq) or jpeg=bytes")
    msg: dict[str, Any] = {
        "schema": f"{FRAME}/{MAJOR}", "source": source, "seq": int(seq), "captured_at": float(captured_at),
        "width": int(width), "height": int(height), "format": "bgr24", "dropped": int(dropped),
    }
    if ring is not None:
        name, slot, slot_seq = ring
        msg["ring"] = {"name": name, "slot": int(slot), "slot_seq": int(slot_seq)}
    else:
        assert jpeg is not None
        msg["jpeg"] = base64.b64encode(jpeg).decode("ascii")
    validate(msg)
    return msg


def result_message(
    *,
    seq: int,
    captured_at: float,
    source: str,
    model: Mapping[str, str],
    verdict: Mapping[str, Any],
    timings_ms: Mapping[str, float],
    top_k: Sequence[Mapping[str, Any]] | None = None,
    detections: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``greenlens.result/1`` message (validated), its fields in the order greenlens.Inference has always
    sent them."""
    msg: dict[str, Any] = {
        "schema": f"{RESULT}/{MAJOR}", "seq": int(seq), "captured_at": float(captured_at), "source": source,
        "model": dict(model), "verdict": dict(verdict),
        "top_k": [dict(t) for t in top_k or ()],
        "detections": [{**d, "box": [float(x) for x in d["box"]]} for d in detections or ()],
        "timings_ms": {k: float(v) for k, v in timings_ms.items()},
    }
    validate(msg)
    return msg


def event_message(
    *, component: str, kind: str, detail: str, counters: Mapping[str, float] | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """A ``greenlens.event/1`` message (validated)."""
    msg: dict[str, Any] = {
        "schema": f"{EVENT}/{MAJOR}", "component": component, "kind": kind,
        "at": time.time() if at is None else float(at), "detail": detail,
    }
    if counters is not None:
        msg["counters"] = dict(counters)
    validate(msg)
    return msg


def camera_message(
    *, camera: str, state: str, detail: str, source: str | None = None, ring: str | None = None,
    fps: float | None = None, width: int | None = None, height: int | None = None,
    counters: Mapping[str, float] | None = None, since: float | None = None, at: float | None = None,
) -> dict[str, Any]:
    """A ``greenlens.camera/1`` message (validated)."""
    msg: dict[str, Any] = {
        "schema": f"{CAMERA}/{MAJOR}", "camera": camera, "state": state,
        "at": time.time() if at is None else float(at), "detail": detail,
    }
    if since is not None:
        msg["since"] = float(since)
    if source is not None:
        msg["source"] = source
    msg["ring"] = ring
    if fps is not None:
        msg["fps"] = float(fps)
    if width is not None and height is not None:
        msg["width"], msg["height"] = int(width), int(height)
    if counters is not None:
        msg["counters"] = {k: float(v) for k, v in counters.items()}
    validate(msg)
    return msg


def schema_file_name(name: str) -> str:
    """The file the JSON Schema of message kind ``name`` is written to, e.g. ``greenlens.result.1.schema.json``."""
    return f"{name}.{MAJOR}.schema.json"


def schema_file_text(name: str) -> str:
    """The JSON Schema of message kind ``name`` as a file (for consumers that are not Python)."""
    return json.dumps(SCHEMAS[name], indent=2) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write the JSON Schema file of every message kind into ``directory``; the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = directory / schema_file_name(name)
        path.write_text(schema_file_text(name))
        written.append(path)
    return written


def frame_jpeg(msg: Mapping[str, Any]) -> bytes:
    """The inline JPEG bytes of a frame message (MessageError when it carries a ring slot instead)."""
    data = msg.get("jpeg")
    if not isinstance(data, str):
        raise MessageError("frame message has no inline 'jpeg' (it refers to a ring slot)")
    try:
        return base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise MessageError(f"frame message field jpeg: not valid base64 ({exc})") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m greenlens_common.messages",
                                     description="Write the JSON Schema files of the GreenLens messages.")
    parser.add_argument("--write-schemas", metavar="DIR", type=Path, required=True,
                        help="folder to write <schema>.<major>.schema.json into")
    args = parser.parse_args(argv)
    for path in write_schemas(args.write_schemas):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
