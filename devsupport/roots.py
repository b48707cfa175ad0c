"""Greengrass roots for ggsim started in development, and the component user those runs use.

When ggsim runs as root (CI, the Docker image), component steps run as the component user
(ggc_user:ggc_group by default), as on a device. Two things follow for the tests, the benchmark and the demo:

* the root must be reachable by that user — pytest's ``tmp_path`` is not (``/tmp/pytest-of-root`` is mode
  0700), so `component_root` makes the root in a folder of its own under the system temporary folder, mode
  0755, and removes it afterwards;
* a component that runs the project's Python (``sys.executable``, the venv the component venvs are built
  from) needs that interpreter and the source tree readable by the component user. `python_component_user`
  says whether they are: the default user when so, else ``root:root`` — so the same suite runs on a machine
  whose Python lives under a private home (a pyenv under /root) — with the reason in `PYTHON_USER_REASON`.

Components that run only shell commands always run as the default user (root or not: as ggsim decides).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_USER = "ggc_user:ggc_group"
ROOT_USER = "root:root"


@contextlib.contextmanager
def component_root(name: str = "gg") -> Iterator[Path]:
    """A fresh Greengrass root path (not created) every component user can reach; removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="ggsim-root-"))
    try:
        parent.chmod(0o755)
        yield parent / name
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _others_may(path: Path, bit: int) -> tuple[bool, Path]:
    """Whether every folder on the way to ``path`` is enterable by others and ``path`` has ``bit`` for
    others; the first path that is not, otherwise ``path``."""
    path = Path(os.path.abspath(path))
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False, folder
    return bool(path.stat().st_mode & bit), path


def _python_blocker() -> Path | None:
    """The first folder or file that keeps another user from running this interpreter with this source."""
    interpreter = Path(os.path.realpath(sys.executable))
    checks = [(interpreter, stat.S_IXOTH), (Path(sys.prefix), stat.S_IXOTH),
              (Path(os.path.realpath(sys.base_prefix)), stat.S_IXOTH),
              (Path(__file__).resolve().parent.parent, stat.S_IXOTH)]
    for path, bit in checks:
        allowed, where = _others_may(path, bit)
        if not allowed:
            return where
    return None


_BLOCKER = _python_blocker() if os.geteuid() == 0 else None
#: Why components that run the project's Python run as root (empty when they run as the default user).
PYTHON_USER_REASON = (
    f"{_BLOCKER} is not reachable by other users, so components that run this Python ({sys.executable}) run "
    "as root" if _BLOCKER is not None else ""
)


def python_component_user() -> str:
    """The component user for runs whose components use this interpreter (see the module docstring)."""
    return ROOT_USER if _BLOCKER is not None else DEFAULT_USER
