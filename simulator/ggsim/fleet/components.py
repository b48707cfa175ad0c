"""Component versions and artifacts from the cloud, as a core fetches them for a deployment.

`CloudComponents.fetch(roots)` takes the root components of every deployment that targets the thing
(group -> name -> version), asks Greengrass v2 ResolveComponentCandidates for each root (its version
requirements keyed by the group that requires it, as the nucleus sends them) and then for each
dependency (keyed by the component that depends on it), stores every recipe in the core's component store
and downloads each ``s3://`` artifact through S3, checking its digest (the recipe's ``Algorithm`` and
base64 ``Digest``) before the store keeps it. A failure is a `DeploymentError` with the nucleus's error
codes, so the job reports the same error stack and types the nucleus would.

How it reaches the cloud, with the standard library's HTTP client (no boto3: it would add 25 MB per core):

* Greengrass v2 ResolveComponentCandidates: the nucleus calls it on the Greengrass data plane
  (``greengrass-ats.iot.REGION.amazonaws.com:8443/greengrass``) with anonymous credentials (no SigV4),
  authenticated by the device's X.509 certificate over mutual TLS. With an endpoint (the local control
  plane) the core does the same minus TLS: a plain, unsigned ``POST {endpoint}/greengrass/v2/
  resolveComponentCandidates`` (the call names no device, so nothing else identifies the thing). With no
  endpoint (AWS itself) a ggsim core has no device certificate, so it calls AWS's public endpoint
  ``https://greengrass.REGION.amazonaws.com`` signed with SigV4 and the core's credentials instead.
* ``s3://`` artifacts: like the nucleus's S3Downloader, a GetObject signed with SigV4 with the token
  exchange role's credentials (what the core's TokenExchangeService serves): ``GET {endpoint}/BUCKET/KEY``
  (path style) or ``https://BUCKET.s3.REGION.amazonaws.com/KEY``, following S3's ``x-amz-bucket-region``
  when the bucket is in another region (the nucleus asks GetBucketLocation).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ggsim.nucleus.deployment.errors import FailureKind
from ggsim.nucleus.deployment.plan import DeploymentError
from ggsim.nucleus.recipe import RecipeDocument, RecipeError, parse_recipe_bytes
from ggsim.nucleus.store import Store

from .sigv4 import Credentials, sign

__all__ = ["CloudComponents", "CloudError", "digest_of"]

log = logging.getLogger("ggsim.fleet")

#: seconds a core waits for one cloud request
TIMEOUT = 30.0
RESOLVE_PATH = "/greengrass/v2/resolveComponentCandidates"


class CloudError(Exception):
    """A cloud request that failed: the service's error code (or the transport problem) and message."""

    def __init__(self, code: str, message: str, status: int | None = None, headers: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status, self.headers = code, message, status, headers


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
                 builtin: Mapping[str, str], credentials: Credentials | None = None) -> None:
        self.store = store
        self.platform = dict(platform)
        self.region = region
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.builtin = dict(builtin)
        #: the token exchange role's credentials (S3 downloads; Greengrass too when talking to AWS itself)
        self.credentials = credentials

    def _request(self, method: str, url: str, *, service: str, signed: bool, body: bytes = b"",
                 headers: Mapping[str, str] | None = None) -> Any:
        """Send one request; the open response (2xx) or `CloudError` (the service's code and message)."""
        sent = dict(headers or {})
        if signed:
            if self.credentials is None:
                raise CloudError("NoCredentials", "the core has no AWS credentials to sign with (give it "
                                 "--aws-credentials FILE or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
            sent = sign(method, url, service=service, region=self.region, credentials=self.credentials,
                        headers=sent, body=body)
            del sent["Host"]  # signed as the URL's host, which urllib sends (and sets anew on a redirect)
        request = urllib.request.Request(url, data=body or None, method=method, headers=sent)
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _service_error(exc.code, exc.headers, exc.read()) from None
        except (OSError, ValueError) as exc:
            raise CloudError("ConnectionError", f"{method} {url}: {exc}") from exc

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
        candidates = [{"componentName": name, "componentVersion": _highest_pinned(requirements),
                       "versionRequirements": dict(requirements)} for name, requirements in sorted(wanted.items())]
        body = json.dumps({"platform": {"name": self.platform.get("os", "linux"), "attributes": self.platform},
                           "componentCandidates": candidates}).encode()
        base = self.endpoint_url or f"https://greengrass.{self.region}.amazonaws.com"
        try:
            with self._request("POST", base + RESOLVE_PATH, service="greengrass", body=body,
                               signed=self.endpoint_url is None,
                               headers={"Content-Type": "application/json"}) as response:
                answer = json.loads(response.read())
        except CloudError as exc:
            if exc.status is None:
                raise DeploymentError(f"ResolveComponentCandidates could not reach the cloud: {exc}",
                                      ("NO_AVAILABLE_COMPONENT_VERSION",)) from exc
            raise DeploymentError(f"ResolveComponentCandidates: {exc.code}: {exc.message}",
                                  FailureKind.NO_VERSION) from exc
        except ValueError as exc:
            raise DeploymentError(f"ResolveComponentCandidates answered with no JSON: {exc}",
                                  FailureKind.NO_VERSION) from exc
        out: dict[str, RecipeDocument] = {}
        for item in answer.get("resolvedComponentVersions", []):
            # the recipe is a blob: base64 in the JSON body
            data = base64.b64decode(item.get("recipe") or "")
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

    def _object_url(self, bucket: str, key: str, region: str) -> str:
        path = quote(key, safe="/~")
        if self.endpoint_url:
            return f"{self.endpoint_url}/{bucket}/{path}"
        return f"https://{bucket}.s3.{region}.amazonaws.com/{path}"

    def _get_object(self, bucket: str, key: str, into: Path) -> None:
        region = self.region
        for _ in range(2):  # a bucket in another region: S3 names it in x-amz-bucket-region
            try:
                with self._request("GET", self._object_url(bucket, key, region), service="s3",
                                   signed=True) as response, open(into, "wb") as out:
                    shutil.copyfileobj(response, out, 1 << 20)
                return
            except CloudError as exc:
                moved = exc.headers.get("x-amz-bucket-region") if exc.headers is not None else None
                if self.endpoint_url or not moved or moved == region:
                    raise
                region = moved

    def _download(self, uri: str, target: Path, algorithm: str | None, expected: str | None,
                  component: str) -> None:
        bucket, _, key = uri[len("s3://"):].partition("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".download-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                self._get_object(bucket, key, tmp)
            except CloudError as exc:
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


def _service_error(status: int, headers: Any, body: bytes) -> CloudError:
    """The error an AWS service answered: its code from ``x-amzn-ErrorType`` or the JSON body (Greengrass)
    or the XML ``<Code>`` (S3), and its message."""
    code = (headers.get("x-amzn-ErrorType") or "").split(":", 1)[0]
    message = ""
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            code = code or str(data.get("__type") or data.get("code") or "").rsplit("#", 1)[-1]
            message = str(data.get("message") or data.get("Message") or "")
    except ValueError:
        import xml.etree.ElementTree as ElementTree

        try:
            root = ElementTree.fromstring(body)
            code = code or (root.findtext("Code") or "")
            message = root.findtext("Message") or ""
        except ElementTree.ParseError:
            message = body.decode("utf-8", "replace")[:200]
    return CloudError(code or f"HTTP{status}", message or f"HTTP {status}", status, headers)


def _highest_pinned(requirements: Mapping[str, str]) -> str:
    """The candidate's componentVersion: a pinned version when one requirement pins one, else 0.0.0."""
    for requirement in requirements.values():
        if requirement.startswith("="):
            return requirement[1:]
    return "0.0.0"

