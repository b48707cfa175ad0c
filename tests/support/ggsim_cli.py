"""`ggsim` driven as a person or a script drives it: `ggsim up` in its own process, every other command
through the `ggsim` command line (which talks to the core with the real awsiotsdk IPC client)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

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
        self.proc = subprocess.Popen([*GGSIM, "--root", str(self.root), "up", *args], text=True,
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


def running_ggsim(root: Path, *up_args: str) -> Iterator[Ggsim]:
    """For a fixture: `ggsim up` on ``root`` for the test, stopped (and checked to stop cleanly) after it."""
    g = Ggsim(root)
    g.root.mkdir()
    g.up(*up_args)
    yield g
    if g.proc and g.proc.poll() is None:
        assert g.down() == 0
