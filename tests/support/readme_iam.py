"""The IAM policies the README gives (each a fenced JSON block after ``<!-- iam-policy: NAME -->``), and
whether one allows the (IAM action, resource) pairs a rehearsal's calls needed (ggcloud.request_log)."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
_POLICY = re.compile(r"<!-- iam-policy: ([\w-]+) -->\s*```json\n(.*?)```", re.S)


def readme_policies() -> dict[str, dict[str, Any]]:
    """name -> policy document, as the README prints them."""
    found = {name: json.loads(text) for name, text in _POLICY.findall(README.read_text(encoding="utf-8"))}
    assert found, f"{README} has no <!-- iam-policy: NAME --> followed by a ```json block"
    return found


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allows(policy: dict[str, Any], action: str, resource: str, placeholders: dict[str, str]) -> bool:
    """True when an Allow statement names ``action`` (wildcards, any case) on ``resource``; the policy's
    placeholders (BUCKET, REGION, ACCOUNT, ...) are replaced by ``placeholders`` first."""
    for statement in policy["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
            continue
        for pattern in _listed(statement["Resource"]):
            for word, value in placeholders.items():
                pattern = pattern.replace(word, value)
            if fnmatch.fnmatchcase(resource, pattern) or pattern == "*":
                return True
    return False


def policy_actions(policy: dict[str, Any]) -> list[str]:
    return [a for s in policy["Statement"] for a in _listed(s["Action"])]


def not_allowed(policy: dict[str, Any], calls: list[dict[str, Any]], placeholders: dict[str, str]) -> list[str]:
    """'action on resource (Service.Operation)' for every need of ``calls`` the policy does not allow."""
    return sorted({f"{action} on {resource} ({c['service']}.{c['operation']})" for c in calls
                   for action, resource in c["actions"] if not allows(policy, action, resource, placeholders)})
