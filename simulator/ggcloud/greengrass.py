"""The Greengrass v2 operations: components (from inline recipes, their artifacts checked in S3),
deployments (each one an IoT job rolled out by :mod:`ggcloud.rollout`), effective deployments and version
resolution for cores. Parameters arrive validated against botocore's model (:mod:`ggcloud.api_model`);
results are the model's output members."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import semantic_version
from moto.iot.models import IoTBackend
from moto.s3.models import S3Backend

from . import arns
from .api_model import ApiError, conflict, not_found, validation_error
from .documents import effective_policies, fleet_configuration
from .recipes import Recipe, RecipeError, parse_recipe
from .rollout import JobRollout, RolloutEngine

ERROR_STACK_KEY = "deployment-error-stack"
ERROR_TYPES_KEY = "deployment-error-types"
FAILURE_CAUSE_KEY = "deployment-failure-cause"
DETAILED_STATUS_KEY = "detailed-deployment-status"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ComponentVersion:
    recipe: Recipe
    arn: str
    created: dt.datetime
    state: str
    message: str
    errors: dict[str, str]
    tags: dict[str, str]

    def status(self) -> dict[str, Any]:
        return {"componentState": self.state, "message": self.message, "errors": self.errors}

    def platforms(self) -> list[dict[str, Any]]:
        return [{"name": m.platform.get("name") or "/".join(v for k, v in sorted(m.platform.items())) or "all",
                 "attributes": {k: v for k, v in m.platform.items() if k != "name"}}
                for m in self.recipe.manifests]


@dataclass
class Deployment:
    deployment_id: str
    target_arn: str
    revision: str
    name: str
    components: dict[str, Any]
    policies: dict[str, Any]
    job_configuration: dict[str, Any]
    created: dt.datetime
    job_id: str
    job_arn: str
    parent_target_arn: str | None
    tags: dict[str, str]
    status: str = "ACTIVE"
    latest: bool = True

    def summary(self) -> dict[str, Any]:
        return {"targetArn": self.target_arn, "revisionId": self.revision, "deploymentId": self.deployment_id,
                "deploymentName": self.name, "creationTimestamp": self.created,
                "deploymentStatus": self.status, "isLatestForTarget": self.latest,
                "parentTargetArn": self.parent_target_arn}


@dataclass
class GreengrassState:
    components: dict[str, dict[str, ComponentVersion]] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    client_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)


def _page(items: list[Any], params: dict[str, Any], default_max: int = 50) -> tuple[list[Any], str | None]:
    token = params.get("nextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise validation_error([("nextToken", f"{token!r} is not a token this service returned")]) from None
    end = start + params.get("maxResults", default_max)
    return items[start:end], (str(end) if end < len(items) else None)


def _semver(v: str) -> semantic_version.Version:
    return semantic_version.Version(v)


class GreengrassService:
    """One region's Greengrass v2, its state guarded by ``lock`` (shared with the roll-out engine)."""

    def __init__(self, region: str, iot: Callable[[], IoTBackend], s3: Callable[[], S3Backend],
                 engine: RolloutEngine, lock: threading.RLock, devices: Any) -> None:
        self.region = region
        self._iot = iot
        self._s3 = s3
        self.engine = engine
        self.lock = lock
        self.devices = devices
        self.state = GreengrassState()

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "op_" + operation, None)
        if handler is None:
            raise validation_error([("operation", f"{operation} is not served by this control plane")],
                                   reason="UNKNOWN_OPERATION")
        with self.lock:
            return handler(params)

    # -- components -------------------------------------------------------------------------------------
    def op_CreateComponentVersion(self, p: dict[str, Any]) -> dict[str, Any]:
        if "lambdaFunction" in p:
            raise validation_error([("lambdaFunction", "Lambda components are not served offline; "
                                     "give an inlineRecipe")])
        if "inlineRecipe" not in p:
            raise validation_error([("inlineRecipe", "is required (a JSON or YAML recipe)")])
        token = p.get("clientToken")
        if token and token in self.state.client_tokens:
            return self.state.client_tokens[token]
        try:
            recipe = parse_recipe(p["inlineRecipe"])
        except RecipeError as e:
            raise validation_error([("inlineRecipe", str(e))]) from None
        existing = self.state.components.get(recipe.name, {}).get(recipe.version)
        if existing is not None and existing.state != "FAILED":
            raise conflict("COMPONENT_VERSION", existing.arn,
                           f"component {recipe.name} version {recipe.version} already exists")
        errors = {uri: problem for uri in recipe.artifact_uris() if (problem := self._artifact_problem(uri))}
        arn = arns.component_version_arn(self.region, recipe.name, recipe.version)
        if errors:
            state, message = "FAILED", "; ".join(f"{u}: {m}" for u, m in errors.items())
        else:
            state, message = "DEPLOYABLE", "NONE"
        version = ComponentVersion(recipe, arn, _utcnow(), state, message, errors, dict(p.get("tags", {})))
        self.state.components.setdefault(recipe.name, {})[recipe.version] = version
        result = {"arn": arn, "componentName": recipe.name, "componentVersion": recipe.version,
                  "creationTimestamp": version.created, "status": version.status()}
        if token:
            self.state.client_tokens[token] = result
        return result

    def _artifact_problem(self, uri: str) -> str | None:
        if not uri.startswith("s3://"):
            return None
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            obj = self._s3().get_object(bucket, key)
        except Exception as e:  # moto raises its own MissingBucket / MissingKey
            return f"not found in S3 ({type(e).__name__})"
        return None if obj is not None else "not found in S3 (no such key)"

    def _version(self, arn: str, field_name: str = "arn") -> ComponentVersion:
        parsed = arns.parse_component(arn)
        if parsed is None or parsed[1] is None:
            raise validation_error([(field_name, f"{arn!r} is not a component version ARN "
                                     "(arn:aws:greengrass:REGION:ACCOUNT:components:NAME:versions:VERSION)")])
        name, version = parsed
        found = self.state.components.get(name, {}).get(version)
        if found is None:
            raise not_found("COMPONENT_VERSION", arn, f"component {name} has no version {version}")
        return found

    def op_DescribeComponent(self, p: dict[str, Any]) -> dict[str, Any]:
        v = self._version(p["arn"])
        return {"arn": v.arn, "componentName": v.recipe.name, "componentVersion": v.recipe.version,
                "creationTimestamp": v.created, "publisher": v.recipe.publisher,
                "description": v.recipe.description, "status": v.status(), "platforms": v.platforms(),
                "tags": v.tags}

    def op_GetComponent(self, p: dict[str, Any]) -> dict[str, Any]:
        v = self._version(p["arn"])
        fmt = p.get("recipeOutputFormat", "JSON")
        return {"recipeOutputFormat": fmt, "recipe": v.recipe.to_json() if fmt == "JSON" else v.recipe.to_yaml(),
                "tags": v.tags}

    def op_DeleteComponent(self, p: dict[str, Any]) -> dict[str, Any]:
        v = self._version(p["arn"])
        versions = self.state.components[v.recipe.name]
        del versions[v.recipe.version]
        if not versions:
            del self.state.components[v.recipe.name]
        return {}

    def _sorted_versions(self, name: str) -> list[ComponentVersion]:
        return sorted(self.state.components.get(name, {}).values(), key=lambda v: _semver(v.recipe.version),
                      reverse=True)

    def op_ListComponents(self, p: dict[str, Any]) -> dict[str, Any]:
        items = []
        if p.get("scope", "PRIVATE") == "PRIVATE":
            for name in sorted(self.state.components):
                latest = self._sorted_versions(name)[0]
                items.append({"arn": arns.component_arn(self.region, name), "componentName": name,
                              "latestVersion": {"arn": latest.arn, "componentVersion": latest.recipe.version,
                                                "creationTimestamp": latest.created,
                                                "description": latest.recipe.description,
                                                "publisher": latest.recipe.publisher,
                                                "platforms": latest.platforms()}})
        page, token = _page(items, p)
        return {"components": page, "nextToken": token}

    def op_ListComponentVersions(self, p: dict[str, Any]) -> dict[str, Any]:
        parsed = arns.parse_component(p["arn"])
        if parsed is None or parsed[1] is not None:
            raise validation_error([("arn", f"{p['arn']!r} is not a component ARN "
                                     "(arn:aws:greengrass:REGION:ACCOUNT:components:NAME)")])
        items = [{"componentName": v.recipe.name, "componentVersion": v.recipe.version, "arn": v.arn}
                 for v in self._sorted_versions(parsed[0])]
        page, token = _page(items, p)
        return {"componentVersions": page, "nextToken": token}

    def op_ResolveComponentCandidates(self, p: dict[str, Any]) -> dict[str, Any]:
        attributes = dict(p.get("platform", {}).get("attributes", {}))
        resolved = []
        for i, candidate in enumerate(p.get("componentCandidates", [])):
            name = candidate["componentName"]
            requirements = dict(candidate.get("versionRequirements", {}))
            specs = {}
            for who, requirement in requirements.items():
                try:
                    specs[who] = semantic_version.NpmSpec(requirement)
                except ValueError:
                    raise validation_error([(f"componentCandidates[{i}].versionRequirements.{who}",
                                             f"{requirement!r} is not an npm-style version range")]) from None
            fitting = [v for v in self._sorted_versions(name)
                       if v.state == "DEPLOYABLE" and all(_semver(v.recipe.version) in s for s in specs.values())
                       and any(m.matches(attributes) for m in v.recipe.manifests)]
            if not fitting:
                wanted = ", ".join(f"{who} requires {r}" for who, r in requirements.items()) or "any version"
                raise not_found("COMPONENT_VERSION", name,
                                f"no deployable version of {name} for platform {attributes} satisfies: {wanted}")
            best = fitting[0]
            resolved.append({"arn": best.arn, "componentName": name, "componentVersion": best.recipe.version,
                             "recipe": best.recipe.to_json(), "vendorGuidance": "ACTIVE",
                             "message": "resolved to the highest deployable version that satisfies "
                                        "every requirement"})
        return {"resolvedComponentVersions": resolved}

    # -- deployments ------------------------------------------------------------------------------------
    def op_CreateDeployment(self, p: dict[str, Any]) -> dict[str, Any]:
        token = p.get("clientToken")
        if token and token in self.state.client_tokens:
            return self.state.client_tokens[token]
        target = arns.parse_target(p["targetArn"])
        if target is None:
            raise validation_error([("targetArn", f"{p['targetArn']!r} is not an IoT thing or thing group "
                                     "ARN (arn:aws:iot:REGION:ACCOUNT:thing/NAME or .../thinggroup/NAME)")])
        if target.region != self.region:
            raise validation_error([("targetArn", f"region {target.region} is not this control plane's "
                                     f"region {self.region}")])
        self._check_target_exists(target.kind, target.name, p["targetArn"])
        components = p.get("components", {})
        problems = []
        for name, spec in components.items():
            version = spec.get("componentVersion")
            where = f"components.{name}.componentVersion"
            found = self.state.components.get(name, {}).get(version) if version else None
            if version is None:
                problems.append((where, "is required"))
            elif found is None:
                problems.append((where, f"component {name} has no version {version}"))
            elif found.state != "DEPLOYABLE":
                problems.append((where, f"{name} {version} is {found.state}: {found.message}"))
            update = spec.get("configurationUpdate", {})
            if "merge" in update:
                try:
                    merged = json.loads(update["merge"])
                except ValueError as e:
                    merged = None
                    problems.append((f"components.{name}.configurationUpdate.merge", f"is not JSON: {e}"))
                if merged is not None and not isinstance(merged, dict):
                    problems.append((f"components.{name}.configurationUpdate.merge", "must be a JSON object"))
            for j, pointer in enumerate(update.get("reset", [])):
                if pointer and not pointer.startswith("/"):
                    problems.append((f"components.{name}.configurationUpdate.reset[{j}]",
                                     f"{pointer!r} is not a JSON pointer (empty or starting with /)"))
        exp = p.get("iotJobConfiguration", {}).get("jobExecutionsRolloutConfig", {}).get("exponentialRate")
        if exp and not exp.get("rateIncreaseCriteria"):
            problems.append(("iotJobConfiguration.jobExecutionsRolloutConfig.exponentialRate."
                             "rateIncreaseCriteria", "needs numberOfNotifiedThings or numberOfSucceededThings"))
        if problems:
            raise validation_error(problems)

        previous = [d for d in self.state.deployments.values() if d.target_arn == p["targetArn"]]
        revision = str(len(previous) + 1)
        now = _utcnow()
        deployment_id = str(uuid.uuid4())
        job_id = str(uuid.uuid4())
        policies = effective_policies(p.get("deploymentPolicies"))
        document = fleet_configuration(deployment_id=deployment_id, target_arn=p["targetArn"], revision=revision,
                                       components=components, policies=policies,
                                       created_ms=int(now.timestamp() * 1000))
        deployment = Deployment(deployment_id, p["targetArn"], revision,
                                p.get("deploymentName", f"Deployment for {target.name}"), components, policies,
                                p.get("iotJobConfiguration", {}), now, job_id, arns.job_arn(self.region, job_id),
                                p.get("parentTargetArn"), dict(p.get("tags", {})))
        for old in previous:
            if old.latest:
                old.latest = False
                if old.status == "ACTIVE":
                    old.status = "INACTIVE"
                self.engine.cancel_job(old.job_id, force=True, reason="SUPERSEDED",
                                       comment=f"superseded by revision {revision} ({deployment_id})")
        self.state.deployments[deployment_id] = deployment
        timeout = deployment.job_configuration.get("timeoutConfig", {}).get("inProgressTimeoutInMinutes")
        rollout = JobRollout(job_id=job_id, target_kind=target.kind, target_name=target.name, document=document,
                             rollout_config=deployment.job_configuration.get("jobExecutionsRolloutConfig", {}),
                             abort_criteria=deployment.job_configuration.get("abortConfig", {})
                             .get("criteriaList", []),
                             timeout_minutes=timeout, on_finished=self._job_finished)
        self.engine.create_job(rollout, p["targetArn"], deployment.name, deployment.job_configuration)
        result = {"deploymentId": deployment_id, "iotJobId": job_id, "iotJobArn": deployment.job_arn}
        if token:
            self.state.client_tokens[token] = result
        return result

    def _check_target_exists(self, kind: str, name: str, arn: str) -> None:
        iot = self._iot()
        if kind == "thinggroup" and arn not in iot.thing_groups:
            raise not_found("THING_GROUP", arn, f"thing group {name} does not exist")
        if kind == "thing" and not any(t.thing_name == name for t in iot.things.values()):
            raise not_found("THING", arn, f"thing {name} does not exist")

    def _job_finished(self, job_id: str) -> None:
        deployment = next((d for d in self.state.deployments.values() if d.job_id == job_id), None)
        if deployment is None or deployment.status != "ACTIVE":
            return
        job = self._iot().jobs[job_id]
        if job.status == "CANCELED":
            deployment.status = "CANCELED"
        else:
            statuses = {e.status for (jid, _), e in self._iot().job_executions.items() if jid == job_id}
            deployment.status = "COMPLETED" if statuses == {"SUCCEEDED"} else "FAILED"

    def _deployment(self, deployment_id: str) -> Deployment:
        found = self.state.deployments.get(deployment_id)
        if found is None:
            raise not_found("DEPLOYMENT", deployment_id, f"deployment {deployment_id} does not exist")
        return found

    def op_GetDeployment(self, p: dict[str, Any]) -> dict[str, Any]:
        d = self._deployment(p["deploymentId"])
        return {**d.summary(), "iotJobId": d.job_id, "iotJobArn": d.job_arn, "components": d.components,
                "deploymentPolicies": d.policies, "iotJobConfiguration": d.job_configuration, "tags": d.tags}

    def op_ListDeployments(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [d for d in self.state.deployments.values()
                 if (p.get("historyFilter", "LATEST_ONLY") == "ALL" or d.latest)
                 and p.get("targetArn") in (None, d.target_arn)
                 and p.get("parentTargetArn") in (None, d.parent_target_arn)]
        items.sort(key=lambda d: d.created, reverse=True)
        page, token = _page([d.summary() for d in items], p)
        return {"deployments": page, "nextToken": token}

    def op_CancelDeployment(self, p: dict[str, Any]) -> dict[str, Any]:
        d = self._deployment(p["deploymentId"])
        if d.status != "ACTIVE":
            raise conflict("DEPLOYMENT", d.deployment_id, f"deployment {d.deployment_id} is {d.status}, "
                           "not ACTIVE: only an active deployment can be cancelled")
        # As the service: the deployment's IoT job is cancelled with force, so things not yet notified never
        # get it, QUEUED executions and IN_PROGRESS ones both become CANCELED. A core told its in-progress job
        # is gone stops the deployment if it has not started to apply it; one already applying finishes, but
        # IoT Jobs refuses its final update: the execution stays CANCELED.
        self.engine.cancel_job(d.job_id, force=True, reason="CANCELED_BY_USER", comment="CancelDeployment")
        d.status = "CANCELED"
        return {"message": f"deployment {d.deployment_id} cancelled"}

    def op_ListEffectiveDeployments(self, p: dict[str, Any]) -> dict[str, Any]:
        thing = p["coreDeviceThingName"]
        self.devices.require(thing)
        by_job = {d.job_id: d for d in self.state.deployments.values()}
        items = []
        for (job_id, name), execution in self._iot().job_executions.items():
            d = by_job.get(job_id)
            if name != thing or d is None:
                continue
            details = execution.status_details_map
            status = execution.status if execution.status != "REMOVED" else "CANCELED"
            item = {"deploymentId": d.deployment_id, "deploymentName": d.name, "iotJobId": job_id,
                    "iotJobArn": d.job_arn, "targetArn": d.target_arn, "coreDeviceExecutionStatus": status,
                    "reason": details.get(FAILURE_CAUSE_KEY) or details.get(DETAILED_STATUS_KEY),
                    "creationTimestamp": execution.queued_at.replace(tzinfo=dt.UTC),
                    "modifiedTimestamp": execution.last_updated_at.replace(tzinfo=dt.UTC)}
            stack, types = _string_list(details.get(ERROR_STACK_KEY)), _string_list(details.get(ERROR_TYPES_KEY))
            if stack or types:
                item["statusDetails"] = {"errorStack": stack, "errorTypes": types}
            items.append(item)
        items.sort(key=lambda i: i["creationTimestamp"], reverse=True)
        page, token = _page(items, p)
        return {"effectiveDeployments": page, "nextToken": token}

    # -- core devices (kept by the fleet status receiver) -----------------------------------------------
    def op_ListCoreDevices(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.devices.list_core_devices(p)

    def op_GetCoreDevice(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.devices.get_core_device(p)

    def op_ListInstalledComponents(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.devices.list_installed_components(p)


def _string_list(value: str | None) -> list[str]:
    """A job status detail holding a list: JSON (``["A", "B"]``) or Java's ``[A, B]``."""
    if not value:
        return []
    try:
        parsed = json.loads(value)
        if isinstance(parsed, list):
            return [str(x) for x in parsed]
    except ValueError:
        pass
    inner = value.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    return [part.strip() for part in inner.split(",") if part.strip()]


__all__ = ["ApiError", "GreengrassService"]
