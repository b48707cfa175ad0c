"""The lifecycle rules of one component as a pure state machine: ``transition(machine, event)``.

``transition(machine, event) -> (machine, actions)`` holds every rule of spec components §1.5–§1.7 and IPC
§4.6: what each state does on entry, how it answers requests, UpdateState reports, step ends, process exits
and timers. It does no I/O, has no asyncio and reads no clock: the driver (``lifecycle.ComponentService``)
turns what happens into events, feeds them here one at a time and carries out the actions in order. Facts
that need the outside world come back as events: a step's exit, whether the HARD dependencies are ready
(``CheckDependencies`` → ``DependenciesReady``), how many errors the state has had within its reset window
(``CountError`` → ``ErrorCounted``; the driver owns that clock).

What each state does (as the Java nucleus's ``Lifecycle``/``GenericExternalService``):

* NEW: once wanted running, ``Bootstrap`` if a deployment asked for it (exit 0, 100 or 101 is success), then
  ``Install`` (skipped or absent counts as done) → INSTALLED; a failure, a timeout or an UpdateState
  ERRORED reported meanwhile → ERRORED.
* INSTALLED: a pending reinstall → NEW; not wanted → FINISHED; every HARD dependency ready → STARTING.
* STARTING: ``Startup`` is launched in the background (its timer guards STARTING); exit 0 or UpdateState
  RUNNING → RUNNING; non-zero, the timer or UpdateState ERRORED → ERRORED. Without Startup (absent or
  skipped) ``Run`` is launched → RUNNING at once (its optional Timeout guards RUNNING). With neither →
  FINISHED "Nothing done".
* RUNNING: Run exits 0 → STOPPING → FINISHED; a non-zero exit, the Run timer or UpdateState ERRORED →
  ERRORED; a stop or restart request or UpdateState FINISHED → STOPPING.
* STOPPING: ``Shutdown`` of the recipe the component was started with, then every process it started is
  stopped → NEW (a pending reinstall), INSTALLED (wanted running after a request, an error or a reported
  ERRORED) or FINISHED.
* An error in NEW, STARTING or RUNNING is first counted against that state (the machine stays in it while
  the driver counts); the third within the window → BROKEN directly, never showing ERRORED (the nucleus
  reports BROKEN in place of the third ERRORED). Otherwise → ERRORED.
* ERRORED: ``Recover``, then NEW (an install error) or STOPPING.
* FINISHED: a reinstall → NEW; a start or restart request → INSTALLED.
* BROKEN: entered from STARTING or RUNNING, the started recipe's ``Shutdown`` runs and then every process
  is stopped, as on every other stop; entered from NEW, the processes are stopped. Only a reinstall leaves it
  (→ NEW, errors forgotten); any other request is logged and ignored.

Invariants:

1. The state changes only through an ``Enter`` action, one per state entered, in order; the machine returned
   is in the last state entered. Entering a state runs its entry rule, and — when no job is running — its
   settle rule (the decisions it re-takes on every event while it waits).
2. At most one job runs at a time (``job``: a blocking step, a launch, stopping the processes, counting an
   error). While it runs, requests and reports are only recorded (``desired_running``, ``pending``,
   ``reported``); they take effect when the job's end event arrives.
3. ``main`` names the background process (Startup or Run) whose exit moves the state; it is set only in
   STARTING or RUNNING and forgotten on entering STOPPING or BROKEN. An exit with no ``main`` is stale.
4. A timer guards one state (Startup's STARTING, Run's RUNNING); leaving that state cancels it, so a
   ``TimedOut`` for anything but the armed timer is stale.
5. An error comes from NEW, STARTING or RUNNING (``error_from``). Leaving one of those states for anything
   but ERRORED forgets its errors.
6. An UpdateState report is honoured only for the transitions ``REPORTABLE`` lists; others are ignored.
7. An event that does not apply (stale, or for a job that is not running) changes nothing and emits nothing.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "State", "Request", "Step", "Job", "Timer", "Machine", "transition", "REPORTABLE", "READY_STATES", "SETTLED_STATES",
    "COUNTED_STATES", "MAX_CONTINUAL_ERRORS", "BOOTSTRAP_OK", "STEP_NAMES",
    "Event", "StartRequested", "StopRequested", "RestartRequested", "ReinstallRequested", "Reported", "Wake",
    "DependenciesReady", "StepEnded", "Launched", "LaunchSkipped", "LaunchFailed", "MainExited", "TimedOut",
    "ProcessesStopped", "ErrorCounted",
    "Action", "Enter", "Log", "RunStep", "Launch", "ArmTimer", "CancelTimer", "ForgetMain", "StopProcesses",
    "KeepStartedRecipe", "CheckDependencies", "CountError", "ForgetErrors",
]


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


class Step(enum.StrEnum):
    """A lifecycle step, by the lowercase key recipe.py stores it under."""

    BOOTSTRAP = "bootstrap"
    INSTALL = "install"
    STARTUP = "startup"
    RUN = "run"
    SHUTDOWN = "shutdown"
    RECOVER = "recover"
    UNINSTALL = "uninstall"


class Job(enum.StrEnum):
    """Jobs that are not a blocking step (a blocking step's job is its ``Step``)."""

    LAUNCH = "launch"  # starting Startup (or, without it, Run) in the background
    STOP_PROCESSES = "stop-processes"
    COUNT_ERROR = "count-error"


#: States in which a HARD dependency counts as ready for its dependers.
READY_STATES = frozenset({State.RUNNING, State.FINISHED, State.STOPPING})
#: States a deployment's health wait accepts as final (spec §5.4).
SETTLED_STATES = frozenset({State.RUNNING, State.FINISHED, State.BROKEN})
#: States whose errors are counted towards BROKEN.
COUNTED_STATES = frozenset({State.NEW, State.STARTING, State.RUNNING})
#: UpdateState over IPC: the reported states each current state accepts (spec components §1.7).
REPORTABLE: Mapping[State, frozenset[State]] = {
    State.NEW: frozenset({State.ERRORED}),
    State.STARTING: frozenset({State.RUNNING, State.ERRORED, State.FINISHED}),
    State.RUNNING: frozenset({State.ERRORED, State.FINISHED}),
    State.STOPPING: frozenset({State.ERRORED, State.FINISHED}),
}
MAX_CONTINUAL_ERRORS = 3
BOOTSTRAP_OK = {0: "nothing to restart", 100: "a device would restart the nucleus",
                101: "a device would reboot"}
#: Step → the name the nucleus logs (scriptName) and writes in reasons.
STEP_NAMES = {Step.BOOTSTRAP: "Bootstrap", Step.INSTALL: "Install", Step.STARTUP: "Startup", Step.RUN: "Run",
              Step.SHUTDOWN: "Shutdown", Step.RECOVER: "Recover", Step.UNINSTALL: "Uninstall"}


@dataclass(frozen=True)
class Timer:
    """An armed timeout: ``step``'s, guarding the state it runs in."""

    step: Step
    seconds: float

    @property
    def guards(self) -> State:
        return State.STARTING if self.step == Step.STARTUP else State.RUNNING


@dataclass(frozen=True)
class Machine:
    """Everything the rules decide on. Immutable: ``transition`` returns a new one."""

    state: State = State.NEW
    #: wanted running (start, restart, reinstall) or not (stop; Run exited 0; UpdateState FINISHED)
    desired_running: bool = False
    #: a request that makes the component leave a state it would otherwise stay in
    pending: Request | None = None
    #: a deployment asked for Bootstrap before the next Install
    bootstrap_pending: bool = False
    #: an UpdateState recorded while a job ran (in NEW and STOPPING: read when the job ends)
    reported: State | None = None
    #: the state the current error came from (ERRORED, then STOPPING, which restarts because of it)
    error_from: State | None = None
    #: why the error being counted happened (the reason ERRORED or BROKEN is entered with)
    error_reason: str = ""
    #: what the component waits for: a blocking step, a launch, its processes stopping, an error count
    job: Step | Job | None = None
    #: the background process whose exit moves the state (Startup or Run)
    main: Step | None = None
    timer: Timer | None = None

    @property
    def settled(self) -> bool:
        """No request pending and RUNNING (wanted), FINISHED or BROKEN (its Shutdown and stop done): what a
        deployment's health wait needs."""
        return self.pending is None and self.state in SETTLED_STATES and (
            self.desired_running or self.state != State.RUNNING
        ) and (self.state != State.BROKEN or self.job is None)


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class StartRequested:
    pass


@dataclass(frozen=True)
class StopRequested:
    pass


@dataclass(frozen=True)
class RestartRequested:
    pass


@dataclass(frozen=True)
class ReinstallRequested:
    bootstrap: bool = False


@dataclass(frozen=True)
class Reported:
    """UpdateState over IPC."""

    state: State


@dataclass(frozen=True)
class Wake:
    """Re-take the current state's decisions (a dependency changed state)."""


@dataclass(frozen=True)
class DependenciesReady:
    """Answer to ``CheckDependencies``: every HARD dependency is RUNNING, FINISHED or STOPPING."""


@dataclass(frozen=True)
class StepEnded:
    """A blocking step ended. ``skipped``: absent or its Skipif said so; ``returncode`` None (and not timed
    out): it could not run (invalid Skipif, missing script); ``crash``: the driver failed running it."""

    step: Step
    returncode: int | None = 0
    timed_out: bool = False
    skipped: bool = False
    crash: str = ""


@dataclass(frozen=True)
class Launched:
    """Startup or Run runs in the background; ``timeout`` is the timer to arm (None: none)."""

    step: Step
    timeout: float | None


@dataclass(frozen=True)
class LaunchSkipped:
    """Startup or Run is absent or its Skipif said so."""

    step: Step


@dataclass(frozen=True)
class LaunchFailed:
    """Startup or Run could not be launched (invalid Skipif, missing script, an OS error)."""

    step: Step
    reason: str


@dataclass(frozen=True)
class MainExited:
    """The background Startup or Run process exited (negative: killed by that signal)."""

    code: int


@dataclass(frozen=True)
class TimedOut:
    step: Step


@dataclass(frozen=True)
class ProcessesStopped:
    pass


@dataclass(frozen=True)
class ErrorCounted:
    """Answer to ``CountError``: the errors of that state within its reset window, this one included."""

    count: int


Event = (StartRequested | StopRequested | RestartRequested | ReinstallRequested | Reported | Wake
         | DependenciesReady | StepEnded | Launched | LaunchSkipped | LaunchFailed | MainExited | TimedOut
         | ProcessesStopped | ErrorCounted)


# ----------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Enter:
    """Set the state (the one place a state changes: log, history, the host's ``on_state_change``)."""

    state: State
    reason: str = ""


@dataclass(frozen=True)
class Log:
    level: str
    event: str
    message: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunStep:
    """Run a blocking step to its end (Shutdown: the started recipe's) → ``StepEnded``."""

    step: Step


@dataclass(frozen=True)
class Launch:
    """Launch Startup or Run in the background → ``Launched``, ``LaunchSkipped`` or ``LaunchFailed``; its exit
    later → ``MainExited``."""

    step: Step


@dataclass(frozen=True)
class ArmTimer:
    """→ ``TimedOut(step)`` after ``seconds``."""

    step: Step
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    pass


@dataclass(frozen=True)
class ForgetMain:
    """Stop watching the background process's exit (it is stopped with the others)."""


@dataclass(frozen=True)
class StopProcesses:
    """Stop every process the component started (SIGTERM, grace, SIGKILL) → ``ProcessesStopped``."""


@dataclass(frozen=True)
class KeepStartedRecipe:
    """Remember the current recipe: its Shutdown is the one STOPPING runs."""


@dataclass(frozen=True)
class CheckDependencies:
    """→ ``DependenciesReady`` if every HARD dependency is ready (nothing otherwise: a ``Wake`` follows)."""


@dataclass(frozen=True)
class CountError:
    """Count an error of ``state`` within its reset window → ``ErrorCounted``."""

    state: State


@dataclass(frozen=True)
class ForgetErrors:
    states: frozenset[State]


Action = (Enter | Log | RunStep | Launch | ArmTimer | CancelTimer | ForgetMain | StopProcesses
          | KeepStartedRecipe | CheckDependencies | CountError | ForgetErrors)


# -------------------------------------------------------------------------------------------- the rules


def transition(machine: Machine, event: Event) -> tuple[Machine, list[Action]]:
    """The machine after ``event`` and the actions to carry out, in order (see the module docstring)."""
    t = _Transition(machine)
    t.handle(event)
    return t.m, t.actions


class _Transition:
    """One call of ``transition``: the machine as it changes and the actions emitted so far."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.actions: list[Action] = []

    def set(self, **changes: Any) -> None:
        self.m = dataclasses.replace(self.m, **changes)

    def emit(self, *actions: Action) -> None:
        self.actions.extend(actions)

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        m = self.m
        match event:
            case StartRequested():
                pending = Request.START if m.state == State.FINISHED and m.pending is None else m.pending
                self.set(desired_running=True, pending=pending)
            case StopRequested():
                pending = None if m.pending in (Request.START, Request.RESTART) else m.pending
                self.set(desired_running=False, pending=pending)
            case RestartRequested():
                pending = m.pending if m.pending == Request.REINSTALL else Request.RESTART
                self.set(desired_running=True, pending=pending)
            case ReinstallRequested(bootstrap=bootstrap):
                self.set(desired_running=True, pending=Request.REINSTALL,
                         bootstrap_pending=m.bootstrap_pending or bootstrap)
            case Reported(state=reported):
                if reported not in REPORTABLE.get(m.state, frozenset()):
                    return
                self.set(reported=reported)
            case Wake():
                pass
            case DependenciesReady():
                if m.state == State.INSTALLED and m.job is None:
                    self.settle_installed(dependencies_ready=True)
                return
            case StepEnded() if m.job == event.step:
                self.set(job=None)
                self.step_ended(event)
                return
            case Launched(step=step, timeout=timeout) if m.job == Job.LAUNCH:
                self.launched(step, timeout)
                return
            case LaunchSkipped(step=step) if m.job == Job.LAUNCH:
                self.launch_skipped(step)
                return
            case LaunchFailed(reason=reason) if m.job == Job.LAUNCH:
                self.set(job=None)
                self.fail(reason)
                return
            case MainExited(code=code) if m.main is not None:
                self.main_exited(m.main, code)
                return
            case TimedOut(step=step) if m.timer is not None and m.timer.step == step:
                self.timed_out(m.timer)
                return
            case ProcessesStopped() if m.job == Job.STOP_PROCESSES:
                self.set(job=None)
                self.processes_stopped()
                return
            case ErrorCounted(count=count) if m.job == Job.COUNT_ERROR:
                self.set(job=None)
                self.error_counted(count)
                return
            case _:
                return  # stale: for a job, process or timer that is no longer there
        self.settle()

    def step_ended(self, event: StepEnded) -> None:
        step = event.step
        if step in (Step.BOOTSTRAP, Step.INSTALL):
            failed = event.crash or (not event.skipped and (
                event.timed_out or (event.returncode not in BOOTSTRAP_OK if step == Step.BOOTSTRAP
                                    else event.returncode != 0)))
            if failed:
                self.fail(event.crash or _failure(STEP_NAMES[step], event))
                return
            if step == Step.BOOTSTRAP:
                if not event.skipped and event.returncode is not None:
                    self.emit(Log("INFO", "service-bootstrap", f"Bootstrap exited {event.returncode}: "
                                  f"{BOOTSTRAP_OK[event.returncode]}; ggsim goes on without restarting",
                                  {"exitCode": event.returncode}))
                self.run_step(Step.INSTALL)
                return
            reported = self.m.reported
            self.set(reported=None)
            if reported == State.ERRORED:
                self.fail("Reported ERRORED via UpdateState")
            else:
                self.enter(State.INSTALLED)
        elif step == Step.SHUTDOWN:
            self.set(job=Job.STOP_PROCESSES)
            self.emit(StopProcesses())
        elif step == Step.RECOVER:
            if (self.m.error_from or State.RUNNING) == State.NEW:
                self.set(error_from=None)
                self.enter(State.NEW, "retrying install")
            else:
                self.enter(State.STOPPING, "restarting after error")

    def launched(self, step: Step, timeout: float | None) -> None:
        self.set(job=None, main=step)
        if timeout is not None:
            self.set(timer=Timer(step, timeout))
            self.emit(ArmTimer(step, timeout))
        if step == Step.RUN:
            self.enter(State.RUNNING)
        else:
            self.settle()

    def launch_skipped(self, step: Step) -> None:
        if step == Step.STARTUP:
            self.emit(Launch(Step.RUN))
            return
        self.set(job=None, desired_running=False)
        self.enter(State.FINISHED, "Nothing done")

    def main_exited(self, main: Step, code: int) -> None:
        self.set(main=None)
        if self.m.state == State.STARTING:
            if code == 0:
                self.enter(State.RUNNING, "Startup exited 0")
            else:
                self.fail(f"Startup exited with code {code}")
        elif self.m.state == State.RUNNING:
            if code != 0:
                self.fail(f"{STEP_NAMES[main]} exited with code {code}")
            elif main == Step.RUN:
                self.set(desired_running=False)
                self.enter(State.STOPPING, "Run exited 0")
            # Startup exiting 0 after UpdateState RUNNING: nothing changes

    def timed_out(self, timer: Timer) -> None:
        self.set(timer=None)
        if timer.step == Step.STARTUP:
            self.fail(f"Startup did not finish within {timer.seconds:g} seconds")
        else:
            self.fail("Run timed out")

    def processes_stopped(self) -> None:
        if self.m.state == State.BROKEN:
            self.settle()
            return
        m = self.m
        restart = m.desired_running and (m.pending is not None or m.error_from is not None
                                         or m.reported == State.ERRORED)
        self.set(reported=None, error_from=None, pending=None)
        if m.pending == Request.REINSTALL:
            self.enter(State.NEW, "reinstall requested")
        elif restart:
            self.enter(State.INSTALLED, "restarting")
        else:
            self.enter(State.FINISHED)

    def error_counted(self, count: int) -> None:
        origin = self.m.error_from or self.m.state
        reason = self.m.error_reason
        self.set(error_reason="")
        if count >= MAX_CONTINUAL_ERRORS:
            self.set(error_from=None)
            self.enter(State.BROKEN, f"{reason}; errored {MAX_CONTINUAL_ERRORS} times in {origin}")
        else:
            self.enter(State.ERRORED, reason)

    # ------------------------------------------------------------ state changes

    def fail(self, reason: str) -> None:
        """The current state (NEW, STARTING or RUNNING) errored: count it, then ERRORED or BROKEN."""
        if self.m.job == Job.COUNT_ERROR:
            return  # already failing: one error is counted once
        self.emit(Log("ERROR", "service-errored", reason, {"currentState": self.m.state}))
        self.set(error_from=self.m.state, error_reason=reason, job=Job.COUNT_ERROR)
        self.emit(CountError(self.m.state))

    def enter(self, state: State, reason: str = "") -> None:
        old = self.m.state
        if state == old:
            return
        if old in COUNTED_STATES and state != State.ERRORED:
            self.emit(ForgetErrors(frozenset({old})))
        if self.m.timer is not None and self.m.timer.guards != state:
            self.set(timer=None)
            self.emit(CancelTimer())
        self.set(state=state)
        self.emit(Enter(state, reason))
        self.on_entry(old)
        if self.m.job is None and self.m.state == state:
            self.settle()

    def on_entry(self, old: State) -> None:
        state = self.m.state
        if state == State.STARTING:
            self.set(reported=None, job=Job.LAUNCH)
            self.emit(KeepStartedRecipe(), Launch(Step.STARTUP))
        elif state in (State.STOPPING, State.BROKEN):
            if self.m.main is not None:
                self.set(main=None)
                self.emit(ForgetMain())
            if state == State.STOPPING or old in (State.STARTING, State.RUNNING):
                self.run_step(Step.SHUTDOWN)  # BROKEN from a started state stops as every stop does
            else:
                self.set(job=Job.STOP_PROCESSES)
                self.emit(StopProcesses())
        elif state == State.ERRORED:
            self.run_step(Step.RECOVER)

    def run_step(self, step: Step) -> None:
        self.set(job=step)
        self.emit(RunStep(step))

    # --------------------------------------------------------------- settling

    def settle(self) -> None:
        """The current state's decisions, re-taken on every event while no job runs."""
        if self.m.job is not None:
            return
        match self.m.state:
            case State.NEW:
                self.settle_new()
            case State.INSTALLED:
                self.settle_installed()
            case State.STARTING | State.RUNNING:
                self.settle_started()
            case State.FINISHED:
                self.settle_finished()
            case State.BROKEN:
                self.settle_broken()

    def settle_new(self) -> None:
        if self.m.pending == Request.REINSTALL:
            self.set(pending=None)
        if not self.m.desired_running:
            return
        if self.m.bootstrap_pending:
            self.set(bootstrap_pending=False)
            self.run_step(Step.BOOTSTRAP)
        else:
            self.run_step(Step.INSTALL)

    def settle_installed(self, *, dependencies_ready: bool = False) -> None:
        m = self.m
        if m.pending == Request.REINSTALL:
            self.set(pending=None)
            self.enter(State.NEW, "reinstall requested")
            return
        if m.pending is not None:
            self.set(pending=None)
        if not m.desired_running:
            self.enter(State.FINISHED, "stop requested")
        elif dependencies_ready:
            self.enter(State.STARTING)
        else:
            self.emit(CheckDependencies())

    def settle_started(self) -> None:
        """STARTING (Startup running) or RUNNING: requests, then a recorded report."""
        m = self.m
        if m.pending is not None or not m.desired_running:
            self.enter(State.STOPPING, "stop or restart requested")
            return
        reported = m.reported
        self.set(reported=None)
        if reported == State.RUNNING and m.state == State.STARTING:
            self.enter(State.RUNNING, "Reported RUNNING via UpdateState")
        elif reported == State.ERRORED:
            self.fail("Reported ERRORED via UpdateState")
        elif reported == State.FINISHED:
            self.set(desired_running=False)
            self.enter(State.STOPPING, "Reported FINISHED")

    def settle_finished(self) -> None:
        m = self.m
        self.set(pending=None)
        if m.pending == Request.REINSTALL:
            self.enter(State.NEW, "reinstall requested")
        elif m.pending is not None and m.desired_running:
            self.enter(State.INSTALLED, "start requested")

    def settle_broken(self) -> None:
        m = self.m
        self.set(pending=None)
        if m.pending == Request.REINSTALL:
            self.emit(ForgetErrors(COUNTED_STATES))
            self.enter(State.NEW, "reinstall requested")
        elif m.pending is not None:
            self.emit(Log("WARN", "service-broken", "A BROKEN component starts again only when a deployment "
                          "reinstalls it; request ignored"))


def _failure(step: str, event: StepEnded) -> str:
    if event.timed_out:
        return f"{step} timed out"
    if event.returncode is None:
        return f"{step} could not run (invalid Skipif or missing script)"
    return f"{step} exited with code {event.returncode}"
