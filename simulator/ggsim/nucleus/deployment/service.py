"""The deployment service: one deployment at a time from a queue, activation, rollback, persistence.

`DeploymentManager` takes a request (`create`), validates it (document.py) and queues it; its worker plans
each deployment (plan.py), asks the components when the deployment is a cloud one (component_hubs.py),
writes the configurations, has the kernel apply the new target and watches its components as the
nucleus does (DeploymentConfigMerger polls them once a second until each is RUNNING or FINISHED, and fails
the deployment when one is BROKEN; ggsim asks each to have stayed RUNNING or FINISHED for one such
interval), removes the components the deployment dropped only once it succeeded, and on failure rolls
back or not as the document says. Groups, target and history are persisted under the root (the
configuration persists itself, config.py), so a restart of ggsim re-applies the last deployment
(`restore`); a deployment a kill interrupted is listed as FAILED with DEPLOYMENT_INTERRUPTED.

What it needs from the kernel is `ComponentKernel`: make a target run, watch its health, remove the rest.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import ggsim
from ggsim.aws.catalogue import builtin_versions
from ggsim.files import write_atomically
from ggsim.nucleus.config import ConfigStore
from ggsim.nucleus.recipe import Recipe, RecipeError
from ggsim.nucleus.store import Store, StoreError

from .component_hubs import UpdateHub, ValidationHub
from .document import DeploymentDocument, parse_request
from .errors import ErrorReport, FailureKind, error_report
from .plan import DeploymentError, DeploymentPlan, plan_deployment

__all__ = ["ComponentKernel", "DeploymentManager", "builtin_components"]

log = logging.getLogger(__name__)

HEALTHY_STATES = ("RUNNING", "FINISHED")
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "CANCELED")
HISTORY_LIMIT = 50
STATE_FILE = "ggsim-state.json"
HISTORY_FILE = "ggsim-history.json"
#: The nucleus's DeploymentConfigMerger.WAIT_SVC_START_POLL_INTERVAL_MILLISEC: it looks at the components
#: of a deployment this often; ggsim wants each RUNNING or FINISHED for this long before SUCCEEDED.
HEALTH_POLL_INTERVAL = 1.0


class ComponentKernel(Protocol):
    """The kernel as a deployment sees it (ggsim.nucleus.kernel.Kernel is one)."""

    async def apply(self, target: Mapping[str, Recipe], *, run_with: Mapping[str, Mapping[str, Any]] | None = None,
                    remove_others: bool = True) -> None:
        """Make these components run at these recipes, as these users (each one's runWith), and, with
        remove_others, no other."""
        ...

    async def remove_others(self, keep: Iterable[str]) -> None:
        """Stop, uninstall and forget every component not in ``keep``."""
        ...

    async def wait_healthy(self, names: Iterable[str], timeout: float, *, stable_for: float = 0.0) -> dict[str, str]:
        """The state of each named component once one is BROKEN or each has been RUNNING or FINISHED for
        ``stable_for`` seconds, or at the timeout."""
        ...


def builtin_components(nucleus_version: str) -> dict[str, str]:
    """Components ggsim itself provides: a deployment that lists them gets them without a recipe."""
    return builtin_versions(nucleus_version)


def _now_ms_text(seconds: float) -> str:
    return str(int(seconds * 1000))


class DeploymentManager:
    """One deployment at a time from a queue, with persisted state and history."""

    def __init__(
        self,
        *,
        store: Store,
        config: ConfigStore,
        kernel: ComponentKernel,
        update_hub: UpdateHub,
        validation_hub: ValidationHub,
        platform: Mapping[str, str],
        nucleus_version: str = ggsim.NUCLEUS_VERSION,
        health_timeout: float = 600.0,
        health_poll: float = HEALTH_POLL_INTERVAL,
    ) -> None:
        self.store = store
        self._config = config
        self._kernel = kernel
        self._update_hub = update_hub
        self._validation_hub = validation_hub
        self._platform = dict(platform)
        self._builtin = builtin_components(nucleus_version)
        self.health_timeout = health_timeout
        self.health_poll = health_poll
        #: The deployment whose target is being activated (persisted: a kill then leaves the device in it).
        self._activating: str | None = None
        self._groups: dict[str, dict[str, str]] = {}
        self._target: dict[str, Recipe] = {}
        #: services.<name>.runWith, as deployments left it (persisted with the target)
        self._run_with: dict[str, dict[str, Any]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._done: dict[str, asyncio.Event] = {}
        self._queue: asyncio.Queue[DeploymentDocument] | None = None
        self._worker: asyncio.Task[None] | None = None
        #: The deployment being run and its task (cancelled by `cancel` until it starts to apply).
        self._running: tuple[str, asyncio.Task[None]] | None = None
        self._cancelling: set[str] = set()

    # ------------------------------------------------------------- public API

    @property
    def groups(self) -> dict[str, dict[str, str]]:
        """Root components per deployment group (group -> name -> version)."""
        return copy.deepcopy(self._groups)

    @property
    def target(self) -> dict[str, Recipe]:
        """The components the last deployment left running (name -> recipe)."""
        return dict(self._target)

    def create(self, request: Mapping[str, Any], *, deployment_id: str | None = None) -> str:
        """Validate and queue a deployment; returns its id (``deployment_id`` when given: a cloud deployment's
        own id, as the nucleus keeps it). Raises `DeploymentRequestError` for a bad request."""
        doc = parse_request(request, deployment_id)
        self._ensure_worker()
        record = {
            "deploymentId": doc.deployment_id,
            "status": "QUEUED",
            "createdOn": _now_ms_text(doc.created_on),
            "groupName": doc.group,
        }
        self._records[doc.deployment_id] = record
        self._order.append(doc.deployment_id)
        self._done[doc.deployment_id] = asyncio.Event()
        self._trim_history()
        self._persist_history()
        assert self._queue is not None
        self._queue.put_nowait(doc)
        return doc.deployment_id

    def status(self, deployment_id: str) -> dict[str, Any] | None:
        record = self._records.get(deployment_id)
        return copy.deepcopy(record) if record is not None else None

    def list(self) -> list[dict[str, Any]]:
        """Every remembered deployment, oldest first."""
        return [copy.deepcopy(self._records[i]) for i in self._order]

    def cancel(self, deployment_id: str) -> bool:
        """Cancel a deployment that has not started to apply, as the nucleus's DeploymentService does when
        its IoT job is cancelled: queued, resolving, downloading or waiting for the components' answer to
        the update notice (componentUpdatePolicy NOTIFY_COMPONENTS) -> True, it ends CANCELED with nothing
        changed. One already applying (configurations written, components restarting) runs to its end
        -> False; so does an unknown or finished one."""
        record = self._records.get(deployment_id)
        if record is None or record.get("status") in TERMINAL_STATUSES or self._activating == deployment_id:
            return False
        self._cancelling.add(deployment_id)
        if self._running is not None and self._running[0] == deployment_id:
            self._running[1].cancel()
        log.info("deployment %s cancelled before it was applied", deployment_id)
        return True

    async def wait(self, deployment_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the deployment has finished (SUCCEEDED, FAILED or CANCELED); returns its status."""
        event = self._done.get(deployment_id)
        if event is None:
            raise KeyError(f"no deployment with id {deployment_id!r}")
        await asyncio.wait_for(event.wait(), timeout)
        return self.status(deployment_id) or {}

    async def restore(self) -> None:
        """At start-up: load persisted groups, target, configuration and history; re-apply the target."""
        state = self._read_json(self.store.layout.deployments_dir / STATE_FILE, {})
        history = self._read_json(self.store.layout.deployments_dir / HISTORY_FILE, [])
        interrupted_in = state.get("activating") if isinstance(state, dict) else None
        for record in history if isinstance(history, list) else []:
            if not isinstance(record, dict) or "deploymentId" not in record:
                continue
            if record.get("status") not in TERMINAL_STATUSES:
                activated = record["deploymentId"] == interrupted_in
                self._set_failed(
                    record, "FAILED_ROLLBACK_NOT_REQUESTED" if activated else "FAILED_NO_STATE_CHANGE",
                    "ggsim stopped before the deployment finished"
                    + ("; the device keeps what the deployment had applied" if activated else ""),
                    error_report(FailureKind.INTERRUPTED))
            self._records[record["deploymentId"]] = record
            self._order.append(record["deploymentId"])
            event = asyncio.Event()
            event.set()
            self._done[record["deploymentId"]] = event
        if not isinstance(state, dict):
            return
        groups = state.get("groups", {})
        if isinstance(groups, dict):
            self._groups = {str(g): {str(n): str(v) for n, v in roots.items()}
                            for g, roots in groups.items() if isinstance(roots, dict)}
        target: dict[str, Recipe] = {}
        for name, version in (state.get("target") or {}).items():
            try:
                target[name] = self.store.load(name, version, self._platform)
            except (RecipeError, StoreError) as exc:
                log.error("cannot restore %s %s: %s", name, version, exc)
        self._target = target
        run_with = state.get("runWith")
        if isinstance(run_with, dict):
            self._run_with = {str(n): dict(v) for n, v in run_with.items() if isinstance(v, dict)}
        self._persist_history()
        if target:
            try:
                await self._kernel.apply(dict(target), run_with=self._run_with)
            except Exception:  # one bad component must not stop the simulator from starting
                log.exception("re-applying the persisted deployment failed")

    def persist(self) -> None:
        """Write groups, target and history under the root (also after each deployment)."""
        state = {
            "groups": self._groups,
            "target": {name: recipe.version for name, recipe in self._target.items()},
            "runWith": self._run_with,
            "activating": self._activating,
        }
        self._write_json(self.store.layout.deployments_dir / STATE_FILE, state)
        self._persist_history()

    def _persist_history(self) -> None:
        try:
            self._write_json(self.store.layout.deployments_dir / HISTORY_FILE, self.list())
        except OSError as exc:
            log.error("cannot persist the deployment history: %s", exc)

    async def close(self) -> None:
        """Stop the worker (a running deployment is cancelled) and persist."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        self.persist()

    # ----------------------------------------------------------------- worker

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(), name="ggsim-deployments")

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            doc = await self._queue.get()
            if doc.deployment_id in self._cancelling:
                self._cancelled(doc.deployment_id)
                self._queue.task_done()
                continue
            run = asyncio.get_running_loop().create_task(self._run(doc), name=f"deployment {doc.deployment_id}")
            self._running = (doc.deployment_id, run)
            try:
                await run
            except asyncio.CancelledError:
                if doc.deployment_id in self._cancelling and run.cancelled() and not self._stopping():
                    self._cancelled(doc.deployment_id)
                    continue
                applied = self._activating == doc.deployment_id
                self._finish(doc.deployment_id, "FAILED",
                             "FAILED_ROLLBACK_NOT_REQUESTED" if applied else "FAILED_NO_STATE_CHANGE",
                             "the deployment was cancelled because ggsim is stopping",
                             error_report(FailureKind.INTERRUPTED))
                raise
            except Exception as exc:  # a bug must not kill the queue
                log.exception("deployment %s failed unexpectedly", doc.deployment_id)
                self._finish(doc.deployment_id, "FAILED", "FAILED_NO_STATE_CHANGE",
                             f"internal error: {type(exc).__name__}: {exc}", error_report(FailureKind.INTERNAL))
            finally:
                self._running = None
                self._cancelling.discard(doc.deployment_id)
                self._queue.task_done()

    def _stopping(self) -> bool:
        worker = asyncio.current_task()
        return worker is not None and worker.cancelling() > 0

    def _cancelled(self, deployment_id: str) -> None:
        self._cancelling.discard(deployment_id)
        self._finish(deployment_id, "CANCELED", "CANCELED", None, None)

    def _current_configurations(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in self._config.components():
            try:
                value = self._config.get(name, [])
            except KeyError:
                continue
            if isinstance(value, dict):
                out[name] = value
        return out

    async def _run(self, doc: DeploymentDocument) -> None:
        record = self._records[doc.deployment_id]
        record["status"] = "IN_PROGRESS"
        self._persist_history()
        previous_target = dict(self._target)
        previous_groups = copy.deepcopy(self._groups)
        previous_run_with = copy.deepcopy(self._run_with)
        current_configs = self._current_configurations()
        try:
            plan = await asyncio.to_thread(
                plan_deployment, doc, previous_groups, previous_target, current_configs, self.store,
                self._platform, self._builtin, previous_run_with,
            )
        except DeploymentError as exc:
            self._finish(doc.deployment_id, "FAILED", "FAILED_NO_STATE_CHANGE", str(exc), error_report(exc.codes))
            return
        record["components"] = plan.versions

        if doc.kind == "CLOUD":
            rejection = await self._cloud_checks(doc, plan)
            if rejection is not None:
                self._finish(doc.deployment_id, "FAILED", "FAILED_NO_STATE_CHANGE", rejection,
                             error_report(FailureKind.CONFIGURATION_REJECTED))
                return

        config_before = self._config.snapshot()
        self._write_configurations(plan, doc.created_on)
        self._groups = plan.groups
        self._run_with = plan.run_with
        # Until it succeeds, the components it removes still run (and would after a kill, as on the nucleus).
        self._target = {**{n: previous_target[n] for n in plan.removed}, **plan.target}
        self._activating = doc.deployment_id
        self.persist()
        failure = await self._activate(plan.target, plan.run_with)
        if failure is None:
            await self._kernel.remove_others(plan.target)
            for name in plan.removed:
                self._config.remove(name)
            self._target = dict(plan.target)
            self._finish(doc.deployment_id, "SUCCEEDED", "SUCCESSFUL", None, None)
            if doc.kind == "CLOUD" and doc.notify_components:
                self._update_hub.notify_post_update(doc.deployment_id)
            return

        cause, report = failure
        if doc.failure_policy == "DO_NOTHING":
            # As the nucleus: no rollback, and the components it meant to remove are not removed.
            self._finish(doc.deployment_id, "FAILED", "FAILED_ROLLBACK_NOT_REQUESTED", cause, report)
            return
        # ROLLBACK: the previous target and configuration, exactly.
        self._config.restore(config_before)
        self._groups = previous_groups
        self._run_with = previous_run_with
        self._target = {**previous_target, **{n: plan.target[n] for n in plan.added}}
        self.persist()
        rollback_failure = await self._activate(previous_target, previous_run_with)
        if rollback_failure is None:
            await self._kernel.remove_others(previous_target)
            self._target = previous_target
            self._finish(doc.deployment_id, "FAILED", "FAILED_ROLLBACK_COMPLETE",
                         f"{cause}; rolled back to the previous deployment", report)
        else:
            self._finish(doc.deployment_id, "FAILED", "FAILED_UNABLE_TO_ROLLBACK",
                         f"{cause}; the rollback also failed: {rollback_failure[0]}", report)

    async def _cloud_checks(self, doc: DeploymentDocument, plan: DeploymentPlan) -> str | None:
        """Component update notification and configuration validation (cloud deployments only)."""
        if doc.notify_components:
            await self._update_hub.notify_pre_update(doc.deployment_id, doc.update_timeout)
        for name in sorted(plan.target):
            answer = await self._validation_hub.validate(name, plan.configurations[name], doc.deployment_id,
                                              doc.validation_timeout)
            if answer is None:
                continue
            status, message = answer
            if str(status).upper() == "REJECTED":
                return ("Components reported that their to-be-deployed configuration is invalid "
                        f"{{ name = {name}, message = {message} }}")
        return None

    def _write_configurations(self, plan: DeploymentPlan, timestamp: float) -> None:
        for name in sorted(plan.configurations):  # the target's and ggsim's built-in components'
            self._config.replace(name, plan.configurations[name], timestamp)

    async def _activate(self, target: dict[str, Recipe],
                        run_with: Mapping[str, Mapping[str, Any]]) -> tuple[str, ErrorReport] | None:
        """Apply `target` (removing nothing) and watch it; returns None when healthy, else why not."""
        try:
            await self._kernel.apply(dict(target), run_with=run_with, remove_others=False)
            if not target:
                return None
            states = await self._kernel.wait_healthy(sorted(target), self.health_timeout,
                                                     stable_for=self.health_poll)
        except Exception as exc:
            log.exception("activation failed")
            return f"activation failed: {type(exc).__name__}: {exc}", error_report(FailureKind.INTERNAL)
        bad = {name: state for name, state in states.items() if state not in HEALTHY_STATES}
        missing = sorted(set(target) - set(states))
        if not bad and not missing:
            return None
        broken = sorted(name for name, state in bad.items() if state == "BROKEN")
        if broken:
            return (f"Service {broken[0]} in broken state after deployment",
                    error_report(FailureKind.COMPONENT_BROKEN, broken=broken))
        parts = [f"{name} is {state}" for name, state in sorted(bad.items())]
        parts += [f"{name} has no state" for name in missing]
        return (f"Service(s) not RUNNING or FINISHED after {self.health_timeout:g} s: " + ", ".join(parts),
                error_report(FailureKind.UPDATE_TIMEOUT))

    def _finish(self, deployment_id: str, status: str, detailed: str, cause: str | None,
                report: ErrorReport | None) -> None:
        record = self._records.get(deployment_id)
        if record is None:
            return
        if self._activating == deployment_id:
            self._activating = None
        if cause is not None:
            self._set_failed(record, detailed, cause, report or error_report(FailureKind.INTERNAL))
            record["status"] = status
            log.error("deployment %s %s (%s): %s", deployment_id, status, detailed, cause)
        else:
            record["status"] = status
            record["deploymentStatusDetails"] = {"detailedDeploymentStatus": detailed}
            log.info("deployment %s %s", deployment_id, status)
        try:
            self.persist()
        except OSError as exc:
            log.error("cannot persist the deployment state: %s", exc)
        event = self._done.get(deployment_id)
        if event is not None:
            event.set()

    @staticmethod
    def _set_failed(record: dict[str, Any], detailed: str, cause: str, report: ErrorReport) -> None:
        record["status"] = "FAILED"
        record["failureCause"] = cause
        record["deploymentStatusDetails"] = {
            "detailedDeploymentStatus": detailed,
            "deploymentFailureCause": cause,
            "deploymentErrorStack": list(report.stack),
            "deploymentErrorTypes": list(report.types),
        }

    def _trim_history(self) -> None:
        while len(self._order) > HISTORY_LIMIT:
            oldest = self._order[0]
            if self._records[oldest].get("status") not in TERMINAL_STATUSES:
                break
            self._order.pop(0)
            self._records.pop(oldest, None)
            self._done.pop(oldest, None)

    # -------------------------------------------------------------- files

    @staticmethod
    def _read_json(path: Path, default: Any) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s); ignoring it", path, exc)
            return default

    @staticmethod
    def _write_json(path: Path, data: Any) -> None:
        write_atomically(path, json.dumps(data, indent=2, sort_keys=True))
