"""The fleet at a glance: each core device's health, its latest deployment's execution status and the
versions it runs, read from Greengrass v2 (ListCoreDevices, ListEffectiveDeployments,
ListInstalledComponents) and shown as a rich table that refreshes. Every line names the clock scale the
control plane runs at, since roll-out rates are per (scaled) minute. The web page (page.py) shows the same
rows, columns and colours."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["EXECUTION_COLOURS", "HEALTH_COLOURS", "clock_text", "component_columns", "device_rows", "render",
           "watch"]

#: colour names (rich styles; page.py maps them to CSS) by device health and by execution status
HEALTH_COLOURS = {"HEALTHY": "green", "UNHEALTHY": "red"}
EXECUTION_COLOURS = {"SUCCEEDED": "green", "FAILED": "red", "TIMED_OUT": "red", "REJECTED": "red",
                     "CANCELED": "yellow", "IN_PROGRESS": "cyan", "QUEUED": "cyan"}


def clock_text(scale: float) -> str:
    """What every output says about the clock, e.g. "clock scale 6 (1 min = 10 s)"."""
    return f"clock scale {scale:g} (1 min = {60 / scale:g} s)"


def component_columns(rows: Sequence[dict[str, Any]], components: Sequence[str] = ()) -> list[str]:
    """The component columns: ``components`` when given, else every component a row reports."""
    return list(components) or sorted({n for r in rows for n in r["versions"]})


def _latest(effective: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(effective, key=lambda e: e.get("modifiedTimestamp") or e.get("creationTimestamp") or 0,
               default=None)


def device_rows(gg: Any, things: Iterable[str]) -> list[dict[str, Any]]:
    """One row per thing: health, latest deployment and its execution status, component -> version."""
    from botocore.exceptions import ClientError

    rows = []
    for thing in things:
        row: dict[str, Any] = {"thing": thing, "health": "NOT REPORTED", "deployment": "", "execution": "",
                               "reason": "", "versions": {}}
        try:
            row["health"] = gg.get_core_device(coreDeviceThingName=thing)["status"]
            installed = gg.list_installed_components(coreDeviceThingName=thing,
                                                     topologyFilter="ALL")["installedComponents"]
            row["versions"] = {c["componentName"]: f"{c['componentVersion']} {c['lifecycleState']}"
                               for c in installed}
        except ClientError:
            pass
        latest = _latest(gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"])
        if latest is not None:
            row["deployment"] = latest.get("deploymentName") or latest["deploymentId"][:8]
            row["execution"] = latest["coreDeviceExecutionStatus"]
            row["reason"] = latest.get("reason") or ""
        rows.append(row)
    return rows


def render(rows: Sequence[dict[str, Any]], clock: str, components: Sequence[str] = ()) -> Any:
    """A rich Table of ``rows``; ``clock`` (e.g. "clock scale 60 (1 min = 1 s)") on every line."""
    from rich.table import Table

    names = component_columns(rows, components)
    table = Table("device", "health", "deployment", "execution", *names, "clock",
                  title=f"GreenLens fleet — {time.strftime('%H:%M:%S')} — {clock}")
    for row in rows:
        health = row["health"]
        style = HEALTH_COLOURS.get(health, "yellow")
        execution = row["execution"]
        estyle = EXECUTION_COLOURS.get(execution, "")
        table.add_row(row["thing"], f"[{style}]{health}[/]", row["deployment"],
                      f"[{estyle}]{execution}[/]" if estyle else execution,
                      *(row["versions"].get(n, "-") for n in names), clock)
    return table


def watch(gg: Any, things: Sequence[str], clock: str, *, interval: float = 1.0, until: Any = None,
          components: Sequence[str] = ()) -> None:
    """Refresh the table every ``interval`` seconds until ``until()`` is true (or Ctrl-C)."""
    from rich.live import Live

    with Live(render(device_rows(gg, things), clock, components), refresh_per_second=4) as live:
        try:
            while until is None or not until():
                time.sleep(interval)  # a refresh period for people, not synchronisation
                live.update(render(device_rows(gg, things), clock, components))
        except KeyboardInterrupt:
            pass
        live.update(render(device_rows(gg, things), clock, components))
