"""devsupport's Mosquitto for a test: skipped when mosquitto is not installed (a failure in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devsupport.mosquitto import Mosquitto as _Mosquitto
from devsupport.mosquitto import MosquittoNotFound


class Mosquitto(_Mosquitto):
    def __init__(self, workdir: Path) -> None:
        try:
            super().__init__(workdir)
        except MosquittoNotFound as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(str(exc))
            pytest.skip(str(exc))
