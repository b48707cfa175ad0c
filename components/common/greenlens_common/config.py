"""Component configuration values: parsers that name the key, the value and what is expected, and the key table.

Each component declares a frozen dataclass of its settings and a :class:`KeyTable` mapping its component
configuration keys (recipe ``ComponentConfiguration``) to the dataclass fields, each with a parser
``parse(key, value) -> value`` that raises :class:`ConfigError`.

Numbers may arrive as floats (1 -> 1.0) or numeric strings; the parsers accept both when they mean the same.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

Parser = Callable[[str, Any], Any]
"""``parse(key, value)``: the value to store, or ConfigError naming the key and the value."""

C = TypeVar("C")


class ConfigError(ValueError):
    """A configuration value that is not usable; the text names the key, the value and what is expected."""


class KeyTable:
    """Component configuration keys -> (dataclass field, parser), and how they update a configuration."""

    def __init__(self, log: logging.Logger, keys: dict[str, tuple[str, Parser]]) -> None:
        self.log = log
        self.keys = keys

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.keys)

    def updated(self, config: C, mapping: Mapping[str, Any]) -> C:
        """``config`` with the keys of ``mapping`` (component configuration names) applied.

        Unknown keys are logged (a warning) and ignored; a bad value raises ConfigError.
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"configuration is a {type(mapping).__name__}, expected an object of keys")
        changes: dict[str, Any] = {}
        for key, value in mapping.items():
            spec = self.keys.get(key)
            if spec is None:
                self.log.warning("configuration key %r is unknown, ignored (known: %s)", key,
                                 ", ".join(sorted(self.keys)))
                continue
            field, parse = spec
            changes[field] = parse(key, value)
        return dataclasses.replace(config, **changes)  # type: ignore[type-var]

    def as_keys(self, config: object) -> dict[str, Any]:
        """``config`` under its component configuration key names."""
        return {key: getattr(config, field) for key, (field, _) in self.keys.items()}


# -- parsers


def number(key: str, value: Any, *, minimum: float, integer: bool = False) -> float:
    expected = f"{'an integer' if integer else 'a number'} >= {minimum:g}"
    if isinstance(value, bool):
        raise ConfigError(f"configuration {key}={value!r}: expected {expected}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"configuration {key}={value!r}: expected {expected}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"configuration {key}={value!r}: expected {expected}")
    if integer and float(value) != int(value):
        raise ConfigError(f"configuration {key}={value!r}: expected {expected}")
    if value < minimum:
        raise ConfigError(f"configuration {key}={value!r}: expected {expected}")
    return float(value)


def integer(minimum: int, maximum: int | None = None) -> Parser:
    """An integer >= minimum (and <= maximum when given)."""
    def parse(key: str, value: Any) -> int:
        n = int(number(key, value, minimum=minimum, integer=True))
        if maximum is not None and n > maximum:
            raise ConfigError(f"configuration {key}={value!r}: expected an integer from {minimum} to {maximum}")
        return n
    return parse


def real(minimum: float, positive: bool = True) -> Parser:
    """A number >= minimum (and > 0 when ``positive``)."""
    def parse(key: str, value: Any) -> float:
        x = number(key, value, minimum=minimum)
        if positive and x <= 0:
            raise ConfigError(f"configuration {key}={value!r}: expected a number > 0")
        return x
    return parse


def in_range(minimum: float, maximum: float, *, expected: str, integer: bool = False) -> Parser:
    """A number (an integer when ``integer``) from minimum to maximum; any other value is "expected ..."."""
    def parse(key: str, value: Any) -> Any:
        x = value
        if isinstance(x, str):
            try:
                x = float(x.strip())
            except ValueError:
                x = None
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) \
                or (integer and float(x) != int(x)) or not minimum <= x <= maximum:
            raise ConfigError(f"configuration {key}={value!r}: expected {expected}")
        return int(x) if integer else float(x)
    return parse


def nonempty_text(expected: str = "a non-empty string") -> Parser:
    """A string that is not blank, stripped."""
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"configuration {key}={value!r}: expected {expected}")
        return value.strip()
    return parse


text = nonempty_text()


def optional(parse: Parser) -> Parser:
    """``parse``, but None or an empty string is None (the default applies)."""
    def parse_optional(key: str, value: Any) -> Any:
        if value is None or value == "":
            return None
        return parse(key, value)
    return parse_optional
