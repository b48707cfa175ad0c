"""The component lifecycle as a user sees it: states, logs, files, ordering (spec components §1.5–§1.7)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from ggsim.nucleus.kernel import Kernel
from ggsim.nucleus.recipe import Recipe

from devsupport.roots import python_component_user

T = 20.0  # generous per-wait timeout: waits end on state events, never on time


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def work(kernel: Kernel, name: str) -> Path:
    return kernel.root / "work" / name


def test_install_and_run_reach_running_with_logs(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("com.example.Hello", lifecycle={
        "Install": "echo installed > installed.txt",
        "Run": "echo Hello from run",
    })

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"com.example.Hello": recipe})
            assert await kernel.wait_healthy(["com.example.Hello"], T) == {"com.example.Hello": "RUNNING"}
            assert kernel.history("com.example.Hello") == ["NEW", "INSTALLED", "STARTING", "RUNNING"]
            await kernel.wait_for_state("com.example.Hello", "FINISHED", T)
            assert lines(work(kernel, "com.example.Hello") / "installed.txt") == ["installed"]
            assert kernel.component_details("com.example.Hello") == {
                "componentName": "com.example.Hello", "version": "1.0.0", "state": "FINISHED", "configuration": {},
            }
            log = kernel.root / "logs" / "com.example.Hello.log"
            await kernel.stop()
            text = log.read_text()
            # the state in a line is the one when it was logged: RUNNING, or STOPPING once the exit was seen
            assert re.search(r"\[INFO\] \(Copier\) com\.example\.Hello: stdout\. Hello from run\. \{scriptName="
                             r"services\.com\.example\.Hello\.lifecycle\.Run, serviceName=com\.example\.Hello, "
                             r"currentState=(RUNNING|STOPPING)\}", text)
            assert "newState=RUNNING" in (kernel.root / "logs" / "greengrass.log").read_text()
            effective = yaml.safe_load((kernel.root / "config" / "effectiveConfig.yaml").read_text())
            assert effective["services"]["com.example.Hello"]["version"] == "1.0.0"

    run_async(scenario())


def test_run_exit_zero_finishes_and_empty_lifecycle_finishes(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    ok = make_recipe("ok", lifecycle={"Run": "echo done"})
    empty = make_recipe("models", lifecycle={})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"ok": ok, "models": empty})
            # a deployment counts Run as healthy once launched (RUNNING); it then finishes on exit 0
            assert (await kernel.wait_healthy(["models"], T)) == {"models": "FINISHED"}
            await kernel.wait_for_state("ok", "FINISHED", T)
            assert kernel.history("ok") == ["NEW", "INSTALLED", "STARTING", "RUNNING", "STOPPING", "FINISHED"]
            assert kernel.history("models") == ["NEW", "INSTALLED", "STARTING", "FINISHED"]

    run_async(scenario())


def test_killed_component_is_restarted_and_broken_at_the_third_error(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    recipe = make_recipe("com.example.Crashy", lifecycle={
        "Install": f"echo install >> {outbox}/installs.txt",
        "Run": "exec sleep 60",
        "Recover": f"echo recover >> {outbox}/recovers.txt",
        "Shutdown": f"echo shutdown >> {outbox}/shutdowns.txt",
    })

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"com.example.Crashy": recipe})
            for attempt in range(3):
                since = len(kernel.history("com.example.Crashy"))
                if attempt:
                    await kernel.wait_for_state("com.example.Crashy", "RUNNING", T, since=since - 1)
                else:
                    await kernel.wait_for_state("com.example.Crashy", "RUNNING", T)
                [pid] = kernel.component_pids("com.example.Crashy")
                os.kill(pid, signal.SIGKILL)
                state = await kernel.wait_for_state("com.example.Crashy", {"ERRORED", "BROKEN"}, T, since=since)
                assert state == ("BROKEN" if attempt == 2 else "ERRORED")
            history = kernel.history("com.example.Crashy")
            # the third error goes RUNNING → BROKEN directly, as the nucleus reports it: no ERRORED in between
            assert history.count("ERRORED") == 2 and history[-2:] == ["RUNNING", "BROKEN"]
            assert history[:8] == ["NEW", "INSTALLED", "STARTING", "RUNNING", "ERRORED", "STOPPING",
                                   "INSTALLED", "STARTING"]
            await kernel.wait_healthy(["com.example.Crashy"], T)
            assert kernel.component_pids("com.example.Crashy") == []
            # Recover ran after the first two errors, not at the third; Install ran once (restarts don't reinstall)
            assert lines(outbox / "recovers.txt") == ["recover", "recover"]
            # Shutdown ran at each of the three stops, BROKEN's included
            assert lines(outbox / "shutdowns.txt") == ["shutdown"] * 3
            assert lines(outbox / "installs.txt") == ["install"]
            # a restart request does not revive a BROKEN component; a deployment that includes it does
            assert kernel.restart_component("com.example.Crashy")
            assert await kernel.wait_healthy(["com.example.Crashy"], T) == {"com.example.Crashy": "BROKEN"}
            await kernel.apply({"com.example.Crashy": recipe})
            since = len(kernel.history("com.example.Crashy"))
            await kernel.wait_for_state("com.example.Crashy", "RUNNING", T, since=since)
            assert lines(outbox / "installs.txt") == ["install", "install"]

    run_async(scenario())


def test_install_failure_retries_install_then_broken(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("bad", lifecycle={"Install": "echo try >> tries.txt; exit 2", "Run": "true"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"bad": recipe})
            assert await kernel.wait_healthy(["bad"], T) == {"bad": "BROKEN"}
            assert kernel.history("bad") == ["NEW", "ERRORED", "NEW", "ERRORED", "NEW", "BROKEN"]
            assert lines(work(kernel, "bad") / "tries.txt") == ["try"] * 3
            assert "Install exited with code 2" in (kernel.root / "logs" / "bad.log").read_text()

    run_async(scenario())


def test_install_timeout_errors(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("slow", lifecycle={"Install": {"Script": "sleep 60", "Timeout": 0.3}, "Run": "true"})

    async def scenario() -> None:
        async with running_kernel(stop_grace=0.2) as kernel:
            await kernel.apply({"slow": recipe})
            await kernel.wait_for_state("slow", "ERRORED", T, since=0)
            assert "Install timed out" in (kernel.root / "logs" / "slow.log").read_text()

    run_async(scenario())


def test_startup_stays_starting_until_update_state_running(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("svc", lifecycle={"Startup": "exec sleep 60"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"svc": recipe})
            await kernel.wait_for_state("svc", "STARTING", T)
            assert kernel.component_state("svc") == "STARTING"
            assert kernel.report_state("svc", "RUNNING")
            await kernel.wait_for_state("svc", "RUNNING", T)
            assert kernel.component_pids("svc"), "the Startup process keeps running"
            assert not kernel.report_state("svc", "RUNNING"), "RUNNING → RUNNING is not a valid report"
            since = len(kernel.history("svc"))
            assert kernel.report_state("svc", "ERRORED")
            await kernel.wait_for_state("svc", "ERRORED", T, since=since)
            await kernel.wait_for_state("svc", "STARTING", T, since=since)
            assert kernel.history("svc")[since:since + 4] == ["ERRORED", "STOPPING", "INSTALLED", "STARTING"]

    run_async(scenario())


def test_startup_reports_running_over_real_ipc(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    script = (
        "from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2\n"
        "import time\n"
        "client = GreengrassCoreIPCClientV2()\n"
        "client.update_state(state='RUNNING')\n"
        "time.sleep(60)\n"
    )
    recipe = make_recipe("ipc.Ready", lifecycle={"Startup": f"{sys.executable} -c \"{script}\""})

    async def scenario() -> None:
        async with running_kernel(component_user=python_component_user()) as kernel:
            await kernel.apply({"ipc.Ready": recipe})
            assert await kernel.wait_healthy(["ipc.Ready"], T) == {"ipc.Ready": "RUNNING"}
            assert kernel.history("ipc.Ready") == ["NEW", "INSTALLED", "STARTING", "RUNNING"]
            assert kernel.component_pids("ipc.Ready"), "RUNNING by UpdateState, not by the script's exit"

    run_async(scenario())


def test_startup_exit_codes_and_timeout(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    ok = make_recipe("daemon", lifecycle={"Startup": "true"})
    fails = make_recipe("fails", lifecycle={"Startup": "exit 4"})
    hangs = make_recipe("hangs", lifecycle={"Startup": {"Script": "exec sleep 60", "Timeout": 0.3}})

    async def scenario() -> None:
        async with running_kernel(stop_grace=0.2) as kernel:
            await kernel.apply({"daemon": ok, "fails": fails, "hangs": hangs})
            await kernel.wait_for_state("daemon", "RUNNING", T)
            await kernel.wait_for_state("fails", "ERRORED", T, since=0)
            await kernel.wait_for_state("hangs", "ERRORED", T, since=0)
            assert await kernel.wait_healthy(["fails", "hangs"], T) == {"fails": "BROKEN", "hangs": "BROKEN"}
            assert "Startup exited with code 4" in (kernel.root / "logs" / "fails.log").read_text()
            assert "Startup did not finish within 0.3 seconds" in (kernel.root / "logs" / "hangs.log").read_text()

    run_async(scenario())


def test_run_timeout_errors(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("limited", lifecycle={"Run": {"Script": "exec sleep 60", "Timeout": 0.3}})

    async def scenario() -> None:
        async with running_kernel(stop_grace=0.2) as kernel:
            await kernel.apply({"limited": recipe})
            await kernel.wait_for_state("limited", "ERRORED", T, since=0)
            assert "Run timed out" in (kernel.root / "logs" / "limited.log").read_text()

    run_async(scenario())


def test_skipif_skips_steps(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    tmp_path: Path,
) -> None:
    present = tmp_path / "present"
    present.write_text("")
    skipped_install = make_recipe("a", lifecycle={
        "Install": {"Script": "touch installed", "Skipif": f"exists {present}"},
        "Run": {"Script": "touch ran; exec sleep 60", "Skipif": "onpath no-such-program-ggsim"},
    })
    skipped_run = make_recipe("b", lifecycle={"Run": {"Script": "touch ran", "Skipif": "onpath sh"}})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"a": skipped_install, "b": skipped_run})
            assert await kernel.wait_healthy(["a", "b"], T) == {"a": "RUNNING", "b": "FINISHED"}
            assert not (work(kernel, "a") / "installed").exists()
            assert not (work(kernel, "b") / "ran").exists()
            assert kernel.history("b") == ["NEW", "INSTALLED", "STARTING", "FINISHED"]

    run_async(scenario())


def test_hard_dependency_gates_start_and_soft_does_not(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    base = make_recipe("base", lifecycle={"Install": "true", "Startup": "exec sleep 60"})
    hard = make_recipe("hard", lifecycle={"Run": "exec sleep 60"}, deps={"base": "^1.0.0"})
    soft = make_recipe("soft", lifecycle={"Run": "exec sleep 60"}, deps={"base": ("^1.0.0", "SOFT")})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            events: list[tuple[str, str]] = []
            kernel.add_state_listener(lambda name, old, new: events.append((name, new)))
            await kernel.apply({"base": base, "hard": hard, "soft": soft})
            await kernel.wait_for_state("base", "STARTING", T)
            await kernel.wait_for_state("hard", "INSTALLED", T)
            await kernel.wait_for_state("soft", "RUNNING", T)
            assert kernel.component_state("hard") == "INSTALLED", "waits for its HARD dependency"
            kernel.report_state("base", "RUNNING")
            await kernel.wait_for_state("hard", "RUNNING", T)
            assert events.index(("base", "RUNNING")) < events.index(("hard", "STARTING"))

    run_async(scenario())


def test_restarting_a_hard_dependency_restarts_the_dependent(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    base = make_recipe("base", lifecycle={"Run": "exec sleep 60"})
    hard = make_recipe("hard", lifecycle={"Run": "exec sleep 60"}, deps={"base": "^1.0.0"})
    soft = make_recipe("soft", lifecycle={"Run": "exec sleep 60"}, deps={"base": ("^1.0.0", "SOFT")})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"base": base, "hard": hard, "soft": soft})
            assert set((await kernel.wait_healthy(["base", "hard", "soft"], T)).values()) == {"RUNNING"}
            events: list[tuple[str, str]] = []
            kernel.add_state_listener(lambda name, old, new: events.append((name, new)))
            since = {n: len(kernel.history(n)) for n in ("base", "hard", "soft")}
            assert kernel.restart_component("base")
            await kernel.wait_for_state("base", "STOPPING", T, since=since["base"])
            await kernel.wait_for_state("hard", "STOPPING", T, since=since["hard"])
            assert await kernel.wait_healthy(["base", "hard"], T) == {"base": "RUNNING", "hard": "RUNNING"}
            assert events.index(("base", "RUNNING")) < events.index(("hard", "STARTING"))
            assert kernel.history("soft")[since["soft"]:] == [], "a SOFT dependent is not restarted"
            launches = [line for line in lines(kernel.root / "logs" / "hard.log")
                        if "shell-runner-start" in line and "lifecycle.Run" in line]
            assert len(launches) == 2

    run_async(scenario())


def test_apply_restarts_reinstalls_or_leaves_alone(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    def version(v: str, run: str = "exec sleep 60", interval: str = "1") -> Recipe:
        return make_recipe("app", v, defaults={"interval": interval},
                           lifecycle={"Install": f"echo install >> {outbox}/app-installs.txt", "Run": run})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            installs = outbox / "app-installs.txt"
            kernel.config.merge("app", {"interval": "1"}, timestamp=1)
            await kernel.apply({"app": version("1.0.0")})
            await kernel.wait_healthy(["app"], T)
            # configuration-only change: no restart
            since = len(kernel.history("app"))
            kernel.config.merge("app", {"interval": "5"})
            await kernel.apply({"app": version("1.0.0", interval="5")})
            assert await kernel.wait_healthy(["app"], T) == {"app": "RUNNING"}
            assert kernel.history("app")[since:] == []
            # lifecycle change: restart without Install
            await kernel.apply({"app": version("1.0.0", run="echo v2; exec sleep 60")})
            await kernel.wait_for_state("app", "STOPPING", T, since=since)
            assert await kernel.wait_healthy(["app"], T) == {"app": "RUNNING"}
            assert kernel.history("app")[since:] == ["STOPPING", "INSTALLED", "STARTING", "RUNNING"]
            assert lines(installs) == ["install"]
            # version change: reinstall
            since = len(kernel.history("app"))
            await kernel.apply({"app": version("1.1.0", run="echo v2; exec sleep 60")})
            assert await kernel.wait_healthy(["app"], T) == {"app": "RUNNING"}
            assert kernel.history("app")[since:] == ["STOPPING", "NEW", "INSTALLED", "STARTING", "RUNNING"]
            assert lines(installs) == ["install", "install"]
            assert kernel.component_details("app")["version"] == "1.1.0"

    run_async(scenario())


def test_configuration_variables_are_baked_into_the_lifecycle(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("var", defaults={"greeting": "hi"}, lifecycle={
        "Setenv": {"WHERE": "{work:path}"},
        "Run": "echo {configuration:/greeting} $WHERE {iot:thingName} > out.txt",
    })

    async def scenario() -> None:
        async with running_kernel(thing_name="thing-7") as kernel:
            kernel.config.merge("var", {"greeting": "hi"}, timestamp=1)
            await kernel.apply({"var": recipe})
            await kernel.wait_for_state("var", "FINISHED", T)
            assert lines(work(kernel, "var") / "out.txt") == [f"hi {work(kernel, 'var')} thing-7"]

    run_async(scenario())


def test_removed_component_is_stopped_and_uninstalled(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    recipe = make_recipe("gone", "2.0.0", lifecycle={
        "Run": "exec sleep 60",
        "Shutdown": f"echo shutdown >> {outbox}/gone.txt",
        "Uninstall": f"echo uninstall $GREENGRASS_COMPONENT_VERSION >> {outbox}/gone.txt",
    })

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"gone": recipe})
            await kernel.wait_for_state("gone", "RUNNING", T)
            [pid] = kernel.component_pids("gone")
            await kernel.apply({})
            assert kernel.components() == []
            assert kernel.component_details("gone") is None
            assert kernel.history("gone")[-2:] == ["STOPPING", "FINISHED"]
            assert lines(outbox / "gone.txt") == ["shutdown", "uninstall 2.0.0"]
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            assert not alive

    run_async(scenario())


def test_stop_and_restart_component(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("svc", lifecycle={"Run": "exec sleep 60"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"svc": recipe})
            await kernel.wait_for_state("svc", "RUNNING", T)
            assert kernel.stop_component("svc")
            assert not kernel.stop_component("nope") and not kernel.restart_component("nope")
            await kernel.wait_for_state("svc", "FINISHED", T)
            assert kernel.component_pids("svc") == []
            since = len(kernel.history("svc"))
            assert kernel.restart_component("svc")
            await kernel.wait_for_state("svc", "RUNNING", T, since=since)
            assert [c["componentName"] for c in kernel.list_components()] == ["svc"]

    run_async(scenario())


def test_kernel_stop_stops_dependers_first(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    shutdown = f"echo {{name}} >> {outbox}/order.txt"
    base = make_recipe("base", lifecycle={"Run": "exec sleep 60", "Shutdown": shutdown.format(name="base")})
    mid = make_recipe("mid", lifecycle={"Run": "exec sleep 60", "Shutdown": shutdown.format(name="mid")},
                      deps={"base": "^1.0.0"})
    top = make_recipe("top", lifecycle={"Run": "exec sleep 60", "Shutdown": shutdown.format(name="top")},
                      deps={"mid": "^1.0.0"})

    async def scenario() -> Path:
        async with running_kernel() as kernel:
            await kernel.apply({"top": top, "mid": mid, "base": base})
            assert set((await kernel.wait_healthy(["base", "mid", "top"], T)).values()) == {"RUNNING"}
            order = outbox / "order.txt"
        return order

    order = run_async(scenario())
    assert lines(order) == ["top", "mid", "base"]


def test_bootstrap_runs_before_install_on_first_deployment(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    recipe = make_recipe("boot", lifecycle={
        "Bootstrap": f"echo bootstrap >> {outbox}/boot.txt; exit 100",
        "Install": f"echo install >> {outbox}/boot.txt",
        "Run": "exec sleep 60",
    })

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"boot": recipe})
            assert await kernel.wait_healthy(["boot"], T) == {"boot": "RUNNING"}
            assert lines(outbox / "boot.txt") == ["bootstrap", "install"]
            assert "a device would restart the nucleus" in (kernel.root / "logs" / "boot.log").read_text()
        # ggsim restarted with the same deployment: Install runs again (every launch), Bootstrap does not
        async with running_kernel() as kernel:
            await kernel.apply({"boot": recipe})
            assert await kernel.wait_healthy(["boot"], T) == {"boot": "RUNNING"}
            assert lines(outbox / "boot.txt") == ["bootstrap", "install", "install"]

    run_async(scenario())


def test_wait_for_state_timeout_names_what_happened(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("svc", lifecycle={"Startup": "exec sleep 60"})

    async def scenario() -> str:
        async with running_kernel() as kernel:
            await kernel.apply({"svc": recipe})
            await kernel.wait_for_state("svc", "STARTING", T)
            try:
                await kernel.wait_for_state("svc", "RUNNING", 0.2)
            except TimeoutError as exc:
                return str(exc)
            return "no timeout"

    message = run_async(scenario())
    assert "svc did not reach ['RUNNING'] within 0.2 s; it is STARTING" in message


def test_state_events_are_awaitable_from_many_waiters(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("svc", lifecycle={"Run": "exec sleep 60"})

    async def scenario() -> list[str]:
        async with running_kernel() as kernel:
            waiters = [asyncio.ensure_future(kernel.wait_for_state("svc", "RUNNING", T)) for _ in range(3)]
            await kernel.apply({"svc": recipe})
            return await asyncio.gather(*waiters)

    assert run_async(scenario()) == ["RUNNING"] * 3


def test_errors_further_apart_than_error_reset_time_never_break(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("resilient", lifecycle={"ErrorResetTime": 0.000001, "Run": "exec sleep 60"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"resilient": recipe})
            await kernel.wait_for_state("resilient", "RUNNING", T)
            for _ in range(4):
                since = len(kernel.history("resilient"))
                [pid] = kernel.component_pids("resilient")
                os.kill(pid, signal.SIGKILL)
                await kernel.wait_for_state("resilient", "ERRORED", T, since=since)
                await kernel.wait_for_state("resilient", "RUNNING", T, since=since)
            assert "BROKEN" not in kernel.history("resilient")

    run_async(scenario())


def test_component_environment_and_setenv_through_the_kernel(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    dump = f"{sys.executable} -c 'import json, os; json.dump(dict(os.environ), open(\"env.json\", \"w\"))'"
    recipe = make_recipe("env.Dump", lifecycle={
        "Setenv": {"LEVEL": "lifecycle", "ONLY_LIFECYCLE": "yes"},
        "Run": {"Script": dump, "Setenv": {"LEVEL": "step"}},
    })

    async def scenario() -> None:
        async with running_kernel(thing_name="thing-9", region="eu-central-1",
                                  component_user=python_component_user()) as kernel:
            await kernel.apply({"env.Dump": recipe})
            await kernel.wait_for_state("env.Dump", "FINISHED", T)
            env = json.loads((work(kernel, "env.Dump") / "env.json").read_text())
            assert kernel.tokens.lookup(env["SVCUID"]) == "env.Dump"
            assert env["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"] == str(kernel.root / "ipc.socket")
            assert (env["AWS_IOT_THING_NAME"], env["AWS_REGION"]) == ("thing-9", "eu-central-1")
            assert (env["LEVEL"], env["ONLY_LIFECYCLE"]) == ("step", "yes")

    run_async(scenario())


def test_pause_and_resume_freeze_and_thaw_the_processes(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("pausable", lifecycle={"Run": "exec sleep 60"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"pausable": recipe})
            await kernel.wait_for_state("pausable", "RUNNING", T)
            [pid] = kernel.component_pids("pausable")
            await kernel.pause_component("pausable")
            stopped = await asyncio.to_thread(os.waitid, os.P_PID, pid, os.WSTOPPED | os.WNOWAIT)
            assert stopped.si_code == os.CLD_STOPPED
            await kernel.resume_component("pausable")
            resumed = await asyncio.to_thread(os.waitid, os.P_PID, pid, os.WCONTINUED | os.WNOWAIT)
            assert resumed.si_code == os.CLD_CONTINUED
            try:
                await kernel.pause_component("nope")
            except ValueError as exc:
                assert "Component with name nope not found" in str(exc)
            else:
                raise AssertionError("pausing an unknown component must fail")
            # a paused component still stops cleanly
            await kernel.pause_component("pausable")
            assert kernel.stop_component("pausable")
            await kernel.wait_for_state("pausable", "FINISHED", T)

    run_async(scenario())


def test_a_daemon_forked_by_startup_is_stopped_with_the_component(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    fifo = outbox / "daemon.fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o666)  # the component user writes the daemon's pid into it
    recipe = make_recipe("forking", lifecycle={"Startup": f"sleep 60 & echo $! > {fifo}; exit 0"})

    async def scenario() -> int:
        async with running_kernel() as kernel:
            await kernel.apply({"forking": recipe})
            daemon = int(await asyncio.to_thread(fifo.read_text))
            await kernel.wait_for_state("forking", "RUNNING", T)
            assert kernel.history("forking")[-2:] == ["STARTING", "RUNNING"]
            os.kill(daemon, 0)  # still running after Startup exited 0
            assert kernel.stop_component("forking")
            await kernel.wait_for_state("forking", "FINISHED", T)
            return daemon

    daemon = run_async(scenario())
    try:
        os.kill(daemon, 0)
        alive = _not_zombie(daemon)
    except ProcessLookupError:
        alive = False
    assert not alive


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_a_script_that_cannot_be_spawned_errors_and_a_deployment_revives_the_component(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("homeless", lifecycle={"Run": "exec sleep 60"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            blocker = work(kernel, "homeless")
            blocker.parent.mkdir(parents=True, exist_ok=True)
            blocker.write_text("a file where the work directory should be")
            await kernel.apply({"homeless": recipe})
            assert await kernel.wait_healthy(["homeless"], T) == {"homeless": "BROKEN"}
            retry = ["STARTING", "ERRORED", "STOPPING", "INSTALLED"]
            assert kernel.history("homeless") == ["NEW", "INSTALLED", *retry, *retry, "STARTING", "BROKEN"]
            log = (kernel.root / "logs" / "homeless.log").read_text()
            assert "service-exception" in log and "reason=FileExistsError" in log
            blocker.unlink()
            await kernel.apply({"homeless": recipe})
            assert await kernel.wait_healthy(["homeless"], T) == {"homeless": "RUNNING"}
            assert kernel.component_pids("homeless")

    run_async(scenario())


def test_skipif_paths_are_read_as_the_nucleus_reads_them(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    # ~root/ is the Greengrass root for the nucleus (Python's expanduser would read root's home)
    recipe = make_recipe("skipper", lifecycle={
        "Install": {"Script": "echo installed > installed.txt", "Skipif": "exists ~root/work/skipper/flag"},
        "Run": "true",
    })

    async def scenario() -> None:
        async with running_kernel() as kernel:
            work(kernel, "skipper").mkdir(parents=True)
            (work(kernel, "skipper") / "flag").write_text("")
            await kernel.apply({"skipper": recipe})
            await kernel.wait_for_state("skipper", "FINISHED", T)
            assert not (work(kernel, "skipper") / "installed.txt").exists()
            assert "Install skipped: exists ~root/work/skipper/flag" in (kernel.root / "logs" / "skipper.log").read_text()

    run_async(scenario())
