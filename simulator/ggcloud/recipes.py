"""A component recipe as the cloud reads it on CreateComponentVersion: JSON or YAML, keys case-insensitive
(as the nucleus reads them), the fields the service checks and keeps (name, version, publisher,
description, dependencies, each manifest's platform and artifact URIs)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import semantic_version
import yaml

NAME_RE = re.compile(r"^[a-zA-Z0-9-_.]+$")


class RecipeError(ValueError):
    """The recipe cannot be a component version; the message names the key and what is expected."""


@dataclass(frozen=True)
class Manifest:
    platform: dict[str, str]
    artifact_uris: tuple[str, ...]

    def matches(self, attributes: dict[str, str]) -> bool:
        """Whether a device with these platform attributes (os, architecture, ...) selects this manifest:
        a missing key, ``*`` or an absent attribute matches; ``/re/`` is a regular expression."""
        for key, wanted in self.platform.items():
            if wanted in ("*", "") or key == "name":
                continue
            have = attributes.get(key)
            if have is None:
                continue
            if len(wanted) > 1 and wanted.startswith("/") and wanted.endswith("/"):
                if not re.fullmatch(wanted[1:-1], have):
                    return False
            elif wanted != have:
                return False
        return True


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    publisher: str | None
    description: str | None
    dependencies: dict[str, str]
    manifests: tuple[Manifest, ...]
    document: dict[str, Any] = field(repr=False)

    def artifact_uris(self) -> list[str]:
        return sorted({uri for m in self.manifests for uri in m.artifact_uris})

    def to_json(self) -> bytes:
        return json.dumps(self.document, indent=2).encode()

    def to_yaml(self) -> bytes:
        return yaml.safe_dump(self.document, sort_keys=False).encode()


def _get(mapping: dict[str, Any], key: str) -> Any:
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == key.lower():
            return v
    return None


def parse_recipe(data: bytes) -> Recipe:
    """The recipe in ``data`` (JSON or YAML); RecipeError naming the key when it is not a valid one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"inlineRecipe is not UTF-8 text: {e}") from None
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise RecipeError(f"inlineRecipe is neither JSON nor YAML: {e}") from None
    if not isinstance(doc, dict):
        raise RecipeError("inlineRecipe must be a mapping of recipe keys (RecipeFormatVersion, ComponentName, ...)")
    fmt = _get(doc, "RecipeFormatVersion")
    if str(fmt) != "2020-01-25":
        raise RecipeError(f"RecipeFormatVersion must be '2020-01-25', not {fmt!r}")
    name = _get(doc, "ComponentName")
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 128:
        raise RecipeError(f"ComponentName {name!r} must match {NAME_RE.pattern} and have at most 128 characters")
    version = _get(doc, "ComponentVersion")
    try:
        semantic_version.Version(str(version))
    except ValueError:
        raise RecipeError(f"ComponentVersion {version!r} is not a semantic version (major.minor.patch)") from None
    if len(str(version)) > 64:
        raise RecipeError("ComponentVersion has more than 64 characters")
    dependencies: dict[str, str] = {}
    for dep, props in (_get(doc, "ComponentDependencies") or {}).items():
        requirement = _get(props, "VersionRequirement") if isinstance(props, dict) else None
        if not isinstance(requirement, str):
            raise RecipeError(f"ComponentDependencies.{dep}.VersionRequirement is required (an npm-style range)")
        try:
            semantic_version.NpmSpec(requirement)
        except ValueError:
            raise RecipeError(f"ComponentDependencies.{dep}.VersionRequirement {requirement!r} is not an "
                              "npm-style version range") from None
        dependencies[dep] = requirement
    manifests = []
    raw_manifests = _get(doc, "Manifests")
    if not isinstance(raw_manifests, list) or not raw_manifests:
        raise RecipeError("Manifests must be a non-empty list")
    for i, raw in enumerate(raw_manifests):
        if not isinstance(raw, dict):
            raise RecipeError(f"Manifests[{i}] must be a mapping")
        platform = {str(k).lower() if str(k).lower() in ("os", "architecture") else str(k): str(v)
                    for k, v in (_get(raw, "Platform") or {}).items()}
        uris = []
        for j, artifact in enumerate(_get(raw, "Artifacts") or []):
            uri = _get(artifact, "URI") if isinstance(artifact, dict) else None
            if not isinstance(uri, str) or not uri:
                raise RecipeError(f"Manifests[{i}].Artifacts[{j}].URI is required")
            uris.append(uri)
        manifests.append(Manifest(platform, tuple(uris)))
    publisher = _get(doc, "ComponentPublisher")
    description = _get(doc, "ComponentDescription")
    return Recipe(name, str(version), None if publisher is None else str(publisher),
                  None if description is None else str(description), dependencies, tuple(manifests), doc)
