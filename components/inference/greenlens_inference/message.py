"""The greenlens.result/1 message: one frame's result, as Inference publishes it.

    {"schema": "greenlens.result/1", "seq", "captured_at", "source",
     "model": {"name", "version", "sha256", "task"},
     "verdict": {"label", "present", "score"}, "top_k": [...], "detections": [...], "timings_ms": {...}}

Consumers accept any greenlens.result/1.x and ignore fields they do not know (design §2).
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = "greenlens.result/1"
SCHEMA_FILE = Path(__file__).with_name("result.schema.json")
_RESULT_KEYS = ("verdict", "top_k", "detections", "timings_ms")
_MODEL_KEYS = ("name", "version", "sha256", "task")


def build_result_message(
    result: dict[str, Any], model: dict[str, Any], *, seq: int, captured_at: float, source: str
) -> dict[str, Any]:
    """The message for an Engine.infer() `result` of frame `seq` captured at `captured_at` (epoch seconds)
    from `source` (the camera or file), with `model` = Bundle.model_info()."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"seq is {seq!r}; expected the frame's sequence number, a whole number 0 or more")
    if isinstance(captured_at, bool) or not isinstance(captured_at, int | float) or not math.isfinite(captured_at):
        raise ValueError(f"captured_at is {captured_at!r}; expected the capture time in epoch seconds")
    if not isinstance(source, str) or not source:
        raise ValueError(f"source is {source!r}; expected the name of the frame source")
    missing = [k for k in _RESULT_KEYS if k not in result]
    if missing:
        raise ValueError(f"result lacks {', '.join(missing)}; expected what Engine.infer() returns")
    missing = [k for k in _MODEL_KEYS if k not in model]
    if missing:
        raise ValueError(f"model lacks {', '.join(missing)}; expected Bundle.model_info()")
    return {
        "schema": SCHEMA,
        "seq": seq,
        "captured_at": float(captured_at),
        "source": source,
        "model": {k: model[k] for k in _MODEL_KEYS},
        "verdict": dict(result["verdict"]),
        "top_k": list(result["top_k"]),
        "detections": list(result["detections"]),
        "timings_ms": dict(result["timings_ms"]),
    }


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def check_result_message(message: Any) -> None:
    """Raise ValueError naming the field if `message` is not a greenlens.result/1 message (result.schema.json)."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(message))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ValueError(f"greenlens.result/1 message: field '{where}': {error.message}")
