"""How a fleet core reaches the cloud without an AWS SDK: ResolveComponentCandidates over plain HTTP, S3
GetObject signed with SigV4, the service's own error codes in what the core reports, and a core that stays
light (the issue's 40 MB per core) after it ran a deployment."""

from __future__ import annotations

import psutil

from tests.cloud.fake_fleet import wait_until
from tests.fleet.conftest import BUCKET, execution_status, publish, unique

READY = "test -f {artifacts:path}/hello.txt"
CORE_RSS_LIMIT_MB = 40.0


def _failure(gg, thing: str, deployment_id: str) -> dict:
    wait_until(lambda: execution_status(gg, thing, deployment_id) == "FAILED", 60, "FAILED")
    return next(e for e in gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"]
                if e["deploymentId"] == deployment_id)


def test_a_core_that_ran_a_deployment_stays_within_40_mb(gg, s3, fleet) -> None:
    name = unique("test.Light")
    publish(gg, s3, name, "1.0.0", READY)
    [group], cores = fleet(1)
    dep = gg.create_deployment(targetArn=group, components={name: {"componentVersion": "1.0.0"}})
    [member] = cores.members
    wait_until(lambda: execution_status(gg, member.thing, dep["deploymentId"]) == "SUCCEEDED", 60, "SUCCEEDED")
    assert member.process is not None
    rss_mb = psutil.Process(member.process.pid).memory_info().rss / 2**20
    assert rss_mb <= CORE_RSS_LIMIT_MB, f"the core takes {rss_mb:.1f} MB after a deployment"


def test_an_artifact_gone_from_s3_fails_the_deployment_with_s3s_error(gg, s3, fleet) -> None:
    name = unique("test.Gone")
    publish(gg, s3, name, "1.0.0", READY)
    s3.delete_object(Bucket=BUCKET, Key=f"{name}/1.0.0/hello.txt")
    [group], cores = fleet(1)
    [thing] = cores.things
    dep = gg.create_deployment(targetArn=group, components={name: {"componentVersion": "1.0.0"}})
    entry = _failure(gg, thing, dep["deploymentId"])
    assert "NoSuchKey" in entry["reason"] and f"s3://{BUCKET}/{name}/1.0.0/hello.txt" in entry["reason"], entry
    assert entry["statusDetails"]["errorStack"] == ["DEPLOYMENT_FAILURE", "ARTIFACT_DOWNLOAD_ERROR", "IO_ERROR"]


def test_a_dependency_no_version_satisfies_fails_with_the_services_answer(gg, s3, fleet) -> None:
    app, model = unique("test.App"), unique("test.Model")
    publish(gg, s3, model, "1.0.0", READY)
    publish(gg, s3, app, "1.0.0", READY, dependencies={model: ">=2.0.0"})
    [group], cores = fleet(1)
    [thing] = cores.things
    dep = gg.create_deployment(targetArn=group, components={app: {"componentVersion": "1.0.0"}})
    entry = _failure(gg, thing, dep["deploymentId"])
    assert "ResourceNotFoundException" in entry["reason"] and model in entry["reason"], entry
    assert entry["statusDetails"]["errorStack"][:2] == ["DEPLOYMENT_FAILURE", "NO_AVAILABLE_COMPONENT_VERSION"]
