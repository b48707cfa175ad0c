"""aws.greengrass.ShadowManager: local shadows over IPC, the topics it publishes on local pub/sub, its sync
with IoT Core as `synchronize` configures it, and shadows that survive a restart."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support.ggsim_cli import (
    GGSIM,
    Ggsim,
    deploy,
    recipe,
    wait_for_lines,
    wait_for_records,
    write_recipes,
)

THING = "cam-7"
PREFIX = f"$aws/things/{THING}/shadow/name/config"

COMPONENT = textwrap.dedent("""\
    import json, os, sys, threading
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    ipc = GreengrassCoreIPCClientV2()
    thing = os.environ["AWS_IOT_THING_NAME"]
    out = open(sys.argv[1], "a")
    lock = threading.Lock()
    def record(kind, **fields):
        with lock:
            out.write(json.dumps({"kind": kind, **fields}) + "\\n")
            out.flush()
    try:
        record("startup", doc=json.loads(ipc.get_thing_shadow(thing_name=thing, shadow_name="config").payload))
    except Exception as exc:
        record("startup", error=type(exc).__name__)
    def on_shadow_topic(event):
        message = event.binary_message
        record("local", topic=message.context.topic, body=json.loads(message.message))
        if message.context.topic.endswith("/update/delta"):
            record("get", doc=json.loads(ipc.get_thing_shadow(thing_name=thing, shadow_name="config").payload))
    ipc.subscribe_to_topic(topic=f"$aws/things/{thing}/shadow/name/config/update/#", on_stream_event=on_shadow_topic)
    def on_go(event):
        ipc.update_thing_shadow(thing_name=thing, shadow_name="config",
                                payload=json.dumps({"state": {"reported": {"threshold": 0.5}}}).encode())
    ipc.subscribe_to_topic(topic="test/go", on_stream_event=on_go)
    record("ready")
    threading.Event().wait()
""")

SYNC = {"aws.greengrass.ShadowManager": {"MERGE": {"synchronize": {
    "coreThing": {"classic": False, "namedShadows": ["config"]}, "direction": "betweenDeviceAndCloud"}}}}


def shadow_recipe(tmp_path: Path, seen: Path) -> dict:
    script = tmp_path / "shadow_component.py"
    script.write_text(COMPONENT)
    access = {
        "aws.greengrass.ShadowManager": {"c:shadow": {"operations": ["*"], "resources": [f"{PREFIX}"]}},
        "aws.greengrass.ipc.pubsub": {"c:pubsub": {"operations": ["aws.greengrass#SubscribeToTopic"],
                                                   "resources": ["*"]}},
    }
    doc = recipe("test.ShadowUser", "1.0.0", {"Run": f"{sys.executable} -u {script} {seen}"},
                 {"accessControl": access})
    doc["ComponentDependencies"] = {"aws.greengrass.ShadowManager": {"VersionRequirement": "^2.0.0"}}
    return doc


def first_cloud_message(ggsim: Ggsim, topic: str) -> dict:
    """What the device publishes to IoT Core on `topic`, nudging the component with test/go until it does."""
    watcher = subprocess.Popen([*GGSIM, "--root", str(ggsim.root), "--json", "iotcore", "sub", topic,
                                "--count", "1"], stdout=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(watcher.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    line = ""
    while not line and time.monotonic() < deadline:
        ggsim.run("pubsub", "pub", "test/go", "{}")
        if selector.select(timeout=0.5):
            line = watcher.stdout.readline()
    watcher.wait(10)
    return json.loads(line)


def test_shadows_publish_their_topics_sync_both_ways_and_survive_a_restart(tmp_path: Path) -> None:
    ggsim = Ggsim(tmp_path / "root")
    ggsim.root.mkdir()
    ggsim.up("--thing-name", THING)
    seen = tmp_path / "seen.jsonl"
    try:
        status = deploy(ggsim, write_recipes(tmp_path / "recipes", shadow_recipe(tmp_path, seen)),
                        "--merge", "test.ShadowUser=1.0.0", "--merge", "aws.greengrass.ShadowManager=2.3.9",
                        "--update-config", json.dumps(SYNC))
        assert status["status"] == "SUCCEEDED", status
        startup, ready = wait_for_lines(seen, 2)
        assert startup == {"kind": "startup", "error": "ResourceNotFoundError"} and ready["kind"] == "ready"

        # A local update goes to the cloud shadow's update topic, and its outcome to local pub/sub.
        to_cloud = first_cloud_message(ggsim, f"{PREFIX}/update")
        assert to_cloud["json"] == {"state": {"reported": {"threshold": 0.5}}}
        records = wait_for_records(seen, lambda rs: sum(r["kind"] == "local" for r in rs) >= 2)
        local: dict[str, dict] = {}
        for r in records:  # test/go may have been sent more than once: the first of each topic
            if r["kind"] == "local":
                local.setdefault(r["topic"], r["body"])
        accepted = local[f"{PREFIX}/update/accepted"]
        assert accepted["state"] == {"reported": {"threshold": 0.5}} and accepted["version"] == 1
        documents = local[f"{PREFIX}/update/documents"]
        assert documents["previous"] is None
        assert documents["current"] == {"state": {"reported": {"threshold": 0.5}}, "version": 1}

        # A cloud change arriving on IoT Core updates the local shadow; the component sees the delta.
        cloud = {"previous": None, "current": {"state": {"desired": {"threshold": 0.3},
                                                         "reported": {"threshold": 0.5}}, "version": 12}}
        ggsim.run("iotcore", "pub", f"{PREFIX}/update/documents", json.dumps(cloud))
        records = wait_for_records(seen, lambda rs: any(r["kind"] == "get" for r in rs))
        delta = [r["body"] for r in records if r.get("topic") == f"{PREFIX}/update/delta"]
        assert [d["state"] for d in delta] == [{"threshold": 0.3}]
        got = [r["doc"] for r in records if r["kind"] == "get"]
        assert got[0]["state"] == {"desired": {"threshold": 0.3}, "reported": {"threshold": 0.5},
                                   "delta": {"threshold": 0.3}}
        from_cloud = [r["body"] for r in records
                      if r.get("topic") == f"{PREFIX}/update/accepted" and "desired" in r["body"]["state"]]
        assert from_cloud[0]["state"] == cloud["current"]["state"]
        assert got[0]["version"] == from_cloud[0]["version"] > accepted["version"]
    finally:
        ggsim.down()

    # The shadow is kept under the root: the component reads it back when ggsim comes up again.
    ggsim.up("--thing-name", THING)
    try:
        records = wait_for_records(seen, lambda rs: sum(r["kind"] == "startup" for r in rs) >= 2)
        restarted = [r for r in records if r["kind"] == "startup"][-1]
        assert restarted["doc"]["state"]["desired"] == {"threshold": 0.3}
        assert restarted["doc"]["version"] >= from_cloud[0]["version"]
    finally:
        ggsim.down()
