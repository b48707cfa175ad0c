"""`ggsim` as a person or a script uses it: a real core in its own process, commands from others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devsupport.roots import component_root
from tests.support.ggsim_cli import GGSIM, Ggsim, recipe, running_ggsim, write_recipes

ECHO = textwrap.dedent("""\
    import json, os, sys
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import QOS
    ipc = GreengrassCoreIPCClientV2()
    thing = os.environ["AWS_IOT_THING_NAME"]
    def on_event(event):
        body = dict(event.json_message.message, svcuid_set=bool(os.environ.get("SVCUID")))
        ipc.publish_to_iot_core(topic_name=f"pong/{thing}", qos=QOS.AT_LEAST_ONCE, payload=json.dumps(body).encode())
    ipc.subscribe_to_topic(topic="ping", on_stream_event=on_event)
    print("echo ready", flush=True)
    ipc.update_state(state="RUNNING")
    import threading; threading.Event().wait()
""")


@pytest.fixture
def ggsim() -> Iterator[Ggsim]:
    # a root the component user can reach; the echo component runs this Python (devsupport.roots)
    with component_root("root") as root, running_ggsim(root, "--thing-name", "cam-7") as g:
        yield g


def echo_recipe(tmp_path: Path) -> dict:
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    access = {"aws.greengrass.ipc.pubsub": {"echo:sub": {"operations": ["aws.greengrass#SubscribeToTopic"],
                                                         "resources": ["ping"]}},
              "aws.greengrass.ipc.mqttproxy": {"echo:pub": {"operations": ["aws.greengrass#PublishToIoTCore"],
                                                            "resources": ["pong/{iot:thingName}", "pong/+"]}}}
    return recipe("test.Echo", "1.0.0", {"Run": f"{sys.executable} -u {script}"}, {"accessControl": access})


def test_deploy_watch_and_talk_to_a_component(ggsim: Ggsim, tmp_path: Path) -> None:
    recipes = write_recipes(tmp_path / "recipes", echo_recipe(ggsim.root.parent))  # readable by the component
    created = ggsim.json("deployment", "create", "--recipeDir", str(recipes), "--merge", "test.Echo=1.0.0",
                         "--wait")
    assert created["status"] == "SUCCEEDED"
    components = {c["componentName"]: c for c in ggsim.json("component", "list")}
    assert components["test.Echo"]["state"] == "RUNNING" and components["test.Echo"]["version"] == "1.0.0"

    watcher = subprocess.Popen([*GGSIM, "--root", str(ggsim.root), "--json", "iotcore", "sub", "pong/#",
                                "--count", "1"], stdout=subprocess.PIPE, text=True)
    # Publish until the watcher has subscribed and the echo answered (each ping is answered once).
    deadline = time.monotonic() + 30
    line = ""
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(watcher.stdout, selectors.EVENT_READ)
    while not line and time.monotonic() < deadline:
        ggsim.run("pubsub", "pub", "ping", '{"n": 1}')
        if selector.select(timeout=0.5):
            line = watcher.stdout.readline()
    watcher.wait(10)
    message = json.loads(line)
    assert message["topic"] == "pong/cam-7"
    assert message["json"] == {"n": 1.0, "svcuid_set": True}

    log = ggsim.run("logs", "test.Echo").stdout
    assert "echo ready" in log and "[INFO]" in log


def test_restart_stop_and_exit_codes(ggsim: Ggsim, tmp_path: Path) -> None:
    sleeper = recipe("test.Sleeper", "1.0.0", {"Run": "echo started $$; exec sleep 600"})
    broken = recipe("test.Broken", "1.0.0", {"Startup": "echo cannot start >&2; exit 3"})
    recipes = write_recipes(tmp_path / "recipes", sleeper, broken)
    ggsim.run("deployment", "create", "-r", str(recipes), "-m", "test.Sleeper=1.0.0", "--wait")

    assert ggsim.json("component", "restart", "-n", "test.Sleeper") == {"test.Sleeper": "SUCCEEDED"}
    assert ggsim.json("component", "stop", "-n", "test.Sleeper") == {"test.Sleeper": "SUCCEEDED"}

    failed = ggsim.run("--json", "deployment", "create", "-r", str(recipes), "-m", "test.Broken=1.0.0",
                       "--wait", "--failure-handling-policy", "ROLLBACK", check=False)
    assert failed.returncode == 1
    status = json.loads(failed.stdout)
    assert status["status"] == "FAILED"
    names = {c["componentName"] for c in ggsim.json("component", "list")}
    assert "test.Broken" not in names  # rolled back
    history = ggsim.json("deployment", "list")
    assert [d["status"] for d in history] == ["SUCCEEDED", "FAILED"]

    bad = ggsim.run("deployment", "create", "-m", "no-version", check=False)
    assert bad.returncode == 2 and "NAME=VERSION" in bad.stderr
    missing = ggsim.run("component", "details", "-n", "no.Such", check=False)
    assert missing.returncode == 1 and "no.Such" in missing.stderr


def test_not_running_is_exit_code_3(tmp_path: Path) -> None:
    result = Ggsim(tmp_path / "nothing").run("component", "list", check=False)
    assert result.returncode == 3 and "not running" in result.stderr


def test_a_restarted_core_brings_its_components_back(ggsim: Ggsim, tmp_path: Path) -> None:
    marker = ggsim.root.parent / "starts.txt"  # the component user writes it
    marker.touch(mode=0o666)
    marker.chmod(0o666)
    counting = recipe("test.Counting", "1.0.0", {"Run": f"echo start >> {marker}; exec sleep 600"},
                      {"greeting": "hello"})
    recipes = write_recipes(tmp_path / "recipes", counting)
    ggsim.run("deployment", "create", "-r", str(recipes), "-m", "test.Counting=1.0.0",
              "-c", json.dumps({"test.Counting": {"MERGE": {"greeting": "bonjour"}}}), "--wait")
    assert ggsim.down() == 0
    assert not (ggsim.root / "cli_ipc_info" / "ggsim.json").exists()
    ggsim.up()
    deadline = time.monotonic() + 30
    while marker.read_text().count("start") < 2:
        assert time.monotonic() < deadline, "the component did not start again"
        time.sleep(0.1)
    details = ggsim.json("component", "details", "-n", "test.Counting")
    assert details["state"] == "RUNNING"
    assert details["configuration"] == {"greeting": "bonjour"}
    assert os.path.exists(ggsim.root / "config" / "effectiveConfig.yaml")
