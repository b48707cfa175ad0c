"""A scripted fake fleet for the roll-out tests: each fake core is one MQTT client that speaks only the IoT
Jobs MQTT API as documented (the Greengrass namespace topics the nucleus uses) and the fleet status topic.
On a notify-next carrying an execution it marks it IN_PROGRESS and then, by its script, SUCCEEDED, FAILED
(with the nucleus's error stack and types) or nothing (hangs)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

NS = "namespace-aws-gg-deployment"


@dataclass
class FakeCore:
    thing: str
    port: int
    script: str = "succeed"  # succeed | fail | hang
    notified: list[tuple[float, str]] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    got_job: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fake-{self.thing}")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        self.client.subscribe([(f"$aws/things/{self.thing}/jobs/notify-next-{NS}", 1),
                               (f"$aws/things/{self.thing}/jobs/+/{NS}/update/accepted", 1)])
        assert subscribed.wait(5), f"{self.thing} could not subscribe"

    def report(self, status: str = "HEALTHY", components: list[dict[str, Any]] | None = None) -> None:
        message = {"ggcVersion": "2.14.0", "platform": "linux", "architecture": "amd64", "thing": self.thing,
                   "overallDeviceStatus": status, "sequenceNumber": int(time.time() * 1000),
                   "timestamp": int(time.time() * 1000), "messageType": "COMPLETE", "trigger": "CADENCE",
                   "components": components or []}
        self.client.publish(f"$aws/things/{self.thing}/greengrassv2/health/json", json.dumps(message), qos=1)

    def _update(self, job_id: str, status: str, details: dict[str, str] | None = None) -> None:
        self.client.publish(f"$aws/things/{self.thing}/jobs/{job_id}/{NS}/update",
                            json.dumps({"status": status, "statusDetails": details or {},
                                        "clientToken": f"{self.thing}-{status}"}), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        if msg.topic.endswith("/update/accepted"):
            self.accepted.append(body)
            return
        execution = body.get("execution")
        if not execution or execution["status"] != "QUEUED":
            return
        job_id = execution["jobId"]
        self.notified.append((time.monotonic(), job_id))
        self.documents[job_id] = execution["jobDocument"]
        self.got_job.set()
        self._update(job_id, "IN_PROGRESS")
        if self.script == "succeed":
            self._update(job_id, "SUCCEEDED", {"detailed-deployment-status": "SUCCESSFUL"})
        elif self.script == "fail":
            self._update(job_id, "FAILED", {
                "detailed-deployment-status": "FAILED_ROLLBACK_COMPLETE",
                "deployment-failure-cause": "greenlens.Model errored while starting",
                "deployment-error-stack": "[DEPLOYMENT_FAILURE, COMPONENT_UPDATE_ERROR, COMPONENT_BROKEN]",
                "deployment-error-types": "[COMPONENT_ERROR]"})

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    """Poll an observable condition (an API answer) until it holds; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)  # polling the control plane's API, not synchronising on time
