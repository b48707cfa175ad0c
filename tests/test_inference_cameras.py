"""greenlens.Inference with several cameras: each camera's newest frame, the cameras served in turn, skips
counted per camera, so a camera that publishes faster never starves the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from greenlens_common import topics
from greenlens_inference.component import InferenceComponent
from greenlens_inference.config import InferenceConfig
from greenlens_inference.latest import LatestFrame, Pending

REPO = Path(__file__).resolve().parent.parent
HOTDOG_BUNDLE = REPO / "components" / "model" / "bundles" / "efficientnet-lite0"
CAPTURE_PATH = os.pathsep.join(str(REPO / "components" / p) for p in ("capture", "common"))
SLOW_INVOKE_S = 0.04
"""The fake slow model: every invoke takes at least this long (25 results/s at most)."""


def _descriptor(source: str, seq: int) -> Pending:
    return Pending({"source": source, "seq": seq})


def test_the_cameras_with_a_frame_waiting_are_taken_in_turn_however_fast_one_publishes() -> None:
    latest = LatestFrame()
    taken: list[str] = []
    seq = Counter[str]()
    for _ in range(20):
        for _ in range(10):  # "fast" publishes ten frames for each of "slow"'s
            seq["fast"] += 1
            latest.offer(_descriptor("fast", seq["fast"]))
        seq["slow"] += 1
        latest.offer(_descriptor("slow", seq["slow"]))
        item = latest.take(timeout=1)
        assert item is not None
        taken.append(item.source)
        latest.done()
    assert taken.count("slow") == 10 and taken.count("fast") == 10, taken
    assert all(a != b for a, b in zip(taken, taken[1:], strict=False)), "strictly in turn while both wait"
    by_camera = latest.by_camera()
    assert by_camera["fast"]["skipped"] == 200 - 10 - 1  # all but those taken and the one still waiting
    assert by_camera["slow"]["skipped"] == 20 - 10  # the last turn was slow's: none waiting
    assert latest.skipped_of("slow") == 10 and latest.counts() == (220, 199)


def test_a_camera_alone_gets_every_turn() -> None:
    latest = LatestFrame()
    latest.offer(_descriptor("door", 1))
    latest.offer(_descriptor("yard", 1))
    assert [latest.take(1).source, latest.take(1).source] == ["door", "yard"]  # type: ignore[union-attr]
    for n in range(2, 5):
        latest.offer(_descriptor("door", n))
        assert latest.take(1).source == "door"  # type: ignore[union-attr]


class _Results:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def __call__(self, topic: str, message: dict[str, Any]) -> None:
        if topic != topics.RESULTS:
            return
        with self.cond:
            self.results.append(message)
            self.cond.notify_all()


def test_under_overload_two_real_cameras_share_a_slow_model_fairly(tmp_path: Path) -> None:
    """A real greenlens.Capture process with two cameras (60 and 15 frames/s), its descriptors fed to the
    component with a model slowed to at most 25 results/s: each camera gets about half of the results."""
    published = _Results()
    component = InferenceComponent(published, ring_dir=tmp_path)
    component.configure(InferenceConfig(model_dir=str(HOTDOG_BUNDLE), threads=1))
    engine = component.engine
    assert engine is not None
    invoke = engine.invoke

    def slow_invoke(prepared: Any) -> Any:
        started = time.monotonic()
        out = invoke(prepared)
        time.sleep(max(0.0, SLOW_INVOKE_S - (time.monotonic() - started)))  # the fake slow model's work
        return out

    engine.invoke = slow_invoke  # type: ignore[method-assign]
    cameras = [{"id": "busy", "source": "synthetic:live", "fps": 60, "sourceFps": 60},
               {"id": "quiet", "source": "synthetic:live", "fps": 15, "sourceFps": 15}]
    env = {k: v for k, v in os.environ.items() if k not in ("SVCUID", "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")}
    capture = subprocess.Popen([sys.executable, "-m", "greenlens_capture", "--no-ipc", "--cameras", json.dumps(cameras),
                                "--width", "224", "--height", "224", "--ring-dir", str(tmp_path)],
                               env={**env, "PYTHONPATH": CAPTURE_PATH}, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)

    def feed() -> None:
        assert capture.stdout is not None
        for line in capture.stdout:
            record = json.loads(line)
            if record["topic"] == topics.FRAMES:
                component.offer(record["message"])

    threading.Thread(target=feed, daemon=True).start()
    component.start()
    try:
        with published.cond:
            assert published.cond.wait_for(lambda: len(published.results) >= 80, 120), \
                f"only {len(published.results)} results"
            results = published.results[10:80]  # past the start (both cameras running)
    finally:
        capture.terminate()
        capture.wait(30)
        component.close()
    shares = Counter(r["source"] for r in results)
    assert min(shares["busy"], shares["quiet"]) >= 0.4 * len(results), f"not fair: {shares}"
    quiet = [r["skipped"] for r in results if r["source"] == "quiet"]
    busy = [r["skipped"] for r in results if r["source"] == "busy"]
    assert quiet == sorted(quiet) and busy == sorted(busy), "each result carries its camera's skips so far"
    assert busy[-1] > quiet[-1] > 0, "the busy camera's frames are the ones skipped most"
