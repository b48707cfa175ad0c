"""greenlens.Inference's engine: model bundles (model.json) → TFLite → verdict, top-k, detections."""

from .bundle import Bundle, BundleError, load_bundle
from .engine import Engine
from .message import build_result_message
from .preprocess import preprocess
from .runtime import RUNTIME

__all__ = [
    "RUNTIME",
    "Bundle",
    "BundleError",
    "Engine",
    "build_result_message",
    "load_bundle",
    "preprocess",
]
