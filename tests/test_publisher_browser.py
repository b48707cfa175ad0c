"""The StreamPublisher's page in real headless Chromium: the verdict shows, both streams move."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from greenlens_common import topics

from devsupport.ports import free_port
from tests.support.browser import chromium
from tests.support.publisher import Feeder, http_json, start_publisher, stop_publisher, wait_until


class FeedLoop:
    """Frames (real photos in a real ring) and results on the publisher's stdin (its --no-ipc input), ~10/s."""

    def __init__(self, proc: subprocess.Popen[str], feeder: Feeder) -> None:
        self.proc = proc
        self.feeder = feeder
        self.present = True
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, topic: str, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"topic": topic, "message": message}) + "\n")
        self.proc.stdin.flush()

    def _run(self) -> None:
        while not self.stop.wait(0.1):  # the pace of a 10 fps camera
            frame = self.feeder.frame()
            self._send(topics.FRAMES, frame)
            self._send(topics.RESULTS, self.feeder.result(frame, self.present))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.mark.slow
def test_the_page_shows_the_verdict_and_both_streams_move_in_real_chromium(tmp_path: Path) -> None:
    ring_dir = tmp_path / "shm"
    ring_dir.mkdir()
    feeder = Feeder(ring_dir, width=320, height=240)
    port = free_port()
    work = tmp_path / "work"
    proc = start_publisher(work, "--no-ipc", "--port", str(port), env={"GREENLENS_RING_DIR": str(ring_dir)},
                           stdin=subprocess.PIPE)
    feed = FeedLoop(proc, feeder)
    cloud: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: cloud.extend(json.loads(line) for line in proc.stdout), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: http_json(f"http://127.0.0.1:{port}/api/status")["results"]["annotated"] > 0, 30,
                   "the publisher to draw a result")
        with chromium(tmp_path / "chromium-profile") as driver:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import WebDriverWait

            driver.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(driver, 30, poll_frequency=0.1)
            verdict = driver.find_element(By.ID, "verdict")
            wait.until(lambda d: verdict.text == "HOTDOG 0.90")
            assert "present" in verdict.get_attribute("class")

            images = {name: driver.find_element(By.ID, name) for name in ("project", "device")}
            for name, img in images.items():
                wait.until(lambda d, img=img: d.execute_script("return arguments[0].naturalWidth", img) == 320,
                           message=f"the {name} stream shows the 320x240 frames (not the placeholder)")
            for name, img in images.items():
                first = img.screenshot_as_png
                wait.until(lambda d, img=img, first=first: img.screenshot_as_png != first,
                           message=f"the {name} stream image changes over time")

            feed.present = False
            wait.until(lambda d: verdict.text == "NOT HOTDOG 0.10", message="the verdict follows the results")
            assert "absent" in verdict.get_attribute("class")
            wait.until(lambda d: "ms" in d.find_element(By.ID, "latency").text)
            wait.until(lambda d: float(d.find_element(By.ID, "fps").text or 0) > 0)
            topk = driver.find_elements(By.CSS_SELECTOR, "#topk li")
            assert [li.text for li in topk] == ["0.900 not hotdog", "0.100 hotdog"]
    finally:
        feed.close()
        assert proc.stdin is not None
        proc.stdin.close()
        log = stop_publisher(proc, work)
        feeder.close()
    assert "ERROR" not in log, log
    reader.join(10)
    assert any(m["iot_core"] == "greenlens/local/events" and m["payload"]["kind"] == "appeared" for m in cloud), \
        "--no-ipc prints what it would send to IoT Core"
