"""N simulated cores on one host, each a fleet member: ``ggsim fleet up``, the fleet tests and the bench.

`register` makes each core a thing in IoT (and creates the thing groups it joins) through boto3 against
the control plane (or AWS); `Fleet` starts one ``ggsim up --fleet`` process per core, each with its own root
(``<base>/<thing>``), thing name, IPC socket and frame-ring directory (``GREENLENS_RING_DIR`` under its
root), all on the one broker. Ports: a core opens none of its own (the TokenExchangeService endpoint is on
an ephemeral port); a component's port comes from its deployment's configuration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Fleet", "FleetMember", "register"]

RING_DIR_VARIABLE = "GREENLENS_RING_DIR"


def register(iot: Any, things: Iterable[str], groups: Sequence[str]) -> dict[str, str]:
    """Create each thing and group (if missing) and add each thing to every group; returns group -> ARN."""
    arns: dict[str, str] = {}
    for group in groups:
        try:
            arns[group] = iot.describe_thing_group(thingGroupName=group)["thingGroupArn"]
        except iot.exceptions.ResourceNotFoundException:
            arns[group] = iot.create_thing_group(thingGroupName=group)["thingGroupArn"]
    for thing in things:
        try:
            iot.describe_thing(thingName=thing)
        except iot.exceptions.ResourceNotFoundException:
            iot.create_thing(thingName=thing)
        for group in groups:
            iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
    return arns


@dataclass
class FleetMember:
    thing: str
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Fleet:
    """``count`` cores named ``<prefix>-<i>`` (from 1) under ``base``."""

    base: Path
    broker_url: str
    endpoint_url: str | None
    count: int = 1
    prefix: str = "core"
    region: str = "us-east-1"
    status_interval: float = 30.0
    #: who the cores' component steps run as when they run as root (`ggsim up --component-default-user`)
    component_user: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    members: list[FleetMember] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base = Path(self.base).resolve()
        if not self.members:
            self.members = [FleetMember(f"{self.prefix}-{i}", self.base / f"{self.prefix}-{i}")
                            for i in range(1, self.count + 1)]

    @property
    def things(self) -> list[str]:
        return [m.thing for m in self.members]

    def command(self, member: FleetMember) -> list[str]:
        return [sys.executable, "-m", "ggsim", "--root", str(member.root), "up", "--thing-name", member.thing,
                "--region", self.region, "--mqtt-broker", self.broker_url,
                "--fleet", self.endpoint_url or "aws", "--status-interval", str(self.status_interval),
                *(["--component-default-user", self.component_user] if self.component_user else [])]

    def start(self, member: FleetMember | None = None, log_dir: Path | None = None) -> None:
        """Start every core (or one); each logs to ``<root>/ggsim-up.log`` (or ``log_dir/<thing>.log``)."""
        for m in [member] if member is not None else self.members:
            if m.alive:
                continue
            m.root.mkdir(parents=True, exist_ok=True)
            ring_dir = m.root / "ring"
            ring_dir.mkdir(exist_ok=True)
            env = {**os.environ, **self.env, RING_DIR_VARIABLE: str(ring_dir), "AWS_REGION": self.region}
            env.setdefault("AWS_ACCESS_KEY_ID", "testing")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            log_path = (log_dir / f"{m.thing}.log") if log_dir is not None else m.root / "ggsim-up.log"
            with open(log_path, "ab") as log:
                m.process = subprocess.Popen(self.command(m), env=env, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self, member: FleetMember) -> None:
        """SIGKILL the core (its components go with its process group): what a power cut looks like."""
        if member.process is not None and member.alive:
            os.killpg(member.process.pid, signal.SIGKILL)
            member.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every core (a clean stop), then SIGKILL what is left after ``timeout``."""
        running = [m for m in self.members if m.alive]
        for m in running:
            assert m.process is not None
            m.process.terminate()
        for m in running:
            assert m.process is not None
            try:
                m.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(m.process.pid, signal.SIGKILL)
                m.process.wait(10)

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
