"""Deployments end to end on a real Core (kernel, store, configuration) with real processes (spec
components §5): local deployments, configuration, removal, health, ROLLBACK and DO_NOTHING, the queue,
persistence across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from ggsim.core import Core

LINUX = {"os": "linux", "architecture": "amd64"}
A = "com.example.A"
HELPER = "com.example.Helper"
LONG_RUN = {"Run": "exec sleep 120"}
FAILING_STARTUP = {"Startup": "exit 3"}  # Run would count as RUNNING at launch (design.md §9)


def run(coro: Awaitable[Any], timeout: float = 90.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def core_at(root: Path) -> AsyncIterator[Core]:
    core = Core(root, ipc=False, stop_grace=0.5, platform=LINUX)
    await core.start()
    try:
        yield core
    finally:
        await core.stop()


async def deploy(core: Core, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    deployment_id = core.deployments.create(request)
    return await core.deployments.wait(deployment_id, timeout)


def local(recipes: Any, add: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"recipeDirectoryPath": str(recipes.dir)}
    if add:
        request["rootComponentVersionsToAdd"] = add
    request.update(extra)
    return request


def test_local_deployment_runs_components_with_resolved_configuration(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", deps={HELPER: "^1.0.0"}, lifecycle=LONG_RUN,
                defaults={"Interval": "10", "Topic": "a/b"})
    recipes.add(HELPER, "1.0.0", lifecycle={}, defaults={"Level": "low"})

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            status = await deploy(core, local(recipes, {A: "1.0.0"}, componentToConfiguration={
                A: {"MERGE": {"Interval": "60", "Extra": {"k": 1}}}}))
            assert status["status"] == "SUCCEEDED", status
            assert status["deploymentStatusDetails"]["detailedDeploymentStatus"] == "SUCCESSFUL"
            assert int(status["createdOn"]) > 0 and status["components"] == {A: "1.0.0", HELPER: "1.0.0"}
            details = core.kernel.component_details(A)
            assert details is not None and (details["version"], details["state"]) == ("1.0.0", "RUNNING")
            assert details["configuration"] == {"Interval": "60", "Topic": "a/b", "Extra": {"k": 1.0}}
            assert core.kernel.component_state(HELPER) == "FINISHED"  # empty lifecycle: NEW→…→FINISHED
            assert core.config.get(HELPER, []) == {"Level": "low"}
            assert [d["deploymentId"] for d in core.deployments.list()] == [status["deploymentId"]]
            assert core.deployments.status("no-such-id") is None

    run(scenario())


def test_reset_restores_the_recipe_default_on_a_later_deployment(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", lifecycle=LONG_RUN, defaults={"Interval": "10"})

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            await deploy(core, local(recipes, {A: "1.0.0"},
                                       componentToConfiguration={A: {"MERGE": {"Interval": "60"}}}))
            assert core.config.get(A, ["Interval"]) == "60"
            # A later deployment without an update keeps the value; RESET brings the default back.
            await deploy(core, local(recipes, {A: "1.0.0"}))
            assert core.config.get(A, ["Interval"]) == "60"
            status = await deploy(core, {"componentToConfiguration": {A: {"RESET": ["/Interval"]}}})
            assert status["status"] == "SUCCEEDED", status
            assert core.config.get(A, ["Interval"]) == "10"

    run(scenario())


def test_removing_a_root_stops_it_and_its_exclusive_dependencies(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", deps={HELPER: "*"}, lifecycle=LONG_RUN)
    recipes.add(HELPER, "1.0.0", lifecycle=LONG_RUN)

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            await deploy(core, local(recipes, {A: "1.0.0"}))
            assert core.kernel.components() == [A, HELPER]
            pids = core.kernel.component_pids(A)
            assert pids
            status = await deploy(core, {"rootComponentsToRemove": [A]})
            assert status["status"] == "SUCCEEDED", status
            assert core.kernel.components() == []
            assert core.config.components() == []
            assert core.deployments.groups == {}

    run(scenario())


def test_broken_component_with_rollback_restores_the_previous_deployment_exactly(tmp_path: Path,
                                                                                  recipes: Any) -> None:
    recipes.add(A, "1.0.0", lifecycle=LONG_RUN, defaults={"Interval": "10"})
    recipes.add(A, "2.0.0", deps={HELPER: "*"}, lifecycle=FAILING_STARTUP, defaults={"Interval": "10", "New": "x"})
    recipes.add(HELPER, "1.0.0", lifecycle=LONG_RUN)

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            first = await deploy(core, local(recipes, {A: "1.0.0"},
                                               componentToConfiguration={A: {"MERGE": {"Interval": "60"}}}))
            assert first["status"] == "SUCCEEDED", first
            config_before = core.config.snapshot()

            status = await deploy(core, local(recipes, {A: "2.0.0"}, failureHandlingPolicy="ROLLBACK",
                                                componentToConfiguration={A: {"MERGE": {"Interval": "1"}}}))
            assert status["status"] == "FAILED"
            assert status["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_ROLLBACK_COMPLETE"
            assert f"Service {A} in broken state after deployment" in status["failureCause"]
            assert core.kernel.components() == [A]  # the helper the failed version brought is gone again
            details = core.kernel.component_details(A)
            assert details is not None and details["version"] == "1.0.0"
            assert await core.kernel.wait_for_state(A, "RUNNING", 20) == "RUNNING"
            assert core.config.snapshot() == config_before
            assert core.deployments.groups == {"LOCAL_DEPLOYMENT": {A: "1.0.0"}}

    run(scenario())


def test_broken_component_with_do_nothing_stays_broken(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", lifecycle=LONG_RUN)
    recipes.add(A, "2.0.0", lifecycle=FAILING_STARTUP)

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            await deploy(core, local(recipes, {A: "1.0.0"}))
            status = await deploy(core, local(recipes, {A: "2.0.0"}))  # default policy: DO_NOTHING
            assert status["status"] == "FAILED"
            assert status["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_ROLLBACK_NOT_REQUESTED"
            details = core.kernel.component_details(A)
            assert details is not None and (details["version"], details["state"]) == ("2.0.0", "BROKEN")

    run(scenario())


def test_a_deployment_that_cannot_be_planned_changes_nothing(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", lifecycle=LONG_RUN)
    recipes.add(A, "1.1.0", lifecycle=LONG_RUN, artifacts=[{"Uri": "s3://bucket/com.example.A/model.zip",
                                                            "Unarchive": "ZIP"}])

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            await deploy(core, local(recipes, {A: "1.0.0"}))
            pids = core.kernel.component_pids(A)
            status = await deploy(core, local(recipes, {A: "1.1.0"}, failureHandlingPolicy="ROLLBACK"))
            assert status["status"] == "FAILED"
            assert status["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
            assert "artifact 'model.zip' of com.example.A 1.1.0" in status["failureCause"]
            assert status["deploymentStatusDetails"]["deploymentErrorStack"] == [
                "DEPLOYMENT_FAILURE", "ARTIFACT_DOWNLOAD_ERROR", "IO_ERROR"]
            details = core.kernel.component_details(A)
            assert details is not None and (details["version"], details["state"]) == ("1.0.0", "RUNNING")
            assert core.kernel.component_pids(A) == pids

    run(scenario())


def test_deployments_run_one_at_a_time_in_order(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", lifecycle=LONG_RUN)
    recipes.add(A, "2.0.0", lifecycle=LONG_RUN)

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            first = core.deployments.create(local(recipes, {A: "1.0.0"}))
            second = core.deployments.create(local(recipes, {A: "2.0.0"}))
            assert core.deployments.status(second)["status"] == "QUEUED"
            done_second = await core.deployments.wait(second, 60)
            assert core.deployments.status(first)["status"] == "SUCCEEDED"
            assert done_second["status"] == "SUCCEEDED"
            assert core.kernel.component_details(A)["version"] == "2.0.0"
            assert [d["deploymentId"] for d in core.deployments.list()] == [first, second]

    run(scenario())


def test_bad_request_is_refused_at_create(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            with pytest.raises(ValueError, match="failureHandlingPolicy: 'Rollback' is not ROLLBACK or DO_NOTHING"):
                core.deployments.create({"failureHandlingPolicy": "Rollback"})
            assert core.deployments.list() == []

    run(scenario())


def test_a_restarted_ggsim_comes_back_with_the_same_components(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", deps={HELPER: "*"}, lifecycle=LONG_RUN, defaults={"Interval": "10"})
    recipes.add(HELPER, "1.0.0", lifecycle=LONG_RUN)
    root = tmp_path / "gg"

    async def first_life() -> str:
        async with core_at(root) as core:
            status = await deploy(core, local(recipes, {A: "1.0.0"},
                                                componentToConfiguration={A: {"MERGE": {"Interval": "42"}}}))
            assert status["status"] == "SUCCEEDED", status
            core.config.update(A, [], {"Runtime": "set over IPC"}, timestamp=core.config.timestamp(A) + 1)
            return status["deploymentId"]

    async def second_life(deployment_id: str) -> None:
        async with core_at(root) as core:
            states = await core.kernel.wait_healthy([A, HELPER], 30)
            assert states == {A: "RUNNING", HELPER: "RUNNING"}
            assert core.kernel.component_details(A)["version"] == "1.0.0"
            assert core.config.get(A, []) == {"Interval": "42", "Runtime": "set over IPC"}
            assert [(d["deploymentId"], d["status"]) for d in core.deployments.list()] == [
                (deployment_id, "SUCCEEDED")]
            assert core.deployments.groups == {"LOCAL_DEPLOYMENT": {A: "1.0.0"}}

    deployment_id = run(first_life())
    state_files = sorted(p.name for p in (root / "deployments").iterdir())
    assert "ggsim-state.json" in state_files and "ggsim-history.json" in state_files
    assert json.loads((root / "deployments" / "ggsim-state.json").read_text())["target"] == {
        A: "1.0.0", HELPER: "1.0.0"}
    run(second_life(deployment_id))


def test_cloud_deployment_body_replaces_its_targets_roots(tmp_path: Path, recipes: Any) -> None:
    recipes.add(A, "1.0.0", lifecycle=LONG_RUN, defaults={"Interval": "10"})
    recipes.add(HELPER, "1.0.0", lifecycle=LONG_RUN)
    arn = "arn:aws:iot:us-east-1:123456789012:thinggroup/cameras"

    async def scenario() -> None:
        async with core_at(tmp_path / "gg") as core:
            await deploy(core, local(recipes, {HELPER: "1.0.0"}))
            status = await deploy(core, {
                "targetArn": arn, "recipeDirectoryPath": str(recipes.dir),
                "components": {A: {"componentVersion": "1.0.0",
                                   "configurationUpdate": {"merge": '{"Interval": 60}'}}},
            })
            assert status["status"] == "SUCCEEDED", status
            assert core.config.get(A, ["Interval"]) == 60  # the cloud path keeps JSON integers
            assert core.deployments.groups == {"LOCAL_DEPLOYMENT": {HELPER: "1.0.0"},
                                                 "thinggroup/cameras": {A: "1.0.0"}}
            # A new revision for the same target without A removes A; the local group's roots stay.
            status = await deploy(core, {"targetArn": arn, "components": {}})
            assert status["status"] == "SUCCEEDED", status
            assert core.kernel.components() == [HELPER]

    run(scenario())
