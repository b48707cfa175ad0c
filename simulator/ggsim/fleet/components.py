"""Component versions and artifacts from the cloud, as a core fetches them for a deployment.

`CloudComponents.fetch(roots)` takes the root components of every deployment that targets the thing
(group -> name -> version), asks Greengrass v2 ResolveComponentCandidates for each root (its version
requirements keyed by the group that requires it, as the nucleus sends them) and then for each
dependency (keyed by the component that depends on it), stores every recipe in the core's component store
and downloads each ``s3://`` artifact through S3, checking its digest (the recipe's ``Algorithm`` and
base64 ``Digest``) before the store keeps it. A failure is a `DeploymentError` with the nucleus's error
codes, so the job reports the same error stack and types the nucleus would.

boto3 talks to the control plane through ``endpoint_url`` (or to AWS with none); it is imported when the
first deployment arrives, so an idle core does not carry it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ggsim.nucleus.deployment.errors import FailureKind
from ggsim.nucleus.deployment.plan import DeploymentError
from ggsim.nucleus.recipe import RecipeDocument, RecipeError, parse_recipe_bytes
from ggsim.nucleus.store import Store

__all__ = ["CloudComponents", "digest_of"]

log = logging.getLogger("ggsim.fleet")


def digest_of(path: Path, algorithm: str) -> str:
    """The base64 digest of a file as a recipe's ``Artifacts[].Digest`` states it."""
    name = algorithm.replace("-", "").lower()
    if name not in ("sha256", "sha384", "sha512", "sha1", "md5"):
        raise ValueError(f"digest algorithm {algorithm!r} is not one Greengrass uses (SHA-256)")
    digest = hashlib.new(name)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode("ascii")


class CloudComponents:
    """Resolves versions with Greengrass v2 and downloads artifacts from S3 into one core's store."""

    def __init__(self, *, store: Store, platform: Mapping[str, str], region: str, endpoint_url: str | None,
                 builtin: Mapping[str, str]) -> None:
        self.store = store
        self.platform = dict(platform)
        self.region = region
        self.endpoint_url = endpoint_url
        self.builtin = dict(builtin)
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3  # only a core that receives a deployment needs it

            session = boto3.session.Session()
            self._clients[service] = session.client(service, region_name=self.region,
                                                    endpoint_url=self.endpoint_url)
        return self._clients[service]

    def fetch(self, roots: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """Resolve, store and download everything ``roots`` (group -> name -> version) needs; returns the
        resolved versions (name -> version). Raises `DeploymentError`."""
        wanted: dict[str, dict[str, str]] = {}
        for group, components in roots.items():
            for name, version in components.items():
                if name not in self.builtin:
                    wanted.setdefault(name, {})[group] = f"={version}"
        resolved: dict[str, str] = {}
        while wanted:
            recipes = self._resolve(wanted)
            following: dict[str, dict[str, str]] = {}
            for name, document in recipes.items():
                resolved[name] = document.version
                self._store(document)
                for dep, spec in document.dependencies.items():
                    if dep in self.builtin or dep in resolved:
                        continue
                    following.setdefault(dep, {})[name] = spec.version_requirement
            wanted = following
        return resolved

    def _resolve(self, wanted: Mapping[str, Mapping[str, str]]) -> dict[str, RecipeDocument]:
        from botocore.exceptions import BotoCoreError, ClientError

        candidates = [{"componentName": name, "componentVersion": _highest_pinned(requirements),
                       "versionRequirements": dict(requirements)} for name, requirements in sorted(wanted.items())]
        try:
            answer = self._client("greengrassv2").resolve_component_candidates(
                platform={"name": self.platform.get("os", "linux"), "attributes": self.platform},
                componentCandidates=candidates)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeploymentError(f"ResolveComponentCandidates: {error.get('Code')}: {error.get('Message')}",
                                  FailureKind.NO_VERSION) from exc
        except BotoCoreError as exc:
            raise DeploymentError(f"ResolveComponentCandidates could not reach the cloud: {exc}",
                                  ("NO_AVAILABLE_COMPONENT_VERSION",)) from exc
        out: dict[str, RecipeDocument] = {}
        for item in answer.get("resolvedComponentVersions", []):
            recipe = item.get("recipe", b"")
            data = recipe if isinstance(recipe, bytes) else str(recipe).encode()
            source = f"{item.get('componentName')}@{item.get('componentVersion')} (ResolveComponentCandidates)"
            try:
                out[item["componentName"]] = parse_recipe_bytes(data, source, "json")
            except RecipeError as exc:
                raise DeploymentError(str(exc), FailureKind.RECIPE_INVALID) from exc
        return out

    def _store(self, document: RecipeDocument) -> None:
        try:
            recipe = document.for_platform(self.platform)
        except RecipeError as exc:
            raise DeploymentError(str(exc), FailureKind.RECIPE_INVALID) from exc
        for artifact in recipe.artifacts:
            if not artifact.uri.lower().startswith("s3://"):
                continue
            target = self.store.artifact_file(recipe, artifact)
            if target.is_file() and self._digest_ok(target, artifact.algorithm, artifact.digest):
                continue
            self._download(artifact.uri, target, artifact.algorithm, artifact.digest, recipe.name)
        self.store.add_recipe(document)

    @staticmethod
    def _digest_ok(path: Path, algorithm: str | None, expected: str | None) -> bool:
        return not expected or digest_of(path, algorithm or "SHA-256") == expected

    def _download(self, uri: str, target: Path, algorithm: str | None, expected: str | None,
                  component: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, key = uri[len("s3://"):].partition("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".download-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                self._client("s3").download_file(bucket, key, str(tmp))
            except (ClientError, BotoCoreError) as exc:
                raise DeploymentError(f"artifact {uri} of {component}: download failed: {exc}",
                                      FailureKind.ARTIFACT_MISSING) from exc
            if not self._digest_ok(tmp, algorithm, expected):
                raise DeploymentError(
                    f"artifact {uri} of {component}: its {algorithm or 'SHA-256'} digest is "
                    f"{digest_of(tmp, algorithm or 'SHA-256')}, the recipe says {expected}",
                    ("ARTIFACT_DOWNLOAD_ERROR", "ARTIFACT_CHECKSUM_MISMATCH"))
            os.replace(tmp, target)
            log.info("downloaded %s (%d bytes) for %s", uri, target.stat().st_size, component)
        finally:
            tmp.unlink(missing_ok=True)


def _highest_pinned(requirements: Mapping[str, str]) -> str:
    """The candidate's componentVersion: a pinned version when one requirement pins one, else 0.0.0."""
    for requirement in requirements.values():
        if requirement.startswith("="):
            return requirement[1:]
    return "0.0.0"

