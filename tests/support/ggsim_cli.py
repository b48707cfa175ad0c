"""`ggsim` driven as a person or a script drives it: `ggsim up` in its own process, every other command
through the `ggsim` command line (which talks to the core with the real awsiotsdk IPC client)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from devsupport.roots import python_component_user

GGSIM = [sys.executable, "-m", "ggsim.cli"]


def recipe(name: str, version: str, lifecycle: dict, config: dict | None = None) -> dict:
    doc = {"RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
           "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle}]}
    if config is not None:
        doc["ComponentConfiguration"] = {"DefaultConfiguration": config}
    return doc


class Ggsim:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[str] | None = None

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*GGSIM, "--root", str(self.root), *args], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"ggsim {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.run("--json", *args).stdout)

    def up(self, *args: str) -> None:
        info = self.root / "cli_ipc_info" / "ggsim.json"
        info.unlink(missing_ok=True)
        self.proc = subprocess.Popen([*GGSIM, "--root", str(self.root), "up", "--component-default-user",
                                      python_component_user(), *args], text=True,
                                     stderr=open(self.root.parent / "ggsim-up.log", "a"))
        deadline = time.monotonic() + 30
        while not info.exists():  # the core writes this file once it serves IPC
            assert self.proc.poll() is None, (self.root.parent / "ggsim-up.log").read_text()
            assert time.monotonic() < deadline, "ggsim up did not come up"
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9 the core, as a power cut or the OOM killer would stop the nucleus."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def down(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def write_recipes(folder: Path, *docs: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        (folder / f"{doc['ComponentName']}-{doc['ComponentVersion']}.yaml").write_text(yaml.safe_dump(doc))
    return folder


@contextlib.contextmanager
def running_ggsim(root: Path, *up_args: str) -> Iterator[Ggsim]:
    """`ggsim up` on ``root`` for the block; it must stop cleanly (exit 0 on SIGTERM) after it, and is killed
    if the block failed and it did not stop."""
    g = Ggsim(root)
    g.root.mkdir(parents=True, exist_ok=True)
    g.up(*up_args)
    try:
        yield g
    except BaseException:
        if g.proc and g.proc.poll() is None:
            try:
                g.down()
            except subprocess.TimeoutExpired:
                g.kill()
        raise
    if g.proc and g.proc.poll() is None:
        assert g.down() == 0


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
