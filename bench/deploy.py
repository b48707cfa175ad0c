"""Deployment speed and memory of ggsim: `deployment create` to every component RUNNING.

Four components whose Install steps are no-ops and whose Run steps sleep; ggsim runs as users run it
(`ggsim up` in its own process) and the deployment goes through IPC as from `ggsim deployment create`.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from .common import python_process, rss_mb

COMPONENTS = 4
ROUNDS = 5


def write_recipes(folder: Path, version: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for i in range(COMPONENTS):
        name = f"bench.NoOp{i}"
        doc = {"RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
               "Manifests": [{"Platform": {"os": "linux"},
                              "Lifecycle": {"Install": "true", "Run": "exec sleep 3600"}}]}
        (folder / f"{name}-{version}.yaml").write_text(yaml.safe_dump(doc))
        names[name] = version
    return names


def run() -> dict[str, Any]:
    from ggsim.client import CLI_INFO, CliClient

    with tempfile.TemporaryDirectory(prefix="ggsim-bench-deploy-") as tmp:
        Path(tmp).chmod(0o755)  # as root, ggsim runs the (shell) components as ggc_user, who must reach the root
        root = Path(tmp) / "root"
        proc = python_process(["-m", "ggsim.cli", "--root", str(root), "up"], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (root / CLI_INFO).exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("ggsim up did not start")
                time.sleep(0.02)
            idle = rss_mb(proc.pid)
            times = []
            with CliClient(root) as client:
                for round_ in range(ROUNDS):
                    version = f"1.0.{round_}"
                    recipes = Path(tmp) / f"recipes-{round_}"
                    wanted = write_recipes(recipes, version)
                    start = time.perf_counter()
                    client.call("create_local_deployment", recipe_directory_path=str(recipes),
                                root_component_versions_to_add=wanted)
                    while True:
                        listed = {c.component_name: (c.version, c.state)
                                  for c in client.call("list_components").components or []}
                        if all(listed.get(n) == (v, "RUNNING") for n, v in wanted.items()):
                            break
                        if time.perf_counter() - start > 60:
                            raise TimeoutError(f"components not RUNNING: {listed}")
                        time.sleep(0.005)
                    times.append(time.perf_counter() - start)
            running = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
    return {
        "components": COMPONENTS,
        "rounds": ROUNDS,
        "create_to_all_running_s_first": round(times[0], 3),
        "create_to_all_running_s_median": round(statistics.median(times), 3),
        "create_to_all_running_s_max": round(max(times), 3),
        "note": "round 1 deploys four new components; later rounds update all four to a new version",
        "ggsim_rss_mb_idle": round(idle, 1),
        "ggsim_rss_mb_with_components": round(running, 1),
    }
