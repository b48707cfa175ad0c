"""Message contracts: recorded messages of each released schema stay readable; other majors are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from greenlens_common import messages
from greenlens_common.messages import MessageError, UnsupportedSchemaError, validate
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

CONTRACTS = Path(__file__).parent / "contracts"
RECORDED = sorted(CONTRACTS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_every_schema_has_a_recorded_message() -> None:
    recorded = {messages.schema_of(_load(p))[0] for p in RECORDED}
    assert recorded == set(messages.SCHEMAS)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_recorded_message_is_accepted(path: Path) -> None:
    msg = _load(path)
    assert validate(msg) == messages.schema_of(msg)[0]


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_same_major_with_unknown_fields_and_a_minor_is_accepted(path: Path) -> None:
    msg = _load(path)
    msg["added_in_a_later_release"] = {"anything": [1, 2, 3]}
    msg["schema"] = msg["schema"] + ".7"
    for value in msg.values():
        if isinstance(value, dict):
            value["nested_extra"] = 1
    validate(msg)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_next_major_is_rejected_with_a_clear_error(path: Path) -> None:
    msg = _load(path)
    name = messages.schema_of(msg)[0]
    msg["schema"] = f"{name}/2"
    with pytest.raises(UnsupportedSchemaError, match=rf"'{name}/2' has major version 2; .* reads {name}/1 only"):
        validate(msg)


def test_unknown_or_missing_schema_is_rejected_clearly() -> None:
    with pytest.raises(UnsupportedSchemaError, match="'greenlens.audio/1' is unknown: expected one of"):
        validate({"schema": "greenlens.audio/1"})
    with pytest.raises(MessageError, match="no 'schema' string"):
        validate({"seq": 1})
    with pytest.raises(MessageError, match="not of the form"):
        validate({"schema": "frame-v1"})
    with pytest.raises(MessageError, match="expected a JSON object"):
        validate([1, 2])  # type: ignore[arg-type]


def test_expecting_one_kind_refuses_another() -> None:
    with pytest.raises(UnsupportedSchemaError, match="expected a greenlens.result/1 message"):
        validate(_load(CONTRACTS / "greenlens.frame.1.json"), expect=messages.RESULT)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.pop("seq"), r"\(message\): 'seq' is a required property"),
        (lambda m: m.update(seq=0), "field seq: 0 is less than the minimum of 1"),
        (lambda m: m.update(format="rgb24"), "field format: 'bgr24' was expected"),
        (lambda m: m["ring"].update(slot=-1), "field ring/slot: -1 is less than the minimum"),
        (lambda m: m.update(jpeg="AAAA"), "is valid under each of"),  # both ring and jpeg
        (lambda m: m.pop("ring"), "is not valid under any of the given schemas"),  # neither
    ],
)
def test_bad_frame_messages_name_the_field(mutate: Any, field: str) -> None:
    msg = copy.deepcopy(_load(CONTRACTS / "greenlens.frame.1.json"))
    mutate(msg)
    with pytest.raises(MessageError, match=field):
        validate(msg)


def test_bad_result_names_the_field() -> None:
    msg = _load(CONTRACTS / "greenlens.result.1.json")
    msg["verdict"]["score"] = 3.5
    with pytest.raises(MessageError, match="field verdict/score: 3.5 is greater than the maximum of 1"):
        validate(msg)
    msg = _load(CONTRACTS / "greenlens.result.1.json")
    msg["detections"] = [{"label": "face", "score": 0.5, "box": [0, 0, 1]}]
    with pytest.raises(MessageError, match="field detections/0/box"):
        validate(msg)
    msg["detections"] = [{"label": "face", "score": 0.5, "box": [0, 0, 1, 480]}]
    with pytest.raises(MessageError, match="field detections/0/box/3: 480 is greater than the maximum of 1"):
        validate(msg)


def test_builders_produce_valid_messages() -> None:
    ring = messages.frame_message(source="synthetic", seq=3, captured_at=1.5, width=64, height=48, dropped=1,
                                  ring=("greenlens-frames", 2, 3))
    assert ring["ring"] == {"name": "greenlens-frames", "slot": 2, "slot_seq": 3}
    inline = messages.frame_message(source="synthetic", seq=4, captured_at=2.0, width=64, height=48, dropped=0,
                                    jpeg=b"\xff\xd8jpegbytes\xff\xd9")
    assert messages.frame_jpeg(inline) == b"\xff\xd8jpegbytes\xff\xd9"
    with pytest.raises(MessageError, match="exactly one of"):
        messages.frame_message(source="s", seq=1, captured_at=1, width=1, height=1, dropped=0)
    result = messages.result_message(
        seq=4, captured_at=2.0, source="synthetic",
        model={"name": "m", "version": "1.0.0", "sha256": "0" * 64, "task": "detection"},
        verdict={"label": "face", "present": True, "score": 0.8},
        detections=[{"label": "face", "score": 0.8, "box": [0, 0.25, 0.5, 1]}], timings_ms={"inference": 4},
    )
    assert result["detections"][0]["box"] == [0.0, 0.25, 0.5, 1.0] and result["top_k"] == []
    event = messages.event_message(component="greenlens.Capture", kind="source_lost", detail="x",
                                   counters={"outages": 1})
    assert validate(event) == messages.EVENT
    for msg in (ring, inline, result, event):
        assert len(json.dumps(msg)) < 10_000  # nucleus lite's IPC frame cap


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON value (dict keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5, 1.5]) | st.text(max_size=70)
    | st.sampled_from(["", "bgr24", "greenlens.frame/1", "greenlens.result/1.3", "a/b", "0" * 64, "face"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_fast_validator_and_jsonschema_agree_on_every_mutation_of_a_recorded_message(data: Any) -> None:
    """validate() accepts through a compiled validator and explains refusals through jsonschema: both must
    draw the line in the same place, or a bad message would pass (or a good one fail) on the hot path."""
    msg = copy.deepcopy(_load(data.draw(st.sampled_from(RECORDED))))
    name = messages.schema_of(msg)[0]
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(msg) if p != ("schema",)]
        path = data.draw(st.sampled_from(paths))
        parent = msg
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_JSON_VALUES)
    fast_ok = True
    try:
        messages._FAST[name](copy.deepcopy(msg))
    except fastjsonschema.JsonSchemaException:
        fast_ok = False
    assert fast_ok == messages._VALIDATORS[name].is_valid(msg), msg


def test_schema_files_are_written_from_the_one_definition_and_read_the_recorded_messages(tmp_path: Path) -> None:
    assert messages.main(["--write-schemas", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{name}.1.schema.json" for name in messages.SCHEMAS)
    for path in RECORDED:
        msg = _load(path)
        name = messages.schema_of(msg)[0]
        schema = json.loads((tmp_path / f"{name}.1.schema.json").read_text())
        assert schema == messages.SCHEMAS[name]
        Draft202012Validator.check_schema(schema)
        assert Draft202012Validator(schema).is_valid(msg)
        msg["schema"] = f"{name}/2"
        assert not Draft202012Validator(schema).is_valid(msg)
