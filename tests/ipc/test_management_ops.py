"""UpdateState, component management, shadows, tokens, metrics, and unsupported operations over IPC."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from tests.ipc.conftest import Core
from tests.support.agents import IpcCallError

CLI_POLICY = {"aws.greengrass.Cli": {"p": {"operations": ["*"], "resources": ["*"]}}}
SHADOW_POLICY = {"aws.greengrass.ShadowManager": {"p": {"operations": ["*"], "resources": [
    "$aws/things/cam-1/shadow", "$aws/things/cam-1/shadow/name/*", "cam-1"]}}}


def test_update_state_reaches_the_lifecycle(core: Core, api: str) -> None:
    comp = core.component("test.Starting", {}, api=api)
    comp.call("update_state", {"state": "RUNNING"})
    comp.call("update_state", {"state": "ERRORED"})
    assert core.host.states["test.Starting"] == ["RUNNING", "ERRORED"]


def test_component_management_needs_the_cli_policy(core: Core, api: str) -> None:
    admin = core.component("test.Admin", {"accessControl": CLI_POLICY}, api=api)
    plain = core.component("test.Plain", {"x": 1}, api=api)
    names = {c["componentName"] for c in admin.call("list_components")["components"]}
    assert {"test.Admin", "test.Plain"} <= names
    details = admin.call("get_component_details", {"componentName": "test.Plain"})["componentDetails"]
    assert details["configuration"] == {"x": 1} and details["state"] == "RUNNING"
    assert admin.call("restart_component", {"componentName": "test.Plain"}) == {"restartStatus": "SUCCEEDED"}
    assert core.host.restarted == ["test.Plain"]
    with pytest.raises(IpcCallError) as err:
        admin.call("get_component_details", {"componentName": "no.Such"})
    assert err.value.type == "ResourceNotFoundError" and "no.Such" in err.value.message
    with pytest.raises(IpcCallError) as err:
        plain.call("list_components")
    assert err.value.type == "UnauthorizedError" and "ListComponents" in err.value.message


def test_local_shadows(core: Core, api: str) -> None:
    comp = core.component("test.Shadow", {"accessControl": SHADOW_POLICY}, api=api)
    doc = {"state": {"desired": {"threshold": 0.3}, "reported": {"threshold": 0.5}}}
    accepted = json.loads(base64.b64decode(comp.call("update_thing_shadow", {
        "thingName": "cam-1", "shadowName": "config", "payload": base64.b64encode(json.dumps(doc).encode()).decode()
    })["payload"]))
    assert accepted["version"] == 1
    shadow = json.loads(base64.b64decode(comp.call("get_thing_shadow", {"thingName": "cam-1",
                                                                        "shadowName": "config"})["payload"]))
    assert shadow["state"]["delta"] == {"threshold": 0.3}
    listed = comp.call("list_named_shadows_for_thing", {"thingName": "cam-1"})
    assert listed["results"] == ["config"]
    with pytest.raises(IpcCallError) as err:
        comp.call("update_thing_shadow", {"thingName": "cam-1", "shadowName": "config", "payload": base64.b64encode(
            json.dumps({"state": {"reported": {"a": 1}}, "version": 7}).encode()).decode()})
    assert err.value.type == "ConflictError"
    comp.call("delete_thing_shadow", {"thingName": "cam-1", "shadowName": "config"})
    with pytest.raises(IpcCallError) as err:
        comp.call("get_thing_shadow", {"thingName": "cam-1", "shadowName": "config"})
    assert err.value.type == "ResourceNotFoundError"
    with pytest.raises(IpcCallError) as err:
        comp.call("get_thing_shadow", {"thingName": "cam-2", "shadowName": ""})
    assert err.value.type == "UnauthorizedError" and "$aws/things/cam-2/shadow" in err.value.message


def test_validate_authorization_token_is_for_stream_manager_only(core: Core) -> None:
    other = core.component("test.Other", {})
    stream_manager = core.component("aws.greengrass.StreamManager", {})
    token = core.call_soon(lambda: core.host.tokens.issue("test.Other"))
    assert stream_manager.call("validate_authorization_token", {"token": token}) == {"isValid": True}
    with pytest.raises(IpcCallError) as err:
        stream_manager.call("validate_authorization_token", {"token": "NOTATOKEN"})
    assert err.value.type == "InvalidTokenError"
    with pytest.raises(IpcCallError) as err:
        other.call("validate_authorization_token", {"token": token})
    assert err.value.type == "UnauthorizedError"


def test_put_component_metric(core: Core) -> None:
    policy = {"aws.greengrass.ipc.componentmetric": {"p": {"operations": ["*"], "resources": ["fps"]}}}
    aws = core.component("aws.greengrass.Example", {"accessControl": policy})
    mine = core.component("test.Mine", {"accessControl": policy})
    aws.call("put_component_metric", {"metrics": [{"name": "fps", "unit": "COUNT_PER_SECOND", "value": 29.5}]})
    recorded = core.server.services["metrics"].recorded
    assert [(c, n, u, v) for _, c, n, u, v in recorded] == [("aws.greengrass.Example", "fps", "COUNT_PER_SECOND",
                                                            29.5)]
    with pytest.raises(IpcCallError) as err:
        aws.call("put_component_metric", {"metrics": [{"name": "fps", "unit": "FURLONGS", "value": 1}]})
    assert err.value.type == "InvalidArgumentsError" and "unit" in err.value.message
    with pytest.raises(IpcCallError) as err:
        mine.call("put_component_metric", {"metrics": [{"name": "fps", "unit": "COUNT", "value": 1}]})
    assert err.value.type == "UnauthorizedError"


def test_operations_greengrass_knows_but_ggsim_does_not_serve(core: Core) -> None:
    comp = core.component("test.Any", {})
    with pytest.raises(IpcCallError) as err:
        comp.call("cancel_local_deployment", {"deploymentId": "x"})
    assert err.value.type == "ServiceError"
    assert err.value.message == "Operation aws.greengrass#CancelLocalDeployment is not supported by Greengrass"


def test_an_operation_unknown_to_the_nucleus_closes_the_stream(core: Core) -> None:
    # SubscribeToIoTCoreConnectionStatus is in the Python model but not in the nucleus's (spec §3.5):
    # the nucleus answers without a shape, which the SDK surfaces as a closed stream.
    comp = core.component("test.Any", {})
    with pytest.raises(IpcCallError) as err:
        comp.call("subscribe_to_iot_core_connection_status", {})
    assert err.value.type == "StreamClosedError"
    # The connection is still usable afterwards.
    assert comp.call("get_configuration", {"componentName": "test.Any"})["componentName"] == "test.Any"


def test_component_update_notices_and_deferral(core: Core) -> None:
    comp = core.component("test.Deferring", {})
    stream, _ = comp.call("subscribe_to_component_updates", {})
    hub = core.host.update_hub
    pending = asyncio.run_coroutine_threadsafe(hub.notify_pre_update("dep-9", timeout=10), core.loop)
    event = comp.next_event(stream)["event"]
    assert event == {"preUpdateEvent": {"deploymentId": "dep-9", "isGgcRestarting": False}}
    comp.call("defer_component_update", {"deploymentId": "dep-9", "recheckAfterMs": 0})
    pending.result(10)
    core.call_soon(lambda: hub.notify_post_update("dep-9"))
    assert comp.next_event(stream)["event"] == {"postUpdateEvent": {"deploymentId": "dep-9"}}
    with pytest.raises(IpcCallError) as err:
        comp.call("defer_component_update", {"deploymentId": "dep-9", "recheckAfterMs": 0})
    assert err.value.type == "ServiceError"


def test_local_deployments_are_validated_by_the_nucleus_and_queued(core: Core, tmp_path: Path) -> None:
    admin = core.component("test.Admin", {"accessControl": CLI_POLICY})
    created = admin.call("create_local_deployment", {"rootComponentVersionsToAdd": {"a.B": "1.0.0"}})
    status = admin.call("get_local_deployment_status", {"deploymentId": created["deploymentId"]})["deployment"]
    assert (status["deploymentId"], status["status"]) == (created["deploymentId"], "QUEUED")
    assert [d["deploymentId"] for d in admin.call("list_local_deployments")["localDeployments"]] == [
        created["deploymentId"]]
    missing = tmp_path / "missing"
    with pytest.raises(IpcCallError) as err:
        admin.call("create_local_deployment", {"recipeDirectoryPath": str(missing)})
    assert err.value.type == "InvalidRecipeDirectoryPathError"
    assert err.value.message == f"recipe directory {missing} does not exist or is not a folder"
    with pytest.raises(IpcCallError) as err:
        admin.call("create_local_deployment", {"artifactsDirectoryPath": str(missing)})
    assert err.value.type == "InvalidArtifactsDirectoryPathError"
    with pytest.raises(IpcCallError) as err:
        admin.call("create_local_deployment", {"rootComponentVersionsToAdd": {"a.B": "one"}})
    assert err.value.type == "InvalidArgumentsError"
    assert err.value.message.startswith("rootComponentVersionsToAdd.a.B: 'one' is not a component version")
    assert len(core.host.deployments.queued) == 1


def test_pause_and_resume_reach_the_kernel(core: Core) -> None:
    policy = {"aws.greengrass.ipc.lifecycle": {"p": {"operations": ["*"], "resources": ["test.Paused"]}}}
    comp = core.component("test.Pauser", {"accessControl": policy})
    core.component("test.Paused", {})
    comp.call("pause_component", {"componentName": "test.Paused"})
    assert core.host.paused == {"test.Paused"}
    comp.call("resume_component", {"componentName": "test.Paused"})
    assert core.host.paused == set()
    with pytest.raises(IpcCallError) as err:
        comp.call("pause_component", {"componentName": "test.Other"})
    assert err.value.type == "UnauthorizedError"
