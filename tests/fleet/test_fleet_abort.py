"""The GreenLens roll-out in miniature, with no-op stand-ins for the graph: an App that depends on a Model,
deployed to a group of three real ggsim cores; then a bad Model version rolled out one core per roll-out
minute with an abort at the first failure. The first core fails it, rolls back to the good Model and
reports the nucleus's error stack; the abort cancels the deployment; the other two never receive it."""

from __future__ import annotations

from tests.cloud.fake_fleet import wait_until
from tests.fleet.conftest import MINUTE, execution_status, installed, publish, unique

READY = "test -f {artifacts:path}/hello.txt"


def test_a_bad_model_is_aborted_after_the_first_core_which_rolls_back(gg, s3, fleet) -> None:
    app, model = unique("test.App"), unique("test.Model")
    publish(gg, s3, model, "1.0.1", READY)
    publish(gg, s3, app, "1.0.0", READY, dependencies={model: ">=1.0.0 <2.0.0"})
    [group], cores = fleet(3)
    good = gg.create_deployment(targetArn=group, deploymentName="app",
                                components={app: {"componentVersion": "1.0.0"}})
    for thing in cores.things:
        wait_until(lambda t=thing: execution_status(gg, t, good["deploymentId"]) == "SUCCEEDED", 60,
                   f"{thing} SUCCEEDED on the app")
    publish(gg, s3, model, "1.0.2", "echo 'model 1.0.2 refused by its golden check' >&2; exit 1")
    bad = gg.create_deployment(
        targetArn=group, deploymentName="bad-model",
        components={app: {"componentVersion": "1.0.0"}, model: {"componentVersion": "1.0.2"}},
        deploymentPolicies={"failureHandlingPolicy": "ROLLBACK"},
        iotJobConfiguration={"jobExecutionsRolloutConfig": {"maximumPerMinute": 1},
                             "abortConfig": {"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                                                               "thresholdPercentage": 100,
                                                               "minNumberOfExecutedThings": 1}]}})
    wait_until(lambda: gg.get_deployment(deploymentId=bad["deploymentId"])["deploymentStatus"] == "CANCELED",
               6 * MINUTE, "the bad deployment CANCELED by the abort")
    reached = [t for t in cores.things if execution_status(gg, t, bad["deploymentId"]) is not None]
    assert len(reached) == 1, reached
    [first] = reached
    entry = next(e for e in gg.list_effective_deployments(coreDeviceThingName=first)["effectiveDeployments"]
                 if e["deploymentId"] == bad["deploymentId"])
    assert entry["coreDeviceExecutionStatus"] == "FAILED"
    assert model in entry["reason"] and "rolled back" in entry["reason"], entry["reason"]
    assert entry["statusDetails"]["errorStack"] == ["DEPLOYMENT_FAILURE", "COMPONENT_UPDATE_ERROR",
                                                    "COMPONENT_BROKEN"]
    assert entry["statusDetails"]["errorTypes"] == ["USER_COMPONENT_ERROR"]
    wait_until(lambda: installed(gg, first).get(model) == "1.0.1", 20, "the first core back on model 1.0.1")
    # one more roll-out minute: without the abort the next core would have been notified by now
    rest = [t for t in cores.things if t != first]
    assert not wait_until_any(lambda: any(execution_status(gg, t, bad["deploymentId"]) for t in rest),
                              1.5 * MINUTE)
    for thing in rest:
        assert installed(gg, thing)[model] == "1.0.1"
        assert [e["deploymentId"] for e in gg.list_effective_deployments(
            coreDeviceThingName=thing)["effectiveDeployments"]] == [good["deploymentId"]]


def wait_until_any(condition, timeout: float) -> bool:
    """True as soon as ``condition`` holds, False if it never did within ``timeout``."""
    try:
        wait_until(condition, timeout, "")
    except AssertionError:
        return False
    return True
