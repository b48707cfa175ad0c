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

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenlens_common import topics

from .verdict import RULES

log = logging.getLogger("greenlens.inference.config")


class ConfigError(ValueError):
    """A configuration value that is not usable; the text names the key, the value and what is expected."""


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
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"configuration is a {type(mapping).__name__}, expected an object of keys")
        changes: dict[str, Any] = {}
        for key, value in mapping.items():
            spec = _KEYS.get(key)
            if spec is None:
                log.warning("configuration key %r is unknown, ignored (known: %s)", key, ", ".join(sorted(_KEYS)))
                continue
            field, parse = spec
            changes[field] = parse(key, value)
        return dataclasses.replace(self, **changes)


def _int(minimum: int, maximum: int) -> Any:
    def parse(key: str, value: Any) -> int:
        expected = f"an integer from {minimum} to {maximum}"
        number = value
        if isinstance(number, str):
            try:
                number = float(number.strip())
            except ValueError:
                raise ConfigError(f"configuration {key}={value!r}: expected {expected}") from None
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) \
                or float(number) != int(number) or not minimum <= number <= maximum:
            raise ConfigError(f"configuration {key}={value!r}: expected {expected}")
        return int(number)
    return parse


def _threshold(key: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    number = value
    if isinstance(number, str):
        try:
            number = float(number.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) \
            or not 0.0 <= number <= 1.0:
        raise ConfigError(f"configuration {key}={value!r}: expected a number from 0 to 1 (or empty for model.json's)")
    return float(number)


def _rule(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if value not in RULES:
        raise ConfigError(f"configuration {key}={value!r}: expected one of {', '.join(RULES)} "
                          "(or empty for model.json's)")
    return str(value)


def _optional_text(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"configuration {key}={value!r}: expected a non-empty string (or empty for model.json's)")
    return value.strip()


def _model_dir(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"configuration {key}={value!r}: expected the path of a model bundle folder")
    return value.strip()


def _topic(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "#+"):
        raise ConfigError(f"configuration {key}={value!r}: expected a topic name without wildcards (# or +)")
    return value.strip()


_KEYS: dict[str, tuple[str, Any]] = {
    "modelDir": ("model_dir", _model_dir),
    "threads": ("threads", _int(1, 64)),
    "threshold": ("threshold", _threshold),
    "rule": ("rule", _rule),
    "labelOfInterest": ("label_of_interest", _optional_text),
    "topK": ("top_k", _int(0, 1000)),
    "framesTopic": ("frames_topic", _topic),
    "resultsTopic": ("results_topic", _topic),
    "eventsTopic": ("events_topic", _topic),
}
CONFIG_KEYS = tuple(_KEYS)
