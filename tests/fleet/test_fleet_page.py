"""The fleet page (`ggsim fleet view --web PORT`) in real headless Chromium during a real roll-out on real
ggsim cores: opened before the deployment, it shows each device going to SUCCEEDED, then to FAILED with
the reason, the versions each runs and the clock scale, without a reload."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devsupport.ports import free_port
from tests.cloud.fake_fleet import wait_until
from tests.fleet.conftest import CLOCK_SCALE, REGION, Plane, publish, unique
from tests.support.browser import chromium

READY = "test -f {artifacts:path}/hello.txt"


@pytest.mark.slow
def test_the_fleet_page_follows_a_roll_out_to_succeeded_then_failed_in_real_chromium(
        gg, s3, fleet, plane: Plane, tmp_path: Path) -> None:
    name = unique("test.Paged")
    publish(gg, s3, name, "1.0.0", READY)
    publish(gg, s3, name, "1.0.1", "echo 'version 1.0.1 refuses to start' >&2; exit 1")
    [group_arn], cores = fleet(2)
    group = group_arn.rsplit("/", 1)[1]
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with open(tmp_path / "view.log", "wb") as log:
        view = subprocess.Popen([sys.executable, "-m", "ggsim", "fleet", "view", "--control-plane", plane.url,
                                 "--group", group, "--region", REGION, "--clock-scale", str(CLOCK_SCALE),
                                 "--web", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        with chromium(tmp_path / "chromium-profile") as d:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import WebDriverWait

            def cells(css: str) -> dict[str, str]:
                """thing -> the text of its row's element ``css`` (read in one go: the page redraws)."""
                return d.execute_script(
                    "const out = {}; for (const tr of document.querySelectorAll('#rows tr')) {"
                    " const el = tr.querySelector(arguments[0]); out[tr.dataset.thing] = el ? el.textContent : null; }"
                    " return out;", css)

            wait_until(lambda: view.poll() is not None or _listening(port), 30, "the fleet page listening")
            assert view.poll() is None, (tmp_path / "view.log").read_text()
            d.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(d, 60, poll_frequency=0.2)
            wait.until(lambda _: sorted(cells("td.health")) == sorted(cores.things)
                       and set(cells("td.health").values()) == {"HEALTHY"}, message="a HEALTHY row per core")
            assert set(cells("td.execution .status").values()) == {""}
            assert "clock scale 6 (1 min = 10 s)" in d.find_element(By.ID, "clock").text
            assert set(cells("td.clock").values()) == {"clock scale 6 (1 min = 10 s)"}

            good = gg.create_deployment(targetArn=group_arn, deploymentName="paged-good",
                                        components={name: {"componentVersion": "1.0.0"}})
            assert good["deploymentId"]
            wait.until(lambda _: set(cells("td.execution .status").values()) == {"SUCCEEDED"},
                       message="every device SUCCEEDED on the page")
            assert set(cells("td.deployment").values()) == {"paged-good"}
            wait.until(lambda _: set(cells(f'td[data-component="{name}"]').values()) == {"1.0.0 FINISHED"},
                       message="the version each device runs")

            gg.create_deployment(targetArn=group_arn, deploymentName="paged-bad",
                                 components={name: {"componentVersion": "1.0.1"}},
                                 deploymentPolicies={"failureHandlingPolicy": "ROLLBACK"})
            wait.until(lambda _: set(cells("td.execution .status").values()) == {"FAILED"},
                       message="every device FAILED on the page")
            reasons = cells("td.execution .reason")
            for thing in cores.things:
                assert name in reasons[thing] and "rolled back" in reasons[thing], reasons
            assert set(cells("td.deployment").values()) == {"paged-bad"}
            wait.until(lambda _: set(cells(f'td[data-component="{name}"]').values()) == {"1.0.0 FINISHED"},
                       message="every device back on 1.0.0")
            assert d.find_element(By.ID, "error").text == ""
    finally:
        view.terminate()
        view.wait(10)


def _listening(port: int) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/fleet", timeout=2).close()
    except OSError:
        return False
    return True
