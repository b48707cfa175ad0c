"""The lifecycle state machine of one component: the only place a component's state changes.

States and transitions follow spec components §1.7 (Java nucleus ``Lifecycle``/``GenericExternalService``):

* NEW: run ``Bootstrap`` if a deployment asked for it (ggsim logs that a device would restart the nucleus
  or reboot), then ``Install`` (default timeout 120 s; a skipped Install counts as done) → INSTALLED.
* INSTALLED: wait until every HARD dependency is RUNNING, FINISHED or STOPPING → STARTING.
* STARTING: ``Startup`` (background, timer 120 s): exit 0 or UpdateState RUNNING → RUNNING; non-zero,
  timeout or UpdateState ERRORED → ERRORED. Without Startup, ``Run`` is launched → RUNNING at once. With
  neither → FINISHED ("nothing done").
* RUNNING: Run exits 0 → STOPPING → FINISHED; non-zero exit, Run ``Timeout`` or UpdateState ERRORED → ERRORED.
* STOPPING: ``Shutdown`` of the recipe the component was started with (15 s), then every process the
  component started is stopped (SIGTERM, grace, SIGKILL) → INSTALLED (restart), NEW (reinstall) or FINISHED.
* ERRORED: the error is counted against the state it came from (NEW, STARTING, RUNNING); the third within
  ``errorResetTime`` (lifecycle option, default 3600 s) → BROKEN without Recover. Otherwise ``Recover``
  (60 s) runs, then NEW (an install error) or STOPPING → INSTALLED → STARTING. Leaving a state for
  anything but ERRORED clears that state's error count.
* BROKEN: processes stopped; only a reinstall (a deployment) leaves it → NEW. A restart request is ignored
  (and logged), as the nucleus does.

Every change calls the host's ``on_state_change`` (the kernel turns that into awaitable events and
HARD-dependency restarts). Requests (start/stop/restart/reinstall), reported states (IPC UpdateState) and
process exits only record what happened and wake the component's task; the task alone changes state.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from .process import ExitInfo, GreengrassLogs, ProcessRunner, ScriptProcess
from .skipif import SkipifError, should_skip

if TYPE_CHECKING:
    from .recipe import LifecycleStep, Recipe

__all__ = ["ComponentService", "Request", "State", "ServiceHost", "READY_STATES", "SETTLED_STATES"]


class State(enum.StrEnum):
    NEW = "NEW"
    INSTALLED = "INSTALLED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    FINISHED = "FINISHED"
    ERRORED = "ERRORED"
    BROKEN = "BROKEN"


class Request(enum.Enum):
    START = "start"
    RESTART = "restart"
    REINSTALL = "reinstall"


#: States in which a HARD dependency counts as ready for its dependers.
READY_STATES = frozenset({State.RUNNING, State.FINISHED, State.STOPPING})
#: States a deployment's health wait accepts as final (spec §5.4).
SETTLED_STATES = frozenset({State.RUNNING, State.FINISHED, State.BROKEN})
COUNTED_STATES = frozenset({State.NEW, State.STARTING, State.RUNNING})

DEFAULT_TIMEOUTS: dict[str, float] = {
    "bootstrap": 120.0,
    "install": 120.0,
    "startup": 120.0,
    "shutdown": 15.0,
    "recover": 60.0,
    "uninstall": 120.0,
}
DEFAULT_ERROR_RESET_TIME = 3600.0
MAX_CONTINUAL_ERRORS = 3
BOOTSTRAP_OK = {0: "nothing to restart", 100: "a device would restart the nucleus",
                101: "a device would reboot"}

#: Recipe step key (lowercase, as recipe.py stores them) → the name the nucleus logs (scriptName).
STEP_NAMES = {"bootstrap": "Bootstrap", "install": "Install", "startup": "Startup", "run": "Run",
              "shutdown": "Shutdown", "recover": "Recover", "uninstall": "Uninstall"}


class ServiceHost(Protocol):
    runner: ProcessRunner
    logs: GreengrassLogs

    def dependencies_ready(self, service: ComponentService) -> bool: ...

    def on_progress(self, service: ComponentService) -> None:
        """The component handled a request without changing state (waiters re-check ``settled``)."""

    def on_state_change(self, service: ComponentService, old: State, new: State) -> None: ...


class ComponentService:
    """One component managed by the kernel: its recipe (already interpolated), state and processes."""

    def __init__(self, host: ServiceHost, recipe: Recipe, *, timeouts: dict[str, float] | None = None) -> None:
        self.host = host
        self.recipe = recipe
        self.name = recipe.name
        self.state = State.NEW
        self.status_reason = ""
        self.history: list[State] = [State.NEW]
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self._desired_running = False
        self._pending: Request | None = None
        self._reported: State | None = None
        self._bootstrap_pending = False
        self._error_from: State | None = None
        self._errors: dict[State, list[float]] = {s: [] for s in COUNTED_STATES}
        self._procs: list[ScriptProcess] = []
        self._main: ScriptProcess | None = None
        self._main_kind = ""
        self._main_task: asyncio.Future[int] | None = None
        self._run_deadline: float | None = None
        self._started_recipe: Recipe = recipe
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._change_waiters: list[asyncio.Future[None]] = []

    # --------------------------------------------------------------- requests

    @property
    def version(self) -> str:
        return self.recipe.version

    @property
    def settled(self) -> bool:
        """True when no request is pending and the state is RUNNING, FINISHED or BROKEN."""
        return self._pending is None and self.state in SETTLED_STATES and (
            self._desired_running or self.state != State.RUNNING
        )

    @property
    def pids(self) -> list[int]:
        """Process ids of the lifecycle scripts the component is running now (their leaders)."""
        return [p.pid for p in self._procs if p.returncode is None]

    @property
    def desired_running(self) -> bool:
        return self._desired_running

    def start(self) -> None:
        """Create the component's task (once) and ask it to run."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._main_loop(), name=f"lifecycle:{self.name}")
        self.request_start()

    def request_start(self) -> None:
        self._desired_running = True
        if self.state == State.FINISHED and self._pending is None:
            self._pending = Request.START
        self._poke()

    def request_stop(self) -> None:
        self._desired_running = False
        if self._pending in (Request.START, Request.RESTART):
            self._pending = None
        self._poke()

    def request_restart(self) -> None:
        self._desired_running = True
        if self._pending != Request.REINSTALL:
            self._pending = Request.RESTART
        self._poke()

    def request_reinstall(self, *, bootstrap: bool = False) -> None:
        self._desired_running = True
        self._pending = Request.REINSTALL
        self._bootstrap_pending = self._bootstrap_pending or bootstrap
        self._poke()

    def update_recipe(self, recipe: Recipe) -> None:
        """A deployment's new recipe; takes effect at the next start (Shutdown stays the one started with)."""
        self.recipe = recipe

    def report_state(self, state: str) -> bool:
        """IPC UpdateState (spec IPC §4.6): honour only the allowed transitions; False if ignored."""
        try:
            reported = State(str(state).upper())
        except ValueError:
            reported = None
        allowed = {
            State.NEW: {State.ERRORED},
            State.STARTING: {State.RUNNING, State.ERRORED, State.FINISHED},
            State.RUNNING: {State.ERRORED, State.FINISHED},
            State.STOPPING: {State.ERRORED, State.FINISHED},
        }
        if reported is None or reported not in allowed.get(self.state, set()):
            self._log("INFO", "service-report-state", "Invalid reported state; ignored",
                      {"currentState": self.state, "reportedState": state})
            return False
        self._log("INFO", "service-report-state", "", {"currentState": self.state, "reportedState": reported})
        self._reported = reported
        self._poke()
        return True

    async def close(self, timeout: float = 30.0) -> None:
        """Stop the component (Shutdown, process tree) and end its task."""
        if self._task is None:
            return
        self.request_stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.state not in (State.FINISHED, State.BROKEN, State.NEW):
                    await self._wait_change()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        await self._stop_processes()

    def signal_processes(self, sig: int) -> int:
        """Send ``sig`` to every process tree the component runs (PauseComponent/ResumeComponent use
        SIGSTOP/SIGCONT); returns how many trees were signalled."""
        count = 0
        for proc in self._procs:
            if proc.returncode is None:
                proc.send_signal(sig)
                count += 1
        return count

    async def uninstall(self) -> None:
        """Run the Uninstall step (a component removed for good); GREENGRASS_COMPONENT_VERSION is set."""
        step = self.recipe.lifecycle.get("uninstall")
        if step is not None:
            await self._run_step("uninstall", step, extra_env={"GREENGRASS_COMPONENT_VERSION": self.version})

    async def _wait_change(self) -> None:
        seen = len(self.history)
        while len(self.history) == seen:
            fut = asyncio.get_running_loop().create_future()
            self._change_waiters.append(fut)
            await fut

    # ---------------------------------------------------------- the machine

    def wake(self) -> None:
        """Re-evaluate the current state (e.g. a dependency changed state)."""
        self._wake.set()

    def _poke(self) -> None:
        self._wake.set()

    def _set(self, new: State, reason: str = "") -> None:
        old = self.state
        if old == new:
            return
        if new != State.ERRORED and old in COUNTED_STATES:
            self._errors[old].clear()
        self.state = new
        self.status_reason = reason
        self.history.append(new)
        context = {"serviceName": self.name, "currentState": old, "newState": new}
        if reason:
            context["reason"] = reason
        self._log("INFO", "service-set-state", "Service moved to state", context)
        for fut in self._change_waiters:
            if not fut.done():
                fut.set_result(None)
        self._change_waiters.clear()
        self.host.on_state_change(self, old, new)

    def _error(self, reason: str) -> None:
        self._error_from = self.state
        self._log("ERROR", "service-errored", reason, {"serviceName": self.name, "currentState": self.state})
        self._set(State.ERRORED, reason)

    async def _main_loop(self) -> None:
        handlers = {
            State.NEW: self._on_new,
            State.INSTALLED: self._on_installed,
            State.STARTING: self._on_starting,
            State.RUNNING: self._on_running,
            State.STOPPING: self._on_stopping,
            State.ERRORED: self._on_errored,
            State.FINISHED: self._on_finished,
            State.BROKEN: self._on_broken,
        }
        while True:
            self._wake.clear()
            try:
                await handlers[self.state]()
                self.host.on_progress(self)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or an OS error must not kill the component's task silently
                self._log("ERROR", "service-exception", f"{type(exc).__name__}: {exc}",
                          {"serviceName": self.name, "currentState": self.state})
                if self.state in COUNTED_STATES:
                    self._error(f"{type(exc).__name__}: {exc}")
                else:
                    await self._idle()

    async def _idle(self, *futures: asyncio.Future, deadline: float | None = None) -> None:
        """Wait for a poke, one of ``futures`` to finish, or ``deadline`` (loop time)."""
        wake = asyncio.ensure_future(self._wake.wait())
        loop = asyncio.get_running_loop()
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await asyncio.wait([wake, *futures], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()

    # --- NEW
    async def _on_new(self) -> None:
        if self._pending == Request.REINSTALL:
            self._pending = None
        if not self._desired_running:
            await self._idle()
            return
        if self._bootstrap_pending:
            self._bootstrap_pending = False
            step = self.recipe.lifecycle.get("bootstrap")
            if step is not None:
                result = await self._run_step("bootstrap", step)
                if result is not None:
                    if result.timed_out or result.returncode not in BOOTSTRAP_OK:
                        self._error(self._failure("Bootstrap", result))
                        return
                    self._log("INFO", "service-bootstrap", f"Bootstrap exited {result.returncode}: "
                              f"{BOOTSTRAP_OK[result.returncode]}; ggsim goes on without restarting",
                              {"serviceName": self.name, "exitCode": result.returncode})
        step = self.recipe.lifecycle.get("install")
        if step is not None:
            result = await self._run_step("install", step)
            if result is not None and (result.timed_out or result.returncode != 0):
                self._error(self._failure("Install", result))
                return
        if self._reported == State.ERRORED:
            self._reported = None
            self._error("Reported ERRORED via UpdateState")
            return
        self._reported = None
        self._set(State.INSTALLED)

    # --- INSTALLED
    async def _on_installed(self) -> None:
        if self._pending == Request.REINSTALL:
            self._pending = None
            self._set(State.NEW, "reinstall requested")
            return
        if self._pending in (Request.RESTART, Request.START):
            self._pending = None
        if not self._desired_running:
            self._set(State.FINISHED, "stop requested")
            return
        if not self.host.dependencies_ready(self):
            await self._idle()
            return
        self._set(State.STARTING)

    # --- STARTING
    async def _on_starting(self) -> None:
        self._reported = None
        self._started_recipe = self.recipe
        loop = asyncio.get_running_loop()
        startup = self._unless_skipped("startup")
        if startup is False:
            return  # errored on Skipif
        run = None if startup is not None else self._unless_skipped("run")
        if run is False:
            return
        if startup is None and run is None:
            self._set(State.FINISHED, "Nothing done")
            self._desired_running = False
            return
        kind, step = ("startup", startup) if startup is not None else ("run", run)
        assert step is not None and step is not False
        await self._launch_main(kind, step)
        if kind == "run":
            self._run_deadline = None if step.timeout is None else loop.time() + step.timeout
            self._set(State.RUNNING)
            return
        deadline = loop.time() + (step.timeout or self.timeouts["startup"])
        while True:
            self._wake.clear()
            if self._pending is not None or not self._desired_running:
                self._set(State.STOPPING, "stop or restart requested")
                return
            reported, self._reported = self._reported, None
            if reported == State.RUNNING:
                self._set(State.RUNNING, "Reported RUNNING via UpdateState")
                return
            if reported == State.ERRORED:
                self._error("Reported ERRORED via UpdateState")
                return
            if reported == State.FINISHED:
                self._set(State.STOPPING, "Reported FINISHED")
                self._desired_running = False
                return
            if self._main_task is not None and self._main_task.done():
                code = self._main_task.result()
                self._forget_main()
                if code == 0:
                    self._set(State.RUNNING, "Startup exited 0")
                else:
                    self._error(f"Startup exited with code {code}")
                return
            if loop.time() >= deadline:
                self._error(f"Startup did not finish within {step.timeout or self.timeouts['startup']:g} seconds")
                return
            await self._idle(*(t for t in [self._main_task] if t is not None), deadline=deadline)

    # --- RUNNING
    async def _on_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pending is not None or not self._desired_running:
            self._set(State.STOPPING, "stop or restart requested")
            return
        reported, self._reported = self._reported, None
        if reported == State.ERRORED:
            self._error("Reported ERRORED via UpdateState")
            return
        if reported == State.FINISHED:
            self._desired_running = False
            self._set(State.STOPPING, "Reported FINISHED")
            return
        if self._main_task is not None and self._main_task.done():
            code = self._main_task.result()
            kind = self._main_kind
            self._forget_main()
            if code != 0:
                self._error(f"{STEP_NAMES[kind]} exited with code {code}")
                return
            if kind == "run":
                self._desired_running = False
                self._set(State.STOPPING, "Run exited 0")
                return
            return
        if self._run_deadline is not None and loop.time() >= self._run_deadline:
            self._run_deadline = None
            self._error("Run timed out")
            return
        await self._idle(*(t for t in [self._main_task] if t is not None), deadline=self._run_deadline)

    # --- STOPPING
    async def _on_stopping(self) -> None:
        self._forget_main()
        self._run_deadline = None
        shutdown = self._started_recipe.lifecycle.get("shutdown")
        if shutdown is not None:
            await self._run_step("shutdown", shutdown, recipe=self._started_recipe)
        await self._stop_processes()
        reported, self._reported = self._reported, None
        came_from_error = self._error_from is not None
        self._error_from = None
        if self._pending == Request.REINSTALL:
            self._pending = None
            self._set(State.NEW, "reinstall requested")
        elif self._desired_running and (self._pending is not None or came_from_error
                                         or reported == State.ERRORED):
            self._pending = None
            self._set(State.INSTALLED, "restarting")
        else:
            self._pending = None
            self._set(State.FINISHED)

    # --- ERRORED
    async def _on_errored(self) -> None:
        origin = self._error_from or State.RUNNING
        now = time.monotonic()
        if origin in COUNTED_STATES:
            errors = self._errors[origin]
            if errors and now - errors[-1] >= self._error_reset_time():
                errors.clear()
            errors.append(now)
            if len(errors) >= MAX_CONTINUAL_ERRORS:
                errors.clear()
                self._error_from = None
                self._set(State.BROKEN, f"errored {MAX_CONTINUAL_ERRORS} times in {origin}")
                return
        recover = self.recipe.lifecycle.get("recover")
        if recover is not None:
            await self._run_step("recover", recover)
        if origin == State.NEW:
            self._error_from = None
            self._set(State.NEW, "retrying install")
        else:
            self._set(State.STOPPING, "restarting after error")

    # --- FINISHED
    async def _on_finished(self) -> None:
        if self._pending == Request.REINSTALL:
            self._pending = None
            self._set(State.NEW, "reinstall requested")
            return
        if self._pending is not None and self._desired_running:
            self._pending = None
            self._set(State.INSTALLED, "start requested")
            return
        self._pending = None
        await self._idle()

    # --- BROKEN
    async def _on_broken(self) -> None:
        if self._procs:
            await self._stop_processes()
        self._forget_main()
        if self._pending == Request.REINSTALL:
            self._pending = None
            for errors in self._errors.values():
                errors.clear()
            self._set(State.NEW, "reinstall requested")
            return
        if self._pending is not None:
            self._log("WARN", "service-broken", "A BROKEN component starts again only when a deployment "
                      "reinstalls it; request ignored", {"serviceName": self.name})
            self._pending = None
        await self._idle()

    # ------------------------------------------------------------- helpers

    def _error_reset_time(self) -> float:
        value = self.recipe.lifecycle_options.get("errorresettime")
        try:
            return float(value) if value is not None else DEFAULT_ERROR_RESET_TIME
        except (TypeError, ValueError):
            return DEFAULT_ERROR_RESET_TIME

    def _unless_skipped(self, key: str) -> LifecycleStep | None | bool:
        """The step, None if absent or skipped, False if its Skipif is invalid (the component errored)."""
        step = self.recipe.lifecycle.get(key)
        if step is None:
            return None
        if step.skipif:
            try:
                if should_skip(step.skipif):
                    self._log("INFO", "service-skip", f"{STEP_NAMES[key]} skipped: {step.skipif}",
                              {"serviceName": self.name})
                    return None
            except SkipifError as exc:
                self._error(str(exc))
                return False
        if not step.script.strip():
            self._error(f"Missing script in {STEP_NAMES[key]}")
            return False
        return step

    async def _run_step(self, key: str, step: LifecycleStep, recipe: Recipe | None = None,
                        extra_env: dict[str, str] | None = None) -> ExitInfo | None:
        """Run a blocking step to its end. None when it was skipped; ``ExitInfo(None)`` when its Skipif
        is invalid or its script is missing (logged)."""
        recipe = recipe or self.recipe
        if step.skipif:
            try:
                if should_skip(step.skipif):
                    self._log("INFO", "service-skip", f"{STEP_NAMES[key]} skipped: {step.skipif}",
                              {"serviceName": self.name})
                    return None
            except SkipifError as exc:
                self._log("ERROR", "service-invalid-skipif", str(exc), {"serviceName": self.name})
                return ExitInfo(None)
        if not step.script.strip():
            self._log("ERROR", "service-missing-script", f"Missing script in {STEP_NAMES[key]}",
                      {"serviceName": self.name})
            return ExitInfo(None)
        timeout = step.timeout or self.timeouts[key]
        return await self.host.runner.run(
            self.name, STEP_NAMES[key], step.script, timeout=timeout,
            lifecycle_setenv=recipe.lifecycle_setenv, step_setenv=step.setenv,
            requires_privilege=step.requires_privilege, current_state=lambda: str(self.state),
            extra_env=extra_env,
        )

    def _failure(self, step: str, result: ExitInfo) -> str:
        if result.timed_out:
            return f"{step} timed out"
        if result.returncode is None:
            return f"{step} could not run (invalid Skipif or missing script)"
        return f"{step} exited with code {result.returncode}"

    async def _launch_main(self, kind: str, step: LifecycleStep) -> None:
        proc = await self.host.runner.start(
            self.name, STEP_NAMES[kind], step.script,
            lifecycle_setenv=self.recipe.lifecycle_setenv, step_setenv=step.setenv,
            requires_privilege=step.requires_privilege, current_state=lambda: str(self.state),
        )
        self._procs.append(proc)
        self._main = proc
        self._main_kind = kind
        self._main_task = asyncio.ensure_future(proc.wait())

    def _forget_main(self) -> None:
        self._main = None
        self._main_kind = ""
        self._main_task = None

    async def _stop_processes(self) -> None:
        procs, self._procs = self._procs, []
        if procs:
            await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)

    def _log(self, level: str, event: str, message: str, context: dict | None = None) -> None:
        self.host.logs.component(self.name, level, event, message, context)


def names(states: Iterable[str | State]) -> frozenset[State]:
    """Normalise a collection of state names."""
    return frozenset(State(str(s).upper()) for s in states)
