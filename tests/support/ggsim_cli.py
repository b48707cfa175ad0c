"""A real `ggsim up` in its own process, deployments through it, and the records components write."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.test_cli import Ggsim


@contextlib.contextmanager
def running_ggsim(folder: Path, *up_args: str) -> Iterator[Ggsim]:
    """`ggsim up` on `folder`/root, stopped (SIGTERM) at the end."""
    ggsim = Ggsim(folder / "root")
    ggsim.root.mkdir(exist_ok=True)
    ggsim.up(*up_args)
    try:
        yield ggsim
    finally:
        ggsim.down()


def deploy(ggsim: Ggsim, recipes: Path, *args: str) -> dict:
    """`ggsim deployment create --wait`: its JSON status (the command exits 1 when the deployment failed)."""
    result = ggsim.run("--json", "deployment", "create", "--recipeDir", str(recipes), *args,
                       "--wait", "--timeout", "60", check=False)
    return json.loads(result.stdout)


def wait_for_records(path: Path, done: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
    """The JSON lines a component wrote to `path`, once `done(records)` holds (waits until it does)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        records = [json.loads(line) for line in lines if line.endswith("}")]
        if done(records):
            return records
        assert time.monotonic() < deadline, f"{path}: still not there after {timeout} s: {records}"
        time.sleep(0.05)


def wait_for_lines(path: Path, count: int, timeout: float = 30.0) -> list[dict]:
    """The first `count` JSON lines a component wrote to `path`."""
    return wait_for_records(path, lambda records: len(records) >= count, timeout)[:count]
