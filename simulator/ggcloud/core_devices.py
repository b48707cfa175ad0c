"""Core devices as the service knows them: from the fleet status each nucleus publishes on
``$aws/things/<thing>/greengrassv2/health/json`` (the nucleus's FleetStatusDetails: ggcVersion, platform,
architecture, thing, overallDeviceStatus HEALTHY/UNHEALTHY, sequenceNumber, timestamp, messageType
COMPLETE/PARTIAL, trigger, components [{componentName, version, fleetConfigArns, isRoot, status,
componentStatusDetails}], deploymentInformation). A COMPLETE message replaces the installed components, a
PARTIAL one updates those it lists. Serves ListCoreDevices, GetCoreDevice and ListInstalledComponents."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.iot.models import IoTBackend

from .api_model import not_found, validation_error

log = logging.getLogger("ggcloud.devices")

RUNTIME = "aws_nucleus_classic"
LIFECYCLE_STATES = ("NEW", "INSTALLED", "STARTING", "RUNNING", "STOPPING", "ERRORED", "BROKEN", "FINISHED")


class StatusMessageError(ValueError):
    """A fleet status message that is not the nucleus's shape; the message names the field."""


@dataclass
class InstalledComponent:
    name: str
    version: str
    state: str
    is_root: bool
    status_codes: list[str]
    reason: str | None
    changed: dt.datetime
    reported: dt.datetime
    source: str | None

    def to_api(self) -> dict[str, Any]:
        return {"componentName": self.name, "componentVersion": self.version, "lifecycleState": self.state,
                "lifecycleStateDetails": self.reason, "isRoot": self.is_root,
                "lastStatusChangeTimestamp": self.changed, "lastReportedTimestamp": self.reported,
                "lastInstallationSource": self.source, "lifecycleStatusCodes": self.status_codes}


@dataclass
class CoreDevice:
    thing: str
    status: str
    updated: dt.datetime
    core_version: str | None
    platform: str | None
    architecture: str | None
    sequence: int = -1
    components: dict[str, InstalledComponent] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"coreDeviceThingName": self.thing, "status": self.status,
                "lastStatusUpdateTimestamp": self.updated, "platform": self.platform,
                "architecture": self.architecture, "runtime": RUNTIME}


def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    start = int(params.get("nextToken") or 0)
    end = start + params.get("maxResults", 50)
    return items[start:end], (str(end) if end < len(items) else None)


class CoreDevices:
    def __init__(self, iot: Callable[[], IoTBackend], lock: threading.RLock) -> None:
        self._iot = iot
        self.lock = lock
        self.devices: dict[str, CoreDevice] = {}

    def report(self, thing: str, message: dict[str, Any]) -> CoreDevice:
        """Take one fleet status message published by ``thing``."""
        if not isinstance(message, dict):
            raise StatusMessageError("a fleet status message is a JSON object")
        status = message.get("overallDeviceStatus")
        if status not in ("HEALTHY", "UNHEALTHY"):
            raise StatusMessageError(f"overallDeviceStatus {status!r} is not HEALTHY or UNHEALTHY")
        components = message.get("components", [])
        if not isinstance(components, list):
            raise StatusMessageError("components must be a list")
        now = dt.datetime.now(dt.UTC)
        stamp = message.get("timestamp")
        updated = dt.datetime.fromtimestamp(stamp / 1000, dt.UTC) if isinstance(stamp, (int, float)) else now
        with self.lock:
            device = self.devices.get(thing)
            sequence = message.get("sequenceNumber", -1)
            if device is not None and isinstance(sequence, int) and 0 <= sequence < device.sequence:
                return device  # an older message arriving late
            if device is None:
                device = self.devices[thing] = CoreDevice(thing, status, updated, None, None, None)
            device.status = status
            device.updated = updated
            device.sequence = sequence if isinstance(sequence, int) else device.sequence
            device.core_version = message.get("ggcVersion") or device.core_version
            device.platform = message.get("platform") or device.platform
            device.architecture = message.get("architecture") or device.architecture
            if message.get("messageType", "COMPLETE") == "COMPLETE":
                seen = {c.get("componentName") for c in components if isinstance(c, dict)}
                for gone in set(device.components) - seen:
                    del device.components[gone]
            for i, raw in enumerate(components):
                self._component(device, raw, i, updated, now)
            log.info("core %s: %s, %d components", thing, status, len(device.components))
            return device

    @staticmethod
    def _component(device: CoreDevice, raw: Any, i: int, updated: dt.datetime, now: dt.datetime) -> None:
        if not isinstance(raw, dict) or not raw.get("componentName") or not raw.get("version"):
            raise StatusMessageError(f"components[{i}] needs componentName and version")
        state = raw.get("status", "NEW")
        if state not in LIFECYCLE_STATES:
            raise StatusMessageError(f"components[{i}].status {state!r} is not one of {LIFECYCLE_STATES}")
        details = raw.get("componentStatusDetails") or {}
        old = device.components.get(raw["componentName"])
        changed = old.changed if old and old.state == state and old.version == raw["version"] else updated
        arns = raw.get("fleetConfigArns") or []
        device.components[raw["componentName"]] = InstalledComponent(
            raw["componentName"], raw["version"], state, bool(raw.get("isRoot")),
            list(details.get("statusCode") or []), details.get("statusReason"), changed, now,
            arns[-1] if arns else None)

    def require(self, thing: str) -> CoreDevice | None:
        """The core device, or None for a thing that exists but has not reported yet; ResourceNotFound
        for neither."""
        with self.lock:
            if thing in self.devices:
                return self.devices[thing]
            if any(t.thing_name == thing for t in self._iot().things.values()):
                return None
        raise not_found("CORE_DEVICE", thing, f"core device {thing} does not exist")

    def _device(self, thing: str) -> CoreDevice:
        device = self.devices.get(thing)
        if device is None:
            raise not_found("CORE_DEVICE", thing, f"core device {thing} has not reported its status")
        return device

    def list_core_devices(self, p: dict[str, Any]) -> dict[str, Any]:
        devices = sorted(self.devices.values(), key=lambda d: d.thing)
        group_arn = p.get("thingGroupArn")
        if group_arn:
            group = self._iot().thing_groups.get(group_arn)
            if group is None:
                raise validation_error([("thingGroupArn", f"{group_arn} is no thing group")])
            members = {t.thing_name for t in group.things.values()}
            devices = [d for d in devices if d.thing in members]
        if p.get("status"):
            devices = [d for d in devices if d.status == p["status"]]
        if p.get("runtime") not in (None, RUNTIME):
            devices = []
        page, token = _page([d.summary() for d in devices], p)
        return {"coreDevices": page, "nextToken": token}

    def get_core_device(self, p: dict[str, Any]) -> dict[str, Any]:
        d = self._device(p["coreDeviceThingName"])
        return {"coreDeviceThingName": d.thing, "coreVersion": d.core_version, "platform": d.platform,
                "architecture": d.architecture, "runtime": RUNTIME, "status": d.status,
                "lastStatusUpdateTimestamp": d.updated, "tags": {}}

    def list_installed_components(self, p: dict[str, Any]) -> dict[str, Any]:
        d = self._device(p["coreDeviceThingName"])
        items = sorted(d.components.values(), key=lambda c: c.name)
        if p.get("topologyFilter", "ROOT") == "ROOT":
            items = [c for c in items if c.is_root]
        page, token = _page([c.to_api() for c in items], p)
        return {"installedComponents": page, "nextToken": token}
