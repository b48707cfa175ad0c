"""IoT Jobs roll-out semantics over moto's job store: moto keeps the jobs and job executions (so
DescribeJob, DescribeJobExecution and ListJobExecutionsForJob answer from the same objects), this engine
applies what moto only stores:

- jobExecutionsRolloutConfig: executions are created (the thing notified) at most ``rate`` per roll-out
  minute; ``maximumPerMinute`` alone is a fixed rate (default 1000); ``exponentialRate`` starts at
  ``baseRatePerMinute`` and multiplies by ``incrementFactor`` each time ``numberOfNotifiedThings`` more
  things were notified or ``numberOfSucceededThings`` more succeeded, never above ``maximumPerMinute``;
- abortConfig: once ``minNumberOfExecutedThings`` things were notified and the failures of ``failureType``
  (FAILED, REJECTED, TIMED_OUT, ALL of them) reach ``thresholdPercentage`` of them, the job is cancelled:
  queued executions become CANCELED, things not yet notified never get one;
- timeoutConfig: an execution IN_PROGRESS longer than ``inProgressTimeoutInMinutes`` (or the
  ``stepTimeoutInMinutes`` its thing set) becomes TIMED_OUT;
- thing-group jobs are continuous: a thing that joins the group later gets an execution too.

Every status change calls ``on_change(thing_name)`` so the Jobs MQTT side can notify the thing."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.iot.models import FakeJobExecution, IoTBackend

from .clock import Clock

log = logging.getLogger("ggcloud.rollout")

TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED")
PENDING = ("QUEUED", "IN_PROGRESS")
DEVICE_STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED")
DEFAULT_RATE = 1000


class JobsRejected(Exception):
    """A Jobs API request refused as the service refuses it (code: InvalidRequest, InvalidStateTransition,
    ResourceNotFound, VersionMismatch, ...)."""

    def __init__(self, code: str, message: str, execution: FakeJobExecution | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.execution = execution


@dataclass
class JobRollout:
    job_id: str
    target_kind: str  # thing | thinggroup
    target_name: str
    document: dict[str, Any]
    rollout_config: dict[str, Any]
    abort_criteria: list[dict[str, Any]]
    timeout_minutes: float | None
    on_finished: Callable[[str], None]
    rate: float = 0.0
    window_start: float = 0.0
    notified_in_window: int = 0
    notified_at_increase: int = 0
    succeeded_at_increase: int = 0
    notified: list[str] = field(default_factory=list)
    status: str = "IN_PROGRESS"
    timeouts: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        exp = self.rollout_config.get("exponentialRate")
        self.rate = float(exp["baseRatePerMinute"] if exp else
                          self.rollout_config.get("maximumPerMinute", DEFAULT_RATE))

    @property
    def cap(self) -> float:
        return float(self.rollout_config.get("maximumPerMinute", DEFAULT_RATE))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class RolloutEngine:
    """Creates, advances and cancels jobs in one region's moto IoT backend; all under ``lock``."""

    def __init__(self, backend: Callable[[], IoTBackend], clock: Clock, lock: threading.RLock,
                 on_change: Callable[[str], None] = lambda thing: None) -> None:
        self._backend = backend
        self.clock = clock
        self.lock = lock
        self.on_change = on_change
        self.rollouts: dict[str, JobRollout] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- jobs -------------------------------------------------------------------------------------------
    def create_job(self, rollout: JobRollout, target_arn: str, description: str,
                   iot_job_configuration: dict[str, Any]) -> str:
        import json
        backend = self._backend()
        with self.lock:
            job_arn, _, _ = backend.create_job(
                job_id=rollout.job_id, targets=[target_arn], document_source="",
                document=json.dumps(rollout.document), description=description, presigned_url_config={},
                target_selection="CONTINUOUS" if rollout.target_kind == "thinggroup" else "SNAPSHOT",
                job_executions_rollout_config=iot_job_configuration.get("jobExecutionsRolloutConfig", {}),
                document_parameters={}, abort_config=iot_job_configuration.get("abortConfig", {}),
                job_execution_retry_config={}, scheduling_config={},
                timeout_config=iot_job_configuration.get("timeoutConfig", {}))
            # moto makes one execution per target ARN at once (a group's name as a thing): executions are
            # this engine's to create, at the roll-out rate
            for key in [k for k in backend.job_executions if k[0] == rollout.job_id]:
                del backend.job_executions[key]
            job = backend.jobs[rollout.job_id]
            job.status = "IN_PROGRESS"
            rollout.window_start = self.clock.now()
            self.rollouts[rollout.job_id] = rollout
            self._refresh_counts(rollout)
            log.info("job %s for %s/%s: rate %g/min (%s)", rollout.job_id, rollout.target_kind,
                     rollout.target_name, rollout.rate, self.clock.describe())
            self._advance(rollout, self.clock.now())
        return job_arn

    def cancel_job(self, job_id: str, *, force: bool, reason: str, comment: str) -> None:
        """CancelJob: queued executions CANCELED (and in-progress ones too with ``force``); no thing is
        notified after this."""
        with self.lock:
            rollout = self.rollouts.get(job_id)
            if rollout is None or rollout.status != "IN_PROGRESS":
                return
            backend = self._backend()
            job = backend.jobs[job_id]
            job.status = "CANCELED"
            job.reason_code = reason
            job.comment = comment
            job.force = force
            job.completed_at = _now()
            rollout.status = "CANCELED"
            touched = []
            for (jid, thing), execution in backend.job_executions.items():
                if jid == job_id and (execution.status == "QUEUED" or
                                      (force and execution.status == "IN_PROGRESS")):
                    self._set_status(execution, "CANCELED")
                    touched.append(thing)
            self._refresh_counts(rollout)
            log.info("job %s cancelled (%s): %d executions cancelled", job_id, reason, len(touched))
            for thing in touched:
                self.on_change(thing)
            rollout.on_finished(job_id)

    # -- what a thing sees ------------------------------------------------------------------------------
    def executions_for(self, thing: str, statuses: tuple[str, ...] = PENDING) -> list[FakeJobExecution]:
        """The thing's executions in ``statuses``, oldest queued first (IN_PROGRESS before QUEUED, as the
        service orders $next)."""
        with self.lock:
            found = [e for (_, t), e in self._backend().job_executions.items()
                     if t == thing and e.status in statuses]
            return sorted(found, key=lambda e: (e.status != "IN_PROGRESS", e.queued_at))

    def execution(self, thing: str, job_id: str) -> FakeJobExecution:
        with self.lock:
            if job_id == "$next":
                pending = self.executions_for(thing)
                if not pending:
                    raise JobsRejected("ResourceNotFound", f"no pending job execution for thing {thing}")
                return pending[0]
            execution = self._backend().job_executions.get((job_id, thing))
            if execution is None:
                raise JobsRejected("ResourceNotFound", f"no execution of job {job_id} for thing {thing}")
            return execution

    def document(self, job_id: str) -> dict[str, Any]:
        return self.rollouts[job_id].document

    def start_next(self, thing: str, status_details: dict[str, str] | None,
                   step_timeout: float | None) -> FakeJobExecution | None:
        """StartNextPendingJobExecution: the next pending execution, IN_PROGRESS from now (None if none)."""
        with self.lock:
            pending = self.executions_for(thing)
            if not pending:
                return None
            execution = pending[0]
            if execution.status == "QUEUED":
                self._apply_update(execution, thing, "IN_PROGRESS", status_details or {}, step_timeout)
            return execution

    def update(self, thing: str, job_id: str, status: str, status_details: dict[str, Any] | None,
               expected_version: int | None, step_timeout: float | None) -> FakeJobExecution:
        """UpdateJobExecution from the device; JobsRejected as the service rejects it."""
        if status not in DEVICE_STATUSES:
            raise JobsRejected("InvalidRequest", f"status {status!r} is not one of {', '.join(DEVICE_STATUSES)}")
        with self.lock:
            execution = self.execution(thing, job_id)
            if expected_version is not None and expected_version != execution.version_number:
                raise JobsRejected("VersionMismatch", f"expectedVersion {expected_version} but the execution "
                                   f"is at version {execution.version_number}", execution)
            if execution.status in TERMINAL:
                raise JobsRejected("InvalidStateTransition", f"the execution of job {job_id} on {thing} is "
                                   f"{execution.status} and cannot become {status}", execution)
            self._apply_update(execution, thing, status, status_details or {}, step_timeout)
            return execution

    def _apply_update(self, execution: FakeJobExecution, thing: str, status: str,
                      details: dict[str, Any], step_timeout: float | None) -> None:
        rollout = self.rollouts.get(execution.job_id)
        if status == "IN_PROGRESS" and execution.status == "QUEUED":
            execution.started_at = _now()
            if rollout and rollout.timeout_minutes:
                rollout.timeouts[thing] = self.clock.now() + self.clock.seconds(rollout.timeout_minutes)
        if step_timeout is not None and rollout:
            rollout.timeouts[thing] = self.clock.now() + self.clock.seconds(step_timeout)
        execution.status_details_map = {**execution.status_details_map,
                                        **{k: _as_text(v) for k, v in details.items()}}
        self._set_status(execution, status)
        if rollout:
            if status in TERMINAL:
                rollout.timeouts.pop(thing, None)
            self._refresh_counts(rollout)
            self._advance(rollout, self.clock.now())
        self.on_change(thing)

    # -- the roll-out loop ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ggcloud-rollout", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _run(self) -> None:
        period = min(0.05, self.clock.minute / 20)
        while not self._stop.wait(period):
            with self.lock:
                now = self.clock.now()
                for rollout in list(self.rollouts.values()):
                    if rollout.status == "IN_PROGRESS":
                        self._advance(rollout, now)

    def _advance(self, rollout: JobRollout, now: float) -> None:
        backend = self._backend()
        for thing, deadline in list(rollout.timeouts.items()):
            execution = backend.job_executions.get((rollout.job_id, thing))
            if now >= deadline and execution is not None and execution.status == "IN_PROGRESS":
                rollout.timeouts.pop(thing)
                self._set_status(execution, "TIMED_OUT")
                log.info("job %s: %s TIMED_OUT", rollout.job_id, thing)
                self._refresh_counts(rollout)
                self.on_change(thing)
        if rollout.status != "IN_PROGRESS":
            return
        if self._should_abort(rollout):
            return
        if now - rollout.window_start >= self.clock.minute:
            windows = math.floor((now - rollout.window_start) / self.clock.minute)
            rollout.window_start += windows * self.clock.minute
            rollout.notified_in_window = 0
            self._raise_rate(rollout)  # a new rate applies from the next minute on
        budget = int(rollout.rate) - rollout.notified_in_window
        for thing in self._not_notified(rollout):
            if budget <= 0:
                break
            thing_arn = self._thing_arn(thing)
            execution = FakeJobExecution(rollout.job_id, thing_arn, status="QUEUED")
            execution.execution_number = 1
            execution.version_number = 1
            execution.queued_at = execution.last_updated_at = _now()
            execution.started_at = None
            execution.approximate_seconds_before_time_out = None
            backend.job_executions[(rollout.job_id, thing)] = execution
            rollout.notified.append(thing)
            rollout.notified_in_window += 1
            budget -= 1
            log.info("job %s: notified %s (%d this minute at %g/min, %s)", rollout.job_id, thing,
                     rollout.notified_in_window, rollout.rate, self.clock.describe())
            self._refresh_counts(rollout)
            self.on_change(thing)
        if rollout.target_kind == "thing" and rollout.notified:
            execution = backend.job_executions.get((rollout.job_id, rollout.notified[0]))
            if execution is not None and execution.status in TERMINAL:
                rollout.status = "COMPLETED"
                job = backend.jobs[rollout.job_id]
                job.status = "COMPLETED"
                job.completed_at = _now()
                rollout.on_finished(rollout.job_id)

    def _not_notified(self, rollout: JobRollout) -> list[str]:
        if rollout.target_kind == "thing":
            members = [rollout.target_name]
        else:
            group = self._backend().thing_groups.get(self._group_arn(rollout.target_name))
            members = [t.thing_name for t in group.things.values()] if group else []
        done = set(rollout.notified)
        return [m for m in members if m not in done]

    def _raise_rate(self, rollout: JobRollout) -> None:
        exp = rollout.rollout_config.get("exponentialRate")
        if not exp:
            return
        criteria = exp.get("rateIncreaseCriteria", {})
        counts = self._counts(rollout)
        notified, succeeded = len(rollout.notified), counts["SUCCEEDED"]
        by_notified = criteria.get("numberOfNotifiedThings")
        by_succeeded = criteria.get("numberOfSucceededThings")
        if ((by_notified and notified - rollout.notified_at_increase >= by_notified) or
                (by_succeeded and succeeded - rollout.succeeded_at_increase >= by_succeeded)):
            new_rate = min(rollout.cap, math.ceil(rollout.rate * float(exp["incrementFactor"])))
            if new_rate != rollout.rate:
                log.info("job %s: rate %g/min -> %g/min (%s)", rollout.job_id, rollout.rate, new_rate,
                         self.clock.describe())
            rollout.rate = new_rate
            rollout.notified_at_increase, rollout.succeeded_at_increase = notified, succeeded

    def _should_abort(self, rollout: JobRollout) -> bool:
        counts = self._counts(rollout)
        notified = len(rollout.notified)
        for criterion in rollout.abort_criteria:
            kind = criterion["failureType"]
            failures = (counts["FAILED"] + counts["REJECTED"] + counts["TIMED_OUT"] if kind == "ALL"
                        else counts[kind])
            if (notified >= criterion["minNumberOfExecutedThings"] and notified and
                    100.0 * failures / notified >= float(criterion["thresholdPercentage"])):
                comment = (f"abort: {failures} of {notified} notified things {kind} >= "
                           f"{criterion['thresholdPercentage']}%")
                self.cancel_job(rollout.job_id, force=False, reason="ABORTED", comment=comment)
                return True
        return False

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _counts(self, rollout: JobRollout) -> dict[str, int]:
        counts = dict.fromkeys(PENDING + TERMINAL, 0)
        for (jid, _), execution in self._backend().job_executions.items():
            if jid == rollout.job_id:
                counts[execution.status] += 1
        return counts

    def _refresh_counts(self, rollout: JobRollout) -> None:
        counts = self._counts(rollout)
        job = self._backend().jobs[rollout.job_id]
        job.last_updated_at = _now()
        job.job_process_details = {
            "processingTargets": [self._thing_arn(t) for t in rollout.notified],
            "numberOfQueuedThings": counts["QUEUED"], "numberOfInProgressThings": counts["IN_PROGRESS"],
            "numberOfSucceededThings": counts["SUCCEEDED"], "numberOfFailedThings": counts["FAILED"],
            "numberOfRejectedThings": counts["REJECTED"], "numberOfTimedOutThings": counts["TIMED_OUT"],
            "numberOfCanceledThings": counts["CANCELED"], "numberOfRemovedThings": counts["REMOVED"],
        }

    @staticmethod
    def _set_status(execution: FakeJobExecution, status: str) -> None:
        if execution.status != status:
            execution.version_number += 1
        execution.status = status
        execution.last_updated_at = _now()

    def _thing_arn(self, thing: str) -> str:
        backend = self._backend()
        return f"arn:aws:iot:{backend.region_name}:{backend.account_id}:thing/{thing}"

    def _group_arn(self, group: str) -> str:
        backend = self._backend()
        return f"arn:aws:iot:{backend.region_name}:{backend.account_id}:thinggroup/{group}"


def _as_text(value: Any) -> str:
    """Job execution status details are strings (the nucleus sends its error stack as one)."""
    if isinstance(value, str):
        return value
    import json
    return json.dumps(value)
