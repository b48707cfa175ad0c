"""The Greengrass root folder's layout (spec components §2.3, IPC §1.1): where every file of a core lives.

    <root>/packages/recipes/<b64url(sha256(name))>@<version>.recipe.yaml
    <root>/packages/artifacts/<name>/<version>/<file>
    <root>/packages/artifacts-unarchived/<name>/<version>/<archive stem>/...
    <root>/work/<name>/                  a component's working directory
    <root>/logs/greengrass.log           <root>/logs/<name>.log
    <root>/config/effectiveConfig.yaml
    <root>/deployments/
    <root>/ipc.socket

and the Unix socket path limit: ``sun_path`` holds 108 bytes, so a socket path of 108 bytes or more cannot
be bound or connected to directly; components then get the socket's path relative to their working
directory (``../../ipc.socket``), as the nucleus does.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SUN_PATH_MAX", "RootLayout", "socket_path_fits"]

#: sun_path's size on Linux: a socket path must be shorter than this many bytes.
SUN_PATH_MAX = 108
SOCKET_NAME = "ipc.socket"
RECIPE_SUFFIX = ".recipe.yaml"


def socket_path_fits(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` fits in sun_path (shorter than `SUN_PATH_MAX` bytes)."""
    return len(os.fsencode(path)) < SUN_PATH_MAX


def recipe_name_key(name: str) -> str:
    """A component name as the recipe store's file names write it: unpadded base64url of its sha256."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class RootLayout:
    """The paths under one Greengrass root (nothing is created on construction; see `create`)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ------------------------------------------------------------------ folders

    @property
    def packages_dir(self) -> Path:
        return self.root / "packages"

    @property
    def recipes_dir(self) -> Path:
        return self.packages_dir / "recipes"

    @property
    def artifacts_dir(self) -> Path:
        return self.packages_dir / "artifacts"

    @property
    def unarchived_dir(self) -> Path:
        return self.packages_dir / "artifacts-unarchived"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def deployments_dir(self) -> Path:
        return self.root / "deployments"

    def create(self) -> None:
        """Make every folder of the layout (idempotent)."""
        for folder in (self.recipes_dir, self.artifacts_dir, self.unarchived_dir, self.work_dir, self.logs_dir,
                       self.config_dir, self.deployments_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ per component

    def recipe_path(self, name: str, version: str) -> Path:
        return self.recipes_dir / f"{recipe_name_key(name)}@{version}{RECIPE_SUFFIX}"

    def artifacts_path(self, name: str, version: str) -> Path:
        """``{artifacts:path}``."""
        return self.artifacts_dir / name / version

    def decompressed_path(self, name: str, version: str) -> Path:
        """``{artifacts:decompressedPath}``."""
        return self.unarchived_dir / name / version

    def work_path(self, name: str) -> Path:
        """``{work:path}``, the component's working directory."""
        return self.work_dir / name

    # ------------------------------------------------------------------ files

    @property
    def effective_config(self) -> Path:
        return self.config_dir / "effectiveConfig.yaml"

    @property
    def processes_file(self) -> Path:
        """The component process groups a ggsim on this root runs (nucleus/process_ledger.py)."""
        return self.root / "ggsim-processes.json"

    @property
    def bootstrapped_file(self) -> Path:
        """Which component versions this root has run Bootstrap for (ggsim's own file)."""
        return self.deployments_dir / "bootstrapped.json"

    @property
    def socket_path(self) -> Path:
        return self.root / SOCKET_NAME

    def socket_path_for_component(self) -> str:
        """AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: the absolute socket path, or, when that does
        not fit in sun_path, ``../../ipc.socket`` (the socket seen from a component's ``<root>/work/<name>``)."""
        if socket_path_fits(self.socket_path):
            return str(self.socket_path)
        return f"../../{SOCKET_NAME}"
