"""The job document of a Greengrass deployment: the fleet configuration the service sends a core through
IoT Jobs (the nucleus's FleetConfiguration / deployment Configuration: deploymentId, configurationArn naming
the target and revision, components with version, configurationUpdate with ``merge`` as an object, runWith,
and the deployment policies with ``timeout`` in seconds)."""

from __future__ import annotations

import json
from typing import Any

from .arns import configuration_arn

DEFAULT_POLICIES: dict[str, Any] = {
    "failureHandlingPolicy": "ROLLBACK",
    "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
    "configurationValidationPolicy": {"timeoutInSeconds": 30},
}


def effective_policies(requested: dict[str, Any] | None) -> dict[str, Any]:
    """The deployment policies with the service's defaults filled in (as GetDeployment reports them)."""
    requested = requested or {}
    return {
        "failureHandlingPolicy": requested.get("failureHandlingPolicy",
                                               DEFAULT_POLICIES["failureHandlingPolicy"]),
        "componentUpdatePolicy": {**DEFAULT_POLICIES["componentUpdatePolicy"],
                                  **requested.get("componentUpdatePolicy", {})},
        "configurationValidationPolicy": {**DEFAULT_POLICIES["configurationValidationPolicy"],
                                          **requested.get("configurationValidationPolicy", {})},
    }


def fleet_configuration(*, deployment_id: str, target_arn: str, revision: str, components: dict[str, Any],
                        policies: dict[str, Any], created_ms: int) -> dict[str, Any]:
    """The document a core receives for this deployment."""
    doc_components: dict[str, Any] = {}
    for name, spec in components.items():
        entry: dict[str, Any] = {"version": spec["componentVersion"]}
        update = spec.get("configurationUpdate")
        if update:
            entry["configurationUpdate"] = {
                **({"merge": json.loads(update["merge"])} if "merge" in update else {}),
                **({"reset": list(update["reset"])} if "reset" in update else {}),
            }
        if "runWith" in spec:
            entry["runWith"] = spec["runWith"]
        doc_components[name] = entry
    return {
        "deploymentId": deployment_id,
        "configurationArn": configuration_arn(target_arn, revision),
        "components": doc_components,
        "creationTimestamp": created_ms,
        "failureHandlingPolicy": policies["failureHandlingPolicy"],
        "componentUpdatePolicy": {"timeout": policies["componentUpdatePolicy"]["timeoutInSeconds"],
                                  "action": policies["componentUpdatePolicy"]["action"]},
        "configurationValidationPolicy": {"timeout": policies["configurationValidationPolicy"]["timeoutInSeconds"]},
    }
