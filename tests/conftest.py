"""Fixtures for every test.

``tmp_path`` is pytest's, made enterable by other users when the tests run as root: ggsim then runs component
steps as the component user (ggc_user), who must reach a root placed under ``tmp_path`` (and the scripts a
test puts there). pytest makes ``/tmp/pytest-of-root`` and every folder below it 0700; here the folders from
there down to the test's own get the execute bit for group and others (0711: enterable by name, not
listable). Components still cannot write there (tests give them a 0777 folder when they must); pytest sets
``/tmp/pytest-of-root`` back to 0700 at the next session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def tmp_path(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() == 0:
        top = tmp_path_factory.getbasetemp().parent  # /tmp/pytest-of-root
        for folder in (tmp_path, *tmp_path.parents):
            folder.chmod(folder.stat().st_mode | 0o011)
            if folder == top:
                break
    return tmp_path


def pytest_report_header() -> str | None:
    """Say when components that run this Python run as root instead of the component user (devsupport.roots)."""
    from devsupport.roots import PYTHON_USER_REASON

    return PYTHON_USER_REASON or None
