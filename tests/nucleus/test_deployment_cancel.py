"""Cancelling a deployment (the nucleus's DeploymentService on a cancelled IoT job): a queued one never
runs; one waiting for its components' answer to the update notice stops there, nothing applied; one already
being applied runs to its end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from ggsim.nucleus.config import ConfigStore
from ggsim.nucleus.deployment import DeploymentManager, UpdateHub, ValidationHub
from ggsim.nucleus.deployment.component_hubs import DeferralRefusedError
from ggsim.nucleus.recipe import Recipe
from ggsim.nucleus.store import Store

from tests.nucleus.test_deployment_hubs import LINUX, Subscriber, run


class GatedKernel:
    """Records what it applies; an apply waits for ``gate`` (the deployment is then "being applied")."""

    def __init__(self) -> None:
        self.applied: list[list[str]] = []
        self.applying = asyncio.Event()
        self.gate = asyncio.Event()

    async def apply(self, target: Mapping[str, Recipe], *, run_with: Mapping[str, Mapping[str, Any]] | None = None,
                    remove_others: bool = True) -> None:
        self.applied.append(sorted(target))
        self.applying.set()
        await self.gate.wait()

    async def remove_others(self, keep: Iterable[str]) -> None:
        pass

    async def wait_healthy(self, names: Iterable[str], timeout: float, *, stable_for: float = 0.0) -> dict[str, str]:
        return {name: "RUNNING" for name in names}


def request(recipes: Any, version: str) -> dict[str, Any]:
    return {"targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/G", "recipeDirectoryPath": str(recipes.dir),
            "components": {"comp.A": {"componentVersion": version}},
            "deploymentPolicies": {"componentUpdatePolicy": {"action": "NOTIFY_COMPONENTS", "timeoutInSeconds": 30}}}


def test_cancel_stops_queued_and_waiting_deployments_but_not_one_being_applied(tmp_path: Path, recipes: Any) -> None:
    for version in ("1.0.0", "1.0.1", "1.0.2"):
        recipes.add("comp.A", version, lifecycle={})

    async def scenario() -> None:
        kernel, updates = GatedKernel(), UpdateHub()
        manager = DeploymentManager(store=Store(tmp_path / "gg"), config=ConfigStore(), kernel=kernel,
                                    update_hub=updates, validation_hub=ValidationHub(), platform=LINUX)
        noticed = asyncio.Event()
        silent = Subscriber("comp.Listener", lambda e: noticed.set())  # never answers the notice
        updates.add(silent)
        waiting = manager.create(request(recipes, "1.0.0"))
        queued = manager.create(request(recipes, "1.0.1"))
        await asyncio.wait_for(noticed.wait(), 10)
        assert manager.status(waiting)["status"] == "IN_PROGRESS"

        assert manager.cancel(queued) is True
        assert manager.cancel(waiting) is True
        assert (await manager.wait(waiting, 5))["status"] == "CANCELED"
        assert (await manager.wait(queued, 5))["status"] == "CANCELED"
        assert kernel.applied == [] and manager.groups == {}
        with pytest.raises(DeferralRefusedError):
            updates.defer("comp.Listener", waiting, 0)  # the notice is no longer waiting for an answer
        silent.close()

        applying = manager.create(request(recipes, "1.0.2"))
        await asyncio.wait_for(kernel.applying.wait(), 10)
        assert manager.cancel(applying) is False
        kernel.gate.set()
        status = await manager.wait(applying, 10)
        assert status["status"] == "SUCCEEDED" and status["components"]["comp.A"] == "1.0.2"
        assert manager.cancel(applying) is False and manager.cancel("no-such-deployment") is False
        await manager.close()

    run(scenario())
