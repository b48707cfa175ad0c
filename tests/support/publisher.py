"""Test-side helpers for greenlens.StreamPublisher: its process, a frame/result feeder over a real ring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from greenlens_common import messages
from greenlens_common.ipc import SOCKET_ENV, TOKEN_ENV
from greenlens_common.ring import RingWriter

from devsupport.ports import free_port

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO.parent / "shared" / "data" / "hotdog-photos"
COMPONENT_PATH = os.pathsep.join(str(REPO / "components" / p) for p in ("publisher", "common"))
MODEL = {"name": "test-model", "version": "1.0.0", "sha256": "a" * 64, "task": "classification"}


def photos(n: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    """``n`` real photos (hot dogs and others alternating), resized to width x height."""
    hot = sorted((PHOTOS / "hotdog").iterdir())
    other = sorted((PHOTOS / "not_hotdog").iterdir())
    out = []
    for i in range(n):
        path = (hot if i % 2 == 0 else other)[i // 2]
        image = cv2.imread(str(path))
        assert image is not None, f"cannot read {path}"
        out.append(cv2.resize(image, (width, height)))
    return out


def start_publisher(work_dir: Path, *args: str, env: dict[str, str] | None = None,
                    stdin: int | None = None) -> subprocess.Popen[str]:
    """The publisher as its own process, in ``work_dir`` (its spool goes there); stderr to work_dir/stderr.log.
    It gets no AWS_* variable of this process (as under a nucleus: only those ``env`` gives it)."""
    full_env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, SOCKET_ENV) and not k.startswith("AWS_")}
    full_env.update(PYTHONPATH=COMPONENT_PATH, **(env or {}))
    work_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "greenlens_publisher", *args], cwd=work_dir, env=full_env,
                            stdin=stdin, stdout=subprocess.PIPE,
                            stderr=open(work_dir / "stderr.log", "w"), text=True)  # noqa: SIM115


def stop_publisher(proc: subprocess.Popen[str], work_dir: Path) -> str:
    """Stop it (SIGTERM) and return its log; raises if it did not stop cleanly."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = (work_dir / "stderr.log").read_text()
    assert proc.returncode == 143, f"the publisher exited with {proc.returncode}, not 143 (SIGTERM):\n{log}"
    return log


def http_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` (an HTTP status, say) until it returns something truthy; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError as exc:  # the server is not up yet
            last_error = exc
        pause.wait(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


class Feeder:
    """Writes real photos into a real ring and builds the frame descriptors and results that go with them."""

    def __init__(self, ring_dir: Path, name: str = "test-frames", width: int = 320, height: int = 240,
                 slots: int = 4, source: str = "test-camera") -> None:
        self.ring = RingWriter(name, width=width, height=height, slot_count=slots, directory=ring_dir)
        self.source = source
        self.images = photos(8, width, height)
        self.seq = 0

    def frame(self) -> dict[str, Any]:
        self.seq += 1
        image = self.images[(self.seq - 1) % len(self.images)]
        captured_at = time.time()
        slot, slot_seq = self.ring.write(image, captured_at=captured_at)
        return messages.frame_message(source=self.source, seq=self.seq, captured_at=captured_at,
                                      width=image.shape[1], height=image.shape[0], dropped=0,
                                      ring=(self.ring.name, slot, slot_seq))

    def result(self, frame: dict[str, Any], present: bool, score: float | None = None) -> dict[str, Any]:
        score = (0.9 if present else 0.1) if score is None else score
        return messages.result_message(
            seq=frame["seq"], captured_at=frame["captured_at"], source=frame["source"], model=MODEL,
            verdict={"label": "hotdog", "present": present, "score": score},
            top_k=[{"index": 0, "label": "hotdog" if present else "not hotdog", "score": max(score, 1 - score)},
                   {"index": 1, "label": "not hotdog" if present else "hotdog", "score": min(score, 1 - score)}],
            timings_ms={"inference": 5.0, "total": 7.0})

    def close(self) -> None:
        self.ring.close()


class NoIpcPublisher:
    """The publisher with --no-ipc: messages written to its stdin, its IoT Core lines collected from stdout."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None, work: str = "work") -> None:
        self.ring_dir = tmp_path / "shm"
        self.ring_dir.mkdir(exist_ok=True)
        self.work = tmp_path / work
        self.port = free_port()
        self.proc = start_publisher(self.work, "--no-ipc", "--port", str(self.port), *args,
                                    env={"GREENLENS_RING_DIR": str(self.ring_dir), **(env or {})},
                                    stdin=subprocess.PIPE)
        self.cloud: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.cloud.append(json.loads(line))

    def send(self, topic: str, message: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"topic": topic, "message": message}) + "\n")
        self.proc.stdin.flush()

    def status(self) -> dict[str, Any]:
        return http_json(f"{self.url}/api/status")

    def wait_status(self, check: Any, what: str, timeout: float = 30) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            status = self.status()
            return status if check(status) else None

        return wait_until(ready, timeout, what)

    def stop(self) -> str:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        return stop_publisher(self.proc, self.work)
