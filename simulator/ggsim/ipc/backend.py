"""What the IPC server serves: the nucleus parts its operations call, each typed by what IPC needs of it.

The composition root (ggsim.core) builds one `IpcBackend` from the real parts: the token registry, the
ConfigStore, the IoT Core stand-in, the kernel (`ComponentControl`), the deployment manager
(`LocalDeployments`), the deployment's hubs and the AWS components' stand-ins (ggsim.aws). Tests
build one from fakes. The services only parse a request, call one of these and serialise the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..aws.secrets import SecretStore
from ..aws.shadows import ShadowManager
from ..iotcore import IotCore
from ..nucleus.config import ConfigStore
from ..nucleus.deployment.component_hubs import UpdateHub, ValidationHub

__all__ = ["ComponentControl", "IpcBackend", "LocalDeployments", "TokenLookup"]


class TokenLookup(Protocol):
    def lookup(self, token: str | None) -> str | None:
        """The component an SVCUID token was issued to, or None."""
        ...


class ComponentControl(Protocol):
    """The kernel's IPC-facing operations (ggsim.nucleus.kernel.Kernel is one)."""

    def report_state(self, component: str, state: str) -> object:
        """UpdateState: ``state`` is RUNNING or ERRORED."""
        ...

    def list_components(self) -> list[dict[str, Any]]:
        """ComponentDetails of every component: componentName, version, state, configuration."""
        ...

    def component_details(self, name: str) -> dict[str, Any] | None: ...

    def restart_component(self, name: str) -> bool:
        """False if ``name`` is unknown."""
        ...

    def stop_component(self, name: str) -> bool:
        """False if ``name`` is unknown."""
        ...

    async def pause_component(self, name: str) -> None:
        """``ValueError`` if ``name`` is unknown or not running."""
        ...

    async def resume_component(self, name: str) -> None:
        """``ValueError`` if ``name`` is unknown or not running."""
        ...


class LocalDeployments(Protocol):
    """The deployment service's IPC-facing operations (DeploymentManager is one)."""

    def create(self, request: Mapping[str, Any]) -> str:
        """Queue a deployment; ``ValueError`` (DeploymentRequestError) for a malformed request."""
        ...

    def status(self, deployment_id: str) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class IpcBackend:
    socket_path: Path
    tokens: TokenLookup
    config: ConfigStore
    iotcore: IotCore
    components: ComponentControl
    deployments: LocalDeployments
    update_hub: UpdateHub
    validation_hub: ValidationHub
    #: aws.greengrass.ShadowManager's and SecretManager's stand-ins (default: in memory, no secrets).
    shadows: ShadowManager = field(default_factory=lambda: ShadowManager(None, ""))
    secrets: SecretStore = field(default_factory=SecretStore)
