"""greenlens.Inference's schedule on its own: turns, tickets, the just-in-time take, counters."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
from greenlens_inference.schedule import LEAD_S, Schedule, Ticket, take_due_in


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_next_frame_is_due_so_that_it_is_prepared_as_the_interpreter_frees_up() -> None:
    assert take_due_in(5.0, None, est_run=0.1, est_prepare=0.02) == 0.0, "interpreter free: take now"
    # running since 5.0 for ~100 ms; preparing takes ~20 ms: take at 5.078 (2 ms lead)
    assert take_due_in(5.0, 5.0, est_run=0.1, est_prepare=0.02) == pytest.approx(0.078)
    assert take_due_in(5.078, 5.0, est_run=0.1, est_prepare=0.02) == pytest.approx(0.0)
    assert take_due_in(5.0, 5.0, est_run=0.01, est_prepare=0.02) < 0, "preparing is slower: take now"
    assert LEAD_S == 0.002


def test_the_take_turn_opens_by_the_estimates_and_one_worker_holds_it() -> None:
    clock = Clock()
    schedule = Schedule(clock=clock)
    assert schedule.take_turn(timeout=0)
    assert not schedule.take_turn(timeout=0), "another worker holds the turn"
    first = schedule.enter_interpreter(prepare_s=0.05)  # gives up the take turn
    clock.now = 0.5
    schedule.leave_interpreter(first)
    assert schedule.estimates == pytest.approx((0.01, 0.1))  # EWMA, weight 0.2, from 0

    assert schedule.take_turn(timeout=0), "the interpreter is free"
    clock.now = 1.0
    second = schedule.enter_interpreter(prepare_s=0.05)
    assert (first.number, second.number) == (0, 1) and second.started == 1.0
    est_prepare = schedule.estimates[0]
    assert est_prepare == pytest.approx(0.018)
    # due at 1.0 + 0.1 - 0.018 - 0.002 = 1.08
    clock.now = 1.07
    assert not schedule.take_turn(timeout=0), "too early: the frame would wait for the interpreter"
    clock.now = 1.081
    assert schedule.take_turn(timeout=0)
    schedule.give_up_turn()
    assert schedule.take_turn(timeout=0), "given up: the turn is free again"


def test_a_stopped_schedule_grants_no_turn_and_lets_waiting_workers_go() -> None:
    schedule = Schedule()
    assert schedule.take_turn()
    ticket = schedule.enter_interpreter(0.0)
    later = schedule.enter_interpreter  # a second frame waits for the interpreter
    entered: list[int] = []
    waiter = threading.Thread(target=lambda: entered.append(later(0.0).number))
    waiter.start()
    schedule.stop()
    waiter.join(5)
    assert entered == [1] and not schedule.take_turn(timeout=0)
    assert ticket.number == 0
    schedule.wait_to_publish(Ticket(5, 0.0))  # returns at once: no waiting for earlier tickets once stopped


def _run_workers(schedule: Schedule, frames: int, workers: int, failing: set[int] = frozenset()) -> dict:
    """Workers as the component runs them, with random stage durations; what they saw."""
    source: Iterator[int] = iter(range(frames))
    seen: dict = {"taking": 0, "max_taking": 0, "running": 0, "max_running": 0, "out": [], "entered": []}
    guard = threading.Lock()

    def stage(key: str, step: int) -> None:
        with guard:
            seen[key] += step
            seen["max_" + key] = max(seen["max_" + key], seen[key])

    def work(rng: random.Random) -> None:
        while not schedule.stopped:
            if not schedule.take_turn(timeout=0.05):
                continue
            stage("taking", 1)
            frame = next(source, None)
            if frame is None:
                stage("taking", -1)
                schedule.give_up_turn()
                return
            time.sleep(rng.uniform(0, 0.001))  # preparing
            stage("taking", -1)
            ticket = schedule.enter_interpreter(0.0005)
            stage("running", 1)
            with guard:
                seen["entered"].append(frame)
            time.sleep(rng.uniform(0, 0.001))  # the model
            stage("running", -1)
            schedule.leave_interpreter(ticket)
            time.sleep(rng.uniform(0, 0.002))  # finishing: later frames may finish first
            schedule.wait_to_publish(ticket)
            with guard:
                seen["out"].append((ticket.number, frame))
            schedule.published(ticket, None if frame % 7 == 0 else frame not in failing)

    threads = [threading.Thread(target=work, args=(random.Random(i),)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return seen


def test_tickets_follow_the_interpreter_and_results_go_out_in_ticket_order() -> None:
    seen = _run_workers(Schedule(), frames=150, workers=3)
    assert seen["entered"] == list(range(150)), "frames enter the interpreter in the order they were taken"
    assert seen["out"] == list(enumerate(range(150))), "results go out in ticket order, whoever finished first"


def test_one_frame_is_in_the_interpreter_and_one_worker_takes_at_a_time() -> None:
    seen = _run_workers(Schedule(), frames=150, workers=3)
    assert seen["max_running"] == 1
    assert seen["max_taking"] == 1


def test_counters_are_exact_and_every_snapshot_is_consistent_under_concurrent_workers() -> None:
    schedule = Schedule()
    failing = set(range(300))  # every publish fails: results and publish errors move together
    looks = 0
    inconsistent: list[dict] = []
    done = threading.Event()

    def watch() -> None:
        nonlocal looks
        while not done.is_set():
            snap = schedule.counts()
            looks += 1
            if snap["publish_errors"] != snap["results"]:  # a result and its failure are counted at one instant
                inconsistent.append(snap)

    def count_errors() -> None:
        for _ in range(2000):
            schedule.count("errors")

    watcher = threading.Thread(target=watch)
    counters = [threading.Thread(target=count_errors) for _ in range(3)]
    watcher.start()
    for t in counters:
        t.start()
    _run_workers(schedule, frames=300, workers=3, failing=failing)
    for t in counters:
        t.join(30)
    done.set()
    watcher.join(10)
    counts = schedule.counts()
    with_result = [f for f in range(300) if f % 7 != 0]
    assert counts["results"] == len(with_result)
    assert counts["publish_errors"] == len(with_result)
    assert counts["errors"] == 6000, "no increment lost"
    assert looks > 1 and inconsistent == []


def test_failed_publishes_in_a_row_are_told_and_a_success_resets_them() -> None:
    schedule = Schedule()
    assert [schedule.count_publish(ok) for ok in (False, False, True, False)] == [1, 2, 0, 1]
    assert schedule.counts()["results"] == 4 and schedule.counts()["publish_errors"] == 3
