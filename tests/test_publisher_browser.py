"""The StreamPublisher's page in real headless Chromium: a tile per camera, verdicts, streams that move."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from greenlens_common import messages, topics

from devsupport.ports import free_port
from tests.support.browser import chromium
from tests.support.publisher import Feeder, http_json, start_publisher, stop_publisher, wait_until

CAMERAS_TOPIC = "greenlens/cameras"


class FeedLoop:
    """Frames (real photos in a real ring per camera) and results on the publisher's stdin (its --no-ipc
    input), ~10/s per camera; ``present[source]`` is what that camera's results say."""

    def __init__(self, proc: subprocess.Popen[str], feeders: list[Feeder]) -> None:
        self.proc = proc
        self.feeders = feeders
        self.present = {f.source: True for f in feeders}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, topic: str, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(json.dumps({"topic": topic, "message": message}) + "\n")
            self.proc.stdin.flush()

    def _run(self) -> None:
        while not self.stop.wait(0.1):  # the pace of a 10 fps camera
            for feeder in self.feeders:
                frame = feeder.frame()
                self.send(topics.FRAMES, frame)
                self.send(topics.RESULTS, feeder.result(frame, self.present[feeder.source]))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.mark.slow
def test_the_page_shows_a_tile_per_camera_with_its_verdict_status_and_moving_streams_in_real_chromium(
        tmp_path: Path) -> None:
    ring_dir = tmp_path / "shm"
    ring_dir.mkdir()
    feeders = [Feeder(ring_dir, name="ring-front", source="front-door"),
               Feeder(ring_dir, name="ring-yard", source="back yard", width=256, height=192)]
    port = free_port()
    work = tmp_path / "work"
    proc = start_publisher(work, "--no-ipc", "--port", str(port), env={"GREENLENS_RING_DIR": str(ring_dir)},
                           stdin=subprocess.PIPE)
    feed = FeedLoop(proc, feeders)
    feed.present["back yard"] = False
    cloud: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: cloud.extend(json.loads(line) for line in proc.stdout), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: all(c["results"]["annotated"] > 0
                               for c in http_json(f"http://127.0.0.1:{port}/api/status")["cameras"])
                   and len(http_json(f"http://127.0.0.1:{port}/api/status")["cameras"]) == 2, 30,
                   "the publisher to draw a result of each camera")
        with chromium(tmp_path / "chromium-profile") as driver:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import WebDriverWait

            driver.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(driver, 30, poll_frequency=0.1)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.camera")) == 2,
                       message="a tile per camera")
            tiles = {t.find_element(By.CSS_SELECTOR, ".name").text: t
                     for t in driver.find_elements(By.CSS_SELECTOR, "article.camera")}
            assert set(tiles) == {"front-door", "back yard"}
            front, yard = tiles["front-door"], tiles["back yard"]
            wait.until(lambda d: front.find_element(By.CSS_SELECTOR, ".verdict").text == "HOTDOG 0.90")
            wait.until(lambda d: yard.find_element(By.CSS_SELECTOR, ".verdict").text == "NOT HOTDOG 0.10")
            assert front.find_element(By.CSS_SELECTOR, "a.device").get_attribute("href") \
                == f"http://127.0.0.1:{port}/cameras/front-door/device.mjpg"
            assert yard.find_element(By.CSS_SELECTOR, "a.device").get_attribute("href") \
                == f"http://127.0.0.1:{port}/cameras/back_yard/device.mjpg"

            for tile, width in ((front, 320), (yard, 256)):
                img = tile.find_element(By.CSS_SELECTOR, "img.project")
                wait.until(lambda d, img=img, width=width:
                           d.execute_script("return arguments[0].naturalWidth", img) == width,
                           message=f"the project stream of the tile shows its {width}-wide frames")
                first = img.screenshot_as_png
                wait.until(lambda d, img=img, first=first: img.screenshot_as_png != first,
                           message="the tile's project stream changes over time")

            device = driver.find_element(By.ID, "device")
            wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", device) == 320,
                       message="the detail panel shows the first camera's device stream")
            verdict = driver.find_element(By.ID, "verdict")
            assert verdict.text == "HOTDOG 0.90" and "present" in verdict.get_attribute("class")
            yard.click()
            wait.until(lambda d: verdict.text == "NOT HOTDOG 0.10", message="the detail follows the selected tile")
            wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", device) == 256,
                       message="the detail panel shows the selected camera's device stream")
            topk = driver.find_elements(By.CSS_SELECTOR, "#topk li")
            assert [li.text for li in topk] == ["0.900 not hotdog", "0.100 hotdog"]
            wait.until(lambda d: "ms" in d.find_element(By.ID, "latency").text)

            feed.send(CAMERAS_TOPIC, messages.camera_message(camera="back yard", state="reconnecting",
                                                             detail="rtsp://yard: connection refused"))
            state = yard.find_element(By.CSS_SELECTOR, ".state")
            wait.until(lambda d: state.text.startswith("reconnecting") and "connection refused" in state.text,
                       message="the tile shows the camera's status from greenlens/cameras")
            assert "reconnecting" in state.get_attribute("class")
            wait.until(lambda d: "unhealthy: cameras" in d.find_element(By.ID, "health").text)
            feed.present["front-door"] = False
            wait.until(lambda d: front.find_element(By.CSS_SELECTOR, ".verdict").text == "NOT HOTDOG 0.10")
    finally:
        feed.close()
        assert proc.stdin is not None
        proc.stdin.close()
        log = stop_publisher(proc, work)
        for feeder in feeders:
            feeder.close()
    assert "ERROR" not in log, log
    reader.join(10)
    appeared = [m["payload"]["source"] for m in cloud
                if m["iot_core"] == "greenlens/local/events" and m["payload"]["kind"] == "appeared"]
    assert appeared == ["front-door"], "--no-ipc prints what it would send to IoT Core: one event per camera"
