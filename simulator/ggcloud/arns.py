"""The ARNs the service forms: components, component versions, IoT targets and deployment configurations."""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCOUNT_ID = "123456789012"  # moto's account for any credentials

TARGET_RE = re.compile(r"^arn:aws[\w-]*:iot:([\w-]+):(\d{12}):(thing|thinggroup)/([a-zA-Z0-9:_.-]+)$")
COMPONENT_RE = re.compile(
    r"^arn:aws[\w-]*:greengrass:([\w-]+):(\d{12}|aws):components:([a-zA-Z0-9-_.]+)(?::versions:([^:]+))?$")


def component_arn(region: str, name: str) -> str:
    return f"arn:aws:greengrass:{region}:{ACCOUNT_ID}:components:{name}"


def component_version_arn(region: str, name: str, version: str) -> str:
    return f"{component_arn(region, name)}:versions:{version}"


@dataclass(frozen=True)
class Target:
    region: str
    kind: str  # "thing" or "thinggroup"
    name: str


def parse_target(arn: str) -> Target | None:
    m = TARGET_RE.match(arn)
    return Target(m.group(1), m.group(3), m.group(4)) if m else None


def parse_component(arn: str) -> tuple[str, str | None] | None:
    """(name, version or None) of a component or component version ARN."""
    m = COMPONENT_RE.match(arn)
    return (m.group(3), m.group(4)) if m else None


def configuration_arn(target_arn: str, revision: str) -> str:
    target = parse_target(target_arn)
    assert target is not None, target_arn
    return f"arn:aws:greengrass:{target.region}:{ACCOUNT_ID}:configuration:{target.kind}/{target.name}:{revision}"


def job_arn(region: str, job_id: str) -> str:
    return f"arn:aws:iot:{region}:{ACCOUNT_ID}:job/{job_id}"
