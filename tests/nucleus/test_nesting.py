"""Configuration nested deeper than the limit is refused, naming it, and effectiveConfig.yaml keeps being written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ggsim.nucleus.config import ConfigStore, InvalidUpdateError
from ggsim.nucleus.nesting import MAX_NESTING_DEPTH


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_a_value_400_deep_is_refused_and_later_writes_of_effective_config_still_work(tmp_path: Path) -> None:
    effective = tmp_path / "config" / "effectiveConfig.yaml"
    store = ConfigStore(effective)
    store.replace("com.example.Deep", {"threshold": 1})
    with pytest.raises(InvalidUpdateError, match=f"deeper than the limit of {MAX_NESTING_DEPTH} levels"):
        store.update("com.example.Deep", ["deep"], nested(400), 2e9)
    with pytest.raises(ValueError, match="configuration of com.example.Deep: nests deeper than the limit"):
        store.replace("com.example.Deep", {"deep": nested(400)})
    store.update("com.example.Deep", ["at", "the"], nested(MAX_NESTING_DEPTH - 2), 2e9)  # path included
    with pytest.raises(InvalidUpdateError):
        store.update("com.example.Deep", ["at", "the"], nested(MAX_NESTING_DEPTH - 1), 2e9)
    store.flush()
    written = yaml.safe_load(effective.read_text())["services"]["com.example.Deep"]["configuration"]
    assert written["threshold"] == 1 and "deep" not in written and "at" in written
