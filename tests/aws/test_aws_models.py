"""The stand-ins' models without processes: sync directions, rejected topics, secrets files, the endpoint."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ggsim.aws.credentials import CredentialsServer, StaticCredentials
from ggsim.aws.secrets import SecretFileError, SecretNotFoundError, load_secrets_file
from ggsim.aws.shadows import ShadowError, ShadowManager, SyncTargets
from ggsim.iotcore import MqttMessage
from ggsim.iotcore.broker import EmbeddedBroker


class Configuration:
    def __init__(self, tree: dict) -> None:
        self.tree = tree

    def get(self, component: str, key_path: list[str] | None = None) -> dict:
        return self.tree


def test_sync_directions_and_which_shadows() -> None:
    sync = SyncTargets.from_configuration({"synchronize": {
        "coreThing": {"classic": True, "namedShadows": ["a"]},
        "shadowDocuments": [{"thingName": "other", "classic": False, "namedShadows": ["b"]}],
        "direction": "deviceToCloud"}}, "core")
    assert sync.shadows == {("core", ""), ("core", "a"), ("other", "b")}
    assert sync.to_cloud(("core", "a")) and not sync.from_cloud(("core", "a"))
    assert not sync.to_cloud(("other", ""))
    cloud_only = SyncTargets.from_configuration({"synchronize": {"coreThing": {}, "direction": "cloudToDevice"}},
                                                "core")
    assert cloud_only.from_cloud(("core", "")) and not cloud_only.to_cloud(("core", ""))


def test_rejections_are_published_and_a_synced_delete_reaches_the_cloud(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[tuple[str, dict]], list[MqttMessage]]:
        broker = EmbeddedBroker()
        cloud: list[MqttMessage] = []
        broker.observe(cloud.append)
        shadows = ShadowManager(tmp_path, "core", broker, Configuration({"synchronize": {"coreThing": {}}}))
        local: list[tuple[str, dict]] = []
        shadows.attach_local_pubsub(lambda topic, payload: local.append((topic, json.loads(payload))))
        await shadows.start()
        shadows.update("core", "", {"state": {"desired": {"on": True}}, "clientToken": "t1"})
        with pytest.raises(ShadowError, match="Version conflict"):
            shadows.update("core", "", {"state": {"desired": {"on": False}}, "version": 7, "clientToken": "t2"})
        shadows.delete("core", "")
        with pytest.raises(ShadowError, match="No shadow exists"):
            shadows.get("core", "")
        await shadows.stop()
        return local, cloud

    local, cloud = asyncio.run(scenario())
    topics = [topic for topic, _ in local]
    assert topics == ["$aws/things/core/shadow/update/accepted", "$aws/things/core/shadow/update/delta",
                      "$aws/things/core/shadow/update/documents", "$aws/things/core/shadow/update/rejected",
                      "$aws/things/core/shadow/delete/accepted", "$aws/things/core/shadow/get/rejected"]
    rejected = dict(local)["$aws/things/core/shadow/update/rejected"]
    assert rejected["code"] == 409 and rejected["clientToken"] == "t2"
    assert dict(local)["$aws/things/core/shadow/get/rejected"]["code"] == 404
    assert [m.topic for m in cloud] == ["$aws/things/core/shadow/update", "$aws/things/core/shadow/delete"]


@pytest.mark.parametrize(("text", "expected"), [
    ("secrets: {}", "expected a mapping with a 'secrets' list"),
    ("secrets:\n  - secretString: x\n", r"secrets\[0\].name is required"),
    ("secrets:\n  - {name: a, secretString: x}\n  - {name: a, secretString: y}\n", "two secrets have the name 'a'"),
    ("secrets:\n  - {name: a, secretBinary: '%%%'}\n", r"secrets\[0\].secretBinary must be base64"),
    ("secrets:\n  - {name: a, versions: []}\n", r"secrets\[0\].versions must be a non-empty list"),
])
def test_a_bad_secrets_file_names_the_entry(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(text)
    with pytest.raises(SecretFileError, match=expected):
        load_secrets_file(path, "us-east-1")


def test_secret_lookup_errors(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text("secrets:\n  - {name: a, secretString: x}\n")
    store = load_secrets_file(path, "eu-west-1")
    assert store.arn_of("a") == "arn:aws:secretsmanager:eu-west-1:000000000000:secret:a"
    with pytest.raises(SecretNotFoundError, match="Version Id 9 not found"):
        store.get("a", version_id="9")
    with pytest.raises(SecretNotFoundError, match="Secret not found b"):
        store.get("b")


def test_the_endpoint_answers_errors_as_http_statuses() -> None:
    async def scenario() -> dict[str, int]:
        codes: dict[str, int] = {}
        for name, credentials in (("none", None), ("some", StaticCredentials("AKID", "secret"))):
            server = CredentialsServer(credentials, lambda token: "c" if token == "good" else None)
            await server.start()
            base = f"http://127.0.0.1:{server.port}"
            for label, url, method in ((f"{name} ok", server.full_uri, "GET"), (f"{name} path", base + "/x", "GET"),
                                       (f"{name} method", server.full_uri, "POST")):
                request = urllib.request.Request(url, method=method, headers={"Authorization": "good"})
                codes[label] = await asyncio.to_thread(_status, request)
            await server.stop()
        return codes

    assert asyncio.run(scenario()) == {"none ok": 500, "none path": 404, "none method": 405,
                                       "some ok": 200, "some path": 404, "some method": 405}


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
