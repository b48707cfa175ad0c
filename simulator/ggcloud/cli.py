"""``ggcloud up``: the local control plane in the foreground until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

import click

from .clock import Clock
from .server import ControlPlane


@click.group()
def main() -> None:
    """A local stand-in for AWS IoT Greengrass v2, IoT (things, groups, jobs), S3, STS and Secrets Manager."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4566, show_default=True, type=click.IntRange(0, 65535),
              help="The one HTTP port (0 picks a free one).")
@click.option("--region", default="us-east-1", show_default=True, help="The region Greengrass v2 serves.")
@click.option("--clock-scale", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Roll-out minutes run this many times faster (60: a minute lasts one second).")
@click.option("--mqtt", "broker_url", default=None, metavar="mqtt://HOST:PORT",
              help="The fleet's MQTT broker, for the IoT Jobs MQTT API and fleet status (none: API only).")
@click.option("--verbose", "-v", is_flag=True, help="Log every roll-out step.")
def up(host: str, port: int, region: str, clock_scale: float, broker_url: str | None, verbose: bool) -> None:
    """Serve until interrupted."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    clock = Clock(clock_scale)
    plane = ControlPlane(host=host, port=port, region=region, clock=clock, broker_url=broker_url).start()
    click.echo(f"ggcloud: {plane.url} region {region}, {clock.describe()}, "
               f"jobs MQTT {'on ' + broker_url if broker_url else 'off'}")
    click.echo(f"  export AWS_ENDPOINT_URL={plane.url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
               f"AWS_DEFAULT_REGION={region}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
