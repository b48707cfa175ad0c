"""greenlens_common.ipc: no call waits forever, and a process outside a nucleus is told so clearly."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from greenlens_common.ipc import SOCKET_ENV, TOKEN_ENV, Ipc, IpcError, ipc_available

from tests.ipc.conftest import ALL_PUBSUB, Core
from tests.ipc.conftest import core as core  # noqa: F401 - the fixture


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


def test_a_publish_that_does_not_wait_reports_its_failure_on_the_next_call(core: Core) -> None:
    # Results go out with publish_json_nowait (Inference does not wait for each answer); a refused publish
    # is not lost silently: the next call raises it, naming the operation and the nucleus's reason.
    watcher = core.component("test.Watcher", {"accessControl": ALL_PUBSUB})
    stream, _ = watcher.call("subscribe_to_topic", {"topic": "greenlens/results"})
    allowed = {"aws.greengrass.ipc.pubsub": {"p": {"operations": ["aws.greengrass#PublishToTopic"],
                                                   "resources": ["greenlens/results"]}}}
    token = core.call_soon(lambda: (core.host.config.merge("test.Fast", {"accessControl": allowed}),
                                    core.host.tokens.issue("test.Fast"))[1])
    ipc = Ipc.connect(timeout=5, socket_path=str(core.host.socket_path), token=token)
    try:
        for n in range(50):
            ipc.publish_json_nowait("greenlens/results", {"n": n})
        got = [watcher.next_event(stream)["event"]["jsonMessage"]["message"]["n"] for _ in range(50)]
        assert got == [float(n) for n in range(50)]  # all delivered, in order
        ipc.publish_json_nowait("greenlens/secret", {"n": -1})
        deadline = time.monotonic() + 10
        with pytest.raises(IpcError, match="PublishToTopic greenlens/secret failed: UnauthorizedError"):
            while time.monotonic() < deadline:
                ipc.publish_json_nowait("greenlens/results", {"n": 0})
                time.sleep(0.05)  # the refusal arrives asynchronously; poll the next calls
    finally:
        ipc.close()
