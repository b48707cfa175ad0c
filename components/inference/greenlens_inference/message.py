"""The greenlens.result/1 message of an :meth:`Engine.infer` result (the contract: greenlens_common.messages).

    {"schema": "greenlens.result/1", "seq", "captured_at", "source",
     "model": {"name", "version", "sha256", "task"},
     "verdict": {"label", "present", "score"}, "top_k": [...], "detections": [...], "timings_ms": {...}}

Consumers accept any greenlens.result/1.x and ignore fields they do not know (design §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from greenlens_common import messages


def build_result_message(
    result: Mapping[str, Any], model: Mapping[str, Any], *, seq: int, captured_at: float, source: str
) -> dict[str, Any]:
    """The message (validated; MessageError names a field that breaks the contract) for an Engine.infer()
    ``result`` of frame ``seq`` captured at ``captured_at`` (epoch seconds) from ``source`` (the camera or
    file), with ``model`` = Bundle.model_info()."""
    return messages.result_message(
        seq=seq, captured_at=captured_at, source=source, model=model,
        verdict=result["verdict"], top_k=result["top_k"], detections=result["detections"],
        timings_ms=result["timings_ms"],
    )
