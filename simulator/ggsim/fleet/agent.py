"""The cloud side of one simulated core: deployments through the IoT Jobs MQTT API, fleet status back.

What the nucleus's IotJobsHelper and FleetStatusService do, over the core's own IoT Core connection (the
bridge to the fleet's broker):

* subscribes to ``$aws/things/T/jobs/notify-next-namespace-aws-gg-deployment`` and asks
  ``$aws/things/T/jobs/$next/namespace-aws-gg-deployment/get`` at start (a core that was off catches up);
* for each next execution, one at a time: marks it IN_PROGRESS, resolves versions across every
  deployment that targets the thing (its persisted groups' roots with this group's replaced) with
  ResolveComponentCandidates, downloads artifacts from S3 and checks digests (components.py), then has the
  `DeploymentManager` apply the job document under the cloud deployment's id with the nucleus's semantics
  (failure handling, component update and configuration validation policies, rollback);
* reports SUCCEEDED or FAILED with the nucleus's statusDetails keys (``detailed-deployment-status``,
  ``deployment-failure-cause``, ``deployment-error-stack``, ``deployment-error-types``);
* publishes the fleet status (``$aws/things/T/greengrassv2/health/json``, COMPLETE, every installed
  component with its state, HEALTHY unless one is BROKEN) at start, after each deployment and every
  ``status_interval`` seconds; its MQTT last will is the same message UNHEALTHY, so the broker publishes
  it for a core that dies without disconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ggsim.iotcore import IotCore, MqttMessage
from ggsim.nucleus.deployment import DeploymentManager
from ggsim.nucleus.deployment.errors import error_report
from ggsim.nucleus.deployment.plan import DeploymentError
from ggsim.nucleus.store import Store

from .components import CloudComponents
from .sigv4 import Credentials

__all__ = ["FleetAgent", "FleetOptions", "JobDocumentError", "request_from_job_document", "status_topic"]

log = logging.getLogger("ggsim.fleet")

NAMESPACE = "namespace-aws-gg-deployment"
ACCOUNT_PLACEHOLDER = "000000000000"


@dataclass(frozen=True)
class FleetOptions:
    """``ggsim up --fleet``: where the control plane's HTTP APIs are (None: AWS itself) and how often the
    fleet status is sent when nothing changes."""

    endpoint_url: str | None = None
    status_interval: float = 30.0


class JobDocumentError(ValueError):
    """A job document the core cannot apply; the message names the field."""


def status_topic(thing: str) -> str:
    return f"$aws/things/{thing}/greengrassv2/health/json"


def _jobs(thing: str, rest: str) -> str:
    return f"$aws/things/{thing}/jobs/{rest}"


def _group_of(configuration_arn: str) -> str:
    """``arn:aws:greengrass:R:A:configuration:thinggroup/NAME:REV`` -> ``thinggroup/NAME``."""
    _, sep, resource = configuration_arn.partition(":configuration:")
    target = resource.rsplit(":", 1)[0]
    if not sep or not (target.startswith("thinggroup/") or target.startswith("thing/")):
        raise JobDocumentError(f"configurationArn: {configuration_arn!r} is not "
                               "arn:aws:greengrass:REGION:ACCOUNT:configuration:thinggroup/NAME:REVISION")
    return target


def request_from_job_document(document: Mapping[str, Any], region: str) -> tuple[str, dict[str, Any]]:
    """The job document (the nucleus's FleetConfiguration) as a CreateDeployment body for the deployment
    service: (deployment id, body). Raises `JobDocumentError` naming the field."""
    if not isinstance(document, Mapping):
        raise JobDocumentError("jobDocument: expected an object")
    deployment_id = document.get("deploymentId")
    if not isinstance(deployment_id, str) or not deployment_id:
        raise JobDocumentError(f"deploymentId: expected a string, got {deployment_id!r}")
    group = _group_of(str(document.get("configurationArn", "")))
    components: dict[str, Any] = {}
    raw_components = document.get("components") or {}
    if not isinstance(raw_components, Mapping):
        raise JobDocumentError("components: expected an object of component name -> {version, ...}")
    for name, spec in raw_components.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("version"), str):
            raise JobDocumentError(f"components.{name}.version: expected a version string")
        entry: dict[str, Any] = {"componentVersion": spec["version"]}
        update = spec.get("configurationUpdate")
        if isinstance(update, Mapping):
            converted: dict[str, Any] = {}
            if update.get("merge") is not None:
                merge = update["merge"]
                converted["merge"] = merge if isinstance(merge, str) else json.dumps(merge)
            if update.get("reset") is not None:
                converted["reset"] = list(update["reset"])
            entry["configurationUpdate"] = converted
        if isinstance(spec.get("runWith"), Mapping):
            entry["runWith"] = dict(spec["runWith"])
        components[name] = entry
    policies: dict[str, Any] = {"failureHandlingPolicy": document.get("failureHandlingPolicy") or "ROLLBACK"}
    update_policy = document.get("componentUpdatePolicy")
    if isinstance(update_policy, Mapping):
        policies["componentUpdatePolicy"] = {
            k: v for k, v in {"action": update_policy.get("action"),
                              "timeoutInSeconds": update_policy.get("timeout")}.items() if v is not None}
    validation = document.get("configurationValidationPolicy")
    if isinstance(validation, Mapping) and validation.get("timeout") is not None:
        policies["configurationValidationPolicy"] = {"timeoutInSeconds": validation["timeout"]}
    kind, _, name = group.partition("/")
    body = {"targetArn": f"arn:aws:iot:{region}:{ACCOUNT_PLACEHOLDER}:{kind}/{name}",
            "components": components, "deploymentPolicies": policies}
    return deployment_id, body


def _java_list(items: list[str]) -> str:
    """A list as the nucleus writes it into a job's statusDetails (Java's List.toString)."""
    return "[" + ", ".join(items) + "]"


class FleetAgent:
    """One core's IoT Jobs client and fleet status publisher (see the module docstring)."""

    def __init__(self, *, thing_name: str, region: str, options: FleetOptions, iotcore: IotCore,
                 deployments: DeploymentManager, kernel: Any, store: Store, platform: Mapping[str, str],
                 builtin: Mapping[str, str], nucleus_version: str, credentials: Credentials | None = None) -> None:
        self.thing = thing_name
        self.region = region
        self.options = options
        self._iotcore = iotcore
        self._deployments = deployments
        self._kernel = kernel
        self._platform = dict(platform)
        self._nucleus_version = nucleus_version
        self.cloud = CloudComponents(store=store, platform=platform, region=region,
                                     endpoint_url=options.endpoint_url, builtin=builtin,
                                     credentials=credentials)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seen: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[Any] = []
        self._sequence = 0
        self._last_deployment: dict[str, Any] | None = None
        #: group -> the configurationArn of the last deployment applied from it (for fleetConfigArns)
        self._arns: dict[str, str] = {}
        #: (job id, deployment id) being run; a notify-next naming another job (or none) means it was cancelled
        self._job: tuple[str, str] | None = None
        self._cancelled: set[str] = set()

    # ------------------------------------------------------------------ wiring

    @staticmethod
    def last_will(thing: str, nucleus_version: str, platform: Mapping[str, str]) -> MqttMessage:
        """The fleet status the broker publishes for this core if it dies: UNHEALTHY."""
        body = {"ggcVersion": nucleus_version, "platform": platform.get("os", "linux"),
                "architecture": platform.get("architecture", "amd64"), "thing": thing,
                "overallDeviceStatus": "UNHEALTHY", "messageType": "PARTIAL", "trigger": "NETWORK_RECONFIGURE",
                "components": []}
        # no sequenceNumber or timestamp: written at connect time, it is received whenever the core dies
        return MqttMessage(status_topic(thing), json.dumps(body).encode(), qos=1)

    async def start(self) -> None:
        subscriptions = [(_jobs(self.thing, f"notify-next-{NAMESPACE}"), self._on_next),
                         (_jobs(self.thing, f"$next/{NAMESPACE}/get/accepted"), self._on_next)]
        for topic, callback in subscriptions:
            self._subscriptions.append(await self._iotcore.subscribe(topic, 1, callback))
        self._tasks.append(asyncio.get_running_loop().create_task(self._work(), name="ggsim-fleet-jobs"))
        self._tasks.append(asyncio.get_running_loop().create_task(self._cadence(), name="ggsim-fleet-status"))
        await self._publish_status("NUCLEUS_LAUNCH")
        await self._publish(_jobs(self.thing, f"$next/{NAMESPACE}/get"), {"clientToken": f"{self.thing}-start"})

    async def stop(self) -> None:
        for sub in self._subscriptions:
            sub.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _on_next(self, message: MqttMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            log.warning("fleet: %s is not JSON; ignored", message.topic)
            return
        execution = body.get("execution") if isinstance(body, dict) else None
        head = execution.get("jobId") if isinstance(execution, dict) else None
        if self._job is not None and head != self._job[0]:
            self._cancel_running(*self._job)
        if not isinstance(execution, dict) or execution.get("status") not in ("QUEUED", "IN_PROGRESS"):
            return
        job_id = execution.get("jobId")
        if not isinstance(job_id, str) or job_id in self._seen:
            return
        self._seen.add(job_id)
        self._queue.put_nowait(execution)

    def _cancel_running(self, job_id: str, deployment_id: str) -> None:
        """The running job is no longer this thing's next: it was cancelled (IoT Jobs no longer accepts its
        updates). As the nucleus: stop it if it has not started to apply, else let it run to its end."""
        self._job = None
        self._cancelled.add(job_id)
        # not created yet (artifacts being fetched): _run stops before creating it
        stopped = self._deployments.status(deployment_id) is None or self._deployments.cancel(deployment_id)
        log.warning("fleet: job %s was cancelled; deployment %s %s", job_id, deployment_id,
                    "stopped before it was applied" if stopped else "was already being applied and runs to its end")

    async def _publish(self, topic: str, body: Mapping[str, Any]) -> None:
        await self._iotcore.publish(MqttMessage(topic, json.dumps(body).encode(), qos=1))

    # ------------------------------------------------------------------- jobs

    async def _work(self) -> None:
        while True:
            execution = await self._queue.get()
            try:
                await self._run(execution)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad job must not stop the core taking the next
                log.exception("fleet: job %s failed unexpectedly", execution.get("jobId"))

    async def _update(self, job_id: str, status: str, details: Mapping[str, str]) -> None:
        await self._publish(_jobs(self.thing, f"{job_id}/{NAMESPACE}/update"),
                            {"status": status, "statusDetails": dict(details),
                             "clientToken": f"{self.thing}-{job_id}-{status}"})

    async def _run(self, execution: Mapping[str, Any]) -> None:
        job_id = str(execution["jobId"])
        document = execution.get("jobDocument") or {}
        await self._update(job_id, "IN_PROGRESS", {})
        try:
            deployment_id, request = request_from_job_document(document, self.region)
        except JobDocumentError as exc:
            await self._update(job_id, "REJECTED", {"detailed-deployment-status": "REJECTED",
                                                    "deployment-failure-cause": str(exc)})
            return
        group = _group_of(document["configurationArn"])
        log.info("fleet: job %s, deployment %s for %s", job_id, deployment_id, group)
        self._job = (job_id, deployment_id)
        roots = self._deployments.groups
        roots[group] = {n: c["componentVersion"] for n, c in request["components"].items()}
        roots = {g: r for g, r in roots.items() if r}
        try:
            await asyncio.to_thread(self.cloud.fetch, roots)
        except DeploymentError as exc:
            report = error_report(exc.codes)
            await self._finish(job_id, group, document, {
                "status": "FAILED", "deploymentStatusDetails": {
                    "detailedDeploymentStatus": "FAILED_NO_STATE_CHANGE", "deploymentFailureCause": str(exc),
                    "deploymentErrorStack": report.stack, "deploymentErrorTypes": report.types}})
            return
        if job_id in self._cancelled:
            log.info("fleet: job %s cancelled while its artifacts were fetched; nothing applied", job_id)
            return
        self._deployments.create(request, deployment_id=deployment_id)
        record = await self._deployments.wait(deployment_id)
        if record.get("status") == "CANCELED":
            await self._publish_status("THING_GROUP_DEPLOYMENT")
            return
        await self._finish(job_id, group, document, record)

    async def _finish(self, job_id: str, group: str, document: Mapping[str, Any],
                      record: Mapping[str, Any]) -> None:
        self._job = None
        details = record.get("deploymentStatusDetails") or {}
        status = "SUCCEEDED" if record.get("status") == "SUCCEEDED" else "FAILED"
        reported = {"detailed-deployment-status": details.get("detailedDeploymentStatus", "SUCCESSFUL")}
        if status == "FAILED":
            reported.update({
                "deployment-failure-cause": str(details.get("deploymentFailureCause", "")),
                "deployment-error-stack": _java_list(list(details.get("deploymentErrorStack") or [])),
                "deployment-error-types": _java_list(list(details.get("deploymentErrorTypes") or []))})
        await self._update(job_id, status, reported)
        self._last_deployment = {
            "status": status, "fleetConfigurationArnForStatus": document.get("configurationArn", ""),
            "deploymentId": document.get("deploymentId", ""),
            "statusDetails": {"detailedStatus": reported["detailed-deployment-status"],
                              "failureCause": reported.get("deployment-failure-cause", "")}}
        if status == "SUCCEEDED":
            self._arns[group] = str(document.get("configurationArn", ""))
        log.log(logging.INFO if status == "SUCCEEDED" else logging.WARNING, "fleet: job %s (%s) %s %s",
                job_id, group, status, reported.get("deployment-failure-cause", ""))
        await self._publish_status("THING_GROUP_DEPLOYMENT" if group.startswith("thinggroup/")
                                   else "THING_DEPLOYMENT")

    # ----------------------------------------------------------------- status

    async def _cadence(self) -> None:
        while True:
            await asyncio.sleep(self.options.status_interval)
            await self._publish_status("CADENCE")

    def status_message(self, trigger: str) -> dict[str, Any]:
        """The fleet status message: every installed component and the device's health."""
        groups = self._deployments.groups
        roots = {name for roots in groups.values() for name in roots}
        arns = {name: sorted(self._arns[g] for g, r in groups.items() if name in r and g in self._arns)
                for name in roots}
        components = []
        for item in self._kernel.list_components():
            name = item["componentName"]
            entry: dict[str, Any] = {"componentName": name, "version": item["version"],
                                     "isRoot": name in roots, "status": item["state"],
                                     "fleetConfigArns": arns.get(name, [])}
            if item["state"] == "BROKEN":
                entry["componentStatusDetails"] = {"statusCode": ["BROKEN"],
                                                   "statusReason": f"{name} is BROKEN"}
            components.append(entry)
        healthy = all(c["status"] != "BROKEN" for c in components)
        self._sequence += 1
        now_ms = int(time.time() * 1000)
        message: dict[str, Any] = {
            "ggcVersion": self._nucleus_version, "platform": self._platform.get("os", "linux"),
            "architecture": self._platform.get("architecture", "amd64"), "thing": self.thing,
            "overallDeviceStatus": "HEALTHY" if healthy else "UNHEALTHY",
            "sequenceNumber": now_ms * 1000 + self._sequence % 1000, "timestamp": now_ms,
            "messageType": "COMPLETE", "trigger": trigger, "components": components}
        if self._last_deployment is not None:
            message["deploymentInformation"] = self._last_deployment
        return message

    async def _publish_status(self, trigger: str) -> None:
        await self._publish(status_topic(self.thing), self.status_message(trigger))
