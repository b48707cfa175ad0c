"""The control plane on a free port with a real Mosquitto, at clock scale 60 (a roll-out minute lasts one
second), and boto3 clients pointed at it the standard way (endpoint_url, dummy credentials)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from ggcloud.clock import Clock
from ggcloud.server import ControlPlane

from tests.support.mosquitto import Mosquitto

CLOCK_SCALE = 60.0
REGION = "us-east-1"
ACCOUNT = "123456789012"
_names = itertools.count()


def unique(prefix: str) -> str:
    """moto's state lives for the whole session: every test names its things and components afresh."""
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="session")
def plane(broker: Mosquitto) -> Iterator[ControlPlane]:
    with ControlPlane(region=REGION, clock=Clock(CLOCK_SCALE), broker_url=broker.url) as cp:
        yield cp


def client(plane: ControlPlane, service: str) -> Any:
    return boto3.client(service, endpoint_url=plane.url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture(scope="session")
def gg(plane: ControlPlane) -> Any:
    return client(plane, "greengrassv2")


@pytest.fixture(scope="session")
def s3(plane: ControlPlane) -> Any:
    return client(plane, "s3")


@pytest.fixture(scope="session")
def iot(plane: ControlPlane) -> Any:
    return client(plane, "iot")


_MODEL = botocore.session.get_session().get_service_model("greengrassv2")


def assert_shape(operation: str, response: dict[str, Any]) -> dict[str, Any]:
    """The parsed response, checked by botocore's own validator against the operation's output shape in
    botocore's model (no unknown members, required ones present, types, minimum lengths) and every enum
    value against the model: what a real service's answer satisfies."""
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    shape = _MODEL.operation_model(operation).output_shape
    if shape is None:
        assert body == {}
        return body
    report = ParamValidator().validate(body, shape)
    assert not report.has_errors(), f"{operation} response does not fit its output shape: {report.generate_report()}"
    _check_enums(shape, body, operation)
    return body


def _check_enums(shape: Any, value: Any, path: str) -> None:
    if shape.type_name == "string" and shape.enum:
        assert value in shape.enum, f"{path}: {value!r} is not one of {shape.enum}"
    elif shape.type_name == "structure":
        for key, item in value.items():
            _check_enums(shape.members[key], item, f"{path}.{key}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            _check_enums(shape.member, item, f"{path}[{i}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            _check_enums(shape.value, item, f"{path}.{key}")
