"""The driver of one component's lifecycle: ``ComponentService``, the one task that changes its state.

The rules live in ``lifecycle_machine`` (a pure ``transition(machine, event) -> (machine, actions)``); this
module turns what happens into events and carries out the actions. Requests (start/stop/restart/reinstall),
UpdateState reports (IPC), dependency changes (``wake``), step and process exits and timers are all events on
one queue; the component's task takes them one at a time, feeds each to ``transition`` and carries out the
actions in order. An action whose answer comes at once (is a step skipped? are the HARD dependencies ready?
how many errors in the window? the launched process, after its spawn is awaited) feeds its answer straight
back, before any queued event; an action that takes time (a blocking step, stopping the processes) runs as
the component's one job, whose end is an event on the queue. Meanwhile the task goes on taking events (the
machine records requests and reports until the job ends).
``Enter`` is the only place the state changes: it logs, appends to the history and calls the host's
``on_state_change`` (the kernel turns that into awaitable events and HARD-dependency restarts).

Timeouts (spec components §1.5; ``Kernel(timeouts=...)`` overrides them) and the error reset window (the
``ErrorResetTime`` lifecycle option, default 3600 s) are the driver's: they need the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Collection
from typing import TYPE_CHECKING, Protocol

from .lifecycle_machine import (
    COUNTED_STATES,
    READY_STATES,
    REPORTABLE,
    SETTLED_STATES,
    STEP_NAMES,
    Action,
    ArmTimer,
    CancelTimer,
    CheckDependencies,
    CountError,
    DependenciesReady,
    Enter,
    ErrorCounted,
    Event,
    ForgetErrors,
    ForgetMain,
    KeepStartedRecipe,
    Launch,
    Launched,
    LaunchFailed,
    LaunchSkipped,
    Log,
    Machine,
    MainExited,
    ProcessesStopped,
    ReinstallRequested,
    Reported,
    Request,
    RestartRequested,
    RunStep,
    StartRequested,
    State,
    Step,
    StepEnded,
    StopProcesses,
    StopRequested,
    TimedOut,
    Wake,
    transition,
)
from .process import ExitInfo, GreengrassLogs, ProcessRunner, ScriptProcess
from .skipif import SkipifError, should_skip

if TYPE_CHECKING:
    from .recipe import LifecycleStep, Recipe

__all__ = ["ComponentService", "Request", "State", "ServiceHost", "READY_STATES", "SETTLED_STATES"]

DEFAULT_TIMEOUTS: dict[str, float] = {
    "bootstrap": 120.0,
    "install": 120.0,
    "startup": 120.0,
    "shutdown": 15.0,
    "recover": 60.0,
    "uninstall": 120.0,
}
DEFAULT_ERROR_RESET_TIME = 3600.0


class ServiceHost(Protocol):
    runner: ProcessRunner
    logs: GreengrassLogs

    def dependencies_ready(self, service: ComponentService) -> bool: ...

    def on_progress(self, service: ComponentService) -> None:
        """The component handled an event without changing state (waiters re-check ``settled``)."""

    def on_state_change(self, service: ComponentService, old: State, new: State) -> None: ...


class ErrorWindow:
    """Errors per state (NEW, STARTING, RUNNING), a state's list starting afresh when the previous error is
    ``reset_time`` or more ago: the clock half of the three-errors rule (the machine compares the count)."""

    def __init__(self) -> None:
        self._times: dict[State, list[float]] = {s: [] for s in COUNTED_STATES}

    def count(self, state: State, now: float, reset_time: float) -> int:
        """Record an error of ``state`` at ``now``; the errors within the window, this one included."""
        errors = self._times[state]
        if errors and now - errors[-1] >= reset_time:
            errors.clear()
        errors.append(now)
        return len(errors)

    def forget(self, states: Collection[State]) -> None:
        for state in states:
            self._times[state].clear()


class _CannotRun(Exception):
    """A step's Skipif is invalid or its script is missing: ``event`` is the log event, the text the reason."""

    def __init__(self, event: str, reason: str) -> None:
        super().__init__(reason)
        self.event = event


class ComponentService:
    """One component managed by the kernel: its recipe (already interpolated), state and processes."""

    def __init__(self, host: ServiceHost, recipe: Recipe, *, timeouts: dict[str, float] | None = None) -> None:
        self.host = host
        self.recipe = recipe
        self.name = recipe.name
        #: the state the host has been told (``Enter`` sets it; the machine may already be further on while
        #: one transition's actions are carried out)
        self.state = State.NEW
        self.status_reason = ""
        self.history: list[State] = [State.NEW]
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self._machine = Machine()
        self._events: deque[Event] = deque()
        self._has_events = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._job: asyncio.Future[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._errors = ErrorWindow()
        self._procs: list[ScriptProcess] = []
        self._main: ScriptProcess | None = None
        self._main_watch: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started_recipe: Recipe = recipe
        self._change_waiters: list[asyncio.Future[None]] = []

    # --------------------------------------------------------------- requests

    @property
    def version(self) -> str:
        return self.recipe.version

    @property
    def settled(self) -> bool:
        """True when no event waits, no request is pending and the state is RUNNING, FINISHED or BROKEN."""
        return not self._events and self._machine.settled

    @property
    def pids(self) -> list[int]:
        """Process ids of the lifecycle scripts the component is running now (their leaders)."""
        return [p.pid for p in self._procs if p.returncode is None]

    @property
    def desired_running(self) -> bool:
        return self._machine.desired_running

    def start(self) -> None:
        """Create the component's task (once) and ask it to run."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drive(), name=f"lifecycle:{self.name}")
        self.request_start()

    def request_start(self) -> None:
        self._post(StartRequested())

    def request_stop(self) -> None:
        self._post(StopRequested())

    def request_restart(self) -> None:
        self._post(RestartRequested())

    def request_reinstall(self, *, bootstrap: bool = False) -> None:
        self._post(ReinstallRequested(bootstrap))

    def update_recipe(self, recipe: Recipe) -> None:
        """A deployment's new recipe; takes effect at the next start (Shutdown stays the one started with)."""
        self.recipe = recipe

    def report_state(self, state: str) -> bool:
        """IPC UpdateState (spec IPC §4.6): honour only the allowed transitions; False if ignored."""
        try:
            reported = State(str(state).upper())
        except ValueError:
            reported = None
        if reported is None or reported not in REPORTABLE.get(self.state, frozenset()):
            self._log("INFO", "service-report-state", "Invalid reported state; ignored",
                      {"currentState": self.state, "reportedState": state})
            return False
        self._log("INFO", "service-report-state", "", {"currentState": self.state, "reportedState": reported})
        self._post(Reported(reported))
        return True

    def wake(self) -> None:
        """Re-take the current state's decisions (e.g. a dependency changed state)."""
        self._post(Wake())

    async def close(self, timeout: float = 30.0) -> None:
        """Stop the component (Shutdown, process tree) and end its task."""
        if self._task is None:
            return
        self.request_stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.state not in (State.FINISHED, State.BROKEN, State.NEW):
                    await self._wait_change()
        for task in (self._task, self._job, self._main_watch):
            if task is not None:
                if task is not self._stopping:  # processes being stopped are waited for, not abandoned
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._job = self._main_watch = self._stopping = None
        self._cancel_timer()
        self._events.clear()
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
        try:
            step = self._resolve(Step.UNINSTALL, self.recipe)
        except _CannotRun as exc:
            self._log("ERROR", exc.event, str(exc), {"serviceName": self.name})
            return
        if step is not None:
            await self._run_step(Step.UNINSTALL, step, self.recipe,
                                 extra_env={"GREENGRASS_COMPONENT_VERSION": self.version})

    async def _wait_change(self) -> None:
        seen = len(self.history)
        while len(self.history) == seen:
            fut = asyncio.get_running_loop().create_future()
            self._change_waiters.append(fut)
            await fut

    # -------------------------------------------------------------- the driver

    def _post(self, event: Event) -> None:
        self._events.append(event)
        self._has_events.set()

    async def _drive(self) -> None:
        """The component's task: the next event → ``transition`` → the actions, one event at a time."""
        while True:
            while not self._events:
                self._has_events.clear()
                await self._has_events.wait()
            await self._handle(self._events.popleft())
            self.host.on_progress(self)

    async def _handle(self, event: Event) -> None:
        answers: deque[Event] = deque([event])
        while answers:
            event = answers.popleft()
            try:
                self._machine, actions = transition(self._machine, event)
            except Exception as exc:  # a bug in the rules must not kill the component's task silently
                self._exception(exc)
                continue
            for action in actions:
                try:
                    answer = await self._carry_out(action)
                except Exception as exc:  # nor a bug or an OS error carrying out an action
                    self._exception(exc)
                    answer = _answer_to_crash(action, exc)
                if answer is not None:
                    answers.append(answer)

    async def _carry_out(self, action: Action) -> Event | None:
        """Carry out one action; returns the answer event when it is known at once. Only ``Launch`` awaits
        (the spawn); every other action is immediate or starts the component's job."""
        match action:
            case Enter(state=state, reason=reason):
                self._set(state, reason)
            case Log(level=level, event=event, message=message, context=context):
                self._log(level, event, message, {"serviceName": self.name, **context})
            case RunStep(step=step):
                return self._start_step(step)
            case Launch(step=step):
                return await self._launch(step)
            case ArmTimer(step=step, seconds=seconds):
                self._cancel_timer()
                self._timer = asyncio.get_running_loop().call_later(seconds, self._post, TimedOut(step))
            case CancelTimer():
                self._cancel_timer()
            case ForgetMain():
                if self._main_watch is not None:
                    self._main_watch.cancel()
                self._main = self._main_watch = None
            case StopProcesses():
                if not self._procs:
                    return ProcessesStopped()
                self._job = self._stopping = asyncio.ensure_future(self._stop_then(ProcessesStopped()))
            case KeepStartedRecipe():
                self._started_recipe = self.recipe
            case CheckDependencies():
                return DependenciesReady() if self.host.dependencies_ready(self) else None
            case CountError(state=state):
                return ErrorCounted(self._errors.count(state, time.monotonic(), self._error_reset_time()))
            case ForgetErrors(states=states):
                self._errors.forget(states)
        return None

    def _set(self, new: State, reason: str = "") -> None:
        """The one place the state changes."""
        old = self.state
        if old == new:
            return
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

    def _exception(self, exc: BaseException) -> None:
        self._log("ERROR", "service-exception", f"{type(exc).__name__}: {exc}",
                  {"serviceName": self.name, "currentState": self.state})

    async def _stop_then(self, done: Event) -> None:
        try:
            await self._stop_processes()
        finally:
            self._post(done)

    # ------------------------------------------------------------------ steps

    def _start_step(self, key: Step) -> Event | None:
        """RunStep: ``StepEnded`` at once when the step is absent, skipped or cannot run; else a job."""
        recipe = self._started_recipe if key == Step.SHUTDOWN else self.recipe
        try:
            step = self._resolve(key, recipe)
        except _CannotRun as exc:
            self._log("ERROR", exc.event, str(exc), {"serviceName": self.name})
            return StepEnded(key, returncode=None)
        if step is None:
            return StepEnded(key, skipped=True)

        async def job() -> None:
            try:
                result = await self._run_step(key, step, recipe)
            except Exception as exc:
                self._exception(exc)
                self._post(_answer_to_crash(RunStep(key), exc))
            else:
                self._post(StepEnded(key, returncode=result.returncode, timed_out=result.timed_out))

        self._job = asyncio.ensure_future(job())
        return None

    async def _launch(self, key: Step) -> Event:
        """Launch: the driver awaits the spawn itself (short), so the state is RUNNING before the script's
        first output line is logged, as the nucleus does."""
        try:
            step = self._resolve(key, self.recipe)
        except _CannotRun as exc:
            return LaunchFailed(key, str(exc))
        if step is None:
            return LaunchSkipped(key)
        timeout = (step.timeout or self.timeouts["startup"]) if key == Step.STARTUP else step.timeout
        proc = await self.host.runner.start(
            self.name, STEP_NAMES[key], step.script,
            lifecycle_setenv=self.recipe.lifecycle_setenv, step_setenv=step.setenv,
            requires_privilege=step.requires_privilege, current_state=lambda: str(self.state),
            version=self.recipe.version,
        )
        self._procs.append(proc)
        self._main = proc
        self._main_watch = asyncio.ensure_future(self._watch(proc))
        return Launched(key, timeout)

    async def _watch(self, proc: ScriptProcess) -> None:
        code = await proc.wait()
        if self._main is proc:
            self._main = self._main_watch = None
            self._post(MainExited(code))

    def _resolve(self, key: Step, recipe: Recipe) -> LifecycleStep | None:
        """``recipe``'s step to run, None when it is absent or its Skipif says skip (logged); raises
        ``_CannotRun`` when its Skipif is invalid or its script is missing."""
        step = recipe.lifecycle.get(key)
        if step is None:
            return None
        if step.skipif:
            try:
                skip = should_skip(step.skipif, root=self.host.runner.layout.root)
            except SkipifError as exc:
                raise _CannotRun("service-invalid-skipif", str(exc)) from exc
            if skip:
                self._log("INFO", "service-skip", f"{STEP_NAMES[key]} skipped: {step.skipif}",
                          {"serviceName": self.name})
                return None
        if not step.script.strip():
            raise _CannotRun("service-missing-script", f"Missing script in {STEP_NAMES[key]}")
        return step

    async def _run_step(self, key: Step, step: LifecycleStep, recipe: Recipe,
                        extra_env: dict[str, str] | None = None) -> ExitInfo:
        timeout = step.timeout or self.timeouts[key]
        return await self.host.runner.run(
            self.name, STEP_NAMES[key], step.script, timeout=timeout,
            lifecycle_setenv=recipe.lifecycle_setenv, step_setenv=step.setenv,
            requires_privilege=step.requires_privilege, current_state=lambda: str(self.state),
            extra_env=extra_env, version=recipe.version,
        )

    # ---------------------------------------------------------------- helpers

    def _error_reset_time(self) -> float:
        value = self.recipe.lifecycle_options.get("errorresettime")
        try:
            return float(value) if value is not None else DEFAULT_ERROR_RESET_TIME
        except (TypeError, ValueError):
            return DEFAULT_ERROR_RESET_TIME

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _stop_processes(self) -> None:
        procs, self._procs = self._procs, []
        if procs:
            await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)

    def _log(self, level: str, event: str, message: str, context: dict | None = None) -> None:
        self.host.logs.component(self.name, level, event, message, context)


def _answer_to_crash(action: Action, exc: Exception) -> Event | None:
    """The answer the machine waits for when carrying out ``action`` raised: a step or launch that crashed
    fails with the exception as its reason (an error in NEW, STARTING or RUNNING; Shutdown and Recover go on),
    stopping the processes ends; nothing else is awaited (a dependency check is re-taken at the next event)."""
    reason = f"{type(exc).__name__}: {exc}"
    match action:
        case RunStep(step=step):
            return StepEnded(step, crash=reason)
        case Launch(step=step):
            return LaunchFailed(step, reason)
        case StopProcesses():
            return ProcessesStopped()
    return None
