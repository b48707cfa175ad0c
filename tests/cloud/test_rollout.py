"""Thing-group roll-outs through IoT Jobs, driven by a scripted fake fleet over a real Mosquitto and asserted
from what GetDeployment and ListEffectiveDeployments report. The control plane runs at clock scale 60: a
roll-out minute lasts one second."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cloud.conftest import CLOCK_SCALE, assert_shape, unique
from tests.cloud.fake_fleet import FakeCore, wait_until

MINUTE = 60.0 / CLOCK_SCALE


@pytest.fixture
def fleet(plane, iot, broker) -> Iterator:
    cores: list[FakeCore] = []

    def make(scripts: list[str], groups: list[str] | None = None) -> tuple[str, list[FakeCore]]:
        group = unique("fleet")
        arn = iot.create_thing_group(thingGroupName=group)["thingGroupArn"]
        made = []
        for script in scripts:
            thing = unique("core")
            iot.create_thing(thingName=thing)
            for g in [group, *(groups or [])]:
                iot.add_thing_to_thing_group(thingGroupName=g, thingName=thing)
            core = FakeCore(thing, broker.port, script)
            cores.append(core)
            made.append(core)
        return arn, made

    yield make
    for core in cores:
        core.close()


@pytest.fixture
def component(gg) -> str:
    name = unique("test.Rollout")
    gg.create_component_version(inlineRecipe=json.dumps({
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}}]}).encode())
    return name


def effective(gg, core: FakeCore) -> list[dict]:
    return assert_shape("ListEffectiveDeployments",
                        gg.list_effective_deployments(coreDeviceThingName=core.thing))["effectiveDeployments"]


def status_of(gg, core: FakeCore, deployment_id: str) -> str | None:
    return next((e["coreDeviceExecutionStatus"] for e in effective(gg, core)
                 if e["deploymentId"] == deployment_id), None)


def test_maximum_per_minute_paces_the_roll_out(gg, fleet, component) -> None:
    group, cores = fleet(["succeed"] * 6)
    dep = gg.create_deployment(targetArn=group, components={component: {"componentVersion": "1.0.0"}},
                               iotJobConfiguration={"jobExecutionsRolloutConfig": {"maximumPerMinute": 2}})
    wait_until(lambda: all(status_of(gg, c, dep["deploymentId"]) == "SUCCEEDED" for c in cores), 10 * MINUTE,
               "all six cores SUCCEEDED")
    times = sorted(t for c in cores for t, _ in c.notified)
    start = times[0]
    # two per roll-out minute: the 3rd and 5th notifications wait for the next minutes
    assert times[2] - start >= 0.9 * MINUTE and times[4] - start >= 1.9 * MINUTE, times
    for t in times:
        assert sum(1 for u in times if t <= u < t + 0.9 * MINUTE) <= 2, times
    got = assert_shape("GetDeployment", gg.get_deployment(deploymentId=dep["deploymentId"]))
    assert (got["deploymentStatus"], got["revisionId"], got["isLatestForTarget"]) == ("ACTIVE", "1", True)
    doc = cores[0].documents[dep["iotJobId"]]
    assert doc["deploymentId"] == dep["deploymentId"]
    assert doc["configurationArn"].endswith(f":configuration:thinggroup/{group.split('/')[-1]}:1")
    assert doc["components"] == {component: {"version": "1.0.0"}}


def test_exponential_rate_grows_by_the_increment_factor(gg, fleet, component) -> None:
    group, cores = fleet(["succeed"] * 7)
    dep = gg.create_deployment(targetArn=group, components={component: {"componentVersion": "1.0.0"}},
                               iotJobConfiguration={"jobExecutionsRolloutConfig": {"exponentialRate": {
                                   "baseRatePerMinute": 1, "incrementFactor": 2,
                                   "rateIncreaseCriteria": {"numberOfNotifiedThings": 1}}}})
    wait_until(lambda: all(status_of(gg, c, dep["deploymentId"]) == "SUCCEEDED" for c in cores), 10 * MINUTE,
               "all seven cores SUCCEEDED")
    times = sorted(t for c in cores for t, _ in c.notified)
    minutes = [int((t - times[0]) / MINUTE + 0.1) for t in times]
    # 1 in the first minute, then 2, then 4: seven things in three minutes, not seven
    assert minutes.count(0) == 1 and max(minutes) == 2, minutes


def test_abort_cancels_the_job_and_the_rest_never_receive_it(gg, fleet, component) -> None:
    group, cores = fleet(["fail"] * 6)
    dep = gg.create_deployment(
        targetArn=group, components={component: {"componentVersion": "1.0.0"}},
        iotJobConfiguration={"jobExecutionsRolloutConfig": {"maximumPerMinute": 2},
                             "abortConfig": {"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                                                               "thresholdPercentage": 100,
                                                               "minNumberOfExecutedThings": 2}]}})
    wait_until(lambda: gg.get_deployment(deploymentId=dep["deploymentId"])["deploymentStatus"] == "CANCELED",
               5 * MINUTE, "the deployment CANCELED by the abort")
    notified = [c for c in cores if c.notified]
    assert len(notified) == 2, [c.thing for c in notified]
    for core in notified:
        [entry] = effective(gg, core)
        assert entry["coreDeviceExecutionStatus"] == "FAILED"
        assert entry["reason"] == "greenlens.Model errored while starting"
        assert entry["statusDetails"] == {
            "errorStack": ["DEPLOYMENT_FAILURE", "COMPONENT_UPDATE_ERROR", "COMPONENT_BROKEN"],
            "errorTypes": ["COMPONENT_ERROR"]}
    # two more roll-out minutes: the others would have been notified by now without the abort
    quiet = [c for c in cores if not c.notified]
    assert not any(c.got_job.wait(2 * MINUTE) for c in quiet[:1])
    assert all(effective(gg, c) == [] for c in quiet)
    assert all(not c.notified for c in quiet)


def test_in_progress_too_long_times_out(gg, fleet, component) -> None:
    group, [core] = fleet(["hang"])
    dep = gg.create_deployment(targetArn=group, components={component: {"componentVersion": "1.0.0"}},
                               iotJobConfiguration={"timeoutConfig": {"inProgressTimeoutInMinutes": 1}})
    wait_until(lambda: status_of(gg, core, dep["deploymentId"]) == "IN_PROGRESS", 3 * MINUTE, "IN_PROGRESS")
    wait_until(lambda: status_of(gg, core, dep["deploymentId"]) == "TIMED_OUT", 3 * MINUTE, "TIMED_OUT")


def test_a_new_deployment_to_the_group_supersedes_the_previous(gg, fleet, component) -> None:
    group, cores = fleet(["succeed"] * 3)
    first = gg.create_deployment(targetArn=group, components={component: {"componentVersion": "1.0.0"}},
                                 iotJobConfiguration={"jobExecutionsRolloutConfig": {"maximumPerMinute": 1}})
    wait_until(lambda: any(c.notified for c in cores), 2 * MINUTE, "the first core notified")
    second = gg.create_deployment(targetArn=group, components={component: {"componentVersion": "1.0.0",
                                  "configurationUpdate": {"merge": '{"level": 2}'}}})
    wait_until(lambda: all(status_of(gg, c, second["deploymentId"]) == "SUCCEEDED" for c in cores),
               5 * MINUTE, "every core SUCCEEDED on revision 2")
    old = assert_shape("GetDeployment", gg.get_deployment(deploymentId=first["deploymentId"]))
    new = assert_shape("GetDeployment", gg.get_deployment(deploymentId=second["deploymentId"]))
    assert (old["revisionId"], old["isLatestForTarget"], old["deploymentStatus"]) == ("1", False, "INACTIVE")
    assert (new["revisionId"], new["isLatestForTarget"], new["deploymentStatus"]) == ("2", True, "ACTIVE")
    assert all(c.documents[second["iotJobId"]]["components"][component]["configurationUpdate"]
               == {"merge": {"level": 2}} for c in cores)
    # the cores the first revision had not reached never get it
    assert sum(1 for c in cores if first["iotJobId"] in c.documents) == 1
    latest = assert_shape("ListDeployments", gg.list_deployments(targetArn=group))["deployments"]
    assert [d["deploymentId"] for d in latest] == [second["deploymentId"]]


def test_a_core_in_two_groups_gets_both_deployments(gg, iot, fleet, component) -> None:
    other_group = unique("extra")
    other_arn = iot.create_thing_group(thingGroupName=other_group)["thingGroupArn"]
    group, [core] = fleet(["succeed"], groups=[other_group])
    a = gg.create_deployment(targetArn=group, components={component: {"componentVersion": "1.0.0"}})
    b = gg.create_deployment(targetArn=other_arn, components={component: {"componentVersion": "1.0.0"}})
    wait_until(lambda: {status_of(gg, core, a["deploymentId"]), status_of(gg, core, b["deploymentId"])}
               == {"SUCCEEDED"}, 3 * MINUTE, "both deployments SUCCEEDED")
    arns = {doc["configurationArn"].rsplit(":", 1)[0].split(":configuration:")[1] for doc in core.documents.values()}
    assert arns == {f"thinggroup/{group.split('/')[-1]}", f"thinggroup/{other_group}"}


def test_fleet_status_makes_core_devices(gg, fleet) -> None:
    group, [core] = fleet(["succeed"])
    core.report("UNHEALTHY", [
        {"componentName": "greenlens.App", "version": "1.0.0", "isRoot": True, "status": "RUNNING",
         "fleetConfigArns": ["arn:aws:greengrass:us-east-1:123456789012:configuration:thinggroup/g:1"]},
        {"componentName": "greenlens.Model", "version": "1.1.0", "isRoot": False, "status": "BROKEN",
         "componentStatusDetails": {"statusCode": ["STARTUP_ERROR"], "statusReason": "exited 1"}}])
    got = wait_until(lambda: _core(gg, core.thing), 5.0, "the core device from its fleet status")
    assert (got["status"], got["coreVersion"], got["architecture"]) == ("UNHEALTHY", "2.14.0", "amd64")
    listed = assert_shape("ListCoreDevices", gg.list_core_devices(thingGroupArn=group))["coreDevices"]
    assert [d["coreDeviceThingName"] for d in listed] == [core.thing]
    roots = assert_shape("ListInstalledComponents", gg.list_installed_components(
        coreDeviceThingName=core.thing))["installedComponents"]
    assert [c["componentName"] for c in roots] == ["greenlens.App"]
    every = assert_shape("ListInstalledComponents", gg.list_installed_components(
        coreDeviceThingName=core.thing, topologyFilter="ALL"))["installedComponents"]
    broken = next(c for c in every if c["componentName"] == "greenlens.Model")
    assert (broken["lifecycleState"], broken["lifecycleStatusCodes"]) == ("BROKEN", ["STARTUP_ERROR"])


def _core(gg, thing: str) -> dict | None:
    from botocore.exceptions import ClientError
    try:
        return assert_shape("GetCoreDevice", gg.get_core_device(coreDeviceThingName=thing))
    except ClientError:
        return None
