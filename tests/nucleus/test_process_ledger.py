"""The process groups a ggsim runs: the next ggsim stops what a killed one left, and nothing else."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
from ggsim.nucleus.process_ledger import ProcessLedger


def test_leftovers_are_stopped_but_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    left = subprocess.Popen(["sh", "-c", "sleep 600 & exec sleep 600"], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        ledger = ProcessLedger(tmp_path / "ggsim-processes.json")
        ledger.record("test.Left", "Run", left.pid)
        ledger.record("test.Stranger", "Run", stranger.pid)
        # As if the recorded program had ended and the system had given its pid to another one.
        entries = json.loads(ledger.path.read_text())
        entries[1]["started"] -= 100
        ledger.path.write_text(json.dumps(entries))
        group = _wait_for_group_child(left.pid)

        stopped = ProcessLedger(ledger.path).stop_leftovers(grace=5)

        assert [e["component"] for e in stopped] == ["test.Left"]
        assert left.wait(5) is not None
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in group)
        assert stranger.poll() is None
        assert json.loads(ledger.path.read_text()) == []
    finally:
        for proc in (left, stranger):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait_for_group_child(pgid: int) -> list[psutil.Process]:
    """The background child the leader's shell forks (it may not have yet when Popen returns)."""
    deadline = time.monotonic() + 10
    while True:
        group = [p for p in psutil.process_iter() if p.pid != pgid and _pgid(p.pid) == pgid]
        if group:
            return group
        assert time.monotonic() < deadline, "the leftover's background child did not start"
        time.sleep(0.02)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
