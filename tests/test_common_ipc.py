"""greenlens_common.ipc: no call waits forever, and a process outside a nucleus is told so clearly."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from greenlens_common.ipc import SOCKET_ENV, TOKEN_ENV, Ipc, IpcError, ipc_available


def test_outside_a_nucleus_connect_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert not ipc_available()
    with pytest.raises(IpcError, match=rf"\${SOCKET_ENV} is not set: .* --no-ipc"):
        Ipc.connect(timeout=1)


def test_a_nucleus_that_never_answers_times_out(tmp_path: Path) -> None:
    path = tmp_path / "silent.socket"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)  # accepts connections, never answers the CONNECT
    try:
        started = time.monotonic()
        with pytest.raises(IpcError, match=rf"no answer from the nucleus at {path} within 1 s"):
            Ipc.connect(timeout=1, socket_path=str(path), token="token")
        assert time.monotonic() - started < 10
    finally:
        server.close()


def test_no_socket_at_all_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.socket"
    with pytest.raises(IpcError, match=rf"IPC connect to {path} failed"):
        Ipc.connect(timeout=2, socket_path=str(path), token="token")


def test_update_state_refuses_states_the_nucleus_does_not_know() -> None:
    with pytest.raises(IpcError, match="state 'BROKEN' is not valid: expected RUNNING or ERRORED"):
        Ipc(client=None).update_state("BROKEN")
