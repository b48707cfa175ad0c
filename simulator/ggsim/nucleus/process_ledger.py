"""The component processes a ggsim runs, recorded under its root, so that the next ggsim can stop what a
killed one left behind.

The nucleus runs its components under a service unit whose control group dies with it; a ggsim killed
with SIGKILL leaves its components' process groups running (each lifecycle script leads its own group).
``RecordingRunner`` (a ProcessRunner) writes every script it starts to ``<root>/ggsim-processes.json``
(component, step, pid = process group id, start time); ``ProcessLedger.stop_leftovers`` at start-up stops
(SIGTERM, then SIGKILL after a grace period) every recorded group still alive — checking each process's
start time against the recorded one, so a pid the system has since given to another program is left
alone — and then forgets them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from ggsim.files import write_atomically

from .process import ProcessRunner, ScriptProcess

__all__ = ["ProcessLedger", "RecordingRunner"]

log = logging.getLogger(__name__)

#: psutil's create_time is rounded differently from one read to the next by at most this much.
START_TIME_SLACK = 0.05


class ProcessLedger:
    """``<root>/ggsim-processes.json``: the process groups of the component scripts this root runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[dict[str, Any]] = []

    def record(self, component: str, step: str, pid: int) -> None:
        try:
            started = psutil.Process(pid).create_time()
        except psutil.Error:
            return  # already gone
        self._entries = [e for e in self._entries if _alive_group(e)]
        self._entries.append({"component": component, "step": step, "pid": pid, "started": started})
        self._write()

    def stop_leftovers(self, grace: float = 5.0) -> list[dict[str, Any]]:
        """Stop the recorded process groups that still run (left by a ggsim that was killed); returns them."""
        entries = self._read()
        left: list[tuple[dict[str, Any], list[psutil.Process]]] = []
        for entry in entries:
            members = _group_members(entry)
            if members:
                left.append((entry, members))
        for entry, members in left:
            log.warning("stopping %s's %s (process group %s), left running by a ggsim that was killed",
                        entry.get("component"), entry.get("step"), entry.get("pid"))
            _signal_all(members, signal.SIGTERM)
            _signal_all(members, signal.SIGCONT)
        procs = [p for _, members in left for p in members]
        _gone, alive = psutil.wait_procs(procs, timeout=grace)
        _signal_all(alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=grace)
        self._entries = []
        self._write()
        return [entry for entry, _ in left]

    def _read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s); ignoring it", self.path, exc)
            return []
        if not isinstance(data, list):
            return []
        return [e for e in data if isinstance(e, dict) and isinstance(e.get("pid"), int)
                and isinstance(e.get("started"), (int, float))]

    def _write(self) -> None:
        try:
            write_atomically(self.path, json.dumps(self._entries, indent=1))
        except OSError as exc:
            log.error("cannot write %s: %s", self.path, exc)


def _group_members(entry: dict[str, Any]) -> list[psutil.Process]:
    """The live processes of the entry's group that started no earlier than its leader did."""
    pgid = int(entry["pid"])
    started = float(entry["started"])
    try:
        leader = psutil.Process(pgid)
        if abs(leader.create_time() - started) > START_TIME_SLACK:
            leader = None  # the pid now belongs to another program
    except psutil.Error:
        leader = None
    members: list[psutil.Process] = []
    for proc in psutil.process_iter(["create_time"]):
        try:
            if os.getpgid(proc.pid) != pgid or proc.info["create_time"] + START_TIME_SLACK < started:
                continue
            if proc.pid == pgid and leader is None:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    if leader is not None:
        try:  # descendants that left the group still belong to the component
            for child in leader.children(recursive=True):
                if child not in members:
                    members.append(child)
        except psutil.Error:
            pass
    return members


def _alive_group(entry: dict[str, Any]) -> bool:
    try:
        os.killpg(int(entry["pid"]), 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


class RecordingRunner(ProcessRunner):
    """A ProcessRunner that records every script it starts in a ProcessLedger."""

    def __init__(self, *args: Any, ledger: ProcessLedger, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ledger

    async def start(self, component: str, step: str, script: str, **kwargs: Any) -> ScriptProcess:
        process = await super().start(component, step, script, **kwargs)
        self.ledger.record(component, step, process.pid)
        return process
