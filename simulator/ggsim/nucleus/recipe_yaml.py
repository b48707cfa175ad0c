"""YAML recipes read so that ggsim never accepts what the nucleus would read differently.

The nucleus reads recipes with Jackson's YAML module, which walks SnakeYAML's parser events without
SnakeYAML's composer: an anchor (`&name`) is dropped, an alias (`*name`) becomes the plain string `name`,
and the merge key `<<` is an ordinary key. PyYAML would expand aliases and merge `<<` mappings, so the same
file would mean two different things. `load_recipe_yaml` therefore refuses every alias and every merge key
with an error naming it and where it is (anchors alone are harmless: both read the value they mark).

Refusing aliases also refuses alias bombs ("billion laughs") at the first alias, before anything grows,
and the nesting depth is bounded so that a deeply nested file is refused instead of exhausting the stack.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent

__all__ = ["MAX_NESTING_DEPTH", "RecipeYamlError", "load_recipe_yaml"]

#: Deepest nesting of mappings and sequences a recipe may use (far beyond any real recipe).
MAX_NESTING_DEPTH = 100


class RecipeYamlError(ValueError):
    """YAML that ggsim refuses; `line` and `column` are 1-based (0 when unknown)."""

    def __init__(self, reason: str, line: int = 0, column: int = 0) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        where = f" at line {line}, column {column}" if line else ""
        super().__init__(f"{reason}{where}")


def _position(mark: yaml.Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)


class _NucleusFaithfulLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, merge keys and nesting deeper than MAX_NESTING_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            line, column = _position(event.start_mark)
            raise RecipeYamlError(
                f"YAML alias *{event.anchor} is not supported: the Greengrass nucleus reads recipes with Jackson, "
                f"which does not expand aliases (it would read *{event.anchor} as the string "
                f"{event.anchor!r}); write the value out in full", line, column)
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_NESTING_DEPTH:
                line, column = _position(event.start_mark)
                raise RecipeYamlError(f"the recipe nests mappings and lists more than {MAX_NESTING_DEPTH} deep",
                                      line, column)
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                line, column = _position(key_node.start_mark)
                raise RecipeYamlError(
                    "YAML merge key << is not supported: the Greengrass nucleus reads it as an ordinary key named "
                    "'<<' and merges nothing; write the keys out in full", line, column)
        super().flatten_mapping(node)


def load_recipe_yaml(text: str) -> Any:
    """Parse one YAML document as the nucleus would, or raise `RecipeYamlError` (or `yaml.YAMLError`)."""
    loader = _NucleusFaithfulLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
