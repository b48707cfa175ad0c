"""ConfigStore: the configuration a component reads, updates and subscribes to (IPC §4.5, components §4.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from ggsim.nucleus.config import ConfigStore, InvalidUpdateError, StaleUpdateError
from ggsim.nucleus.config_merge import fill_defaults, reset_configuration
from ggsim.nucleus.java_numbers import as_java_numbers

DEFAULTS = {
    "InferenceInterval": "10",
    "Camera": {"url": "rtsp://cam", "fps": 5},
    "accessControl": {"aws.greengrass.ipc.pubsub": {"a:pubsub:1": {"operations": ["*"], "resources": ["*"]}}},
}


@pytest.fixture
def store() -> ConfigStore:
    s = ConfigStore()
    s.merge("comp.A", DEFAULTS, timestamp=1)
    return s


def record(store: ConfigStore, component: str, key_path: list[str]) -> list[list[str]]:
    events: list[list[str]] = []
    store.subscribe(component, key_path, events.append)
    return events


def test_get_returns_container_or_leaf_copy(store: ConfigStore) -> None:
    assert store.get("comp.A", []) == DEFAULTS
    assert store.get("comp.A", ["Camera", "fps"]) == 5
    got = store.get("comp.A", ["Camera"])
    got["fps"] = 99
    assert store.get("comp.A", ["Camera", "fps"]) == 5


def test_get_missing_raises_key_error(store: ConfigStore) -> None:
    with pytest.raises(KeyError):
        store.get("comp.Unknown", [])
    with pytest.raises(KeyError):
        store.get("comp.A", ["Camera", "nope"])
    with pytest.raises(KeyError):
        store.get("comp.A", ["InferenceInterval", "deeper"])


def test_update_merges_and_fires_once_per_changed_leaf(store: ConfigStore) -> None:
    events = record(store, "comp.A", [])
    store.update("comp.A", ["Camera"], {"url": "rtsp://other", "fps": 5, "new": {"x": "1"}}, timestamp=100.0)
    assert store.get("comp.A", ["Camera"]) == {"url": "rtsp://other", "fps": 5, "new": {"x": "1"}}
    # fps was unchanged → no event for it
    assert sorted(events) == [["Camera", "new", "x"], ["Camera", "url"]]


def test_update_creates_missing_container(store: ConfigStore) -> None:
    store.update("comp.A", ["a", "b"], {"c": "d"}, timestamp=5.0)
    assert store.get("comp.A", ["a"]) == {"b": {"c": "d"}}


def test_update_numbers_come_back_as_doubles_like_the_java_nucleus(store: ConfigStore) -> None:
    store.update("comp.A", [], {"n": 1, "flag": True, "l": [1, 2]}, timestamp=5.0)
    assert store.get("comp.A", ["n"]) == 1.0 and isinstance(store.get("comp.A", ["n"]), float)
    assert store.get("comp.A", ["flag"]) is True
    assert store.get("comp.A", ["l"]) == [1.0, 2.0]
    plain = ConfigStore(java_numbers=False)
    plain.update("c", [], {"n": 1}, timestamp=5.0)
    assert isinstance(plain.get("c", ["n"]), int)
    assert as_java_numbers({"a": [1, {"b": 2}], "c": False}) == {"a": [1.0, {"b": 2.0}], "c": False}


def test_update_with_stale_timestamp_is_refused(store: ConfigStore) -> None:
    store.update("comp.A", ["Camera"], {"url": "new"}, timestamp=200.0)
    events = record(store, "comp.A", ["Camera"])
    with pytest.raises(StaleUpdateError, match="older than the config's latest modified timestamp"):
        store.update("comp.A", ["Camera"], {"url": "older"}, timestamp=150.0)
    assert store.get("comp.A", ["Camera", "url"]) == "new"
    assert events == []


def test_update_stale_container_still_applies_fresh_leaves(store: ConfigStore) -> None:
    store.update("comp.A", ["Camera"], {"url": "new"}, timestamp=200.0)
    # fps still carries the defaults' timestamp: it is written, then the container check fails
    with pytest.raises(StaleUpdateError):
        store.update("comp.A", ["Camera"], {"fps": 7}, timestamp=150.0)
    assert store.get("comp.A", ["Camera", "fps"]) == 7.0


def test_update_same_value_newer_timestamp_is_silent(store: ConfigStore) -> None:
    events = record(store, "comp.A", [])
    store.update("comp.A", [], {"InferenceInterval": "10"}, timestamp=300.0)
    assert events == []


def test_update_refuses_access_control(store: ConfigStore) -> None:
    with pytest.raises(InvalidUpdateError, match=r"not allowed for following fields \[accessControl\]"):
        store.update("comp.A", ["accessControl"], {"x": "y"}, timestamp=5.0)
    with pytest.raises(InvalidUpdateError, match="accessControl"):
        store.update("comp.A", [], {"accessControl": {}}, timestamp=5.0)
    with pytest.raises(InvalidUpdateError, match="ValueToMerge is required"):
        store.update("comp.A", [], None, timestamp=5.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidUpdateError, match="Timestamp is required"):
        store.update("comp.A", [], {"a": 1}, timestamp=None)  # type: ignore[arg-type]


def test_update_leaf_key_path_takes_leaf_mapping(store: ConfigStore) -> None:
    store.update("comp.A", ["InferenceInterval"], {"InferenceInterval": "20"}, timestamp=5.0)
    assert store.get("comp.A", ["InferenceInterval"]) == "20"
    with pytest.raises(InvalidUpdateError, match="is a value, not a container"):
        store.update("comp.A", ["InferenceInterval", "x"], {"y": 1}, timestamp=6.0)


def test_type_change_fires_for_removed_and_added_leaves(store: ConfigStore) -> None:
    events = record(store, "comp.A", [])
    store.update("comp.A", [], {"Camera": "off"}, timestamp=10.0)
    assert sorted(events) == [["Camera"], ["Camera", "fps"], ["Camera", "url"]]


def test_subscription_scope_and_unsubscribe(store: ConfigStore) -> None:
    cam: list[list[str]] = []
    unsubscribe = store.subscribe("comp.A", ["Camera"], cam.append)
    leaf = record(store, "comp.A", ["InferenceInterval"])
    store.update("comp.A", [], {"InferenceInterval": "30"}, timestamp=10.0)
    assert cam == [] and leaf == [["InferenceInterval"]]
    store.update("comp.A", ["Camera"], {"fps": 9}, timestamp=11.0)
    assert cam == [["Camera", "fps"]]
    unsubscribe()
    store.update("comp.A", ["Camera"], {"fps": 10}, timestamp=12.0)
    assert cam == [["Camera", "fps"]]
    with pytest.raises(KeyError):
        store.subscribe("comp.A", ["missing"], cam.append)


def test_failing_subscriber_does_not_break_others(store: ConfigStore) -> None:
    def broken(_: list[str]) -> None:
        raise RuntimeError("subscriber bug")

    store.subscribe("comp.A", [], broken)
    events = record(store, "comp.A", [])
    store.update("comp.A", [], {"InferenceInterval": "1"}, timestamp=10.0)
    assert events == [["InferenceInterval"]]


def test_defaults_do_not_replace_deployed_values(store: ConfigStore) -> None:
    # a deployment merged a value; a new recipe version's default for it must not replace it (§4.1 step 3)
    store.merge("comp.A", {"InferenceInterval": "60"}, timestamp=1000.0)
    store.merge("comp.A", {"InferenceInterval": "5", "NewKey": "n"}, timestamp=1)
    assert store.get("comp.A", ["InferenceInterval"]) == "60"
    assert store.get("comp.A", ["NewKey"]) == "n"


def test_merge_keeps_newer_device_value(store: ConfigStore) -> None:
    store.update("comp.A", [], {"InferenceInterval": "from-ipc"}, timestamp=2000.0)
    store.merge("comp.A", {"InferenceInterval": "from-deployment"}, timestamp=1500.0)
    assert store.get("comp.A", ["InferenceInterval"]) == "from-ipc"


def test_merge_follows_the_deployment_merge_rule(store: ConfigStore) -> None:
    events = record(store, "comp.A", [])
    store.merge("comp.A", {"Camera": {"fps": 7}, "List": [1], "InferenceInterval": {"seconds": 10}}, timestamp=50.0)
    store.merge("comp.A", {"List": [2, 3]}, timestamp=60.0)
    assert store.get("comp.A", ["Camera"]) == {"url": "rtsp://cam", "fps": 7}
    assert store.get("comp.A", ["List"]) == [2, 3]
    assert store.get("comp.A", ["InferenceInterval"]) == {"seconds": 10}
    assert sorted(events) == [["Camera", "fps"], ["InferenceInterval"], ["InferenceInterval", "seconds"],
                              ["List"], ["List"]]


def test_deployment_reset_written_by_replace_restores_defaults(store: ConfigStore) -> None:
    # a deployment computes RESET on the plain tree (config_merge) and writes the result with replace
    store.merge("comp.A", {"InferenceInterval": "60", "Camera": {"fps": 30, "extra": 1}}, timestamp=1000.0)
    events = record(store, "comp.A", [])
    tree = fill_defaults(reset_configuration(store.get("comp.A", []), ["/Camera"]), DEFAULTS)
    store.replace("comp.A", tree, timestamp=2000.0)
    assert store.get("comp.A", ["Camera"]) == DEFAULTS["Camera"]
    assert store.get("comp.A", ["InferenceInterval"]) == "60"
    assert sorted(events) == [["Camera", "extra"], ["Camera", "fps"]]


def test_replace_drops_missing_keys_and_keeps_newer_values(store: ConfigStore) -> None:
    store.update("comp.A", [], {"InferenceInterval": "ipc"}, timestamp=5000.0)
    events = record(store, "comp.A", [])
    store.replace("comp.A", {"InferenceInterval": "dep", "Other": [1, 2]}, timestamp=4000.0)
    assert store.get("comp.A", []) == {"InferenceInterval": "ipc", "Other": [1, 2]}
    assert sorted(events) == [
        ["Camera", "fps"],
        ["Camera", "url"],
        ["Other"],
        *[["accessControl", "aws.greengrass.ipc.pubsub", "a:pubsub:1", k] for k in ("operations", "resources")],
    ]


def test_access_control_and_components(store: ConfigStore) -> None:
    store.merge("comp.B", {"x": 1})
    assert store.components() == ["comp.A", "comp.B"]
    assert store.access_control() == {"comp.A": DEFAULTS["accessControl"]}


def test_snapshot_restore_round_trip_fires_for_differences(store: ConfigStore) -> None:
    snap = store.snapshot()
    yaml.safe_load(yaml.safe_dump(snap))  # persistable
    store.update("comp.A", [], {"InferenceInterval": "99"}, timestamp=10.0)
    store.merge("comp.B", {"x": "1"})
    events = record(store, "comp.A", [])
    store.restore(snap)
    assert store.get("comp.A", []) == DEFAULTS
    assert store.timestamp("comp.A", ["InferenceInterval"]) == 1.0
    assert store.components() == ["comp.A"]
    assert events == [["InferenceInterval"]]
    with pytest.raises(ValueError, match="configuration snapshot"):
        store.restore({"comp.A": {"value": 1}})


def test_remove_drops_component(store: ConfigStore) -> None:
    events = record(store, "comp.A", ["Camera"])
    store.remove("comp.A")
    assert store.components() == []
    assert sorted(events) == [["Camera", "fps"], ["Camera", "url"]]


def test_bad_key_path_is_a_clear_error(store: ConfigStore) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        store.get("comp.A", "Camera")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="element 3"):
        store.get("comp.A", ["Camera", 3])  # type: ignore[list-item]


def test_effective_config_written_without_loop(tmp_path: Path) -> None:
    path = tmp_path / "config" / "effectiveConfig.yaml"
    s = ConfigStore(path)
    s.set_service_info("comp.A", {"version": "1.0.0"})
    s.merge("comp.A", {"k": "v"})
    assert yaml.safe_load(path.read_text()) == {
        "services": {"comp.A": {"version": "1.0.0", "configuration": {"k": "v"}}}
    }


def test_effective_config_debounced_on_loop(tmp_path: Path) -> None:
    path = tmp_path / "effectiveConfig.yaml"

    async def scenario() -> None:
        s = ConfigStore(path, debounce=0.01)
        for i in range(20):
            s.update("comp.A", [], {"i": i}, timestamp=float(i + 2))
        assert not path.exists()  # nothing written synchronously on the loop
        await s.wait_written(timeout=5)
        assert yaml.safe_load(path.read_text())["services"]["comp.A"]["configuration"] == {"i": 19.0}

    asyncio.run(scenario())
