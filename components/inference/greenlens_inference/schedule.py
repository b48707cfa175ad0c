"""The inference workers' schedule: who takes the next frame, who is in the interpreter, whose result goes out.

Several workers pipeline the frames (see component.py). Each frame goes through three turns, all kept by one
:class:`Schedule` under one condition variable:

1. the *take turn* (:meth:`Schedule.take_turn`): one worker at a time takes the newest descriptor and
   prepares its input tensor. The turn opens just in time: when the frame in the interpreter, by the running
   estimates, will finish about when a frame taken now is prepared (minus a small lead), so the interpreter
   is not left idle and the frame taken is as fresh as it can be;
2. the *interpreter* (:meth:`Schedule.enter_interpreter` … :meth:`Schedule.leave_interpreter`): one frame at
   a time. Entering gives the frame its ticket and opens the take turn for the next frame;
3. the *publish turn* (:meth:`Schedule.wait_to_publish` … :meth:`Schedule.published`): results go out in
   ticket order, one at a time.

The schedule also keeps the pipeline's counters under the same lock, so that counting costs the hot path no
lock of its own and :meth:`Schedule.counts` is one consistent snapshot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

LEAD_S = 0.002
"""The next frame is taken this much earlier than the estimates say it must (preparing varies: a late
frame leaves the interpreter idle, an early one is at most this much older)."""
EWMA_WEIGHT = 0.2
"""Weight of the newest duration in the running estimates of preparing and running a frame."""
HANDOVER_TIMEOUT_S = 0.005
"""At most this long a worker leaving the interpreter waits for the prepared frame to enter it."""

Counter = Literal["results", "overwritten", "rejected", "unreadable", "errors", "publish_errors"]
COUNTERS: tuple[Counter, ...] = ("results", "overwritten", "rejected", "unreadable", "errors", "publish_errors")


def take_due_in(now: float, running_since: float | None, est_run: float, est_prepare: float,
                lead: float = LEAD_S) -> float:
    """Seconds until the next frame should be taken (0 or less: now), so that it is prepared just as the
    frame in the interpreter since ``running_since`` (None: none) is estimated to finish."""
    if running_since is None:
        return 0.0
    return running_since + est_run - est_prepare - lead - now


@dataclass(frozen=True)
class Ticket:
    """A frame's place in the interpreter's order: its results go out in ``number`` order."""

    number: int
    started: float
    """When the frame entered the interpreter (the schedule's clock, monotonic seconds)."""


class Schedule:
    """The turns of the inference workers, the estimates that time them, and the pipeline's counters.

    Invariants (every field is written only under ``_cond``'s lock, and read under it too, except
    ``_stopped`` by :attr:`stopped`: a bool that only ever becomes True, so a stale read costs one more turn
    of a worker's loop):

    - at most one worker holds the take turn (``_taking``); it keeps it from :meth:`take_turn` returning True
      until its frame enters the interpreter, or it gives it up (:meth:`give_up_turn`);
    - the take turn is granted no earlier than :func:`take_due_in` says, by the estimates at that moment;
    - at most one frame is in the interpreter (``_running_since`` is not None while one is), until the
      schedule stops (then nothing waits: workers finish what they hold and leave);
    - tickets are numbered 0, 1, 2… in the order frames enter the interpreter; ``_next_out`` is the ticket
      whose result goes out next; :meth:`wait_to_publish` returns for ticket t only when ``_next_out == t``
      (or the schedule stops), and :meth:`published` for t makes it t + 1, with or without a result. Every
      ticket given out must be :meth:`published`, or the tickets after it wait until :meth:`stop`;
    - ``_est_prepare`` and ``_est_run`` are exponentially weighted means of the measured durations;
    - counters only grow, and :meth:`counts` copies them all at one instant.

    Per frame a worker takes the lock five times (take turn, enter, leave, wait to publish, published) and
    never hands its frame to another thread.
    """

    def __init__(self, *, lead: float = LEAD_S, weight: float = EWMA_WEIGHT,
                 handover_timeout: float = HANDOVER_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.lead = lead
        self.weight = weight
        self.handover_timeout = handover_timeout
        self.clock = clock
        self._cond = threading.Condition()
        self._stopped = False
        self._taking = False
        self._waiting_to_run = 0
        self._running_since: float | None = None
        self._est_prepare = 0.0
        self._est_run = 0.0
        self._tickets = 0
        self._next_out = 0
        self._counts: dict[Counter, int] = dict.fromkeys(COUNTERS, 0)
        self._failed_in_a_row = 0

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopped

    def stop(self) -> None:
        """Wake every waiting worker; from now on no call waits (workers finish what they hold and leave)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def estimates(self) -> tuple[float, float]:
        """(preparing, running) a frame: the running estimates, in seconds."""
        with self._cond:
            return self._est_prepare, self._est_run

    # -- turn 1: taking and preparing the next frame

    def take_turn(self, timeout: float = 1.0) -> bool:
        """True: the caller now holds the take turn. False (after waiting at most ``timeout``): not yet —
        another worker holds it, or it is too early, or the schedule stopped; call again."""
        with self._cond:
            if self._stopped:
                return False
            if self._taking:
                self._cond.wait(timeout)
                return False
            due = take_due_in(self.clock(), self._running_since, self._est_run, self._est_prepare, self.lead)
            if due > 0:
                self._cond.wait(min(due, timeout))
                return False
            self._taking = True
            return True

    def give_up_turn(self) -> None:
        """The take turn's holder has no frame for the interpreter (none came, or it could not be prepared)."""
        with self._cond:
            self._taking = False
            self._cond.notify_all()

    # -- turn 2: the interpreter

    def enter_interpreter(self, prepare_s: float) -> Ticket:
        """Wait until the interpreter is free and take it, giving up the take turn; ``prepare_s``: how long
        preparing this frame took (from taking its descriptor)."""
        with self._cond:
            self._waiting_to_run += 1
            self._cond.wait_for(lambda: self._running_since is None or self._stopped)
            self._waiting_to_run -= 1
            self._taking = False  # the next frame's turn opens while this one runs
            started = self._running_since = self.clock()
            ticket = Ticket(self._tickets, started)
            self._tickets += 1
            self._est_prepare += self.weight * (prepare_s - self._est_prepare)
            self._cond.notify_all()
            return ticket

    def leave_interpreter(self, ticket: Ticket) -> None:
        """The frame of ``ticket`` is out of the interpreter. When a prepared frame waits for it, wait (at most
        the handover timeout) for that frame to enter first: finishing this one is Python and would hold the
        GIL that the other worker needs to start the model."""
        with self._cond:
            self._est_run += self.weight * ((self.clock() - ticket.started) - self._est_run)
            self._running_since = None
            self._cond.notify_all()
            if self._waiting_to_run:
                self._cond.wait_for(lambda: self._running_since is not None or self._stopped,
                                    self.handover_timeout)

    # -- turn 3: publishing in ticket order

    def wait_to_publish(self, ticket: Ticket) -> dict[Counter, int]:
        """Wait until the results of every earlier ticket went out; the counters at that moment."""
        with self._cond:
            self._cond.wait_for(lambda: self._next_out == ticket.number or self._stopped)
            return dict(self._counts)

    def published(self, ticket: Ticket, sent: bool | None) -> int:
        """The publish turn of ``ticket`` is over: ``sent`` True (a result went out), False (publishing it
        failed) or None (the frame had no result). Returns the failed publishes in a row so far."""
        with self._cond:
            self._next_out = ticket.number + 1
            failed = self._record(sent) if sent is not None else self._failed_in_a_row
            self._cond.notify_all()
            return failed

    # -- counters

    def count(self, counter: Counter) -> None:
        with self._cond:
            self._counts[counter] += 1

    def count_publish(self, sent: bool) -> int:
        """A result published outside the workers' turns; the failed publishes in a row so far."""
        with self._cond:
            return self._record(sent)

    def _record(self, sent: bool) -> int:
        self._counts["results"] += 1
        if sent:
            self._failed_in_a_row = 0
        else:
            self._counts["publish_errors"] += 1
            self._failed_in_a_row += 1
        return self._failed_in_a_row

    def counts(self) -> dict[Counter, int]:
        """Every counter, copied at one instant."""
        with self._cond:
            return dict(self._counts)
