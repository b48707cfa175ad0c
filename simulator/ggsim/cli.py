"""`ggsim`: the command line of the Greengrass nucleus simulator.

`ggsim up` runs the simulated core in the foreground. Every other command talks to that running core over
Greengrass IPC with the CLI's identity, like greengrass-cli, and uses greengrass-cli's option names where
both have the command. Tables for people, `--json` for scripts. Exit codes: 0 done, 1 the operation
failed (a deployment FAILED, an IPC error), 2 bad usage, 3 no ggsim running on that root.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import NUCLEUS_VERSION, __version__
from .client import CliClient, NotRunningError, remove_cli_info, write_cli_info
from .nucleus.layout import RootLayout
from .nucleus.run_as import RunAsError

EXIT_FAILED = 1
EXIT_NOT_RUNNING = 3


def default_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ggsim" / "root"


class Context:
    def __init__(self, root: Path, as_json: bool) -> None:
        self.root = root
        self.as_json = as_json

    def client(self) -> CliClient:
        return CliClient(self.root)


def emit(ctx: Context, data: Any, human: Callable[[], None]) -> None:
    if ctx.as_json:
        click.echo(json.dumps(data, indent=None, default=str))
    else:
        human()


def print_table(items: list[dict[str, Any]], columns: dict[str, str]) -> None:
    """A table for people: column title → the item's key."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for item in items:
        table.add_row(*(str(item.get(key, "")) for key in columns.values()))
    Console().print(table)


def with_json(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds `--json` to a command (it may also be given before the command: `ggsim --json ...`)."""
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @click.pass_obj
    @functools.wraps(fn)
    def wrapper(ctx: Context, as_json: bool, **kwargs: Any) -> Any:
        if as_json:
            ctx.as_json = True
        try:
            return fn(ctx, **kwargs)
        except NotRunningError as exc:
            click.echo(f"ggsim: {exc}", err=True)
            sys.exit(EXIT_NOT_RUNNING)
        except Exception as exc:  # noqa: BLE001 - IPC errors from the SDK become exit code 1
            if isinstance(exc, click.exceptions.Exit | click.ClickException | SystemExit | KeyboardInterrupt):
                raise
            message = getattr(exc, "message", None) or str(exc)
            click.echo(f"ggsim: {type(exc).__name__}: {message}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper


ROOT_TYPE = click.Path(file_okay=False, path_type=Path)
VERSION = f"{__version__} (simulating nucleus {NUCLEUS_VERSION})"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=ROOT_TYPE, envvar="GGSIM_ROOT",
              default=default_root, show_default="$GGSIM_ROOT or ~/.local/share/ggsim/root",
              help="The simulated Greengrass root folder (also accepted after the command).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.version_option(VERSION, prog_name="ggsim")
@click.pass_context
def main(ctx: click.Context, root: Path, as_json: bool) -> None:
    """A simulator of the AWS IoT Greengrass v2 nucleus that runs components unmodified."""
    ctx.obj = Context(root.expanduser().resolve(), as_json)


# ------------------------------------------------------------------------------------------- up


def deployment_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-r", "--recipeDir", "recipe_dir", type=click.Path(exists=True, file_okay=False),
                     help="Folder of recipes (.yaml/.yml/.json) to add to the component store."),
        click.option("-a", "--artifactDir", "artifact_dir", type=click.Path(exists=True, file_okay=False),
                     help="Folder of artifacts laid out <name>/<version>/<files>."),
        click.option("-m", "--merge", "merge", multiple=True, metavar="NAME=VERSION",
                     help="Add or update a root component (repeatable)."),
        click.option("--remove", "remove", multiple=True, metavar="NAME[,NAME]", help="Remove root components."),
        click.option("-c", "--update-config", "update_config", metavar="JSON|FILE",
                     help='{"<name>": {"MERGE": {...}, "RESET": ["/pointer"]}} as JSON or a file.'),
        click.option("--runWith", "run_with", multiple=True, metavar="NAME:posixUser=USER[:GROUP]",
                     help="The user a component's steps run as when ggsim is root (repeatable; an empty USER "
                          "goes back to the default component user)."),
        click.option("-g", "--groupId", "group_id", help="Deployment group (default LOCAL_DEPLOYMENT)."),
        click.option("-fp", "--failure-handling-policy", "failure_policy",
                     type=click.Choice(["ROLLBACK", "DO_NOTHING"]), help="Default DO_NOTHING."),
        click.option("--document", type=click.Path(exists=True, dir_okay=False),
                     help="A cloud CreateDeployment body (JSON), applied as-is instead of the options above."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_request(recipe_dir: str | None, artifact_dir: str | None, merge: tuple[str, ...],
                  remove: tuple[str, ...], update_config: str | None, group_id: str | None,
                  failure_policy: str | None, run_with: tuple[str, ...] = ()) -> dict[str, Any]:
    request: dict[str, Any] = {}
    if recipe_dir:
        request["recipeDirectoryPath"] = str(Path(recipe_dir).resolve())
    if artifact_dir:
        request["artifactsDirectoryPath"] = str(Path(artifact_dir).resolve())
    if merge:
        versions = {}
        for item in merge:
            name, sep, version = item.partition("=")
            if not sep or not name or not version:
                raise click.BadParameter(f"{item!r}: expected NAME=VERSION", param_hint="--merge")
            versions[name] = version
        request["rootComponentVersionsToAdd"] = versions
    if remove:
        request["rootComponentsToRemove"] = [n for item in remove for n in item.split(",") if n]
    if update_config:
        text = Path(update_config).read_text() if os.path.isfile(update_config) else update_config
        try:
            request["componentToConfiguration"] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--update-config") from None
    if run_with:
        request["componentToRunWithInfo"] = _run_with_options(run_with)
    if group_id:
        request["groupName"] = group_id
    if failure_policy:
        request["failureHandlingPolicy"] = failure_policy
    return request


def _run_with_options(items: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """greengrass-cli's ``--runWith NAME:posixUser=USER[:GROUP]`` → componentToRunWithInfo."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        name, sep, setting = item.partition(":")
        key, eq, value = setting.partition("=")
        if not sep or not name or not eq or key != "posixUser":
            raise click.BadParameter(f"{item!r}: expected NAME:posixUser=USER[:GROUP]", param_hint="--runWith")
        out.setdefault(name, {})["posixUser"] = value
    return out


def read_document(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{path} is not JSON: {exc}", param_hint="--document") from None
    if not isinstance(document, dict):
        raise click.BadParameter(f"{path}: a deployment document is a JSON object", param_hint="--document")
    return document


@main.command()
@deployment_options
@click.option("--mqtt-broker", metavar="URL", envvar="GGSIM_MQTT_BROKER",
              help="Bridge IoT Core to this MQTT broker (mqtt://host:port) instead of the embedded stand-in.")
@click.option("--thing-name", default="ggsim-core", show_default=True, envvar="AWS_IOT_THING_NAME")
@click.option("--region", default="us-east-1", show_default=True, envvar="AWS_REGION")
@click.option("--secrets", "secrets_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Secrets served to GetSecretValue (aws.greengrass.SecretManager), JSON or YAML; see the manual.")
@click.option("--aws-credentials", "credentials_file", metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Credentials the TokenExchangeService endpoint serves (AccessKeyId, SecretAccessKey, Token); "
                   "default: ggsim's own AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN.")
@click.option("--fleet", "fleet_endpoint", metavar="ENDPOINT|aws", envvar="GGSIM_FLEET",
              help="Be a fleet member: take deployments from IoT Jobs on --mqtt-broker and fetch components "
                   "from this control plane URL (e.g. http://127.0.0.1:4566), or 'aws' for AWS itself.")
@click.option("--status-interval", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="With --fleet: seconds between fleet status messages when nothing changes.")
@click.option("-v", "--verbose", is_flag=True, help="Log the simulator's own debug lines to stderr.")
@click.option("--component-default-user", metavar="USER[:GROUP]", envvar="GGSIM_COMPONENT_DEFAULT_USER",
              help="When ggsim runs as root: who steps without RequiresPrivilege run as (the installer's "
                   "--component-default-user; default ggc_user:ggc_group, created when missing). The nucleus's "
                   "runWithDefault.posixUser, set by a deployment, wins over it.")
@click.pass_obj
def up(ctx: Context, mqtt_broker: str | None, thing_name: str, region: str, secrets_file: Path | None,
       credentials_file: Path | None, fleet_endpoint: str | None, status_interval: float, verbose: bool,
       document: str | None, component_default_user: str | None, **deploy: Any) -> None:
    """Start the simulated core in the foreground (Ctrl-C stops it), optionally with a deployment."""
    from .aws.credentials import CredentialsError, load_credentials_file
    from .aws.secrets import SecretFileError, load_secrets_file

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    request = read_document(document) if document else build_request(**deploy)
    try:
        stand_ins = {"secrets": load_secrets_file(secrets_file, region) if secrets_file else None,
                     "aws_credentials": load_credentials_file(credentials_file) if credentials_file else None}
    except SecretFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--secrets") from None
    except CredentialsError as exc:
        raise click.BadParameter(str(exc), param_hint="--aws-credentials") from None
    if fleet_endpoint:
        from .fleet import FleetOptions

        if not mqtt_broker:
            raise click.BadParameter("a fleet member needs the fleet's broker: add --mqtt-broker mqtt://HOST:PORT",
                                     param_hint="--fleet")
        stand_ins["fleet"] = FleetOptions(None if fleet_endpoint == "aws" else fleet_endpoint, status_interval)
    try:
        code = asyncio.run(_up(ctx.root, mqtt_broker, thing_name, region, request, stand_ins,
                               component_default_user))
    except KeyboardInterrupt:
        code = 0
    except RunAsError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


async def _up(root: Path, mqtt_broker: str | None, thing_name: str, region: str,
              request: dict[str, Any], stand_ins: dict[str, Any], component_user: str | None = None) -> int:
    from .core import Core  # only `up` runs the simulator; the other commands are IPC clients
    from .ipc.auth import CLI_IDENTITY

    root.mkdir(parents=True, exist_ok=True)
    core = Core(root, thing_name=thing_name, region=region, mqtt_broker=mqtt_broker, component_user=component_user,
                **stand_ins)
    core.check_component_user()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await core.start()
    try:
        write_cli_info(root, core.socket_path, core.tokens.issue(CLI_IDENTITY))
        click.echo(f"ggsim {__version__} up: root {root}, IPC socket {core.socket_path}, "
                   f"IoT Core {'bridged to ' + mqtt_broker if mqtt_broker else 'embedded'}", err=True)
        if request:
            deployment_id = core.deployments.create(request)
            click.echo(f"deployment {deployment_id} queued", err=True)
        await stop.wait()
        click.echo("ggsim stopping", err=True)
    finally:
        remove_cli_info(root)
        await core.stop()
    return 0


# ------------------------------------------------------------------------------------ deployment


@main.group()
def deployment() -> None:
    """Create local deployments and follow them (greengrass-cli deployment ...)."""


@deployment.command("create")
@deployment_options
@click.option("--wait/--no-wait", default=False, help="Wait for the deployment to finish; exit 1 if it failed.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait with --wait.")
@with_json
def deployment_create(ctx: Context, document: str | None, wait: bool, timeout: float, **deploy: Any) -> None:
    """Create a local deployment (or apply a cloud deployment document with --document)."""
    with ctx.client() as client:
        if document:
            deployment_id = client.create_deployment_document(read_document(document))
        else:
            request = build_request(**deploy)
            kwargs = {
                "recipe_directory_path": request.get("recipeDirectoryPath"),
                "artifacts_directory_path": request.get("artifactsDirectoryPath"),
                "root_component_versions_to_add": request.get("rootComponentVersionsToAdd"),
                "root_components_to_remove": request.get("rootComponentsToRemove"),
                "component_to_configuration": request.get("componentToConfiguration"),
                "group_name": request.get("groupName"),
                "failure_handling_policy": request.get("failureHandlingPolicy"),
                "component_to_run_with_info": _run_with_models(request.get("componentToRunWithInfo")),
            }
            deployment_id = client.call("create_local_deployment", **kwargs).deployment_id
        if not wait:
            emit(ctx, {"deploymentId": deployment_id},
                 lambda: click.echo(f"Local deployment submitted! Deployment Id: {deployment_id}"))
            return
        status = wait_for_deployment(client, deployment_id, timeout)
    emit(ctx, status, lambda: print_deployment(status))
    if status.get("status") != "SUCCEEDED":
        sys.exit(EXIT_FAILED)


def _run_with_models(run_with: dict[str, dict[str, str]] | None) -> dict[str, Any] | None:
    if not run_with:
        return None
    from awsiot.greengrasscoreipc import model

    return {name: model.RunWithInfo(posix_user=info.get("posixUser")) for name, info in run_with.items()}


def wait_for_deployment(client: CliClient, deployment_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = client.call("get_local_deployment_status", deployment_id=deployment_id).deployment._to_payload()
        if status.get("status") in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            return status
        time.sleep(0.2)  # polling the core, as greengrass-cli users do


def print_deployment(status: dict[str, Any]) -> None:
    """A deployment as `greengrass-cli deployment status` prints it: `<id>: <STATUS>`, then a `Name: value`
    line for each detail the status has."""
    click.echo(f"{status.get('deploymentId')}: {status.get('status')}")
    details = status.get("deploymentStatusDetails") or {}
    lines = [
        ("Created on", status.get("createdOn")),
        ("Detailed Status", details.get("detailedDeploymentStatus")),
        ("Deployment Error Stack", ", ".join(details.get("deploymentErrorStack") or []) or None),
        ("Deployment Error Types", ", ".join(details.get("deploymentErrorTypes") or []) or None),
        ("Deployment Failure Cause", details.get("deploymentFailureCause")),
    ]
    for name, value in lines:
        if value:
            click.echo(f"{name}: {value}")


@deployment.command("status")
@click.option("-i", "--deploymentId", "deployment_id", required=True)
@with_json
def deployment_status(ctx: Context, deployment_id: str) -> None:
    """The status of one deployment."""
    with ctx.client() as client:
        status = client.call("get_local_deployment_status", deployment_id=deployment_id).deployment._to_payload()
    emit(ctx, status, lambda: print_deployment(status))


@deployment.command("list")
@with_json
def deployment_list(ctx: Context) -> None:
    """Recent deployments, oldest first: `<id>: <STATUS>` a line, as greengrass-cli prints them."""
    with ctx.client() as client:
        items = [d._to_payload() for d in client.call("list_local_deployments").local_deployments or []]

    emit(ctx, items, lambda: [click.echo(f"{d.get('deploymentId')}: {d.get('status')}") for d in items])


# ------------------------------------------------------------------------------------- component


@main.group()
def component() -> None:
    """List, inspect, restart and stop components (greengrass-cli component ...)."""


@component.command("list")
@with_json
def component_list(ctx: Context) -> None:
    """Every component with its version and state."""
    with ctx.client() as client:
        items = [c._to_payload() for c in client.call("list_components").components or []]

    emit(ctx, items, lambda: print_table(items, {"Component": "componentName", "Version": "version",
                                                 "State": "state"}))


@component.command("details")
@click.option("-n", "--name", required=True)
@with_json
def component_details(ctx: Context, name: str) -> None:
    """Version, state and configuration of one component."""
    with ctx.client() as client:
        details = client.call("get_component_details", component_name=name).component_details._to_payload()

    def human() -> None:
        click.echo(f"Component Name: {details.get('componentName')}")
        click.echo(f"    Version: {details.get('version')}")
        click.echo(f"    State: {details.get('state')}")
        click.echo(f"    Configuration: {json.dumps(details.get('configuration'))}")

    emit(ctx, details, human)


def _each_name(names: tuple[str, ...]) -> list[str]:
    return [n for item in names for n in item.split(",") if n]


@component.command("restart")
@click.option("-n", "--names", "names", required=True, multiple=True, metavar="NAME[,NAME]")
@with_json
def component_restart(ctx: Context, names: tuple[str, ...]) -> None:
    """Restart components."""
    _lifecycle(ctx, names, "restart_component", "restart_status")


@component.command("stop")
@click.option("-n", "--names", "names", required=True, multiple=True, metavar="NAME[,NAME]")
@with_json
def component_stop(ctx: Context, names: tuple[str, ...]) -> None:
    """Stop components."""
    _lifecycle(ctx, names, "stop_component", "stop_status")


def _lifecycle(ctx: Context, names: tuple[str, ...], operation: str, field: str) -> None:
    results = {}
    with ctx.client() as client:
        for name in _each_name(names):
            results[name] = getattr(client.call(operation, component_name=name), field)
    emit(ctx, results, lambda: [click.echo(f"{n}: {s}") for n, s in results.items()])
    if any(s != "SUCCEEDED" for s in results.values()):
        sys.exit(EXIT_FAILED)


# ------------------------------------------------------------------------------------------ logs


@main.command()
@click.argument("name", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines of history to print first.")
@click.pass_obj
def logs(ctx: Context, name: str | None, follow: bool, lines: int) -> None:
    """Print a component's log (or greengrass.log, the nucleus's own)."""
    logs_dir = RootLayout(ctx.root).logs_dir
    path = logs_dir / (f"{name}.log" if name else "greengrass.log")
    if not path.exists() and not follow:
        available = sorted(p.stem for p in logs_dir.glob("*.log"))
        click.echo(f"ggsim: no log {path}; logs here: {', '.join(available) or 'none'}", err=True)
        sys.exit(EXIT_FAILED)
    position = 0
    if path.exists():
        text = path.read_text(errors="replace").splitlines()
        for line in text[-lines:] if lines > 0 else []:
            click.echo(line)
        position = path.stat().st_size
    while follow:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < position:
            position = 0  # rotated or recreated
        if size > position:
            with path.open("rb") as f:
                f.seek(position)
                chunk = f.read()
            position += len(chunk)
            click.echo(chunk.decode(errors="replace"), nl=False)
        time.sleep(0.25)


# -------------------------------------------------------------------------------- pubsub, iotcore


def _message_payload(message: str | None, binary: bool) -> tuple[dict[str, Any] | None, bytes]:
    text = sys.stdin.read() if message in (None, "-") else message
    if not binary:
        try:
            value = json.loads(text)
            if isinstance(value, dict):
                return value, text.encode()
        except json.JSONDecodeError:
            pass
    return None, text.encode()


def _show(ctx: Context, record: dict[str, Any]) -> None:
    if ctx.as_json:
        click.echo(json.dumps(record))
    else:
        body = record.get("json")
        shown = json.dumps(body) if body is not None else record.get("text", record.get("base64"))
        click.echo(f"{record['topic']}  {shown}")


def _decoded(data: bytes) -> dict[str, Any]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def _follow_stream(ctx: Context, subscribe: Callable[[CliClient, Callable[[Any], None]], None],
                   count: int | None) -> None:
    import queue

    received: queue.Queue[Any] = queue.Queue()
    with ctx.client() as client:
        subscribe(client, received.put)
        seen = 0
        try:
            while count is None or seen < count:
                _show(ctx, received.get())
                seen += 1
        except KeyboardInterrupt:
            pass


@main.group()
def pubsub() -> None:
    """Watch and publish on local pub/sub topics, as a component would."""


@pubsub.command("sub")
@click.argument("topic")
@click.option("--count", type=int, help="Exit after this many messages.")
@with_json
def pubsub_sub(ctx: Context, topic: str, count: int | None) -> None:
    """Print messages on TOPIC (MQTT-style wildcards + and # allowed)."""
    def subscribe(client: CliClient, put: Callable[[Any], None]) -> None:
        def on_event(event: Any) -> None:
            if event.json_message is not None:
                ctx_topic = event.json_message.context.topic if event.json_message.context else topic
                put({"topic": ctx_topic, "json": event.json_message.message})
            else:
                msg = event.binary_message
                put({"topic": msg.context.topic if msg.context else topic, **_decoded(msg.message)})

        client.call("subscribe_to_topic", topic=topic, on_stream_event=on_event,
                    receive_mode="RECEIVE_ALL_MESSAGES")

    _follow_stream(ctx, subscribe, count)


@pubsub.command("pub")
@click.argument("topic")
@click.argument("message", required=False)
@click.option("--binary", is_flag=True, help="Send as a binary message even if it is JSON.")
@with_json
def pubsub_pub(ctx: Context, topic: str, message: str | None, binary: bool) -> None:
    """Publish MESSAGE (a JSON object, or text; - or nothing reads stdin) to TOPIC."""
    from awsiot.greengrasscoreipc.model import BinaryMessage, JsonMessage, PublishMessage

    value, raw = _message_payload(message, binary)
    publish = PublishMessage(json_message=JsonMessage(message=value)) if value is not None else \
        PublishMessage(binary_message=BinaryMessage(message=raw))
    with ctx.client() as client:
        client.call("publish_to_topic", topic=topic, publish_message=publish)
    emit(ctx, {"published": topic}, lambda: None)


@main.group()
def iotcore() -> None:
    """Watch and publish on AWS IoT Core topics through the simulated core's MQTT connection."""


@iotcore.command("sub")
@click.argument("topic")
@click.option("--qos", type=click.Choice(["0", "1"]), default="1", show_default=True)
@click.option("--count", type=int, help="Exit after this many messages.")
@with_json
def iotcore_sub(ctx: Context, topic: str, qos: str, count: int | None) -> None:
    """Print IoT Core messages on TOPIC (MQTT wildcards allowed)."""
    def subscribe(client: CliClient, put: Callable[[Any], None]) -> None:
        def on_event(event: Any) -> None:
            m = event.message
            record = {"topic": m.topic_name, **_decoded(m.payload)}
            if "text" in record:
                try:
                    record["json"] = json.loads(record["text"])
                except json.JSONDecodeError:
                    pass
            put(record)

        client.call("subscribe_to_iot_core", topic_name=topic, qos=qos, on_stream_event=on_event)

    _follow_stream(ctx, subscribe, count)


@iotcore.command("pub")
@click.argument("topic")
@click.argument("message", required=False)
@click.option("--qos", type=click.Choice(["0", "1"]), default="1", show_default=True)
@click.option("--retain", is_flag=True)
@with_json
def iotcore_pub(ctx: Context, topic: str, message: str | None, qos: str, retain: bool) -> None:
    """Publish MESSAGE (text; - or nothing reads stdin) to the IoT Core TOPIC."""
    _, raw = _message_payload(message, True)
    with ctx.client() as client:
        client.call("publish_to_iot_core", topic_name=topic, qos=qos, payload=raw, retain=retain)
    emit(ctx, {"published": topic}, lambda: None)


# ------------------------------------------------------------------ global options after the command


def _root_after_command(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.find_object(Context).root = value.expanduser().resolve()  # type: ignore[union-attr]


def _json_after_command(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Context).as_json = True  # type: ignore[union-attr]


def accept_global_options_after_commands(group: click.Group) -> None:
    """Give every command and group below `group` the global options, so `ggsim up --root DIR` works as
    `ggsim --root DIR up` does. One given after the command wins over the same one before it."""
    for command in group.commands.values():
        names = {name for param in command.params for name in getattr(param, "opts", [])}
        if "--root" not in names:
            click.option("--root", type=ROOT_TYPE, expose_value=False, callback=_root_after_command,
                         help="The simulated Greengrass root folder (as ggsim --root).")(command)
        if "--json" not in names:
            click.option("--json", is_flag=True, expose_value=False, callback=_json_after_command,
                         help="Print JSON for scripts.")(command)
        if "--version" not in names:
            click.version_option(VERSION, prog_name="ggsim")(command)
        if isinstance(command, click.Group):
            accept_global_options_after_commands(command)


def _add_fleet_commands() -> None:
    from .fleet.cli import fleet

    main.add_command(fleet)


_add_fleet_commands()
accept_global_options_after_commands(main)

if __name__ == "__main__":
    main()
