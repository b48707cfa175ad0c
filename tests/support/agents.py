"""Test-side control of ipc_agent.py processes: one per simulated component."""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

AGENT = Path(__file__).with_name("ipc_agent.py")


class IpcCallError(Exception):
    def __init__(self, type_: str, message: str | None) -> None:
        super().__init__(f"{type_}: {message}")
        self.type = type_
        self.message = message


class AgentProcess:
    """A separate process speaking IPC with the real awsiotsdk client, driven line by line."""

    def __init__(self, env: dict[str, str], api: str = "v2", timeout: float = 15.0, cwd: str | None = None) -> None:
        self.api = api
        self.timeout = timeout
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("SVCUID", "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")}
        full_env.update(env)
        self.proc = subprocess.Popen([sys.executable, str(AGENT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=full_env, cwd=cwd)
        self._ids = itertools.count(1)
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._streams: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.fatal: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the IPC agent process did not start")

    def _queue(self, table: dict[int, queue.Queue[dict[str, Any]]], key: int) -> queue.Queue[dict[str, Any]]:
        with self._lock:
            return table.setdefault(key, queue.Queue())

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "ready" in msg:
                self._ready.set()
            elif "fatal" in msg:
                self.fatal = msg["fatal"]
            elif "stream" in msg and "id" not in msg:
                self._queue(self._streams, msg["stream"]).put(msg)
            else:
                self._queue(self._replies, msg["id"]).put(msg)

    def _send(self, command: dict[str, Any]) -> dict[str, Any]:
        cid = next(self._ids)
        command["id"] = cid
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        try:
            reply = self._queue(self._replies, cid).get(timeout=self.timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer to {command['op']} within {self.timeout} s") from None
        if "error" in reply:
            raise IpcCallError(reply["error"]["type"], reply["error"]["message"])
        return reply["ok"]

    def call(self, op: str, request: dict[str, Any] | None = None, api: str | None = None) -> Any:
        """Run one operation; the response payload (or, for subscriptions, (stream id, payload))."""
        result = self._send({"op": op, "request": request or {}, "api": api or self.api})
        if "stream" in result:
            return result["stream"], result["response"]
        return result["response"]

    def close_stream(self, stream: int) -> None:
        self._send({"op": "close_stream", "stream": stream})

    def next_event(self, stream: int, timeout: float | None = None) -> dict[str, Any]:
        """The next thing that happened on a stream: {"event": ...}, {"error": ...} or {"closed": True}."""
        try:
            return self._queue(self._streams, stream).get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise TimeoutError(f"nothing arrived on stream {stream}") from None

    def no_event(self, stream: int, within: float) -> bool:
        """True when nothing arrives on the stream within `within` seconds (to assert a non-delivery)."""
        try:
            self._queue(self._streams, stream).get(timeout=within)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
