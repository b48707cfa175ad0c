"""PutComponentMetric (spec §4.9): metrics from `aws.*` components, kept for inspection."""

from __future__ import annotations

import collections
import time
from typing import Any

from ..errors import InvalidArgumentsError, UnauthorizedError
from ..server import Call, IpcServer, Operation, Service

SERVICE_ID = "aws.greengrass.ipc.componentmetric"
UNITS = frozenset({"BYTES", "BYTES_PER_SECOND", "COUNT", "COUNT_PER_SECOND", "MEGABYTES", "SECONDS"})


class MetricsService(Service):
    def __init__(self, server: IpcServer) -> None:
        super().__init__(server)
        #: (time, component, name, unit, value), newest last
        self.recorded: collections.deque[tuple[float, str, str, str, float]] = collections.deque(maxlen=10_000)

    def operations(self) -> list[Operation]:
        return [Operation("PutComponentMetric", self.put)]

    def put(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        if not call.component.startswith("aws."):
            raise UnauthorizedError(f"{call.component} is not authorized to perform aws.greengrass#PutComponentMetric:"
                                    " only components whose names start with aws. may")
        metrics = request.get("metrics")
        if not isinstance(metrics, list) or not metrics:
            raise InvalidArgumentsError("metrics must be a non-empty list")
        checked = []
        for i, metric in enumerate(metrics):
            name, unit, value = metric.get("name"), metric.get("unit"), metric.get("value")
            if not isinstance(name, str) or not 0 < len(name.encode()) <= 32:
                raise InvalidArgumentsError(f"metrics[{i}].name must be 1..32 bytes, got {name!r}")
            if unit not in UNITS:
                raise InvalidArgumentsError(f"metrics[{i}].unit must be one of {sorted(UNITS)}, got {unit!r}")
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentsError(f"metrics[{i}].value must be a number >= 0, got {value!r}")
            if call.component != "aws.greengrass.StreamManager":
                self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#PutComponentMetric", name)
            checked.append((name, unit, float(value)))
        now = time.time()
        for name, unit, value in checked:
            self.recorded.append((now, call.component, name, unit, value))
        return {}
