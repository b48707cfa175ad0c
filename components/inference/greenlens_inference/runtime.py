"""The TensorFlow Lite interpreter: ai-edge-litert first, tflite-runtime as a fallback."""

from __future__ import annotations

from typing import Any

try:  # ai-edge-litert (numpy 2.x); correct on every model file of shared/model/README.md
    from ai_edge_litert.interpreter import Interpreter as _Interpreter

    RUNTIME = "ai-edge-litert"
except ImportError:  # pragma: no cover - only where ai-edge-litert is not installed
    try:
        from tflite_runtime.interpreter import Interpreter as _Interpreter  # type: ignore[no-redef]

        RUNTIME = "tflite-runtime"
    except ImportError:
        _Interpreter = None
        RUNTIME = "none"


class RuntimeMissingError(ImportError):
    """Neither ai-edge-litert nor tflite-runtime is installed."""


def make_interpreter(model_content: bytes, threads: int) -> Any:
    """An allocated interpreter for the model bytes, running on `threads` CPU threads."""
    if _Interpreter is None:
        raise RuntimeMissingError(
            "no TensorFlow Lite runtime: install ai-edge-litert==2.3.0 (or tflite-runtime==2.14.0 with numpy<2)"
        )
    interpreter = _Interpreter(model_content=model_content, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter
