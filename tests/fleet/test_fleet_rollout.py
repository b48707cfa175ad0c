"""Real ggsim cores as fleet members: each takes its deployments from the control plane over the IoT Jobs
MQTT API, fetches recipes (ResolveComponentCandidates) and artifacts (S3, digest checked), applies them
with the nucleus's semantics and reports back; asserted only from what Greengrass v2 answers."""

from __future__ import annotations

from tests.cloud.fake_fleet import wait_until
from tests.fleet.conftest import MINUTE, core_device, execution_status, installed, publish, unique

READY = "test -f {artifacts:path}/hello.txt"


def test_a_group_of_three_cores_runs_a_deployment_and_reports_it(gg, s3, fleet) -> None:
    name = unique("test.Noop")
    publish(gg, s3, name, "1.0.0", READY)
    [group], cores = fleet(3)
    dep = gg.create_deployment(targetArn=group, deploymentName="noop",
                               components={name: {"componentVersion": "1.0.0"}})
    for thing in cores.things:
        wait_until(lambda t=thing: execution_status(gg, t, dep["deploymentId"]) == "SUCCEEDED", 60,
                   f"{thing} SUCCEEDED")
        wait_until(lambda t=thing: installed(gg, t).get(name) == "1.0.0", 20, f"{name} installed on {thing}")
        roots = gg.list_installed_components(coreDeviceThingName=thing)["installedComponents"]
        assert [(c["componentName"], c["lifecycleState"], c["isRoot"]) for c in roots] == [(name, "FINISHED", True)]
        assert core_device(gg, thing)["status"] == "HEALTHY"


def test_an_artifact_whose_digest_differs_fails_the_deployment_on_the_core(gg, s3, fleet) -> None:
    name = unique("test.Tampered")
    publish(gg, s3, name, "1.0.0", READY, digest="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    [group], cores = fleet(1)
    dep = gg.create_deployment(targetArn=group, components={name: {"componentVersion": "1.0.0"}})
    [thing] = cores.things
    wait_until(lambda: execution_status(gg, thing, dep["deploymentId"]) == "FAILED", 60, "FAILED")
    [entry] = gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"]
    assert "digest" in entry["reason"] and name in entry["reason"], entry
    assert entry["statusDetails"]["errorStack"][:2] == ["DEPLOYMENT_FAILURE", "ARTIFACT_DOWNLOAD_ERROR"]
    assert name not in installed(gg, thing)


def test_a_core_in_two_groups_runs_the_union_of_their_root_components(gg, s3, iot, fleet) -> None:
    first, second = unique("test.First"), unique("test.Second")
    publish(gg, s3, first, "1.0.0", READY)
    publish(gg, s3, second, "2.0.0", READY)
    other = unique("othergroup")
    other_arn = iot.create_thing_group(thingGroupName=other)["thingGroupArn"]
    [group, _], cores = fleet(1, groups=[other])
    [thing] = cores.things
    a = gg.create_deployment(targetArn=group, components={first: {"componentVersion": "1.0.0"}})
    wait_until(lambda: execution_status(gg, thing, a["deploymentId"]) == "SUCCEEDED", 60, "A SUCCEEDED")
    b = gg.create_deployment(targetArn=other_arn, components={second: {"componentVersion": "2.0.0"}})
    wait_until(lambda: execution_status(gg, thing, b["deploymentId"]) == "SUCCEEDED", 60, "B SUCCEEDED")
    wait_until(lambda: {first, second} <= set(installed(gg, thing)), 20, "both groups' components reported")
    roots = gg.list_installed_components(coreDeviceThingName=thing)["installedComponents"]
    assert sorted((c["componentName"], c["componentVersion"]) for c in roots) == [(first, "1.0.0"), (second, "2.0.0")]


def test_a_core_killed_mid_roll_out_times_out_and_shows_unhealthy(gg, s3, fleet) -> None:
    name = unique("test.Slow")
    publish(gg, s3, name, "1.0.0", "sleep 600")
    [group], cores = fleet(1)
    [member] = cores.members
    dep = gg.create_deployment(targetArn=group, components={name: {"componentVersion": "1.0.0"}},
                               iotJobConfiguration={"timeoutConfig": {"inProgressTimeoutInMinutes": 1}})
    wait_until(lambda: execution_status(gg, member.thing, dep["deploymentId"]) == "IN_PROGRESS", 30, "IN_PROGRESS")
    cores.kill(member)
    wait_until(lambda: core_device(gg, member.thing)["status"] == "UNHEALTHY", 30 + 2 * MINUTE,
               "the core UNHEALTHY by its last will")
    wait_until(lambda: execution_status(gg, member.thing, dep["deploymentId"]) == "TIMED_OUT", 3 * MINUTE,
               "the execution TIMED_OUT")
    assert [d["coreDeviceThingName"] for d in gg.list_core_devices(status="UNHEALTHY")["coreDevices"]
            if d["coreDeviceThingName"] == member.thing] == [member.thing]


def test_a_core_stopped_cleanly_stays_healthy_only_a_killed_one_turns_unhealthy(gg, fleet) -> None:
    _, stopped = fleet(3)
    for thing in stopped.things:
        wait_until(lambda t=thing: core_device(gg, t)["status"] == "HEALTHY", 30, f"{thing} HEALTHY")
    stopped.stop()  # SIGTERM: a clean stop sends DISCONNECT, so the broker drops the last will
    assert all(m.process is not None and m.process.returncode == 0 for m in stopped.members)
    # a core killed after them: once its will has reached the control plane, theirs would have too
    _, killed = fleet(1)
    [sentinel] = killed.members
    wait_until(lambda: core_device(gg, sentinel.thing)["status"] == "HEALTHY", 30, "the sentinel HEALTHY")
    killed.kill(sentinel)
    wait_until(lambda: core_device(gg, sentinel.thing)["status"] == "UNHEALTHY", 30, "the sentinel's last will")
    assert {t: core_device(gg, t)["status"] for t in stopped.things} == {t: "HEALTHY" for t in stopped.things}


def test_a_fleet_member_without_a_broker_is_refused_naming_the_option(tmp_path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ggsim", "--root", str(tmp_path / "root"), "up",
                           "--fleet", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--fleet" in done.stderr and "--mqtt-broker" in done.stderr, done.stderr
