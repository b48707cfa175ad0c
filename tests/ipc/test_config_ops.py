"""Configuration over IPC with the real client: spec IPC §4.5."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from tests.ipc.conftest import Core
from tests.support.agents import IpcCallError


def now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def test_get_configuration_of_self_and_of_another_component(core: Core, api: str) -> None:
    a = core.component("test.A", {"camera": {"fps": 15, "source": "rtsp://x"}, "threshold": 0.5}, api=api)
    core.component("test.B", {"mode": "fast"})
    assert a.call("get_configuration", {"keyPath": ["camera"]}) == {
        "componentName": "test.A", "value": {"fps": 15, "source": "rtsp://x"}}
    # A leaf comes back as a one-entry object.
    assert a.call("get_configuration", {"keyPath": ["threshold"]})["value"] == {"threshold": 0.5}
    whole = a.call("get_configuration", {})
    assert whole["value"]["camera"]["fps"] == 15
    assert a.call("get_configuration", {"componentName": "test.B", "keyPath": []}) == {
        "componentName": "test.B", "value": {"mode": "fast"}}
    with pytest.raises(IpcCallError) as err:
        a.call("get_configuration", {"keyPath": ["nope"]})
    assert err.value.type == "ResourceNotFoundError" and err.value.message == "Key not found"


def test_update_configuration_notifies_subscribers_in_other_processes(core: Core, api: str) -> None:
    owner = core.component("test.Owner", {"threshold": 0.5, "labels": {"of_interest": "hotdog"}}, api=api)
    watcher = core.component("test.Watcher", {}, api=api)
    stream, _ = watcher.call("subscribe_to_configuration_update",
                             {"componentName": "test.Owner", "keyPath": []})
    owner.call("update_configuration", {"keyPath": ["labels"], "valueToMerge": {"of_interest": "face"},
                                        "timestamp": now() + 1})
    event = watcher.next_event(stream)["event"]
    assert event == {"configurationUpdateEvent": {"componentName": "test.Owner",
                                                  "keyPath": ["labels", "of_interest"]}}
    assert owner.call("get_configuration", {"keyPath": ["labels"]})["value"] == {"of_interest": "face"}


def test_update_with_an_older_timestamp_fails_the_condition_check(core: Core) -> None:
    owner = core.component("test.Owner", {})
    later = now() + 10
    owner.call("update_configuration", {"keyPath": [], "valueToMerge": {"x": 1}, "timestamp": later})
    with pytest.raises(IpcCallError) as err:
        owner.call("update_configuration", {"keyPath": [], "valueToMerge": {"x": 2}, "timestamp": later - 5})
    assert err.value.type == "FailedUpdateConditionCheckError"
    # Numbers come back as doubles, as from the Java nucleus.
    assert owner.call("get_configuration", {"keyPath": ["x"]})["value"] == {"x": 1.0}


def test_access_control_cannot_be_changed_over_ipc(core: Core) -> None:
    owner = core.component("test.Owner", {})
    with pytest.raises(IpcCallError) as err:
        owner.call("update_configuration", {"keyPath": [], "timestamp": now(),
                                            "valueToMerge": {"accessControl": {"x": {}}}})
    assert err.value.type == "InvalidArgumentsError"
    assert "accessControl" in err.value.message


def test_subscribing_to_a_missing_key_is_not_found(core: Core) -> None:
    owner = core.component("test.Owner", {"a": 1})
    with pytest.raises(IpcCallError) as err:
        owner.call("subscribe_to_configuration_update", {"keyPath": ["missing"]})
    assert err.value.type == "ResourceNotFoundError"


def test_validate_configuration_round_trip(core: Core) -> None:
    comp = core.component("test.Validating", {"threshold": 0.5})
    stream, _ = comp.call("subscribe_to_validate_configuration_updates", {})
    hub = core.host.validation_hub
    pending = asyncio.run_coroutine_threadsafe(
        hub.validate("test.Validating", {"threshold": 2.0}, "dep-1", timeout=10), core.loop)
    event = comp.next_event(stream)["event"]
    assert event == {"validateConfigurationUpdateEvent": {"configuration": {"threshold": 2.0},
                                                          "deploymentId": "dep-1"}}
    comp.call("send_configuration_validity_report", {"configurationValidityReport": {
        "status": "REJECTED", "deploymentId": "dep-1", "message": "threshold must be <= 1"}})
    assert pending.result(10) == ("REJECTED", "threshold must be <= 1")
    with pytest.raises(IpcCallError) as err:
        comp.call("send_configuration_validity_report", {"configurationValidityReport": {
            "status": "ACCEPTED", "deploymentId": "dep-2"}})
    assert err.value.message == "Validation request either timed out or was never made"
