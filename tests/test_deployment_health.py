"""A deployment watches the components it changed, as the nucleus does, and reports its errors as it does.

Everything through `ggsim` commands against a core running in its own process, with real components.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ggsim_cli import Ggsim, recipe, running_ggsim, write_recipes

SERVICE = "test.Service"
KEEPER = "test.Keeper"


@pytest.fixture
def ggsim(tmp_path: Path) -> Iterator[Ggsim]:
    with running_ggsim(tmp_path / "root") as g:
        yield g


def deploy(ggsim: Ggsim, recipes: Path, *args: str) -> dict:
    result = ggsim.run("--json", "deployment", "create", "-r", str(recipes), *args, "--wait", check=False)
    return json.loads(result.stdout)


def components(ggsim: Ggsim) -> dict[str, dict]:
    return {c["componentName"]: c for c in ggsim.json("component", "list")}  # type: ignore[union-attr]


def test_a_version_whose_run_crashes_right_away_fails_and_is_rolled_back(ggsim: Ggsim, tmp_path: Path) -> None:
    good = recipe(SERVICE, "1.0.0", {"Run": "exec sleep 600"}, {"mode": "good"})
    # RUNNING for a moment after each start, then exits 1: the nucleus's once-a-second look catches it.
    crashing = recipe(SERVICE, "2.0.0", {"Run": "sleep 0.2; exit 1"}, {"mode": "crashing"})
    recipes = write_recipes(tmp_path / "recipes", good, crashing)
    assert deploy(ggsim, recipes, "-m", f"{SERVICE}=1.0.0")["status"] == "SUCCEEDED"

    status = deploy(ggsim, recipes, "-m", f"{SERVICE}=2.0.0", "-fp", "ROLLBACK")

    assert status["status"] == "FAILED"
    details = status["deploymentStatusDetails"]
    assert details["detailedDeploymentStatus"] == "FAILED_ROLLBACK_COMPLETE"
    assert details["deploymentErrorStack"] == ["DEPLOYMENT_FAILURE", "COMPONENT_UPDATE_ERROR", "COMPONENT_BROKEN"]
    assert details["deploymentErrorTypes"] == ["USER_COMPONENT_ERROR"]
    assert f"Service {SERVICE} in broken state after deployment" in details["deploymentFailureCause"]
    service = components(ggsim)[SERVICE]
    assert (service["version"], service["state"]) == ("1.0.0", "RUNNING")
    assert service["configuration"] == {"mode": "good"}

    # What greengrass-cli prints, line for line.
    printed = ggsim.run("deployment", "status", "-i", status["deploymentId"]).stdout.splitlines()
    assert printed[0] == f"{status['deploymentId']}: FAILED"
    assert "Detailed Status: FAILED_ROLLBACK_COMPLETE" in printed
    assert "Deployment Error Stack: DEPLOYMENT_FAILURE, COMPONENT_UPDATE_ERROR, COMPONENT_BROKEN" in printed
    assert "Deployment Error Types: USER_COMPONENT_ERROR" in printed
    listed = ggsim.run("deployment", "list").stdout.splitlines()
    assert listed[-1] == f"{status['deploymentId']}: FAILED"
    assert len(listed) == 2 and listed[0].endswith(": SUCCEEDED")


def test_with_do_nothing_the_broken_version_stays(ggsim: Ggsim, tmp_path: Path) -> None:
    crashing = recipe(SERVICE, "2.0.0", {"Run": "sleep 0.2; exit 1"})
    recipes = write_recipes(tmp_path / "recipes", crashing)
    status = deploy(ggsim, recipes, "-m", f"{SERVICE}=2.0.0")
    assert status["status"] == "FAILED"
    assert status["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_ROLLBACK_NOT_REQUESTED"
    assert components(ggsim)[SERVICE]["state"] == "BROKEN"


def test_a_failed_deployment_leaves_the_components_it_would_remove_untouched(ggsim: Ggsim, tmp_path: Path) -> None:
    starts, uninstalls = tmp_path / "keeper-starts", tmp_path / "keeper-uninstalls"
    keeper = recipe(KEEPER, "1.0.0", {"Run": f"echo start >> {starts}; exec sleep 600",
                                      "Uninstall": f"echo uninstall >> {uninstalls}"})
    good = recipe(SERVICE, "1.0.0", {"Run": "exec sleep 600"})
    crashing = recipe(SERVICE, "2.0.0", {"Run": "sleep 0.2; exit 1"})
    recipes = write_recipes(tmp_path / "recipes", keeper, good, crashing)
    assert deploy(ggsim, recipes, "-m", f"{KEEPER}=1.0.0", "-m", f"{SERVICE}=1.0.0")["status"] == "SUCCEEDED"

    status = deploy(ggsim, recipes, "--remove", KEEPER, "-m", f"{SERVICE}=2.0.0", "-fp", "ROLLBACK")

    assert status["status"] == "FAILED"
    assert status["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_ROLLBACK_COMPLETE"
    assert not uninstalls.exists(), "the component the failed deployment would remove was uninstalled"
    assert starts.read_text().count("start") == 1, "the component the failed deployment would remove restarted"
    assert components(ggsim)[KEEPER]["state"] == "RUNNING"

    # A deployment that succeeds removes it, after its other components are healthy.
    assert deploy(ggsim, recipes, "--remove", KEEPER)["status"] == "SUCCEEDED"
    assert uninstalls.read_text().count("uninstall") == 1
    assert KEEPER not in components(ggsim)


def test_a_resolution_failure_reports_the_nucleus_codes(ggsim: Ggsim, tmp_path: Path) -> None:
    needs = recipe(SERVICE, "1.0.0", {"Run": "exec sleep 600"})
    needs["ComponentDependencies"] = {KEEPER: {"VersionRequirement": ">=2.0.0"}}
    recipes = write_recipes(tmp_path / "recipes", needs, recipe(KEEPER, "1.0.0", {"Run": "exec sleep 600"}))
    status = deploy(ggsim, recipes, "-m", f"{SERVICE}=1.0.0")
    details = status["deploymentStatusDetails"]
    assert details["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
    assert details["deploymentErrorStack"] == [
        "DEPLOYMENT_FAILURE", "NO_AVAILABLE_COMPONENT_VERSION", "COMPONENT_VERSION_REQUIREMENTS_NOT_MET"]
    assert details["deploymentErrorTypes"] == ["REQUEST_ERROR"]
