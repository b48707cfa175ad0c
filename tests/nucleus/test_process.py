"""Running lifecycle scripts: environment, cwd, logs, timeouts and stopping a process tree."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ggsim
import psutil
from ggsim.ipc.auth import TokenRegistry
from ggsim.nucleus.layout import RootLayout
from ggsim.nucleus.process import GreengrassLogs, ProcessRunner, format_log_line

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[(?P<level>[A-Z]+)\] \((?P<thread>[^)]+)\) "
    r"(?P<logger>[^:]+): (?P<event>[\w-]+)\.(?: (?P<message>.*?)\.)? \{(?P<context>.*)\}$"
)
DUMP_ENV = f"{sys.executable} -c 'import json, os; json.dump({{**os.environ, \"CWD\": os.getcwd()}}, open(\"env.json\", \"w\"))'"


def make_runner(root: Path, **kwargs: object) -> tuple[ProcessRunner, TokenRegistry, GreengrassLogs]:
    tokens = TokenRegistry()
    logs = GreengrassLogs(root / "logs")
    runner = ProcessRunner(layout=RootLayout(root), thing_name="thing-1", region="eu-west-1",
                           tokens=tokens, logs=logs, root_ca_path="/certs/AmazonRootCA1.pem", **kwargs)  # type: ignore[arg-type]
    return runner, tokens, logs


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def log_lines(root: Path, name: str) -> list[dict[str, str]]:
    out = []
    for line in (root / "logs" / f"{name}.log").read_text().splitlines():
        match = LINE.match(line)
        assert match, f"not in Greengrass log format: {line!r}"
        out.append(match.groupdict())
    return out


def test_environment_and_cwd_of_a_script(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    runner, tokens, logs = make_runner(tmp_path)
    result = run_async(runner.run("com.example.Env", "Run", DUMP_ENV, timeout=30))
    logs.close()
    assert result.returncode == 0 and not result.timed_out
    env = json.loads((tmp_path / "work" / "com.example.Env" / "env.json").read_text())
    assert env["CWD"] == str(tmp_path / "work" / "com.example.Env")
    assert tokens.lookup(env["SVCUID"]) == "com.example.Env"
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == env["SVCUID"]
    assert env["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH"] == str(tmp_path / "ipc.socket")
    assert env["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"] == str(tmp_path / "ipc.socket")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_IOT_THING_NAME"] == "thing-1"
    assert env["GGC_VERSION"] == ggsim.NUCLEUS_VERSION
    assert env["GG_ROOT_CA_PATH"] == "/certs/AmazonRootCA1.pem"
    assert env["PATH"] == os.environ["PATH"]
    assert env["HOME"] == os.environ["HOME"]


def test_setenv_precedence_step_over_lifecycle_over_nucleus(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    runner, _, logs = make_runner(tmp_path)
    result = run_async(runner.run(
        "com.example.Env", "Install", DUMP_ENV, timeout=30,
        lifecycle_setenv={"ONLY_LIFECYCLE": "l", "BOTH": "lifecycle", "AWS_REGION": "from-lifecycle"},
        step_setenv={"BOTH": "step", "NUMBER": 5},
    ))
    logs.close()
    assert result.returncode == 0
    env = json.loads((tmp_path / "work" / "com.example.Env" / "env.json").read_text())
    assert env["ONLY_LIFECYCLE"] == "l"
    assert env["BOTH"] == "step"
    assert env["NUMBER"] == "5"
    assert env["AWS_REGION"] == "from-lifecycle"  # recipe Setenv is applied after the nucleus's own variables
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_long_socket_path_is_given_relative_to_the_work_folder(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    root = tmp_path / ("r" * max(1, 110 - len(str(tmp_path))))
    assert len(str(root / "ipc.socket")) >= 108
    runner, _, logs = make_runner(root)
    run_async(runner.run("c", "Run", DUMP_ENV, timeout=30))
    logs.close()
    env = json.loads((root / "work" / "c" / "env.json").read_text())
    assert env["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"] == "../../ipc.socket"
    assert env["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH"] == str(root / "ipc.socket")
    assert (root / "work" / "c" / "../../ipc.socket").resolve() == (root / "ipc.socket").resolve()


def test_stdout_and_stderr_lines_go_to_the_component_log(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    runner, _, logs = make_runner(tmp_path)
    result = run_async(runner.run("com.example.Log", "Run", "echo '  hello world  '; echo oops >&2; exit 3",
                                  timeout=30, current_state=lambda: "RUNNING"))
    logs.close()
    assert result.returncode == 3
    lines = log_lines(tmp_path, "com.example.Log")
    out = [line for line in lines if line["event"] == "stdout"]
    err = [line for line in lines if line["event"] == "stderr"]
    assert [(line["level"], line["message"], line["thread"]) for line in out] == [("INFO", "hello world", "Copier")]
    assert [(line["level"], line["message"]) for line in err] == [("WARN", "oops")]
    assert out[0]["logger"] == "com.example.Log"
    assert out[0]["context"] == (
        "scriptName=services.com.example.Log.lifecycle.Run, serviceName=com.example.Log, currentState=RUNNING"
    )


def test_log_line_format() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    assert format_log_line("INFO", "com.example.X", "stdout", "Hello", {"serviceName": "com.example.X"},
                           thread="Copier", when=when) == (
        "2026-01-02T03:04:05.678Z [INFO] (Copier) com.example.X: stdout. Hello. {serviceName=com.example.X}"
    )
    multi = format_log_line("INFO", "c", "shell-runner-start", context={"command": "a\nb"}, when=when)
    assert multi == "2026-01-02T03:04:05.678Z [INFO] (main) c: shell-runner-start. {command=a\\nb}"


def test_timeout_stops_the_script(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    runner, _, logs = make_runner(tmp_path, grace=0.5)
    result = run_async(runner.run("c", "Install", "sleep 30", timeout=0.3))
    logs.close()
    assert result.timed_out
    assert any(line["event"] == "shell-runner-timeout" for line in log_lines(tmp_path, "c"))


def test_sigterm_then_sigkill_for_a_tree_that_ignores_sigterm(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    fifo = tmp_path / "pids.fifo"
    os.mkfifo(fifo)
    script = (
        "trap '' TERM; sleep 60 & a=$!; setsid sleep 60 & b=$!; "
        f"echo \"$$ $a $b\" > {fifo}; wait"
    )
    runner, _, logs = make_runner(tmp_path, grace=0.4)

    async def scenario() -> tuple[list[int], float, int | None]:
        process = await runner.start("c", "Run", script)
        pids = [int(p) for p in (await asyncio.to_thread(fifo.read_text)).split()]
        assert all(running(p) for p in pids)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await process.stop()
        return pids, loop.time() - started, process.returncode

    pids, took, code = run_async(scenario())
    logs.close()
    assert not any(running(p) for p in pids), "every process of the tree, also the one that left the group"
    assert took >= 0.4, "SIGKILL only after the grace period"
    assert code == -signal.SIGKILL


def test_a_well_behaved_script_ends_on_sigterm(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    fifo = tmp_path / "ready.fifo"
    os.mkfifo(fifo)
    runner, _, logs = make_runner(tmp_path, grace=30)

    async def scenario() -> int | None:
        process = await runner.start("c", "Run", f"echo ready > {fifo}; exec sleep 60")
        await asyncio.to_thread(fifo.read_text)
        await process.stop()
        return process.returncode

    code = run_async(scenario(), timeout=20)
    logs.close()
    assert code == -signal.SIGTERM


def test_requires_privilege_is_logged_when_not_root(tmp_path: Path, run_async: Callable[..., Any]) -> None:
    runner, _, logs = make_runner(tmp_path)
    run_async(runner.run("c", "Install", "true", timeout=30, requires_privilege=True))
    logs.close()
    events = [line["event"] for line in log_lines(tmp_path, "c")]
    assert ("shell-runner-privilege" in events) == (os.geteuid() != 0)


def test_logs_rotate_by_size_and_keep_a_bounded_total(tmp_path: Path) -> None:
    logs = GreengrassLogs(tmp_path, max_bytes=1000, max_total=3000)
    for i in range(200):
        logs.write("com.example.Chatty", "INFO", "com.example.Chatty", "stdout", f"line {i:03d}")
    logs.close()
    rotated = logs.rotated("com.example.Chatty")
    assert rotated, "the log was rotated"
    assert all(re.fullmatch(r"com\.example\.Chatty_\d{4}_\d\d_\d\d_\d\d_\d+\.log", p.name) for p in rotated)
    assert all(p.stat().st_size >= 1000 for p in rotated)
    assert sum(p.stat().st_size for p in rotated) <= 3000
    current = (tmp_path / "com.example.Chatty.log").read_text().splitlines()
    assert current and current[-1].endswith("stdout. line 199.")
    assert (tmp_path / "com.example.Chatty.log").stat().st_size < 1000


def test_an_overlong_output_line_is_reported_and_logging_goes_on(
    tmp_path: Path, run_async: Callable[..., Any]
) -> None:
    runner, _, logs = make_runner(tmp_path)
    script = f"{sys.executable} -c \"print('x' * (2 << 20)); print('after')\""
    result = run_async(runner.run("c", "Run", script, timeout=30))
    logs.close()
    assert result.returncode == 0
    messages = [line["message"] for line in log_lines(tmp_path, "c") if line["event"] == "stdout"]
    assert "(line longer than 1 MiB truncated)" in messages
    assert messages[-1] == "after"


def test_a_log_from_an_earlier_hour_is_rotated_under_that_hour(tmp_path: Path) -> None:
    old = tmp_path / "greengrass.log"
    old.write_text("an old line\n")
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    os.utime(old, (two_hours_ago.timestamp(), two_hours_ago.timestamp()))
    logs = GreengrassLogs(tmp_path)
    logs.kernel("INFO", "com.aws.greengrass.lifecyclemanager.Kernel", "system-start")
    logs.close()
    [rotated] = logs.rotated("greengrass")
    assert rotated.name == f"greengrass_{two_hours_ago:%Y_%m_%d_%H}_0.log"
    assert rotated.read_text() == "an old line\n"
    assert "system-start" in old.read_text() and "an old line" not in old.read_text()
