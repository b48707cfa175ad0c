"""YAML recipes through `ggsim deployment create`: aliases refused as the nucleus would misread them, an alias
bomb refused at once, and the core still deploying and stoppable afterwards."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psutil

from tests.support.ggsim_cli import Ggsim, deploy, recipe, write_recipes

#: What ggsim may hold after the bomb (it runs in well under 100 MB; the bomb expanded is gigabytes).
MEMORY_BOUND = 300 * 1024 * 1024

BOMB = """\
RecipeFormatVersion: "2020-01-25"
ComponentName: test.Bomb
ComponentVersion: 1.0.0
ComponentConfiguration:
  DefaultConfiguration:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: [*h,*h,*h,*h,*h,*h,*h,*h,*h]
Manifests:
  - Lifecycle:
      Run: exec sleep 600
"""

MERGE_KEY = """\
RecipeFormatVersion: "2020-01-25"
ComponentName: test.Merge
ComponentVersion: 1.0.0
ComponentConfiguration:
  DefaultConfiguration:
    base: &base {level: 1}
    derived:
      <<: {level: 2}
Manifests:
  - Lifecycle:
      Run: exec sleep 600
"""


def test_an_alias_bomb_fails_fast_and_the_core_keeps_deploying(tmp_path: Path) -> None:
    ggsim = Ggsim(tmp_path / "root")
    ggsim.root.mkdir()
    ggsim.up()
    try:
        bombs = tmp_path / "bomb"
        bombs.mkdir()
        (bombs / "test.Bomb-1.0.0.yaml").write_text(BOMB)
        assert len(BOMB) < 700
        started = time.monotonic()
        status = deploy(ggsim, bombs, "--merge", "test.Bomb=1.0.0")
        assert time.monotonic() - started < 5  # two CLI processes included; the parse itself takes milliseconds
        assert psutil.Process(ggsim.proc.pid).memory_info().rss < MEMORY_BOUND
        assert status["status"] == "FAILED"
        text = str(status)
        assert "alias *a" in text and "test.Bomb-1.0.0.yaml" in text

        merges = tmp_path / "merge"
        merges.mkdir()
        (merges / "test.Merge-1.0.0.yaml").write_text(MERGE_KEY)
        status = deploy(ggsim, merges, "--merge", "test.Merge=1.0.0")
        assert status["status"] == "FAILED" and "merge key <<" in str(status)

        good = write_recipes(tmp_path / "good", recipe("test.Fine", "1.0.0", {"Run": "exec sleep 600"},
                                                       {"anchored": "value"}))
        status = deploy(ggsim, good, "--merge", "test.Fine=1.0.0")
        assert status["status"] == "SUCCEEDED"
        components = {c["componentName"]: c for c in ggsim.json("component", "list")}
        assert components["test.Fine"]["state"] == "RUNNING" and "test.Bomb" not in components
    finally:
        assert ggsim.proc is not None
        ggsim.proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = ggsim.proc.wait(30)
        except subprocess.TimeoutExpired:
            ggsim.proc.kill()
            ggsim.proc.wait()
            code = None
    assert code == 0, "ggsim did not stop on Ctrl-C within 30 s"
