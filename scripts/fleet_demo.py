"""`make fleet`: the GreenLens roll-out rehearsed offline, end to end, with a live fleet view.

    python -m scripts.fleet_demo [-n 5] [--clock-scale 4] [--base build/fleet] [--page-port 8100]
    (from the repository root)

The live view is both the terminal table and the fleet page (ggsim.fleet.page, http://127.0.0.1:8100/),
whose URL is printed first: each device's health, latest deployment and execution status with its
reason, component versions and the clock scale, refreshed every second.

1. a Mosquitto (devsupport.mosquitto) and the control plane (ggcloud) on loopback, at a clock scale
   (roll-out rates are per minute; every line of the view names the scale);
2. the real GDK CLI (../shared/tools/gdk) installed into a venv under build/ and, in each GreenLens
   component's folder, `gdk component build` and `gdk component publish -r REGION -b BUCKET` against the
   control plane through AWS_ENDPOINT_URL — exactly what an operator runs against AWS without it;
3. N ggsim cores (`ggsim fleet`), each a thing in the group, its own root and frame-ring directory;
   each core's page port comes from a deployment to the thing itself (greenlens.StreamPublisher with
   configurationUpdate port 8100+i), as one would give devices their own settings in AWS;
4. greenlens.App to the group, canary-style: exponentialRate from 1 core a minute, doubling after each
   success, aborted if 40 % of at least 2 cores fail;
5. the DELIBERATELY BROKEN greenlens.Model 1.0.2 (built only with --include-broken and published for this
   rehearsal through boto3 from build/fleet/broken, never with GDK), one core a minute, aborted at the
   first failure: the first core fails it (Inference refuses the model at Startup), rolls back to the
   previous model; the deployment is CANCELED; the other cores never receive it.

Ctrl-C stops everything. Nothing here talks to AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devsupport.roots import python_component_user

REPO = Path(__file__).resolve().parent.parent
GDK_WHEEL = REPO.parent / "shared" / "tools" / "gdk" / "gdk-1.6.2-py3-none-any.whl"
GDK_VENV = REPO / "build" / "gdk-venv"
REGION = "us-east-1"
BUCKET = "greenlens-fleet-rehearsal"
FOLDERS = ["components/capture", "components/inference", "components/publisher", "components/model", "."]
BROKEN_MODEL = "1.0.2"
COMPONENTS = ["greenlens.App", "greenlens.Model", "greenlens.Inference"]  # the columns of the table and page


def say(clock: str, text: str) -> None:
    print(f"[fleet {time.strftime('%H:%M:%S')} · {clock}] {text}", flush=True)


def install_gdk() -> Path:
    exe = GDK_VENV / "bin" / "gdk"
    if not exe.exists():
        if not GDK_WHEEL.is_file():
            sys.exit(f"fleet: {GDK_WHEEL} is missing: the GDK CLI is expected in ../shared/tools/gdk")
        subprocess.run([sys.executable, "-m", "venv", str(GDK_VENV)], check=True)
        subprocess.run([str(GDK_VENV / "bin" / "pip"), "install", "-q", "-c", str(REPO / "constraints.txt"),
                        str(GDK_WHEEL)], check=True)
    return exe


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION=REGION,
               # GDK's custom build runs `python3`: the project's, with PyYAML and semantic_version
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


def publish_with_gdk(gdk: Path, endpoint: str) -> None:
    env = aws_env(endpoint)
    for folder in FOLDERS:
        cwd = REPO / folder
        for args in (["component", "build"], ["component", "publish", "-r", REGION, "-b", BUCKET]):
            done = subprocess.run([str(gdk), *args], cwd=cwd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"fleet: gdk {' '.join(args)} in {folder} failed:\n{done.stdout}\n{done.stderr}")
        subprocess.run(["rm", "-rf", str(cwd / "greengrass-build"), str(cwd / "zip-build")], check=False)


def publish_broken_model(gg: Any, s3: Any, out: Path) -> str:
    """greenlens.Model 1.0.2 from `greenlens_build.py --include-broken`, created through boto3."""
    subprocess.run([sys.executable, str(REPO / "tools" / "greenlens_build.py"), "greenlens.Model",
                    "--include-broken", "--out", str(out)], check=True, capture_output=True)
    recipe_path = next((out / "recipes").glob(f"greenlens.Model-{BROKEN_MODEL}.*"))
    text = recipe_path.read_text()
    for path in sorted((out / "artifacts" / "greenlens.Model" / BROKEN_MODEL).iterdir()):
        s3.upload_file(str(path), BUCKET, f"greenlens.Model/{BROKEN_MODEL}/{path.name}")
    text = (text.replace("BUCKET_NAME", BUCKET).replace("COMPONENT_NAME", "greenlens.Model")
            .replace("COMPONENT_VERSION", BROKEN_MODEL))
    done = gg.create_component_version(inlineRecipe=text.encode())
    return done["status"]["componentState"]


def wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)  # polling the control plane's API
    return False


def main() -> None:  # noqa: PLR0915 - one scripted story, step by step
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5, help="cores in the fleet (default 5)")
    ap.add_argument("--clock-scale", type=float, default=4.0,
                    help="roll-out minutes run this much faster (default 4: a minute lasts 15 s)")
    ap.add_argument("--base", type=Path, default=REPO / "build" / "fleet", help="the cores' roots")
    ap.add_argument("--no-view", action="store_true", help="print progress lines instead of the live table")
    ap.add_argument("--page-port", type=int, default=8100,
                    help="the fleet page's port on 127.0.0.1 (default 8100, beside the cores' pages 8101...)")
    args = ap.parse_args()

    import boto3
    from ggcloud.clock import Clock
    from ggcloud.server import ControlPlane
    from ggsim.fleet.launcher import Fleet, register
    from ggsim.fleet.page import FleetPage
    from ggsim.fleet.view import device_rows, render

    from devsupport.mosquitto import Mosquitto

    # SIGTERM (and SIGINT even where a shell started us with it ignored) ends the rehearsal like Ctrl-C: the
    # cores run in sessions of their own, so only this process can stop them and their components
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _interrupt)
    clock = Clock(args.clock_scale)
    scale = clock.describe()
    args.base.mkdir(parents=True, exist_ok=True)
    for stale in [*args.base.glob("greenlens-*"), args.base / "broken"]:
        shutil.rmtree(stale, ignore_errors=True)  # every rehearsal starts from new cores (a root remembers)
    broker = Mosquitto(Path(tempfile.mkdtemp(prefix="fleet-mosquitto-")))
    plane = ControlPlane(region=REGION, clock=clock, broker_url=broker.url).start()
    say(scale, f"control plane {plane.url}, broker {broker.url}")
    clients = {s: boto3.client(s, endpoint_url=plane.url, region_name=REGION, aws_access_key_id="testing",
                               aws_secret_access_key="testing") for s in ("greengrassv2", "iot", "s3")}
    gg, iot, s3 = clients["greengrassv2"], clients["iot"], clients["s3"]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    cores = Fleet(args.base, broker.url, plane.url, count=args.n, prefix="greenlens", region=REGION,
                  status_interval=5.0, env={"PATH": path},
                  component_user=python_component_user())
    page = None
    shown: list[str] = []  # the devices on the page: none until they are registered things
    try:
        try:
            page = FleetPage(gg, lambda: shown, scale, port=args.page_port, components=COMPONENTS,
                             title="GreenLens fleet").start()
        except OSError as exc:
            sys.exit(f"fleet: cannot serve the fleet page on 127.0.0.1:{args.page_port} ({exc.strerror}); "
                     "choose another with --page-port PORT")
        say(scale, f"the fleet page: {page.url}")
        gdk = install_gdk()
        say(scale, "publishing every GreenLens component with gdk component build / publish ...")
        publish_with_gdk(gdk, plane.url)
        listed = gg.list_components()["components"]
        say(scale, "published: " + ", ".join(f"{c['componentName']} {c['latestVersion']['componentVersion']}"
                                            for c in listed))
        group_arn = register(iot, cores.things, ["GreenLensFleet"])["GreenLensFleet"]
        shown.extend(cores.things)
        cores.start()
        say(scale, f"{args.n} cores started under {cores.base}")
        versions = {c["componentName"]: c["latestVersion"]["componentVersion"] for c in listed}
        for i, thing in enumerate(cores.things, start=1):
            gg.create_deployment(
                targetArn=iot.describe_thing(thingName=thing)["thingArn"], deploymentName=f"{thing}-page",
                components={"greenlens.StreamPublisher": {
                    "componentVersion": versions["greenlens.StreamPublisher"],
                    "configurationUpdate": {"merge": json.dumps({"port": 8100 + i})}}})
        app = gg.create_deployment(
            targetArn=group_arn, deploymentName="greenlens-app",
            components={"greenlens.App": {"componentVersion": versions["greenlens.App"]}},
            deploymentPolicies={"failureHandlingPolicy": "ROLLBACK"},
            iotJobConfiguration={
                "jobExecutionsRolloutConfig": {"exponentialRate": {
                    "baseRatePerMinute": 1, "incrementFactor": 2,
                    "rateIncreaseCriteria": {"numberOfSucceededThings": 1}}},
                "abortConfig": {"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                                                  "thresholdPercentage": 40, "minNumberOfExecutedThings": 2}]}})
        say(scale, f"greenlens.App to the group, canary roll-out: deployment {app['deploymentId']}")
        show(gg, cores.things, scale, args.no_view, render, device_rows,
             until=lambda: all(_status(gg, t, app["deploymentId"]) in ("SUCCEEDED", "FAILED", "TIMED_OUT")
                               for t in cores.things), timeout=clock.seconds(30) + 900)
        for i, thing in enumerate(cores.things, start=1):
            say(scale, f"{thing}: page http://127.0.0.1:{8100 + i}/")
        state = publish_broken_model(gg, s3, args.base / "broken")
        say(scale, f"greenlens.Model {BROKEN_MODEL} (DELIBERATELY BROKEN) created for this rehearsal: {state}")
        bad = gg.create_deployment(
            targetArn=group_arn, deploymentName="greenlens-model-1.0.2",
            components={"greenlens.App": {"componentVersion": versions["greenlens.App"]},
                        "greenlens.Model": {"componentVersion": BROKEN_MODEL}},
            deploymentPolicies={"failureHandlingPolicy": "ROLLBACK"},
            iotJobConfiguration={
                "jobExecutionsRolloutConfig": {"maximumPerMinute": 1},
                "abortConfig": {"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                                                  "thresholdPercentage": 100, "minNumberOfExecutedThings": 1}]}})
        say(scale, f"greenlens.Model {BROKEN_MODEL} to the group, one core a minute, abort at the first failure")
        show(gg, cores.things, scale, args.no_view, render, device_rows,
             until=lambda: gg.get_deployment(deploymentId=bad["deploymentId"])["deploymentStatus"] == "CANCELED"
             and not any(_status(gg, t, bad["deploymentId"]) == "IN_PROGRESS" for t in cores.things),
             timeout=clock.seconds(10) + 600)
        reached = [t for t in cores.things if _status(gg, t, bad["deploymentId"])]
        say(scale, f"deployment {bad['deploymentId']}: "
                   f"{gg.get_deployment(deploymentId=bad['deploymentId'])['deploymentStatus']}; reached "
                   f"{', '.join(reached) or 'no core'}; untouched: "
                   f"{', '.join(t for t in cores.things if t not in reached)}")
        say(scale, "the fleet keeps running; Ctrl-C stops it")
        show(gg, cores.things, scale, args.no_view, render, device_rows, until=None, timeout=None)
    except KeyboardInterrupt:
        pass
    finally:
        if page is not None:
            page.stop()
        cores.stop()
        plane.stop()
        broker.stop()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _status(gg: Any, thing: str, deployment_id: str) -> str | None:
    return next((e["coreDeviceExecutionStatus"] for e in gg.list_effective_deployments(
        coreDeviceThingName=thing)["effectiveDeployments"] if e["deploymentId"] == deployment_id), None)


def show(gg: Any, things: list[str], scale: str, plain: bool, render: Any, device_rows: Any, *,
         until: Any, timeout: float | None) -> None:
    """The live table (or progress lines) until ``until()`` holds or ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    components = COMPONENTS

    def over() -> bool:
        return (until is not None and until()) or (deadline is not None and time.monotonic() > deadline)

    if plain:
        last = None
        while not over():
            rows = device_rows(gg, things)
            line = "; ".join(f"{r['thing']} {r['health']} {r['execution']} model "
                             f"{r['versions'].get('greenlens.Model', '-')}" for r in rows)
            if line != last:
                say(scale, line)
                last = line
            time.sleep(1.0)  # a refresh period for people
        return
    from rich.live import Live

    with Live(render(device_rows(gg, things), scale, components), refresh_per_second=2) as live:
        while not over():
            time.sleep(1.0)  # a refresh period for people
            live.update(render(device_rows(gg, things), scale, components))


if __name__ == "__main__":
    main()
