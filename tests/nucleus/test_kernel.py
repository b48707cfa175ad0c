"""The kernel through its public methods, with real processes: what `apply` does to new, changed and
removed components, HARD-dependency restarts, state events and waits (spec components §1.7, §5.4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ggsim.nucleus.recipe import Recipe

T = 20.0  # per-wait timeout: waits end on state events, never on time
SLEEP = "exec sleep 60"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_apply_starts_new_components_and_publishes_them(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    base = make_recipe("base", lifecycle={"Run": SLEEP})
    app = make_recipe("app", "2.1.0", lifecycle={"Setenv": {"MODE": "x"}, "Run": {"Script": SLEEP, "Timeout": 90}},
                      deps={"base": "^1.0.0"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            kernel.config.merge("app", {"level": "high"})
            await kernel.apply({"app": app, "base": base})
            assert await kernel.wait_healthy(["app", "base"], T) == {"app": "RUNNING", "base": "RUNNING"}
            assert kernel.components() == ["app", "base"]
            assert kernel.list_components() == [
                {"componentName": "app", "version": "2.1.0", "state": "RUNNING", "configuration": {"level": "high"}},
                {"componentName": "base", "version": "1.0.0", "state": "RUNNING", "configuration": {}},
            ]
            assert len(kernel.component_pids("app")) == 1
            service = kernel.config.effective_config()["services"]["app"]
            assert service["version"] == "2.1.0"
            assert service["dependencies"] == ["base:HARD"]
            assert service["lifecycle"] == {"Setenv": {"MODE": "x"}, "run": {"Script": SLEEP, "Timeout": 90}}

    run_async(scenario())


def test_apply_restarts_for_setenv_or_dependency_changes_and_ignores_a_shutdown_change(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    def app(setenv: str = "1", shutdown: str = "true", dependency: str = "HARD") -> Recipe:
        return make_recipe("app", lifecycle={"Setenv": {"V": setenv}, "Run": SLEEP, "Shutdown": shutdown},
                           deps={"base": ("^1.0.0", dependency)})

    base = make_recipe("base", lifecycle={"Run": SLEEP})
    restart = ["STOPPING", "INSTALLED", "STARTING", "RUNNING"]

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"base": base, "app": app()})
            await kernel.wait_healthy(["base", "app"], T)

            async def apply_and_settle(recipe: Recipe) -> list[str]:
                since = len(kernel.history("app"))
                await kernel.apply({"base": base, "app": recipe})
                assert await kernel.wait_healthy(["app"], T) == {"app": "RUNNING"}
                return kernel.history("app")[since:]

            assert await apply_and_settle(app(shutdown="echo bye")) == []
            assert await apply_and_settle(app(shutdown="echo bye", setenv="2")) == restart
            assert await apply_and_settle(app(shutdown="echo bye", setenv="2", dependency="SOFT")) == restart
            assert kernel.history("base")[-1] == "RUNNING" and kernel.history("base").count("RUNNING") == 1

    run_async(scenario())


def test_a_broken_component_is_reinstalled_by_the_next_apply(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    recipe = make_recipe("flaky", lifecycle={"Install": f"echo install >> {outbox}/flaky.txt",
                                             "Run": f"test -f {outbox}/fixed || exit 1; {SLEEP}"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"flaky": recipe})
            await kernel.wait_for_state("flaky", "BROKEN", T)  # Run counts as RUNNING until it exits
            (outbox / "fixed").write_text("")
            since = len(kernel.history("flaky"))
            await kernel.apply({"flaky": recipe})  # the same recipe: only BROKEN makes this a reinstall
            assert await kernel.wait_healthy(["flaky"], T) == {"flaky": "RUNNING"}
            assert kernel.history("flaky")[since:] == ["NEW", "INSTALLED", "STARTING", "RUNNING"]
            assert lines(outbox / "flaky.txt") == ["install", "install"]

    run_async(scenario())


def test_a_removed_component_loses_its_token_and_its_service_entry(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("gone", lifecycle={"Run": f"echo $SVCUID > token.txt; {SLEEP}"})
    keep = make_recipe("keep", lifecycle={"Run": SLEEP})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"gone": recipe, "keep": keep})
            await kernel.wait_healthy(["gone", "keep"], T)
            token = (kernel.root / "work" / "gone" / "token.txt").read_text().strip()
            assert kernel.tokens.lookup(token) == "gone"
            await kernel.apply({"keep": keep})
            assert kernel.components() == ["keep"]
            assert kernel.tokens.lookup(token) is None
            assert list(kernel.config.effective_config()["services"]) == ["keep"]
            assert kernel.component_state("keep") == "RUNNING"

    run_async(scenario())


def test_a_hard_dependency_that_fails_restarts_its_dependers_only(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    base = make_recipe("base", lifecycle={"Run": SLEEP})
    hard = make_recipe("hard", lifecycle={"Run": SLEEP}, deps={"base": "^1.0.0"})
    soft = make_recipe("soft", lifecycle={"Run": SLEEP}, deps={"base": ("^1.0.0", "SOFT")})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"base": base, "hard": hard, "soft": soft})
            assert set((await kernel.wait_healthy(["base", "hard", "soft"], T)).values()) == {"RUNNING"}
            since = {name: len(kernel.history(name)) for name in ("base", "hard", "soft")}
            [pid] = kernel.component_pids("base")
            os.kill(pid, signal.SIGKILL)
            await kernel.wait_for_state("base", "ERRORED", T, since=since["base"])
            await kernel.wait_for_state("hard", "STOPPING", T, since=since["hard"])
            assert await kernel.wait_healthy(["base", "hard"], T) == {"base": "RUNNING", "hard": "RUNNING"}
            assert kernel.history("soft")[since["soft"]:] == []

    run_async(scenario())


def test_wait_for_state_since_finds_a_state_already_left(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("once", lifecycle={"Run": "echo done"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"once": recipe})
            assert await kernel.wait_for_state("once", ["FINISHED", "BROKEN"], T) == "FINISHED"
            assert await kernel.wait_for_state("once", "RUNNING", T, since=0) == "RUNNING"
            with pytest.raises(TimeoutError, match=r"once did not reach \['RUNNING'\] within 0.1 s; it is FINISHED "
                                                   r"\(history \['NEW', 'INSTALLED', 'STARTING', 'RUNNING'"):
                await kernel.wait_for_state("once", "RUNNING", 0.1)
            with pytest.raises(TimeoutError, match="it is UNKNOWN"):
                await kernel.wait_for_state("never.Deployed", "RUNNING", 0.1)

    run_async(scenario())


def test_state_listeners_see_every_change_until_removed(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any]
) -> None:
    recipe = make_recipe("svc", lifecycle={"Run": SLEEP})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            seen: list[tuple[str, str, str]] = []

            def broken(name: str, old: str, new: str) -> None:
                raise RuntimeError("listener bug")

            kernel.add_state_listener(broken)
            remove = kernel.add_state_listener(lambda *change: seen.append(change))
            await kernel.apply({"svc": recipe})
            await kernel.wait_for_state("svc", "RUNNING", T)
            assert seen == [("svc", "NEW", "INSTALLED"), ("svc", "INSTALLED", "STARTING"),
                            ("svc", "STARTING", "RUNNING")]
            remove()
            assert kernel.stop_component("svc")
            await kernel.wait_for_state("svc", "FINISHED", T)
            assert len(seen) == 3

    run_async(scenario())


def test_ipc_requests_for_components_the_kernel_does_not_run(
    running_kernel: Callable[..., Any], run_async: Callable[..., Any]
) -> None:
    async def scenario() -> None:
        async with running_kernel() as kernel:
            assert kernel.report_state("nope", "RUNNING") is False
            assert kernel.component_details("nope") is None
            assert kernel.restart_component("nope") is False and kernel.stop_component("nope") is False
            with pytest.raises(ValueError, match="Component with name nope not found in Greengrass"):
                await kernel.resume_component("nope")
            assert kernel.list_components() == [] and kernel.component_pids("nope") == []

    run_async(scenario())


def test_the_nucleus_never_imports_ipc_or_the_composition_root() -> None:
    # dependency direction: ipc -> nucleus, ggsim.core -> both; never nucleus -> ipc
    program = ("import importlib, pkgutil, sys, ggsim.nucleus as n\n"
               "for m in pkgutil.walk_packages(n.__path__, 'ggsim.nucleus.'): importlib.import_module(m.name)\n"
               "print(sorted(m for m in sys.modules if m.startswith(('ggsim.ipc', 'ggsim.core'))))")
    found = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
