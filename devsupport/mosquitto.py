"""A real Mosquitto broker on 127.0.0.1 (Debian's mosquitto, installed by `make setup`), for the tests and the
benchmark."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .ports import free_port


class MosquittoNotFound(RuntimeError):
    """mosquitto is not installed on this machine."""


def find_mosquitto() -> str:
    """The mosquitto program's path; MosquittoNotFound when it is not installed."""
    path = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)
    if path is None:
        raise MosquittoNotFound("mosquitto is not installed: scripts/bootstrap.sh (make setup) installs it")
    return path


class Mosquitto:
    """A broker listening on a free port of 127.0.0.1 (``url``), its configuration, persistence and log
    (``log``) in ``workdir``; started at once, :meth:`stop` and :meth:`start` again (persistent sessions
    keep their queued messages across the restart)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                        f"persistence_location {workdir}/\nuser {getpass.getuser()}\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._cmd = [find_mosquitto(), "-c", str(conf)]
        self.start()

    def start(self, timeout: float = 10.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self._cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)  # polling a port that is coming up
        raise TimeoutError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
