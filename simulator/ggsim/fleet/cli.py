"""``ggsim fleet up`` (N cores as fleet members until Ctrl-C) and ``ggsim fleet view`` (the live table)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from .launcher import Fleet, register


def _clients(endpoint: str | None, region: str) -> tuple[object, object]:
    import boto3

    session = boto3.session.Session()
    return (session.client("iot", region_name=region, endpoint_url=endpoint),
            session.client("greengrassv2", region_name=region, endpoint_url=endpoint))


@click.group("fleet")
def fleet() -> None:
    """Simulated cores as members of a fleet (a control plane or AWS IoT)."""


@fleet.command("up")
@click.option("-n", "count", default=3, show_default=True, type=click.IntRange(1, 500), help="Number of cores.")
@click.option("--control-plane", "endpoint", metavar="URL", envvar="AWS_ENDPOINT_URL", required=True,
              help="The control plane (ggcloud) URL; 'aws' for AWS itself.")
@click.option("--mqtt-broker", metavar="URL", required=True, help="The fleet's broker, mqtt://HOST:PORT.")
@click.option("--group", "groups", multiple=True, required=True, help="Thing group to join (repeatable).")
@click.option("--base", type=click.Path(file_okay=False, path_type=Path), default=Path("build/fleet"),
              show_default=True, help="Each core's root is <base>/<prefix>-<i>.")
@click.option("--prefix", default="core", show_default=True, help="Thing names are <prefix>-1 ... <prefix>-N.")
@click.option("--region", default="us-east-1", show_default=True, envvar="AWS_REGION")
@click.option("--status-interval", default=30.0, show_default=True, help="Seconds between fleet status messages.")
@click.option("--component-default-user", "component_user", metavar="USER[:GROUP]",
              envvar="GGSIM_COMPONENT_DEFAULT_USER", help="As `ggsim up --component-default-user`, for every core.")
def up(count: int, endpoint: str, mqtt_broker: str, groups: tuple[str, ...], base: Path, prefix: str,
       region: str, status_interval: float, component_user: str | None) -> None:
    """Register N things in the groups and run a ggsim core for each until Ctrl-C."""
    url = None if endpoint == "aws" else endpoint
    cores = Fleet(base, mqtt_broker, url, count=count, prefix=prefix, region=region,
                  status_interval=status_interval, component_user=component_user)
    iot, _ = _clients(url, region)
    arns = register(iot, cores.things, groups)
    cores.start()
    click.echo(f"ggsim fleet: {count} cores ({cores.things[0]} ... {cores.things[-1]}) in "
               f"{', '.join(arns.values())}; roots under {cores.base}; Ctrl-C stops them")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cores.stop()


@fleet.command("view")
@click.option("--control-plane", "endpoint", metavar="URL", envvar="AWS_ENDPOINT_URL", required=True)
@click.option("--group", required=True, help="The thing group whose core devices to show.")
@click.option("--clock-scale", default=1.0, show_default=True, help="The control plane's clock scale.")
@click.option("--region", default="us-east-1", show_default=True, envvar="AWS_REGION")
@click.option("--web", "web_port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Also serve the view as a live web page on 127.0.0.1:PORT (0: any free port).")
def view(endpoint: str, group: str, clock_scale: float, region: str, web_port: int | None) -> None:
    """A live table of the group's core devices (Ctrl-C ends it); with --web, the same as a web page."""
    from .view import clock_text, watch

    url = None if endpoint == "aws" else endpoint
    iot, gg = _clients(url, region)

    def things() -> list[str]:
        return sorted(t for page in iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=group)
                      for t in page["things"])

    clock = clock_text(clock_scale)
    page = None
    if web_port is not None:
        from .page import FleetPage

        page = FleetPage(gg, things, clock, port=web_port, title=f"Fleet {group}").start()
        click.echo(f"ggsim fleet: the fleet page is at {page.url}", err=True)
    try:
        watch(gg, things(), clock)
    finally:
        if page is not None:
            page.stop()
