"""aws.greengrass.SecretManager: the secrets a component reads with GetSecretValue.

On a device the secret manager keeps encrypted copies of the Secrets Manager secrets named in its
configuration. ggsim serves the secrets the user gives it in a file (``ggsim up --secrets FILE``, JSON or
YAML)::

    secrets:
      - name: db-password
        arn: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf   # optional
        secretString: hunter2                  # one version, staged AWSCURRENT
      - name: tls-key
        versions:
          - versionId: "2"
            stages: [AWSCURRENT]
            secretBinary: aGVsbG8=              # base64
          - versionId: "1"
            stages: [AWSPREVIOUS]
            secretString: old

A secret without ``arn`` gets ``arn:aws:secretsmanager:<region>:000000000000:secret:<name>``; a version
without ``versionId`` gets its 1-based position. Lookups follow the real service: by name or ARN, by
``versionId`` or ``versionStage`` (not both), AWSCURRENT when neither is given.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_STAGE", "Secret", "SecretError", "SecretFileError", "SecretNotFoundError", "SecretStore",
           "SecretVersion", "load_secrets_file"]

DEFAULT_STAGE = "AWSCURRENT"
DEFAULT_ACCOUNT = "000000000000"


class SecretFileError(ValueError):
    """A secrets file ggsim cannot use; the message names the file and the entry."""


class SecretError(ValueError):
    """A request the secret manager refuses (bad arguments)."""


class SecretNotFoundError(LookupError):
    """No such secret, version or stage; the message says which."""


@dataclass(frozen=True)
class SecretVersion:
    version_id: str
    stages: tuple[str, ...]
    secret_string: str | None = None
    secret_binary: bytes | None = None


@dataclass(frozen=True)
class Secret:
    name: str
    arn: str
    versions: tuple[SecretVersion, ...]


class SecretStore:
    def __init__(self, secrets: list[Secret] | None = None) -> None:
        self._by_arn = {s.arn: s for s in secrets or []}
        self._by_name = {s.name: s for s in secrets or []}

    def arn_of(self, secret_id: str) -> str | None:
        """The ARN of the secret named or identified by ``secret_id``, or None when ggsim has no such secret."""
        secret = self._by_arn.get(secret_id) or self._by_name.get(secret_id)
        return secret.arn if secret is not None else None

    def get(self, secret_id: str, version_id: str | None = None,
            version_stage: str | None = None) -> tuple[Secret, SecretVersion]:
        if not secret_id:
            raise SecretError("SecretId absent in the request")
        if version_id and version_stage:
            raise SecretError("Both versionId and Stage are set in the request")
        secret = self._by_arn.get(secret_id) or self._by_name.get(secret_id)
        if secret is None:
            raise SecretNotFoundError(f"Secret not found {secret_id}")
        for version in secret.versions:
            if version_id and version.version_id == version_id:
                return secret, version
            if not version_id and (version_stage or DEFAULT_STAGE) in version.stages:
                return secret, version
        if version_id:
            raise SecretNotFoundError(f"Version Id {version_id} not found for secret {secret.arn}")
        raise SecretNotFoundError(f"Version stage {version_stage or DEFAULT_STAGE} not found for secret "
                                  f"{secret.arn}")


def load_secrets_file(path: Path, region: str) -> SecretStore:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SecretFileError(f"{path}: cannot read the secrets file: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("secrets"), list):
        raise SecretFileError(f"{path}: expected a mapping with a 'secrets' list")
    secrets = [_secret(path, f"secrets[{i}]", entry, region) for i, entry in enumerate(data["secrets"])]
    for field in ("name", "arn"):
        seen: set[str] = set()
        for secret in secrets:
            value = getattr(secret, field)
            if value in seen:
                raise SecretFileError(f"{path}: two secrets have the {field} {value!r}")
            seen.add(value)
    return SecretStore(secrets)


def _secret(path: Path, where: str, entry: Any, region: str) -> Secret:
    if not isinstance(entry, dict):
        raise SecretFileError(f"{path}: {where}: expected a mapping with name and secretString/versions")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise SecretFileError(f"{path}: {where}.name is required and must be a non-empty string")
    arn = entry.get("arn") or f"arn:aws:secretsmanager:{region}:{DEFAULT_ACCOUNT}:secret:{name}"
    if not isinstance(arn, str) or not arn.startswith("arn:aws"):
        raise SecretFileError(f"{path}: {where}.arn must be a Secrets Manager ARN, got {arn!r}")
    if "versions" not in entry:  # the short form: one version, staged AWSCURRENT
        value = {k: v for k, v in entry.items() if k in ("secretString", "secretBinary")}
        return Secret(name, arn, (_version(path, where, {**value, "stages": [DEFAULT_STAGE]}, 0),))
    raw_versions = entry["versions"]
    if not isinstance(raw_versions, list) or not raw_versions:
        raise SecretFileError(f"{path}: {where}.versions must be a non-empty list")
    versions = tuple(_version(path, f"{where}.versions[{i}]", v, i) for i, v in enumerate(raw_versions))
    return Secret(name, arn, versions)


def _version(path: Path, where: str, entry: Mapping[str, Any], index: int) -> SecretVersion:
    if not isinstance(entry, dict):
        raise SecretFileError(f"{path}: {where}: expected a mapping")
    stages = entry.get("stages", [DEFAULT_STAGE] if index == 0 else [])
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise SecretFileError(f"{path}: {where}.stages must be a list of strings")
    text, binary = entry.get("secretString"), entry.get("secretBinary")
    if (text is None) == (binary is None):
        raise SecretFileError(f"{path}: {where}: give exactly one of secretString and secretBinary")
    if text is not None and not isinstance(text, str):
        raise SecretFileError(f"{path}: {where}.secretString must be a string")
    decoded = None
    if binary is not None:
        try:
            decoded = base64.b64decode(str(binary), validate=True)
        except binascii.Error:
            raise SecretFileError(f"{path}: {where}.secretBinary must be base64") from None
    return SecretVersion(str(entry.get("versionId", index + 1)), tuple(stages), text, decoded)
