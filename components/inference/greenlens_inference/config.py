"""greenlens.Inference's configuration: its keys, their defaults, and clear errors for bad values.

Component configuration keys (recipe ``ComponentConfiguration.DefaultConfiguration``):

=====================  ======================  ==================================================================
key                    default                 meaning
=====================  ======================  ==================================================================
modelDir               (``--model-dir``)       the model bundle folder (holds model.json), or a folder holding
                                               exactly one bundle folder; a change loads the new model
threads                1                       CPU threads of the TensorFlow Lite interpreter
threshold              (model.json's)          verdict threshold, 0..1 (used by rule ``threshold``)
rule                   (model.json's)          verdict rule: ``top1`` or ``threshold``
labelOfInterest        (model.json's)          class the verdict is about: a line of labels.txt or one of its
                                               comma-separated names (``hotdog``, ``cheeseburger``, ``face``)
topK                   5                       classes listed in each result's ``top_k``
framesTopic            ``greenlens/frames``    local topic of the ``greenlens.frame/1`` descriptors
resultsTopic           ``greenlens/results``   local topic the ``greenlens.result/1`` messages go to
eventsTopic            ``greenlens/events``    local topic of ``greenlens.event/1`` (model loaded / refused)
=====================  ======================  ==================================================================

An empty string or null for threshold, rule or labelOfInterest means "model.json's".
Every key is applied without a restart. Numbers may arrive as floats (1 -> 1.0) or numeric strings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenlens_common import topics
from greenlens_common.config import ConfigError, KeyTable, in_range, nonempty_text, optional

from .verdict import RULES

log = logging.getLogger("greenlens.inference.config")


@dataclass(frozen=True)
class InferenceConfig:
    model_dir: str | None = None
    threads: int = 1
    threshold: float | None = None
    rule: str | None = None
    label_of_interest: str | None = None
    top_k: int = 5
    frames_topic: str = topics.FRAMES
    results_topic: str = topics.RESULTS
    events_topic: str = topics.EVENTS

    def updated(self, mapping: Mapping[str, Any]) -> InferenceConfig:
        """This configuration with the keys of ``mapping`` (component configuration names) applied."""
        return _KEYS.updated(self, mapping)


def _int(minimum: int, maximum: int) -> Any:
    return in_range(minimum, maximum, integer=True, expected=f"an integer from {minimum} to {maximum}")


def _rule(key: str, value: Any) -> str:
    if value not in RULES:
        raise ConfigError(f"configuration {key}={value!r}: expected one of {', '.join(RULES)} "
                          "(or empty for model.json's)")
    return str(value)


def _topic(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "#+"):
        raise ConfigError(f"configuration {key}={value!r}: expected a topic name without wildcards (# or +)")
    return value.strip()


_KEYS = KeyTable(log, {
    "modelDir": ("model_dir", optional(nonempty_text("the path of a model bundle folder"))),
    "threads": ("threads", _int(1, 64)),
    "threshold": ("threshold", optional(in_range(0.0, 1.0, expected="a number from 0 to 1 (or empty for "
                                                                     "model.json's)"))),
    "rule": ("rule", optional(_rule)),
    "labelOfInterest": ("label_of_interest", optional(nonempty_text("a non-empty string (or empty for "
                                                                    "model.json's)"))),
    "topK": ("top_k", _int(0, 1000)),
    "framesTopic": ("frames_topic", _topic),
    "resultsTopic": ("results_topic", _topic),
    "eventsTopic": ("events_topic", _topic),
})
CONFIG_KEYS = _KEYS.names
