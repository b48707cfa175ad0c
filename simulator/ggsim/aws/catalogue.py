"""The components ggsim provides itself, and how ListComponents shows them beside the deployed ones.

A deployment resolves these names without a recipe: a dependency range is accepted when the built-in
version satisfies it, otherwise the deployment fails naming the range (ggsim.nucleus.resolver). They are
always RUNNING; on a device the AWS components exist only once deployed (see docs/ggsim.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "CLI",
    "LOG_MANAGER",
    "NUCLEUS",
    "SECRET_MANAGER",
    "SHADOW_MANAGER",
    "TOKEN_EXCHANGE_SERVICE",
    "BuiltinComponents",
    "builtin_versions",
]

NUCLEUS = "aws.greengrass.Nucleus"
CLI = "aws.greengrass.Cli"
SHADOW_MANAGER = "aws.greengrass.ShadowManager"
SECRET_MANAGER = "aws.greengrass.SecretManager"
TOKEN_EXCHANGE_SERVICE = "aws.greengrass.TokenExchangeService"
LOG_MANAGER = "aws.greengrass.LogManager"

#: The versions of AWS's components whose observable behaviour the stand-ins follow.
STAND_IN_VERSIONS: dict[str, str] = {
    SHADOW_MANAGER: "2.3.9",
    SECRET_MANAGER: "2.2.2",
    TOKEN_EXCHANGE_SERVICE: "2.0.3",
    LOG_MANAGER: "2.3.9",
}


def builtin_versions(nucleus_version: str) -> dict[str, str]:
    """Every built-in component's version: the nucleus and the CLI at the nucleus version, the stand-ins at theirs."""
    return {NUCLEUS: nucleus_version, CLI: nucleus_version, **STAND_IN_VERSIONS}


class ConfigurationReader(Protocol):
    def get(self, component: str, key_path: list[str] | None = None) -> Any: ...


class ComponentControl(Protocol):
    """The kernel's listing and control (ggsim.nucleus.kernel.Kernel is one)."""

    def list_components(self) -> list[dict[str, Any]]: ...

    def component_details(self, name: str) -> dict[str, Any] | None: ...

    def restart_component(self, name: str) -> bool: ...

    def stop_component(self, name: str) -> bool: ...


class BuiltinComponents:
    """The kernel's components plus ggsim's built-in ones, as ListComponents / GetComponentDetails show them.

    Everything else (state reports, pause, resume) goes to the kernel unchanged."""

    def __init__(self, kernel: ComponentControl, versions: Mapping[str, str], config: ConfigurationReader) -> None:
        self._kernel = kernel
        self._versions = dict(versions)
        self._config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kernel, name)

    def _details(self, name: str) -> dict[str, Any]:
        try:
            configuration = self._config.get(name, [])
        except KeyError:
            configuration = {}
        return {"componentName": name, "version": self._versions[name], "state": "RUNNING",
                "configuration": configuration if isinstance(configuration, dict) else {}}

    def list_components(self) -> list[dict[str, Any]]:
        deployed = self._kernel.list_components()
        shown = {d["componentName"] for d in deployed}
        extra = [self._details(name) for name in sorted(self._versions) if name not in shown]
        return sorted([*deployed, *extra], key=lambda d: d["componentName"])

    def component_details(self, name: str) -> dict[str, Any] | None:
        if name in self._versions:
            return self._details(name)
        return self._kernel.component_details(name)

    def restart_component(self, name: str) -> bool:
        """A built-in component restarts in place (nothing to restart): accepted, as the nucleus accepts it."""
        return name in self._versions or self._kernel.restart_component(name)

    def stop_component(self, name: str) -> bool:
        return name in self._versions or self._kernel.stop_component(name)
