"""The device side of IoT Core for a fleet: the AWS IoT Jobs MQTT API and the Greengrass fleet status topic,
served on a real MQTT broker by one client of the control plane.

Requests (each answered on ``<request topic>/accepted`` or ``/rejected``, with the request's clientToken):

- ``$aws/things/T/jobs/get``: GetPendingJobExecutions -> {inProgressJobs, queuedJobs, timestamp};
- ``$aws/things/T/jobs/start-next``: StartNextPendingJobExecution -> {execution, timestamp};
- ``$aws/things/T/jobs/J/get``: DescribeJobExecution (J may be ``$next``) -> {execution, timestamp};
- ``$aws/things/T/jobs/J/update``: UpdateJobExecution -> {executionState, jobDocument?, timestamp};
- the same two with ``/namespace-aws-gg-deployment`` after J, as the Greengrass nucleus sends them.

Notifications: ``$aws/things/T/jobs/notify`` (JobExecutionsChanged: {jobs: {QUEUED: [...], IN_PROGRESS:
[...]}}) on every change of T's pending executions, and ``$aws/things/T/jobs/notify-next``
(NextJobExecutionChanged: {execution} or no execution) when T's next pending execution changes; both also
with the ``-namespace-aws-gg-deployment`` suffix. Timestamps are seconds since the epoch.

Fleet status: ``$aws/things/T/greengrassv2/health/json`` messages go to :class:`ggcloud.core_devices.CoreDevices`.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from moto.iot.models import FakeJobExecution

from .core_devices import CoreDevices, StatusMessageError
from .rollout import JobsRejected, RolloutEngine

log = logging.getLogger("ggcloud.jobs")

NAMESPACE = "namespace-aws-gg-deployment"
SUBSCRIPTIONS = [
    "$aws/things/+/jobs/get", "$aws/things/+/jobs/start-next", "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update", f"$aws/things/+/jobs/+/{NAMESPACE}/get",
    f"$aws/things/+/jobs/+/{NAMESPACE}/update", "$aws/things/+/greengrassv2/health/json",
]


def _seconds(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def summary(execution: FakeJobExecution) -> dict[str, Any]:
    """A JobExecutionSummary as the Jobs MQTT API sends it."""
    return {k: v for k, v in {
        "jobId": execution.job_id, "queuedAt": _seconds(execution.queued_at),
        "startedAt": _seconds(execution.started_at), "lastUpdatedAt": _seconds(execution.last_updated_at),
        "versionNumber": execution.version_number, "executionNumber": execution.execution_number,
    }.items() if v is not None}


class JobsMqtt:
    """Connects to ``broker_url`` (mqtt://host:port) and serves the topics above until :meth:`stop`."""

    def __init__(self, broker_url: str, engine: RolloutEngine, devices: CoreDevices,
                 client_id: str = "ggcloud-control-plane") -> None:
        url = urlparse(broker_url)
        if url.scheme != "mqtt" or not url.hostname or not url.port:
            raise ValueError(f"broker URL {broker_url!r} must be mqtt://HOST:PORT")
        self.engine = engine
        self.devices = devices
        self._host, self._port = url.hostname, url.port
        self._outbox: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._last_next: dict[str, str | None] = {}
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._sender = threading.Thread(target=self._send_loop, name="ggcloud-jobs-send", daemon=True)
        engine.on_change = self.thing_changed

    def start(self, timeout: float = 10.0) -> None:
        self.client.connect(self._host, self._port, keepalive=30)
        self.client.loop_start()
        self._sender.start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"no MQTT connection to {self._host}:{self._port} in {timeout} s")

    def stop(self) -> None:
        self._outbox.put(None)
        self._sender.join(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe([(t, 1) for t in SUBSCRIPTIONS])
        self._connected.set()

    def _send_loop(self) -> None:
        while (item := self._outbox.get()) is not None:
            topic, payload = item
            self.client.publish(topic, json.dumps(payload), qos=1)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        self._outbox.put((topic, payload))

    # -- notifications ----------------------------------------------------------------------------------
    def thing_changed(self, thing: str) -> None:
        """Called by the engine (under its lock) whenever one of ``thing``'s executions changed."""
        pending = self.engine.executions_for(thing)
        now = int(time.time())
        jobs: dict[str, list[dict[str, Any]]] = {}
        for e in pending:
            jobs.setdefault(e.status, []).append(summary(e))
        for suffix in ("", "-" + NAMESPACE):
            self._publish(f"$aws/things/{thing}/jobs/notify{suffix}", {"jobs": jobs, "timestamp": now})
        head = pending[0].job_id if pending else None
        if self._last_next.get(thing, "") != head:
            self._last_next[thing] = head
            body: dict[str, Any] = {"timestamp": now}
            if pending:
                body["execution"] = self._execution(thing, pending[0], include_document=True)
            for suffix in ("", "-" + NAMESPACE):
                self._publish(f"$aws/things/{thing}/jobs/notify-next{suffix}", body)

    def _execution(self, thing: str, e: FakeJobExecution, include_document: bool) -> dict[str, Any]:
        body = {**summary(e), "thingName": thing, "status": e.status, "statusDetails": e.status_details_map}
        if include_document:
            body["jobDocument"] = self.engine.document(e.job_id)
        return body

    # -- requests ---------------------------------------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        thing = parts[2]
        if parts[3] == "greengrassv2":
            try:
                self.devices.report(thing, json.loads(msg.payload or b"{}"))
            except (ValueError, StatusMessageError) as e:
                log.warning("fleet status from %s refused: %s", thing, e)
            return
        try:
            request = json.loads(msg.payload) if msg.payload else {}
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as e:
            self._publish(msg.topic + "/rejected", {"code": "InvalidJson", "message": str(e),
                                                    "timestamp": int(time.time())})
            return
        token = request.get("clientToken")
        try:
            body = self._answer(thing, parts[4:], request)
            topic = msg.topic + "/accepted"
        except JobsRejected as e:
            body = {"code": e.code, "message": e.message}
            if e.execution is not None:
                body["executionState"] = {"status": e.execution.status,
                                          "statusDetails": e.execution.status_details_map,
                                          "versionNumber": e.execution.version_number}
            topic = msg.topic + "/rejected"
        except (KeyError, TypeError, ValueError) as e:
            body, topic = {"code": "InvalidRequest", "message": f"bad request: {e}"}, msg.topic + "/rejected"
        body["timestamp"] = int(time.time())
        if token is not None:
            body["clientToken"] = token
        self._publish(topic, body)

    def _answer(self, thing: str, rest: list[str], request: dict[str, Any]) -> dict[str, Any]:
        if rest == ["get"]:
            pending = self.engine.executions_for(thing)
            return {"inProgressJobs": [summary(e) for e in pending if e.status == "IN_PROGRESS"],
                    "queuedJobs": [summary(e) for e in pending if e.status == "QUEUED"]}
        if rest == ["start-next"]:
            execution = self.engine.start_next(thing, request.get("statusDetails"),
                                               request.get("stepTimeoutInMinutes"))
            return {"execution": self._execution(thing, execution, True)} if execution else {}
        job_id, operation = rest[0], rest[-1]
        if operation == "get":
            include = request.get("includeJobDocument", True)
            if job_id == "$next" and not self.engine.executions_for(thing):
                return {}
            return {"execution": self._execution(thing, self.engine.execution(thing, job_id), include)}
        if operation == "update":
            if "status" not in request:
                raise JobsRejected("InvalidRequest", "status is required")
            execution = self.engine.update(thing, job_id, request["status"], request.get("statusDetails"),
                                           request.get("expectedVersion"), request.get("stepTimeoutInMinutes"))
            body: dict[str, Any] = {}
            if request.get("includeJobExecutionState"):
                body["executionState"] = {"status": execution.status,
                                          "statusDetails": execution.status_details_map,
                                          "versionNumber": execution.version_number}
            if request.get("includeJobDocument"):
                body["jobDocument"] = self.engine.document(execution.job_id)
            return body
        raise JobsRejected("InvalidTopic", f"no Jobs operation at {'/'.join(rest)}")
