"""Helpers shared by the benchmark sections: processes, percentiles, memory."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def rss_mb(pid: int) -> float:
    """Resident set size of one process, in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def python_process(args: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """This interpreter with ``args`` (e.g. ``-m bench.ipc_worker ...``), run from the repository root."""
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})}, cwd=REPO, text=True,
                            **kwargs)


class LoopThread:
    """An asyncio loop in a background thread, for an in-process simulator under load from other processes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# --- shared by the model / monolith / graph / frameplane / soak sections ---------------------------------

SHARED = REPO.parent / "shared"
BUNDLE = REPO / "components" / "model" / "bundles" / "efficientnet-lite0"
CLIP = REPO / "build" / "sample" / "hotdog-demo.avi"
WIDTH, HEIGHT = 640, 480
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sample_clip() -> Path:
    """The demo's sample clip (scripts/make_sample_clip.py; made from ../shared/data/hotdog-photos if missing)."""
    if not CLIP.is_file():
        made = subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample_clip.py"), "--out", str(CLIP)],
                              capture_output=True, text=True)
        if made.returncode != 0 or not CLIP.is_file():
            raise RuntimeError(f"no sample clip: {made.stderr.strip()}")
    return CLIP


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on this machine skews every figure)."""
    return [round(x, 2) for x in os.getloadavg()]


def stats_ms(values: list[float]) -> dict[str, float | None]:
    """p50 / p99 / mean of a list of milliseconds."""
    if not values:
        return {"p50": None, "p99": None, "mean": None, "n": 0}
    return {"p50": round(percentile(values, 50) or 0, 3), "p99": round(percentile(values, 99) or 0, 3),
            "mean": round(statistics.fmean(values), 3), "n": len(values)}


def _stat_ticks(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def descendants(root: int) -> list[int]:
    """Every live process below ``root``."""
    try:
        return [child.pid for child in psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return []


class ProcSampler:
    """Samples CPU time and RSS of named processes every ``interval`` s on a thread.

    ``pids`` maps a name to a pid, or a callable that returns the current {name: pid} (processes that come
    and go are picked up at each sample). ``window()`` marks the start of a measured window; ``summary()``
    gives, per process, CPU % over the window (100 % = one core), RSS first/last/max in the window and the
    kernel's peak RSS (VmHWM, over the process's life).
    """

    def __init__(self, pids: dict[str, int] | Any, interval: float = 0.5, keep_series: bool = False) -> None:
        self._pids = pids
        self.interval = interval
        self.keep_series = keep_series
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._start: dict[str, tuple[float, int]] = {}
        self._last: dict[str, tuple[float, int]] = {}
        self._rss: dict[str, list[float]] = {}
        self._hwm: dict[str, float] = {}
        self._pid_of: dict[str, int] = {}
        self.series: dict[str, list[tuple[float, float]]] = {}
        self._t0 = time.monotonic()
        self._machine0 = (time.monotonic(), *machine_ticks())
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ProcSampler:
        self._sample()
        self._thread.start()
        return self

    def _current(self) -> dict[str, int]:
        return dict(self._pids() if callable(self._pids) else self._pids)

    def _sample(self) -> None:
        now = time.monotonic()
        for name, pid in self._current().items():
            ticks = _stat_ticks(pid)
            rss = _status_kb(pid, "VmRSS")
            hwm = _status_kb(pid, "VmHWM")
            if ticks is None or rss is None:
                continue
            with self._lock:
                if self._pid_of.get(name) != pid:  # a new (or restarted) process under this name
                    self._pid_of[name] = pid
                    self._start[name] = (now, ticks)
                    self._rss[name] = []
                self._last[name] = (now, ticks)
                self._rss[name].append(rss / 1024)
                if hwm is not None:
                    self._hwm[name] = hwm / 1024
                if self.keep_series:
                    self.series.setdefault(name, []).append((round(now - self._t0, 1), round(rss / 1024, 1)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def window(self) -> None:
        """Start the measured window now (CPU and RSS figures count from here)."""
        self._sample()
        with self._lock:
            self._start = dict(self._last)
            self._rss = {name: values[-1:] for name, values in self._rss.items()}
            self._machine0 = (time.monotonic(), *machine_ticks())

    def summary(self) -> dict[str, dict[str, Any]]:
        self._sample()
        out = {}
        with self._lock:
            for name, (t1, ticks1) in self._last.items():
                t0, ticks0 = self._start.get(name, (t1, ticks1))
                rss = self._rss.get(name) or [0.0]
                out[name] = {
                    "pid": self._pid_of.get(name),
                    "cpu_percent": round((ticks1 - ticks0) / CLK_TCK / (t1 - t0) * 100, 1) if t1 > t0 else None,
                    "rss_mb_first": round(rss[0], 1), "rss_mb_last": round(rss[-1], 1),
                    "rss_mb_max": round(max(rss), 1), "peak_rss_mb_vmhwm": round(self._hwm.get(name, 0.0), 1),
                }
        return out

    def machine(self, ours: dict[str, dict[str, Any]]) -> dict[str, float]:
        """CPU of the whole machine over the window (100 % = one core) and the part not ours (other work)."""
        t0, busy0, _ = self._machine0
        busy1, _ = machine_ticks()
        wall = time.monotonic() - t0
        busy = (busy1 - busy0) / CLK_TCK / wall * 100 if wall > 0 else 0.0
        mine = sum(p["cpu_percent"] or 0 for p in ours.values())
        return {"machine_cpu_percent": round(busy, 1), "other_processes_cpu_percent": round(max(0.0, busy - mine), 1),
                "cores": os.cpu_count() or 0}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
