"""The IPC operation families, one module each (spec ../shared/spec/greengrass-ipc.md §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import IpcServer, Service


def build_services(server: IpcServer) -> dict[str, Service]:
    from . import components, config, iotcore, lifecycle, metrics, pubsub, secrets, shadow, tokens

    return {
        "pubsub": pubsub.PubSubService(server),
        "iotcore": iotcore.IotCoreService(server),
        "config": config.ConfigService(server),
        "lifecycle": lifecycle.LifecycleService(server),
        "components": components.ComponentsService(server),
        "shadow": shadow.ShadowService(server),
        "secrets": secrets.SecretService(server),
        "tokens": tokens.TokenService(server),
        "metrics": metrics.MetricsService(server),
    }
