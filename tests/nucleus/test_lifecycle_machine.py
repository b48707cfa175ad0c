"""The lifecycle rules on their own: ``transition(machine, event) -> (machine, actions)``, no processes, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ggsim.nucleus.lifecycle_machine import (
    COUNTED_STATES,
    REPORTABLE,
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
    Job,
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
    Timer,
    Wake,
    transition,
)
from hypothesis import given, settings
from hypothesis import strategies as st

S = State
WANTED = Machine(desired_running=True)
INSTALLING = replace(WANTED, job=Step.INSTALL)
INSTALLED = replace(WANTED, state=S.INSTALLED)
LAUNCHING = replace(WANTED, state=S.STARTING, job=Job.LAUNCH)
STARTING = replace(WANTED, state=S.STARTING, main=Step.STARTUP, timer=Timer(Step.STARTUP, 0.3))
RUNNING = replace(WANTED, state=S.RUNNING, main=Step.RUN)
STOPPING = replace(WANTED, state=S.STOPPING, desired_running=False, job=Step.SHUTDOWN)
STOPPED = replace(STOPPING, job=Job.STOP_PROCESSES)
COUNTING = replace(WANTED, state=S.RUNNING, error_from=S.RUNNING, error_reason="Run exited with code 1",
                   job=Job.COUNT_ERROR)
RECOVERING = replace(COUNTING, state=S.ERRORED, error_reason="", job=Step.RECOVER)
FINISHED = Machine(state=S.FINISHED)
BROKEN = replace(WANTED, state=S.BROKEN)


def errored(reason: str, origin: State) -> list[Action]:
    """An error: logged and counted against ``origin`` first (ERRORED or BROKEN follows the count)."""
    return [Log("ERROR", "service-errored", reason, {"currentState": origin}), CountError(origin)]


def stopping(reason: str, *, main: bool = True, leaving: State | None = None, timer: bool = False) -> list[Action]:
    """Entering STOPPING: ``leaving`` a counted state forgets its errors, a timer is cancelled, the main
    process forgotten, then Shutdown."""
    return [*([ForgetErrors(frozenset({leaving}))] if leaving else []), *([CancelTimer()] if timer else []),
            Enter(S.STOPPING, reason), *([ForgetMain()] if main else []), RunStep(Step.SHUTDOWN)]


START_STARTUP = [KeepStartedRecipe(), Launch(Step.STARTUP)]

# (machine, event, the state after, the actions) — one row per rule, grouped by the state the rule is for
RULES: list[tuple[str, Machine, Event, State, list[Action]]] = [
    # NEW
    ("start installs", Machine(), StartRequested(), S.NEW, [RunStep(Step.INSTALL)]),
    ("bootstrap before install", Machine(), ReinstallRequested(bootstrap=True), S.NEW, [RunStep(Step.BOOTSTRAP)]),
    ("bootstrap 100 is success", replace(WANTED, job=Step.BOOTSTRAP), StepEnded(Step.BOOTSTRAP, 100), S.NEW,
     [Log("INFO", "service-bootstrap", "Bootstrap exited 100: a device would restart the nucleus; ggsim goes "
          "on without restarting", {"exitCode": 100}), RunStep(Step.INSTALL)]),
    ("bootstrap 1 errors", replace(WANTED, job=Step.BOOTSTRAP), StepEnded(Step.BOOTSTRAP, 1), S.NEW,
     errored("Bootstrap exited with code 1", S.NEW)),
    ("install ok", INSTALLING, StepEnded(Step.INSTALL, 0), S.INSTALLED,
     [ForgetErrors(frozenset({S.NEW})), Enter(S.INSTALLED), CheckDependencies()]),
    ("install skipped counts as done", INSTALLING, StepEnded(Step.INSTALL, skipped=True), S.INSTALLED,
     [ForgetErrors(frozenset({S.NEW})), Enter(S.INSTALLED), CheckDependencies()]),
    ("install fails", INSTALLING, StepEnded(Step.INSTALL, 2), S.NEW,
     errored("Install exited with code 2", S.NEW)),
    ("install times out", INSTALLING, StepEnded(Step.INSTALL, None, timed_out=True), S.NEW,
     errored("Install timed out", S.NEW)),
    ("install cannot run", INSTALLING, StepEnded(Step.INSTALL, None), S.NEW,
     errored("Install could not run (invalid Skipif or missing script)", S.NEW)),
    ("ERRORED reported while installing", replace(INSTALLING, reported=S.ERRORED), StepEnded(Step.INSTALL, 0),
     S.NEW, errored("Reported ERRORED via UpdateState", S.NEW)),
    ("report while installing is recorded", INSTALLING, Reported(S.ERRORED), S.NEW, []),
    ("stop while installing is recorded", INSTALLING, StopRequested(), S.NEW, []),
    ("installed but stopped meanwhile", replace(INSTALLING, desired_running=False), StepEnded(Step.INSTALL, 0),
     S.FINISHED, [ForgetErrors(frozenset({S.NEW})), Enter(S.INSTALLED), Enter(S.FINISHED, "stop requested")]),
    # INSTALLED
    ("dependencies ready", INSTALLED, DependenciesReady(), S.STARTING, [Enter(S.STARTING), *START_STARTUP]),
    ("a dependency changed", INSTALLED, Wake(), S.INSTALLED, [CheckDependencies()]),
    ("reinstall", INSTALLED, ReinstallRequested(), S.NEW,
     [Enter(S.NEW, "reinstall requested"), RunStep(Step.INSTALL)]),
    ("stop", INSTALLED, StopRequested(), S.FINISHED, [Enter(S.FINISHED, "stop requested")]),
    # STARTING
    ("no Startup: Run", LAUNCHING, LaunchSkipped(Step.STARTUP), S.STARTING, [Launch(Step.RUN)]),
    ("neither Startup nor Run", LAUNCHING, LaunchSkipped(Step.RUN), S.FINISHED,
     [ForgetErrors(frozenset({S.STARTING})), Enter(S.FINISHED, "Nothing done")]),
    ("Run launched is RUNNING", LAUNCHING, Launched(Step.RUN, None), S.RUNNING,
     [ForgetErrors(frozenset({S.STARTING})), Enter(S.RUNNING)]),
    ("Run's Timeout guards RUNNING", LAUNCHING, Launched(Step.RUN, 5.0), S.RUNNING,
     [ArmTimer(Step.RUN, 5.0), ForgetErrors(frozenset({S.STARTING})), Enter(S.RUNNING)]),
    ("Startup launched stays STARTING", LAUNCHING, Launched(Step.STARTUP, 120.0), S.STARTING,
     [ArmTimer(Step.STARTUP, 120.0)]),
    ("Startup cannot run", LAUNCHING, LaunchFailed(Step.STARTUP, "Missing script in Startup"), S.STARTING,
     errored("Missing script in Startup", S.STARTING)),
    ("report while launching is recorded", LAUNCHING, Reported(S.RUNNING), S.STARTING, []),
    ("Startup exits 0", STARTING, MainExited(0), S.RUNNING,
     [ForgetErrors(frozenset({S.STARTING})), CancelTimer(), Enter(S.RUNNING, "Startup exited 0")]),
    ("Startup exits 4", STARTING, MainExited(4), S.STARTING, errored("Startup exited with code 4", S.STARTING)),
    ("Startup's timer", STARTING, TimedOut(Step.STARTUP), S.STARTING,
     errored("Startup did not finish within 0.3 seconds", S.STARTING)),
    ("UpdateState RUNNING", STARTING, Reported(S.RUNNING), S.RUNNING,
     [ForgetErrors(frozenset({S.STARTING})), CancelTimer(), Enter(S.RUNNING, "Reported RUNNING via UpdateState")]),
    ("UpdateState FINISHED", STARTING, Reported(S.FINISHED), S.STOPPING,
     stopping("Reported FINISHED", leaving=S.STARTING, timer=True)),
    ("restart while starting", STARTING, RestartRequested(), S.STOPPING,
     stopping("stop or restart requested", leaving=S.STARTING, timer=True)),
    # RUNNING
    ("Run exits 0", RUNNING, MainExited(0), S.STOPPING, stopping("Run exited 0", main=False, leaving=S.RUNNING)),
    ("Run killed", RUNNING, MainExited(-9), S.RUNNING, errored("Run exited with code -9", S.RUNNING)),
    ("Startup exits 0 after UpdateState RUNNING", replace(RUNNING, main=Step.STARTUP), MainExited(0), S.RUNNING,
     []),
    ("Run's timer", replace(RUNNING, timer=Timer(Step.RUN, 1.0)), TimedOut(Step.RUN), S.RUNNING,
     errored("Run timed out", S.RUNNING)),
    ("UpdateState ERRORED", RUNNING, Reported(S.ERRORED), S.RUNNING,
     errored("Reported ERRORED via UpdateState", S.RUNNING)),
    ("stop", RUNNING, StopRequested(), S.STOPPING, stopping("stop or restart requested", leaving=S.RUNNING)),
    ("start while running changes nothing", RUNNING, StartRequested(), S.RUNNING, []),
    # STOPPING
    ("Shutdown ended", STOPPING, StepEnded(Step.SHUTDOWN, 0), S.STOPPING, [StopProcesses()]),
    ("Shutdown failing changes nothing", STOPPING, StepEnded(Step.SHUTDOWN, 1), S.STOPPING, [StopProcesses()]),
    ("a restart while stopping is recorded", STOPPING, RestartRequested(), S.STOPPING, []),
    ("stopped", STOPPED, ProcessesStopped(), S.FINISHED, [Enter(S.FINISHED)]),
    ("stopped for a restart", replace(STOPPED, desired_running=True, pending=Request.RESTART),
     ProcessesStopped(), S.INSTALLED, [Enter(S.INSTALLED, "restarting"), CheckDependencies()]),
    ("stopped after an error", replace(STOPPED, desired_running=True, error_from=S.RUNNING), ProcessesStopped(),
     S.INSTALLED, [Enter(S.INSTALLED, "restarting"), CheckDependencies()]),
    ("stopped after UpdateState ERRORED", replace(STOPPED, desired_running=True, reported=S.ERRORED),
     ProcessesStopped(), S.INSTALLED, [Enter(S.INSTALLED, "restarting"), CheckDependencies()]),
    ("stopped for a reinstall", replace(STOPPED, desired_running=True, pending=Request.REINSTALL),
     ProcessesStopped(), S.NEW, [Enter(S.NEW, "reinstall requested"), RunStep(Step.INSTALL)]),
    # ERRORED
    ("first error: ERRORED, Recover", COUNTING, ErrorCounted(1), S.ERRORED,
     [Enter(S.ERRORED, "Run exited with code 1"), RunStep(Step.RECOVER)]),
    ("a second error while counting is the same error", COUNTING, TimedOut(Step.RUN), S.RUNNING, []),
    ("third error: BROKEN at once, Shutdown as on every stop", COUNTING, ErrorCounted(3), S.BROKEN,
     [ForgetErrors(frozenset({S.RUNNING})), Enter(S.BROKEN, "Run exited with code 1; errored 3 times in RUNNING"),
      RunStep(Step.SHUTDOWN)]),
    ("third Startup error: BROKEN, timer cancelled, Shutdown",
     replace(STARTING, error_from=S.STARTING, error_reason="startup timeout", job=Job.COUNT_ERROR),
     ErrorCounted(3), S.BROKEN,
     [ForgetErrors(frozenset({S.STARTING})), CancelTimer(),
      Enter(S.BROKEN, "startup timeout; errored 3 times in STARTING"), ForgetMain(), RunStep(Step.SHUTDOWN)]),
    ("third Install error: BROKEN, no Shutdown (nothing was started)",
     replace(INSTALLING, error_from=S.NEW, error_reason="Install exited with code 2", job=Job.COUNT_ERROR),
     ErrorCounted(3), S.BROKEN,
     [ForgetErrors(frozenset({S.NEW})), Enter(S.BROKEN, "Install exited with code 2; errored 3 times in NEW"),
      StopProcesses()]),
    ("recovered from Run", RECOVERING, StepEnded(Step.RECOVER, 0), S.STOPPING,
     stopping("restarting after error", main=False)),
    ("recovered from Install", replace(RECOVERING, error_from=S.NEW), StepEnded(Step.RECOVER, 0), S.NEW,
     [Enter(S.NEW, "retrying install"), RunStep(Step.INSTALL)]),
    # FINISHED
    ("start", FINISHED, StartRequested(), S.INSTALLED, [Enter(S.INSTALLED, "start requested"), CheckDependencies()]),
    ("restart", FINISHED, RestartRequested(), S.INSTALLED,
     [Enter(S.INSTALLED, "start requested"), CheckDependencies()]),
    ("reinstall", FINISHED, ReinstallRequested(), S.NEW, [Enter(S.NEW, "reinstall requested"),
                                                          RunStep(Step.INSTALL)]),
    ("stop", FINISHED, StopRequested(), S.FINISHED, []),
    # BROKEN
    ("restart is ignored", BROKEN, RestartRequested(), S.BROKEN,
     [Log("WARN", "service-broken", "A BROKEN component starts again only when a deployment reinstalls it; "
          "request ignored")]),
    ("start changes nothing", BROKEN, StartRequested(), S.BROKEN, []),
    ("reinstall", BROKEN, ReinstallRequested(), S.NEW,
     [ForgetErrors(COUNTED_STATES), Enter(S.NEW, "reinstall requested"), RunStep(Step.INSTALL)]),
    ("reinstall while its processes stop", replace(BROKEN, job=Job.STOP_PROCESSES), ReinstallRequested(),
     S.BROKEN, []),
    ("Shutdown ended in BROKEN", replace(BROKEN, job=Step.SHUTDOWN), StepEnded(Step.SHUTDOWN, 1), S.BROKEN,
     [StopProcesses()]),
    ("stopped in BROKEN", replace(BROKEN, job=Job.STOP_PROCESSES), ProcessesStopped(), S.BROKEN, []),
    # stale events change nothing
    ("exit of a forgotten process", replace(RUNNING, main=None), MainExited(1), S.RUNNING, []),
    ("a cancelled timer", RUNNING, TimedOut(Step.RUN), S.RUNNING, []),
    ("an answer for no job", INSTALLED, ErrorCounted(3), S.INSTALLED, []),
]


@pytest.mark.parametrize(("machine", "event", "state", "actions"), [row[1:] for row in RULES],
                         ids=[f"{row[1].state}: {row[0]}" for row in RULES])
def test_rule(machine: Machine, event: Event, state: State, actions: list[Action]) -> None:
    after, emitted = transition(machine, event)
    assert emitted == actions
    assert after.state == state
    entered = [a.state for a in emitted if isinstance(a, Enter)]
    assert after.state == (entered[-1] if entered else machine.state), "the state changes only by Enter"


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("reported", list(State))
def test_update_state_outside_the_allowed_transitions_is_ignored(state: State, reported: State) -> None:
    machine = Machine(state=state, desired_running=True)
    after, actions = transition(machine, Reported(reported))
    if reported in REPORTABLE.get(state, frozenset()):
        assert after != machine
    else:
        assert (after, actions) == (machine, [])


@pytest.mark.parametrize(("pending", "left"), [(Request.START, None), (Request.RESTART, None),
                                               (Request.REINSTALL, Request.REINSTALL)])
def test_stop_withdraws_a_pending_start_or_restart_but_not_a_reinstall(pending: Request,
                                                                      left: Request | None) -> None:
    recovering = replace(RECOVERING, pending=pending)
    after, actions = transition(recovering, StopRequested())
    assert (after.pending, after.desired_running, actions) == (left, False, [])
    # BROKEN, its processes still stopping: a withdrawn request is not even warned about; a reinstall stands
    stopping_broken = replace(BROKEN, job=Job.STOP_PROCESSES, pending=pending)
    after, actions = transition(transition(stopping_broken, StopRequested())[0], ProcessesStopped())
    if pending == Request.REINSTALL:
        assert after.state == S.NEW
    else:
        assert (after.state, after.settled, actions) == (S.BROKEN, True, [])


class FakeDriver:
    """Answers every action as a healthy device would; ``exits`` and ``errors`` script the rest."""

    def __init__(self, machine: Machine | None = None, *, launch: Step = Step.RUN) -> None:
        self.machine = machine or Machine()
        self.launch = launch
        self.history: list[State] = [self.machine.state]
        self.steps: list[Step] = []
        self.launches: list[Step] = []
        self.errors: dict[State, int] = {}

    def feed(self, event: Event) -> None:
        queue = [event]
        while queue:
            self.machine, actions = transition(self.machine, queue.pop(0))
            for action in actions:
                answer = self.answer(action)
                if answer is not None:
                    queue.append(answer)

    def answer(self, action: Action) -> Event | None:
        match action:
            case Enter(state=state):
                self.history.append(state)
            case RunStep(step=step):
                self.steps.append(step)
                return StepEnded(step, 0)
            case Launch(step=step):
                self.launches.append(step)
                return Launched(step, None) if step == self.launch else LaunchSkipped(step)
            case StopProcesses():
                return ProcessesStopped()
            case CheckDependencies():
                return DependenciesReady()
            case CountError(state=state):
                self.errors[state] = self.errors.get(state, 0) + 1
                return ErrorCounted(self.errors[state])
            case ForgetErrors(states=states):
                for state in states:
                    self.errors.pop(state, None)
        return None


def test_three_errors_in_a_row_break_the_component_and_a_reinstall_revives_it() -> None:
    driver = FakeDriver()
    driver.feed(StartRequested())
    assert driver.history == [S.NEW, S.INSTALLED, S.STARTING, S.RUNNING]
    for _ in range(3):
        driver.feed(MainExited(-9))
    assert driver.history[4:] == [S.ERRORED, S.STOPPING, S.INSTALLED, S.STARTING, S.RUNNING,
                                  S.ERRORED, S.STOPPING, S.INSTALLED, S.STARTING, S.RUNNING,
                                  S.BROKEN]
    assert driver.steps.count(Step.RECOVER) == 2 and driver.steps.count(Step.INSTALL) == 1
    assert driver.steps.count(Step.SHUTDOWN) == 3, "BROKEN runs Shutdown as the two stops before it did"
    assert driver.machine.main is None and driver.machine.settled
    driver.feed(RestartRequested())
    assert driver.history[-1] == S.BROKEN
    driver.feed(ReinstallRequested())
    assert driver.history[-5:] == [S.BROKEN, S.NEW, S.INSTALLED, S.STARTING, S.RUNNING]
    assert driver.errors == {}


def test_leaving_running_for_anything_but_errored_starts_its_count_afresh() -> None:
    driver = FakeDriver()
    driver.feed(StartRequested())
    driver.feed(MainExited(-9))
    driver.feed(MainExited(-9))
    driver.feed(StopRequested())  # RUNNING → STOPPING: RUNNING's two errors are forgotten
    driver.feed(StartRequested())
    assert driver.history[-1] == S.RUNNING
    driver.feed(MainExited(-9))
    driver.feed(MainExited(-9))
    assert driver.history[-1] == S.RUNNING and S.BROKEN not in driver.history
    driver.feed(MainExited(-9))
    assert driver.history[-1] == S.BROKEN


# each state as a component reaches it, wanted running, with what it waits for
STOP_FROM = {
    S.NEW: INSTALLING,
    S.INSTALLED: INSTALLED,
    S.STARTING: STARTING,
    S.RUNNING: RUNNING,
    S.STOPPING: replace(STOPPING, desired_running=True, pending=Request.RESTART),
    S.ERRORED: RECOVERING,
    S.FINISHED: FINISHED,
    S.BROKEN: BROKEN,
}


@pytest.mark.parametrize("state", list(State))
def test_stop_from_every_state_ends_finished_or_broken(state: State) -> None:
    driver = FakeDriver(STOP_FROM[state])
    driver.feed(StopRequested())
    for job in (Step.INSTALL, Step.SHUTDOWN, Step.RECOVER):
        driver.feed(StepEnded(job, 0))  # the job that was running when the stop came ends
    assert driver.machine.state == (S.BROKEN if state == S.BROKEN else S.FINISHED)
    assert driver.machine.settled and not driver.machine.desired_running
    assert Step.INSTALL not in driver.steps and driver.launches == [], "nothing starts again"


EVENTS = st.one_of(
    st.sampled_from([StartRequested(), StopRequested(), RestartRequested(), Wake(), ProcessesStopped(),
                     DependenciesReady()]),
    st.builds(ReinstallRequested, st.booleans()),
    st.builds(Reported, st.sampled_from(list(State))),
    st.builds(StepEnded, st.sampled_from(list(Step)), st.sampled_from([0, 1, 100, None]), st.booleans(),
              st.booleans()),
    st.builds(Launched, st.sampled_from([Step.STARTUP, Step.RUN]), st.sampled_from([None, 1.0])),
    st.builds(LaunchSkipped, st.sampled_from([Step.STARTUP, Step.RUN])),
    st.builds(LaunchFailed, st.sampled_from([Step.STARTUP, Step.RUN]), st.just("bad")),
    st.builds(MainExited, st.sampled_from([0, 1, -9])),
    st.builds(TimedOut, st.sampled_from([Step.STARTUP, Step.RUN])),
    st.builds(ErrorCounted, st.integers(1, 3)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=40))
def test_invariants_hold_for_any_sequence_of_events(events: list[Event]) -> None:
    machine = Machine()
    for event in events:
        before = machine
        machine, actions = transition(machine, event)
        entered = [a.state for a in actions if isinstance(a, Enter)]
        assert machine.state == (entered[-1] if entered else before.state)
        assert all(a != b for a, b in zip([before.state, *entered], entered, strict=False)), "no self-transition"
        if machine.main is not None:
            assert machine.state in (S.STARTING, S.RUNNING, S.ERRORED)
        if machine.timer is not None:
            assert machine.timer.guards == machine.state
        if machine.state == S.ERRORED:
            assert machine.job is not None, "ERRORED always waits for Recover"
        if machine.state in (S.STOPPING, S.BROKEN):
            assert machine.main is None
        if machine.job is None and machine.state in (S.NEW, S.INSTALLED, S.FINISHED):
            assert machine.pending != Request.REINSTALL, "a reinstall never waits in a settled state"
