"""Floods against a real `ggsim up`: memory and file descriptors stay bounded and the CLI still answers.

Other local users need no token to open the IPC socket; these tests do what they could, from other
processes, and look at ggsim from outside (psutil, the CLI, its log).
"""

from __future__ import annotations

import resource
import select
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.ipc.test_hostile_clients import max_size_frame
from tests.support.ggsim_cli import Ggsim

MIB = 1024 * 1024


@pytest.fixture
def ggsim(tmp_path: Path):
    g = Ggsim(tmp_path / "root")
    g.root.mkdir()
    g.up()
    yield g
    g.down()


def socket_path(g: Ggsim) -> str:
    return str(g.root / "ipc.socket")


def test_forty_token_less_clients_sending_the_largest_frame_do_not_grow_ggsim(ggsim: Ggsim) -> None:
    core = psutil.Process(ggsim.proc.pid)
    before = core.memory_info().rss
    big = max_size_frame()[:-1]  # all but the last byte: the server would have to keep the rest waiting
    clients = []
    for _ in range(40):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(20)
        sock.connect(socket_path(ggsim))
        try:
            sock.sendall(big)
        except (BrokenPipeError, ConnectionResetError):
            pass  # ggsim closed it at the prelude
        clients.append(sock)
    grown = core.memory_info().rss - before
    assert grown < 64 * MIB, f"ggsim grew by {grown / MIB:.0f} MiB"
    assert ggsim.json("component", "list") is not None
    for sock in clients:
        sock.close()


FLOOD = textwrap.dedent("""\
    import socket, sys
    path, count = sys.argv[1], int(sys.argv[2])
    held = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)  # blocking: waits while ggsim's accept backlog is full
        held.append(sock)
    print(len(held), flush=True)
    sys.stdin.read()  # hold them until told to go
""")


def test_more_idle_connections_than_file_descriptors_leave_the_cli_working(ggsim: Ggsim, tmp_path: Path) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)  # ggsim inherits this process's limit
    if soft == resource.RLIM_INFINITY or soft > 30_000:
        pytest.skip(f"a file-descriptor limit of {soft} is more than a test should flood")
    total = soft + 1000  # 21,000 with the usual limit of 20,000
    log = tmp_path / "ggsim-up.log"
    log_before = log.stat().st_size
    per_process = total // 2 + 1
    floods = [subprocess.Popen([sys.executable, "-c", FLOOD, socket_path(ggsim), str(per_process)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        for flood in floods:  # every connection made, or (ggsim out of descriptors) the deadline passed
            assert flood.stdout is not None
            select.select([flood.stdout], [], [], max(0.0, deadline - time.monotonic()))
        fds = psutil.Process(ggsim.proc.pid).num_fds()
        assert fds < soft - 100, f"ggsim holds {fds} file descriptors of {soft}"
        listed = ggsim.json("component", "list")
        assert isinstance(listed, list)
    finally:
        for flood in floods:
            flood.kill()
            flood.wait()
    grown = log.stat().st_size - log_before
    assert grown < MIB, f"ggsim's log grew {grown} bytes during the flood"
