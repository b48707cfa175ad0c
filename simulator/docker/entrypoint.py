"""The GreenLens image's entry point: ggsim with greenlens.App deployed, its health check, and Mosquitto.

    entrypoint.py up          # default: `ggsim up` with greenlens.App from /opt/greenlens/deploy
    entrypoint.py health      # HEALTHCHECK: exit 0 when the components are up and results are flowing
    entrypoint.py mosquitto   # an MQTT broker on 127.0.0.1:$GREENLENS_MQTT_PORT (compose profile `mqtt`)
    entrypoint.py <command>   # anything else runs as given (e.g. bash, ggsim ...)

`up` is configured by the environment:

    GREENLENS_SOURCE        greenlens.Capture's source: a video file or photo folder mounted into the
                            container, a camera device (/dev/video0), a URL, or `synthetic` (default)
    GREENLENS_PAGE_HOST     address the page listens on (default 127.0.0.1; with host networking the
                            page is then http://127.0.0.1:<port>/ on the host)
    GREENLENS_PAGE_PORT     the page's port (default 8080)
    GREENLENS_MQTT_BROKER   mqtt://host:port: bridge IoT Core to this broker instead of the embedded stand-in
    GREENLENS_THING_NAME    the core device's thing name (default ggsim-core)
    GREENLENS_APP_VERSION   greenlens.App version to deploy (default: the highest in the deploy folder)
    GREENLENS_CONFIG        extra configuration, {"<component>": {"MERGE": {...}}} as JSON, merged last
    GREENLENS_HEALTH_MAX_RESULT_AGE  `health` fails when the newest result is older (seconds, default 60)
    GREENLENS_DEPLOY        the build output with recipes/ and artifacts/ (default /opt/greenlens/deploy)
    GGSIM_ROOT              ggsim's Greengrass root (the image sets /var/lib/ggsim)

As PID 1 (no `docker run --init`) it forwards SIGTERM/SIGINT to its child and reaps orphaned processes,
so component processes never linger as zombies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DEPLOY = Path(os.environ.get("GREENLENS_DEPLOY", "/opt/greenlens/deploy"))
APP = "greenlens.App"
PUBLISHER = "greenlens.StreamPublisher"
_RECIPE_FILE = re.compile(r"^(?P<name>.+)-(?P<version>\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?)\.(?:ya?ml|json)$")
HEALTHY = {"RUNNING", "FINISHED"}


class EntrypointError(Exception):
    """A setting or a file the container cannot start with; the text says which and what is expected."""


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[-+]", version, maxsplit=1)[0].split("."))


def built_versions(deploy: Path = DEPLOY) -> dict[str, list[str]]:
    """Component name → its versions in the deploy folder's recipes (from the build's file names)."""
    recipes = deploy / "recipes"
    if not recipes.is_dir():
        raise EntrypointError(f"{recipes}: not found; the image must contain the build output (make build)")
    versions: dict[str, list[str]] = {}
    for path in recipes.iterdir():
        match = _RECIPE_FILE.match(path.name)
        if match:
            versions.setdefault(match["name"], []).append(match["version"])
    return {name: sorted(found, key=_version_key) for name, found in versions.items()}


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise EntrypointError(f"GREENLENS_PAGE_PORT: {text!r}: expected a TCP port number 1..65535")
    return port


def up_command(env: dict[str, str]) -> list[str]:
    """The `ggsim up` command line for this environment."""
    versions = built_versions(Path(env.get("GREENLENS_DEPLOY", str(DEPLOY))))
    if APP not in versions:
        raise EntrypointError(f"{DEPLOY / 'recipes'}: no {APP} recipe; the image must contain the build output")
    app = env.get("GREENLENS_APP_VERSION") or versions[APP][-1]
    if app not in versions[APP]:
        raise EntrypointError(f"GREENLENS_APP_VERSION: {app!r}: not built; available: {', '.join(versions[APP])}")
    config: dict[str, dict[str, dict[str, object]]] = {
        "greenlens.Capture": {"MERGE": {"source": env.get("GREENLENS_SOURCE") or "synthetic"}},
        "greenlens.StreamPublisher": {"MERGE": {
            "host": env.get("GREENLENS_PAGE_HOST") or "127.0.0.1",
            "port": _port(env.get("GREENLENS_PAGE_PORT") or "8080"),
        }},
    }
    extra = env.get("GREENLENS_CONFIG")
    if extra:
        try:
            more = json.loads(extra)
        except ValueError as exc:
            raise EntrypointError(f"GREENLENS_CONFIG: not JSON: {exc}") from None
        if not isinstance(more, dict) or not all(isinstance(v, dict) for v in more.values()):
            raise EntrypointError('GREENLENS_CONFIG: expected {"<component>": {"MERGE": {...}}}')
        for name, update in more.items():
            merged = config.setdefault(name, {})
            merged.setdefault("MERGE", {}).update(update.get("MERGE", {}))
            if "RESET" in update:
                merged["RESET"] = update["RESET"]
    deploy = Path(env.get("GREENLENS_DEPLOY", str(DEPLOY)))
    command = ["ggsim", "up", "-r", str(deploy / "recipes"), "-a", str(deploy / "artifacts"),
               "-m", f"{APP}={app}"]
    # Components that receive configuration are roots too, with the version greenlens.App resolves to
    # (the highest built one in its range), so the deployment accepts their configuration.
    for name in sorted(config):
        if name in versions:
            command += ["-m", f"{name}={versions[name][-1]}"]
    command += ["-c", json.dumps(config, sort_keys=True)]
    if env.get("GREENLENS_MQTT_BROKER"):
        command += ["--mqtt-broker", env["GREENLENS_MQTT_BROKER"]]
    if env.get("GREENLENS_THING_NAME"):
        command += ["--thing-name", env["GREENLENS_THING_NAME"]]
    return command


def runs_a_process(name: str, version: str, deploy: Path = DEPLOY) -> bool | None:
    """Whether the built recipe of name@version has a Startup or Run step (None: not in the build output)."""
    import yaml

    path = deploy / "recipes" / f"{name}-{version}.yaml"
    if not path.is_file():
        return None
    recipe = {str(k).lower(): v for k, v in (yaml.safe_load(path.read_text()) or {}).items()}
    for manifest in recipe.get("manifests") or []:
        lifecycle = {str(k).lower(): v for k, v in (manifest or {}).items()}.get("lifecycle") or {}
        if {"startup", "run"} & {str(k).lower() for k in lifecycle}:
            return True
    return False


def health() -> int:
    """HEALTHCHECK: ggsim answers, greenlens.App is deployed, every component is RUNNING or FINISHED, every
    component whose recipe runs a process (Startup or Run) is RUNNING (FINISHED means it stopped), and the
    page's newest result is recent (GREENLENS_HEALTH_MAX_RESULT_AGE seconds, default 60)."""
    try:
        listed = subprocess.run(["ggsim", "component", "list", "--json"], capture_output=True, text=True,
                                timeout=20)
    except subprocess.TimeoutExpired:
        print("health: ggsim component list did not answer within 20 s")
        return 1
    if listed.returncode != 0:
        print(f"health: ggsim component list exited {listed.returncode}: {listed.stderr.strip()[-300:]}")
        return 1
    components = json.loads(listed.stdout)
    states = {c.get("componentName"): c.get("state") for c in components}
    if APP not in states:
        print(f"health: {APP} is not deployed (components: {states})")
        return 1
    unhealthy = {}
    for c in components:
        name, state = c.get("componentName"), c.get("state")
        if state not in HEALTHY or (state == "FINISHED" and runs_a_process(name, c.get("version", ""))):
            unhealthy[name] = state
    if unhealthy:
        print(f"health: not running: {unhealthy}")
        return 1
    publisher = next((c for c in components if c.get("componentName") == PUBLISHER), None)
    if publisher is not None:
        problem = stale_results(publisher.get("configuration") or {})
        if problem:
            print(f"health: {problem}")
            return 1
    print(f"health: {len(states)} components RUNNING/FINISHED, results flowing")
    return 0


def stale_results(config: dict[str, object], max_age: float | None = None) -> str | None:
    """Why the page's /api/status shows no recent result (None when the newest is recent): a pipeline
    whose processes are up but which produces nothing (a stalled camera, a dead inference) is unhealthy."""
    if max_age is None:
        max_age = float(os.environ.get("GREENLENS_HEALTH_MAX_RESULT_AGE") or 60)
    host = str(config.get("host") or "127.0.0.1")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = int(float(str(config.get("port") or 8080)))
    url = f"http://{host}:{port}/api/status"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status = json.load(response)
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    last = status.get("last_result") or {}
    captured = last.get("captured_at")
    if not isinstance(captured, (int, float)):
        return f"{url}: no result yet"
    age = time.time() - captured
    if age > max_age:
        return f"{url}: the newest result was captured {age:.0f} s ago (more than {max_age:g} s)"
    return None


def mosquitto_command(env: dict[str, str]) -> list[str]:
    port = env.get("GREENLENS_MQTT_PORT") or "18883"
    host = env.get("GREENLENS_MQTT_HOST") or "127.0.0.1"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise EntrypointError(f"GREENLENS_MQTT_PORT: {port!r}: expected a TCP port number 1..65535")
    conf = Path(tempfile.mkdtemp(prefix="mosquitto-")) / "mosquitto.conf"
    conf.write_text(f"listener {port} {host}\nallow_anonymous true\npersistence false\n")
    return ["mosquitto", "-c", str(conf)]


def run(command: list[str]) -> int:
    """Run `command`: exec it, or as PID 1, supervise it (forward signals, reap orphans)."""
    if os.getpid() != 1:
        os.execvp(command[0], command)
    child = subprocess.Popen(command)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda number, _frame: child.send_signal(number))
    while True:
        try:
            pid, status = os.wait()  # reaps the child and any orphan reparented to PID 1
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code  # killed by a signal: 128 + its number, as a shell says


def main(argv: list[str]) -> int:
    action = argv[0] if argv else "up"
    try:
        if action == "up":
            command = up_command(dict(os.environ))
            print("greenlens: " + " ".join(command), flush=True)
        elif action == "health":
            return health()
        elif action == "mosquitto":
            command = mosquitto_command(dict(os.environ))
        else:
            command = argv
    except EntrypointError as exc:
        print(f"greenlens: {exc}", file=sys.stderr)
        return 2
    return run(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
