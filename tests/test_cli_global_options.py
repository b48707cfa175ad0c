"""`ggsim up --root DIR` works as `ggsim --root DIR up`: the global options are accepted after any command."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from ggsim.cli import main

from tests.support.ggsim_cli import GGSIM


def every_command(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += every_command(command, (*path, name))
    return found


def test_up_and_the_commands_take_root_and_json_after_the_command(tmp_path: Path) -> None:
    root = tmp_path / "root"
    info = root / "cli_ipc_info" / "ggsim.json"
    up = subprocess.Popen([*GGSIM, "up", "--root", str(root), "--thing-name", "cam-9"], text=True,
                          stderr=open(tmp_path / "ggsim-up.log", "w"))
    try:
        deadline = time.monotonic() + 30
        while not info.exists():  # the core writes this file once it serves IPC
            assert up.poll() is None, (tmp_path / "ggsim-up.log").read_text()
            assert time.monotonic() < deadline, "ggsim up --root did not come up on that root"
            time.sleep(0.05)
        after = subprocess.run([*GGSIM, "component", "list", "--root", str(root), "--json"], capture_output=True,
                               text=True, timeout=60)
        before = subprocess.run([*GGSIM, "--root", str(root), "--json", "component", "list"], capture_output=True,
                                text=True, timeout=60)
        assert after.returncode == 0, after.stderr
        assert json.loads(after.stdout) == json.loads(before.stdout)
        listed = subprocess.run([*GGSIM, "deployment", "--root", str(root), "list", "--json"],
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list), listed.stderr
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)


@pytest.mark.parametrize("command", every_command(main), ids=" ".join)
def test_every_command_accepts_every_global_option_after_it(command: tuple[str, ...], tmp_path: Path) -> None:
    runner = CliRunner()
    for option in (["--root", str(tmp_path)], ["--json"]):
        result = runner.invoke(main, [*command, *option, "--help"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, [*command, "--version"])
    assert result.exit_code == 0 and "ggsim, version" in result.output, result.output


def test_a_root_after_the_command_wins_and_is_named_in_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--root", str(tmp_path / "a"), "component", "list", "--root",
                                       str(tmp_path / "b")])
    assert result.exit_code == 3
    assert str(tmp_path / "b") in result.output and str(tmp_path / "a") not in result.output
