"""The real GDK CLI (../shared/tools/gdk, installed unmodified into a venv under build/) builds and publishes
greenlens.Capture to the control plane through AWS_ENDPOINT_URL with dummy credentials: the artifact lands
in (moto's) S3 and the component version is DEPLOYABLE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cloud.conftest import ACCOUNT, REGION, assert_shape

REPO = Path(__file__).resolve().parents[2]
GDK_WHEEL = REPO.parent / "shared" / "tools" / "gdk" / "gdk-1.6.2-py3-none-any.whl"
GDK_VENV = REPO / "build" / "gdk-venv"


@pytest.fixture(scope="session")
def gdk() -> Path:
    assert GDK_WHEEL.is_file(), f"{GDK_WHEEL} is missing: the tests need ../shared/tools/gdk beside the repo"
    exe = GDK_VENV / "bin" / "gdk"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(GDK_VENV)], check=True, timeout=120)
        subprocess.run([str(GDK_VENV / "bin" / "pip"), "install", "-q", "-c", str(REPO / "constraints.txt"),
                        str(GDK_WHEEL)], check=True, timeout=300)
    return exe


def test_gdk_build_and_publish_makes_a_deployable_version(gdk: Path, plane, gg, s3) -> None:
    folder = REPO / "components" / "capture"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=plane.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION=REGION,
               # the custom build runs `python3`: the project's interpreter, with PyYAML and semantic_version
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    try:
        for args in (["component", "build"], ["component", "publish", "-r", REGION, "-b", "gdk-test"]):
            done = subprocess.run([str(gdk), *args], cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, f"gdk {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    finally:
        subprocess.run(["rm", "-rf", str(folder / "greengrass-build"), str(folder / "zip-build")], check=False)
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:greenlens.Capture:versions:1.0.0"
    described = assert_shape("DescribeComponent", gg.describe_component(arn=arn))
    assert described["status"]["componentState"] == "DEPLOYABLE", described["status"]
    recipe = json.loads(gg.get_component(arn=arn)["recipe"])
    uris = {v for m in recipe["Manifests"] for a in m.get("Artifacts", []) for k, v in a.items() if k.lower() == "uri"}
    assert uris and all(u.startswith("s3://gdk-test/greenlens.Capture/1.0.0/") for u in uris), uris
    for uri in uris:
        bucket, key = uri[len("s3://"):].split("/", 1)
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
