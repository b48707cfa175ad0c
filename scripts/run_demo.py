"""`make run`: the whole GreenLens graph on ggsim, natively, until Ctrl-C.

    python -m scripts.run_demo [--root build/ggsim-root] [--source SOURCE]   (from the repository root)

1. the sample clip (scripts/make_sample_clip.py) when ../shared/data/hotdog-photos is present, else
   greenlens.Capture's `synthetic` source (or --source: a camera index, a URL, a video or a photo folder);
2. `ggsim up` on a root under build/ (kept between runs), with the project venv first on PATH, so each
   component's Install builds its venv on top of the project venv's packages without the network;
3. a local deployment of greenlens.App (which brings in the other four) from build/deploy/, with
   greenlens.Capture also a root so that it receives its `source`;
4. prints the page's URL and runs until Ctrl-C (which stops ggsim and every component).

Run `make build` first (`make run` does).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devsupport.roots import python_component_user
from scripts import make_sample_clip
from tools.greenlens_build import BuildError, load_projects

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "build" / "deploy"
CLIP = REPO / "build" / "sample" / "hotdog-demo.avi"
START_TIMEOUT = 60.0
DEPLOY_TIMEOUT = 900.0


def default_source() -> str:
    if not make_sample_clip.DEFAULT_PHOTOS.is_dir():
        print(f"run: {make_sample_clip.DEFAULT_PHOTOS} not found: greenlens.Capture's synthetic source instead")
        return "synthetic"
    if not CLIP.is_file():
        status = make_sample_clip.main(["--out", str(CLIP)])
        if status != 0:
            print("run: no sample clip: greenlens.Capture's synthetic source instead")
            return "synthetic"
    return str(CLIP)


def page_url() -> str:
    import yaml

    recipe = yaml.safe_load((REPO / "recipes" / "greenlens.StreamPublisher.yaml").read_text())
    config = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    return f"http://{config['host']}:{config['port']}/"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO / "build" / "ggsim-root", help="ggsim's Greengrass root")
    ap.add_argument("--source", help="greenlens.Capture's source (default: the sample clip, else synthetic)")
    args = ap.parse_args(argv)
    try:
        projects = load_projects()
    except BuildError as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 1
    if not (DEPLOY / "recipes").is_dir():
        print(f"run: {DEPLOY / 'recipes'} not found: run `make build` first", file=sys.stderr)
        return 1
    source = args.source or default_source()
    root = args.root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    ggsim = [sys.executable, "-m", "ggsim.cli", "--root", str(root)]
    info = root / "cli_ipc_info" / "ggsim.json"
    info.unlink(missing_ok=True)
    # the components run the project's Python: as the component user when it can run it (devsupport.roots)
    core = subprocess.Popen([*ggsim, "up", "--component-default-user", python_component_user()], env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not info.exists():  # ggsim writes it once it serves IPC
            if core.poll() is not None:
                print(f"run: ggsim up exited {core.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"run: ggsim did not come up within {START_TIMEOUT:g} s", file=sys.stderr)
                return 1
            time.sleep(0.1)
        app, capture = projects["greenlens.App"], projects["greenlens.Capture"]
        config = {"greenlens.Capture": {"MERGE": {"source": source}}}
        print(f"run: deploying greenlens.App {app.version} (source: {source}); the first start builds each "
              "component's venv", flush=True)
        deployed = subprocess.run(
            [*ggsim, "deployment", "create", "-r", str(DEPLOY / "recipes"), "-a", str(DEPLOY / "artifacts"),
             "-m", f"greenlens.App={app.version}", "-m", f"greenlens.Capture={capture.version}",
             "-c", json.dumps(config), "--wait", "--timeout", str(DEPLOY_TIMEOUT)], env=env)
        if deployed.returncode != 0:
            print(f"run: the deployment failed; see `{' '.join(ggsim[1:])} logs <component>`", file=sys.stderr)
            return 1
        print(f"\nGreenLens is running: open {page_url()}\n"
              f"  components: .venv/bin/ggsim --root {root} component list\n"
              f"  results:    .venv/bin/ggsim --root {root} pubsub sub greenlens/results\n"
              f"  IoT Core:   .venv/bin/ggsim --root {root} iotcore sub 'greenlens/#'\n"
              "Ctrl-C stops it.", flush=True)
        return core.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if core.poll() is None:
            core.send_signal(signal.SIGTERM)
            try:
                core.wait(60)
            except subprocess.TimeoutExpired:
                core.kill()


if __name__ == "__main__":
    sys.exit(main())
