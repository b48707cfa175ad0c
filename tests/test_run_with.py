"""A deployment's per-component runWith.posixUser (spec components §3.3, KernelConfigResolver's rule): the
component's steps run as that user, it is reinstalled when the user changes, the user stays through later
deployments and a restart of the core, an empty posixUser gives the default user back, and a malformed one
is refused naming the field."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ggsim.nucleus.run_with import check_run_with, needs_reinstall, next_run_with

from devsupport.roots import component_root, python_component_user
from tests.support.ggsim_cli import Ggsim, recipe, running_ggsim, write_recipes

WHO = "test.Who"


# -- the rule, as the nucleus's KernelConfigResolver applies it

def test_a_root_components_runwith_replaces_what_it_names_and_keeps_the_rest() -> None:
    current = {"a": {"posixUser": "alice", "systemResourceLimits": {"cpus": 1}}, "b": {"posixUser": "bob"}}
    requested = {"a": {"posixUser": "carol"}, "b": {"posixUser": "dave"}, "c": {"posixUser": "erin"}}
    after = next_run_with(["a", "b", "c"], current, requested, roots=["a", "c"])
    # a: the user changes and the limits go (given runWith without them); b is not a root: kept; c: new
    assert after == {"a": {"posixUser": "carol"}, "b": {"posixUser": "bob"}, "c": {"posixUser": "erin"}}


def test_an_empty_posix_user_removes_it_and_no_runwith_keeps_it() -> None:
    current = {"a": {"posixUser": "alice"}, "b": {"posixUser": "bob"}}
    after = next_run_with(["a", "b"], current, {"a": {"posixUser": ""}}, roots=["a", "b"])
    assert after == {"b": {"posixUser": "bob"}}


def test_only_a_user_change_needs_a_reinstall() -> None:
    assert needs_reinstall(None, {"posixUser": "nobody"})
    assert needs_reinstall({"posixUser": "nobody"}, None)
    assert not needs_reinstall({"posixUser": "x"}, {"posixUser": "x", "systemResourceLimits": {"cpus": 0.5}})


@pytest.mark.parametrize(("value", "field"), [
    ({"posixUser": "a:b:c"}, "components.x.runWith.posixUser"),
    ({"posixUser": 7}, "components.x.runWith.posixUser"),
    ({"systemResourceLimits": "lots"}, "components.x.runWith.systemResourceLimits"),
])
def test_a_malformed_runwith_names_its_field(value: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        check_run_with(value, "components.x.runWith")


# -- end to end, on `ggsim up` as root (ggsim switches user only then, as the nucleus does)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="ggsim switches user only when it runs as root")


@pytest.fixture
def ggsim() -> Iterator[Ggsim]:
    with component_root("root") as root, running_ggsim(root) as g:
        yield g


def users_so_far(g: Ggsim, count: int) -> list[str]:
    """The users the component's Install step ran as, once it has run ``count`` times."""
    log = g.root / "work" / WHO / "by.txt"
    deadline = time.monotonic() + 30
    while not log.exists() or len(log.read_text().split()) < count:
        assert time.monotonic() < deadline, f"{WHO} did not install {count} time(s)"
        time.sleep(0.05)
    return log.read_text().split()


@needs_root
def test_a_deployment_chooses_the_user_of_one_component(ggsim: Ggsim, tmp_path: Path) -> None:
    who = recipe(WHO, "1.0.0", {"Install": "id -un >> by.txt", "Run": "exec sleep 600"})
    recipes = write_recipes(tmp_path / "recipes", who)
    default = python_component_user().split(":")[0]

    ggsim.run("deployment", "create", "-r", str(recipes), "-m", f"{WHO}=1.0.0", "--wait")
    assert users_so_far(ggsim, 1) == [default]

    done = ggsim.json("deployment", "create", "-m", f"{WHO}=1.0.0", "--runWith", f"{WHO}:posixUser=nobody",
                      "--wait")
    assert done["status"] == "SUCCEEDED"
    assert users_so_far(ggsim, 2) == [default, "nobody"]  # reinstalled as its new user
    details = ggsim.json("component", "details", "-n", WHO)
    assert details["state"] == "RUNNING"

    # a later deployment that says nothing of runWith keeps the user, and so does a restart of the core
    ggsim.run("deployment", "create", "-m", f"{WHO}=1.0.0", "-c", json.dumps({WHO: {"MERGE": {"x": 1}}}),
              "--wait")
    assert ggsim.down() == 0
    ggsim.up()
    assert users_so_far(ggsim, 3) == [default, "nobody", "nobody"]
    effective = (ggsim.root / "config" / "effectiveConfig.yaml").read_text()
    assert "posixUser: nobody" in effective

    # an empty posixUser gives the component back to the default user
    ggsim.run("deployment", "create", "-m", f"{WHO}=1.0.0", "--runWith", f"{WHO}:posixUser=", "--wait")
    assert users_so_far(ggsim, 4) == [default, "nobody", "nobody", default]


@needs_root
def test_a_malformed_posix_user_is_refused_before_anything_changes(ggsim: Ggsim) -> None:
    result = ggsim.run("deployment", "create", "-m", f"{WHO}=1.0.0", "--runWith", f"{WHO}:posixUser=a:b:c",
                       check=False)
    assert result.returncode == 1
    assert f"componentToRunWithInfo.{WHO}.posixUser" in result.stderr and "'a:b:c'" in result.stderr
    assert ggsim.json("deployment", "list") == []


@needs_root
def test_a_rolled_back_deployment_gives_the_component_its_previous_user(ggsim: Ggsim, tmp_path: Path) -> None:
    who = recipe(WHO, "1.0.0", {"Install": "id -un >> by.txt", "Run": "exec sleep 600"})
    broken = recipe("test.Broken", "1.0.0", {"Startup": "exit 3"})
    recipes = write_recipes(tmp_path / "recipes", who, broken)
    default = python_component_user().split(":")[0]
    ggsim.run("deployment", "create", "-r", str(recipes), "-m", f"{WHO}=1.0.0", "--wait")

    failed = ggsim.run("--json", "deployment", "create", "-m", f"{WHO}=1.0.0", "-m", "test.Broken=1.0.0",
                       "--runWith", f"{WHO}:posixUser=nobody", "--failure-handling-policy", "ROLLBACK",
                       "--wait", check=False)
    details = json.loads(failed.stdout)["deploymentStatusDetails"]
    assert details["detailedDeploymentStatus"] == "FAILED_ROLLBACK_COMPLETE"
    assert users_so_far(ggsim, 3) == [default, "nobody", default]
    assert "posixUser" not in (ggsim.root / "config" / "effectiveConfig.yaml").read_text()
