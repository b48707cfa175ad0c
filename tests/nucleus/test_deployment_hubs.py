"""What a deployment tells and asks its components (UpdateHub, ValidationHub), through the EventSubscriber
seam, and a cloud deployment that drives them with a stand-in kernel (spec IPC §4.5, §4.6; components §5.4)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from ggsim.nucleus.config import ConfigStore
from ggsim.nucleus.deployment import DeploymentManager, UpdateHub, ValidationHub
from ggsim.nucleus.deployment.component_hubs import DeferralRefusedError, NotSubscribedError
from ggsim.nucleus.recipe import Recipe
from ggsim.nucleus.store import Store

LINUX = {"os": "linux", "architecture": "amd64"}


class Subscriber:
    """An EventSubscriber that keeps its events and can answer them from a callback."""

    def __init__(self, component: str, answer: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.component = component
        self.events: list[dict[str, Any]] = []
        self.answer = answer
        self._on_close: list[Callable[[], None]] = []

    def send_event(self, body: dict[str, Any]) -> bool:
        self.events.append(body)
        if self.answer is not None:
            asyncio.get_running_loop().call_soon(self.answer, body)
        return True

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        for callback in self._on_close:
            callback()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_update_notices_wait_for_every_answer_and_honour_a_deferral() -> None:
    async def scenario() -> None:
        hub = UpdateHub()
        await hub.notify_pre_update("dep-0", timeout=5)  # nobody subscribed: nothing to wait for
        deferrals = iter([30, 0])
        comp = Subscriber("comp.A", lambda e: hub.defer("comp.A", "dep-1", next(deferrals)))
        hub.add(comp)
        await hub.notify_pre_update("dep-1", timeout=5)
        pre = {"preUpdateEvent": {"deploymentId": "dep-1", "isGgcRestarting": False}}
        assert comp.events == [pre, pre], "a deferral sends the notice again"
        with pytest.raises(DeferralRefusedError, match="Time limit to respond"):
            hub.defer("comp.A", "dep-1", 0)
        with pytest.raises(NotSubscribedError, match="not subscribed to component update events"):
            hub.defer("comp.Other", "dep-1", 0)
        hub.notify_post_update("dep-1")
        assert comp.events[-1] == {"postUpdateEvent": {"deploymentId": "dep-1"}}
        comp.close()
        hub.notify_post_update("dep-2")
        assert len(comp.events) == 3 and not hub.subscribed("comp.A")

    run(scenario())


def test_an_unanswered_update_notice_goes_ahead_after_the_timeout() -> None:
    async def scenario() -> None:
        hub = UpdateHub()
        hub.add(Subscriber("comp.Silent"))
        await hub.notify_pre_update("dep-1", timeout=0.05)

    run(scenario())


def test_configuration_validation_answers_and_timeouts() -> None:
    async def scenario() -> None:
        hub = ValidationHub()
        assert await hub.validate("comp.A", {"x": 1}, "dep-1", timeout=5) is None
        comp = Subscriber("comp.A", lambda e: hub.report("comp.A", "dep-1", "ACCEPTED", None))
        hub.add(comp)
        assert await hub.validate("comp.A", {"x": 1}, "dep-1", timeout=5) == ("ACCEPTED", None)
        assert comp.events == [{"validateConfigurationUpdateEvent": {"configuration": {"x": 1},
                                                                     "deploymentId": "dep-1"}}]
        assert hub.report("comp.A", "dep-1", "ACCEPTED", None) is False, "no validation is waiting any more"
        silent = Subscriber("comp.B")
        hub.add(silent)
        assert await hub.validate("comp.B", {}, "dep-2", timeout=0.05) == ("REJECTED", "no validity report within 0 s")
        silent.close()
        assert await hub.validate("comp.B", {}, "dep-3", timeout=5) is None

    run(scenario())


class RecordingKernel:
    """A ComponentKernel that records what it is asked to run and reports every component RUNNING."""

    def __init__(self) -> None:
        self.applied: list[list[str]] = []

    async def apply(self, target: Mapping[str, Recipe], *, run_with: Mapping[str, Mapping[str, Any]] | None = None,
                    remove_others: bool = True) -> None:
        self.applied.append(sorted(target))

    async def remove_others(self, keep: Iterable[str]) -> None:
        pass

    async def wait_healthy(self, names: Iterable[str], timeout: float, *, stable_for: float = 0.0) -> dict[str, str]:
        return {name: "RUNNING" for name in names}


def cloud_deployment(tmp_path: Path, recipes: Any, answer: str) -> tuple[dict[str, Any], RecordingKernel,
                                                                         Subscriber, Subscriber]:
    recipes.add("comp.A", "1.0.0", lifecycle={}, defaults={"threshold": 0.5})

    async def scenario() -> tuple[dict[str, Any], RecordingKernel, Subscriber, Subscriber]:
        kernel = RecordingKernel()
        updates, validations = UpdateHub(), ValidationHub()
        manager = DeploymentManager(store=Store(tmp_path / "gg"), config=ConfigStore(), kernel=kernel,
                                    update_hub=updates, validation_hub=validations, platform=LINUX)
        notified = Subscriber("comp.A", lambda e: updates.defer("comp.A", e["preUpdateEvent"]["deploymentId"], 0)
                              if "preUpdateEvent" in e else None)
        validating = Subscriber("comp.A", lambda e: validations.report(
            "comp.A", e["validateConfigurationUpdateEvent"]["deploymentId"], answer, "threshold too high"))
        updates.add(notified)
        validations.add(validating)
        deployment_id = manager.create({
            "targetArn": "arn:aws:iot:us-east-1:123456789012:thing/cam-1",
            "recipeDirectoryPath": str(recipes.dir),
            "components": {"comp.A": {"componentVersion": "1.0.0",
                                      "configurationUpdate": {"merge": '{"threshold": 2}'}}},
        })
        status = await manager.wait(deployment_id, 10)
        await manager.close()
        return status, kernel, notified, validating

    return run(scenario())


def test_a_cloud_deployment_a_component_rejects_changes_nothing(tmp_path: Path, recipes: Any) -> None:
    status, kernel, notified, validating = cloud_deployment(tmp_path, recipes, "REJECTED")
    assert status["status"] == "FAILED"
    assert status["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
    assert status["failureCause"] == ("Components reported that their to-be-deployed configuration is invalid "
                                      "{ name = comp.A, message = threshold too high }")
    assert status["deploymentStatusDetails"]["deploymentErrorStack"] == [
        "DEPLOYMENT_FAILURE", "COMPONENT_CONFIGURATION_NOT_VALID"]
    assert validating.events[0]["validateConfigurationUpdateEvent"]["configuration"] == {"threshold": 2}
    assert kernel.applied == []
    assert [next(iter(e)) for e in notified.events] == ["preUpdateEvent"]


def test_an_accepted_cloud_deployment_is_applied_and_announced(tmp_path: Path, recipes: Any) -> None:
    status, kernel, notified, _ = cloud_deployment(tmp_path, recipes, "ACCEPTED")
    assert status["status"] == "SUCCEEDED" and status["groupName"] == "thing/cam-1"
    assert kernel.applied == [["comp.A"]]
    assert [next(iter(e)) for e in notified.events] == ["preUpdateEvent", "postUpdateEvent"]
