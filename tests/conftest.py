"""Shared pytest set-up: make the components' packages importable as their artifacts would be."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for _component in sorted((REPO / "components").glob("*/")):
    if str(_component) not in sys.path:
        sys.path.insert(0, str(_component))
