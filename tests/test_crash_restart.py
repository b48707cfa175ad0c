"""kill -9 of ggsim loses nothing a device would keep, and the next `ggsim up` cleans up after it.

The core runs in its own process (`ggsim up`) and is killed with SIGKILL, as a power cut or the OOM killer
would stop the nucleus; its components are real processes talking to it with the awsiotsdk IPC client.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.ggsim_cli import Ggsim, recipe, running_ggsim, write_recipes

WRITES = 2000

WRITER = textwrap.dedent("""\
    import datetime, os, sys, threading
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    flag, pidfile = sys.argv[1], sys.argv[2]
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    ipc = GreengrassCoreIPCClientV2()
    if not os.path.exists(flag):  # only the first run writes
        for n in range(1, %d + 1):
            ipc.update_configuration(key_path=["counter"], value_to_merge={"n": n}, timestamp=datetime.datetime.now())
        with open(flag, "w") as f:
            f.write("done")
    threading.Event().wait()
""") % WRITES


@pytest.fixture
def ggsim(tmp_path: Path) -> Iterator[Ggsim]:
    with running_ggsim(tmp_path / "root") as g:
        yield g
    for proc in psutil.process_iter(["cmdline"]):  # what a failed run may have left behind
        if any(str(tmp_path) in part for part in proc.info["cmdline"] or []):
            proc.kill()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def copies_of(script: Path) -> list[int]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(script) in (proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
            out.append(proc.pid)
    return out


def test_configuration_written_over_ipc_survives_kill_9_and_no_component_runs_twice(
        ggsim: Ggsim, tmp_path: Path) -> None:
    script, flag, pidfile = tmp_path / "writer.py", tmp_path / "written", tmp_path / "writer.pid"
    script.write_text(WRITER)
    writer = recipe("test.Writer", "1.0.0", {"Run": f"{sys.executable} -u {script} {flag} {pidfile}"},
                    {"counter": {"n": 0}})
    recipes = write_recipes(tmp_path / "recipes", writer)
    ggsim.run("deployment", "create", "-r", str(recipes), "-m", "test.Writer=1.0.0", "--wait")
    wait_until(flag.exists, f"the component wrote its configuration {WRITES} times")
    first_pid = int(pidfile.read_text())
    journal = ggsim.root / "config" / "ggsim-config.tlog"
    log_lines = journal.read_text().count("\n") if journal.exists() else 0

    ggsim.kill()
    assert running(first_pid), "a killed ggsim leaves its components running (the test's premise)"

    ggsim.up()
    wait_until(lambda: pidfile.read_text() != str(first_pid), "the component started again")
    assert not running(first_pid), "the component the killed ggsim left was not stopped"
    assert copies_of(script) == [int(pidfile.read_text())]
    details = ggsim.json("component", "details", "-n", "test.Writer")
    assert details["configuration"] == {"counter": {"n": float(WRITES)}}  # type: ignore[index]
    # Each write was one line appended to the log, not a rewrite of the whole configuration.
    assert log_lines >= WRITES


def test_a_deployment_in_progress_when_ggsim_is_killed(ggsim: Ggsim, tmp_path: Path) -> None:
    installs = tmp_path / "installs"
    slow = recipe("test.Slow", "1.0.0", {"Install": f"echo $$ >> {installs}; exec sleep 600",
                                         "Run": "exec sleep 600"}, {"colour": "blue"})
    recipes = write_recipes(tmp_path / "recipes", slow)
    created = ggsim.json("deployment", "create", "-r", str(recipes), "-m", "test.Slow=1.0.0")
    deployment_id = created["deploymentId"]  # type: ignore[index]
    wait_until(lambda: installs.exists() and installs.read_text().strip() != "", "the Install step started")
    install_pid = int(installs.read_text().split()[0])
    assert ggsim.json("deployment", "status", "-i", deployment_id)["status"] == "IN_PROGRESS"  # type: ignore[index]

    ggsim.kill()
    assert running(install_pid)
    ggsim.up()

    assert not running(install_pid), "the Install step the killed ggsim left was not stopped"
    status = ggsim.json("deployment", "status", "-i", deployment_id)
    assert status["status"] == "FAILED"  # type: ignore[index]
    details = status["deploymentStatusDetails"]  # type: ignore[index]
    assert details["deploymentErrorStack"] == ["DEPLOYMENT_FAILURE", "DEPLOYMENT_INTERRUPTED"]
    assert [d["deploymentId"] for d in ggsim.json("deployment", "list")] == [deployment_id]  # type: ignore[index]
    # As the nucleus, whose configuration log already held the merged services: the device comes back with
    # what the deployment had applied (its configuration written, its component being installed again).
    wait_until(lambda: len(installs.read_text().split()) == 2, "the component's Install ran again")
    assert ggsim.json("component", "details", "-n", "test.Slow")["configuration"] == {"colour": "blue"}  # type: ignore[index]
    assert json.loads((ggsim.root / "deployments" / "ggsim-history.json").read_text())[0]["status"] == "FAILED"
