"""Fixtures for the nucleus tests: a writer of real recipe files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


class RecipeWriter:
    """Writes recipes (YAML, as gdk builds them) into `dir`, one file per component version."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)

    def document(
        self,
        name: str,
        version: str,
        *,
        deps: dict[str, str | tuple[str, str]] | None = None,
        defaults: dict[str, Any] | None = None,
        lifecycle: dict[str, Any] | None = None,
        artifacts: list[dict[str, Any]] | None = None,
        platform: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": version,
        }
        if defaults is not None:
            doc["ComponentConfiguration"] = {"DefaultConfiguration": defaults}
        if deps:
            doc["ComponentDependencies"] = {
                dep: (
                    {"VersionRequirement": spec[0], "DependencyType": spec[1]}
                    if isinstance(spec, tuple)
                    else {"VersionRequirement": spec}
                )
                for dep, spec in deps.items()
            }
        manifest: dict[str, Any] = {"Platform": platform or {"os": "linux"}}
        if lifecycle is not None:
            manifest["Lifecycle"] = lifecycle
        if artifacts is not None:
            manifest["Artifacts"] = artifacts
        doc["Manifests"] = [manifest]
        return doc

    def add(self, name: str, version: str, **kwargs: Any) -> Path:
        path = self.dir / f"{name}-{version}.yaml"
        path.write_text(yaml.safe_dump(self.document(name, version, **kwargs), sort_keys=False))
        return path


@pytest.fixture
def recipes(tmp_path: Path) -> RecipeWriter:
    return RecipeWriter(tmp_path / "recipes")
