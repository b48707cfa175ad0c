"""IPC authentication (SVCUID tokens) and authorization (each component's `accessControl`).

Spec: ../shared/spec/greengrass-ipc.md §1.2 (tokens) and §5 (policies, matching rules).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UnauthorizedError

log = logging.getLogger("ggsim.ipc.auth")

_TOKEN_ALPHABET = "abcdefghjklmnpqrstuvwxyz01234567"

#: The identity of ggsim's own command line, as greengrass-cli's clients: it bypasses authorization.
CLI_IDENTITY = "aws.greengrass.Cli"


class TokenRegistry:
    """One unguessable token per component; lookups compare in constant time."""

    def __init__(self) -> None:
        self._by_component: dict[str, str] = {}

    def issue(self, component: str) -> str:
        """The component's token, created on first use (one per component per simulator start)."""
        token = self._by_component.get(component)
        if token is None:
            token = "".join(_TOKEN_ALPHABET[b & 31] for b in secrets.token_bytes(16)).upper()
            self._by_component[component] = token
        return token

    def lookup(self, token: str | None) -> str | None:
        if not token:
            return None
        found = None
        candidate = token.encode("utf-8", "surrogatepass")
        for component, known in self._by_component.items():
            if hmac.compare_digest(known.encode(), candidate):
                found = component
        return found

    def revoke(self, component: str) -> None:
        self._by_component.pop(component, None)


# -------------------------------------------------------------------------------- authorization

#: IPC service ids and the operations each may grant (spec §5.3).
SERVICE_OPERATIONS: dict[str, tuple[str, ...]] = {
    "aws.greengrass.ipc.pubsub": ("PublishToTopic", "SubscribeToTopic"),
    "aws.greengrass.ipc.mqttproxy": ("PublishToIoTCore", "SubscribeToIoTCore"),
    "aws.greengrass.ipc.lifecycle": ("PauseComponent", "ResumeComponent"),
    "aws.greengrass.ipc.componentmetric": ("PutComponentMetric",),
    "aws.greengrass.ShadowManager": ("GetThingShadow", "UpdateThingShadow", "DeleteThingShadow",
                                     "ListNamedShadowsForThing"),
    "aws.greengrass.SecretManager": ("GetSecretValue",),
    "aws.greengrass.Cli": ("GetComponentDetails", "ListComponents", "RestartComponent", "StopComponent",
                           "CreateLocalDeployment", "GetLocalDeploymentStatus", "ListLocalDeployments",
                           "CreateDebugPassword"),
}
MQTT_STYLE_SERVICES = frozenset({"aws.greengrass.ipc.mqttproxy"})


def _literal_or_escape(text: str) -> str:
    """Regex for a resource fragment without MQTT wildcards: `*` is a wildcard, `${x}` escapes."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("${", i):
            end = text.find("}", i)
            inner = text[i + 2 : end] if end != -1 else None
            if inner not in ("*", "?", "$"):
                raise ValueError(f"invalid escape {text[i:end + 1 if end != -1 else None]!r}")
            out.append(re.escape(inner))
            i = end + 1
            continue
        ch = text[i]
        if ch == "?":
            raise ValueError("an unescaped '?' is not allowed (write ${?})")
        out.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return "".join(out)


def compile_resource(resource: str, mqtt_style: bool) -> re.Pattern[str]:
    """A policy resource as a regex, with the nucleus's STANDARD or MQTT_STYLE wildcard rules."""
    if not mqtt_style:
        return re.compile(_literal_or_escape(resource), re.DOTALL)
    if resource == "#":
        return re.compile(".*", re.DOTALL)
    levels = resource.split("/")
    parts: list[str] = []
    for index, level in enumerate(levels):
        last = index == len(levels) - 1
        sep = "/" if index else ""
        if level == "#" and last:
            parts.append("(?:/.*)?" if index else ".*")
        elif level == "+":
            parts.append(sep + "[^/]*")
        else:
            parts.append(re.escape(sep) + _literal_or_escape(level))
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class Permission:
    principal: str
    service: str
    operation: str  # full name or "*"
    resources: tuple[re.Pattern[str], ...] | None  # None: the policy listed no resources

    def allows(self, resource: str | None) -> bool:
        if self.resources is None:
            return resource is None
        if resource is None:
            return False
        return any(p.fullmatch(resource) for p in self.resources)


def _lower_keys(value: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def parse_policies(access_control: Mapping[str, Any]) -> list[Permission]:
    """Every component's accessControl as permissions; malformed policies are logged and skipped."""
    permissions: list[Permission] = []
    for principal, services in access_control.items():
        if not isinstance(services, Mapping):
            continue
        for service, policies in services.items():
            if not isinstance(policies, Mapping):
                log.error("accessControl of %s: %s must map policy ids to policies", principal, service)
                continue
            for policy_id, policy in policies.items():
                fields = _lower_keys(policy)
                operations = fields.get("operations")
                if not isinstance(operations, list) or not operations:
                    log.error("accessControl of %s: policy %s has no operations list", principal, policy_id)
                    continue
                resources: tuple[re.Pattern[str], ...] | None = None
                if "resources" in fields and fields["resources"] is not None:
                    compiled = []
                    for resource in fields["resources"]:
                        try:
                            compiled.append(compile_resource(str(resource), service in MQTT_STYLE_SERVICES))
                        except ValueError as exc:
                            log.error("accessControl of %s: policy %s: resource %r dropped: %s",
                                      principal, policy_id, resource, exc)
                    resources = tuple(compiled)
                for operation in operations:
                    permissions.append(Permission(principal, service, str(operation), resources))
    return permissions


class Authorizer:
    """Decides IPC calls from the policies in every component's configuration (spec §5.2)."""

    def __init__(self, access_control: Callable[[], Mapping[str, Any]],
                 revision: Callable[[], int] | None = None) -> None:
        self._access_control = access_control
        self._revision = revision
        self._seen_revision: int | None = None
        self._index: dict[tuple[str, str, str], list[Permission]] = {}
        self._decisions: dict[tuple[str, str, str, str | None], bool] = {}

    def _refresh(self) -> None:
        current = self._revision() if self._revision else None
        if current is not None and current == self._seen_revision:
            return
        self._seen_revision = current
        self._index = {}
        self._decisions = {}
        for perm in parse_policies(self._access_control()):
            self._index.setdefault((perm.principal.lower(), perm.service, perm.operation), []).append(perm)

    def is_authorized(self, component: str, service: str, operation: str, resource: str | None) -> bool:
        if component == CLI_IDENTITY:
            return True
        if operation.removeprefix("aws.greengrass#") not in SERVICE_OPERATIONS.get(service, ()):
            return False
        self._refresh()
        key = (component, service, operation, resource)
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        principal = component.lower()
        allowed = False
        for who, op in ((principal, operation), (principal, "*"), ("*", operation), ("*", "*")):
            if any(p.allows(resource) for p in self._index.get((who, service, op), ())):
                allowed = True
                break
        if len(self._decisions) > 10_000:
            self._decisions.clear()
        self._decisions[key] = allowed
        return allowed

    def check(self, component: str, service: str, operation: str, resource: str | None) -> None:
        """Raise UnauthorizedError naming the principal, the operation and the resource when denied."""
        if not self.is_authorized(component, service, operation, resource):
            raise UnauthorizedError(
                f"Principal {component} is not authorized to perform {service}:{operation} "
                f"on resource {resource}")
