"""What the GreenLens components' entry points share: command line, logging, IPC connection, configuration, state.

A component's ``main.py`` subclasses :class:`Runner` (or :class:`ThreadRunner`, for a main loop on threads),
naming the component, its logger, its configuration dataclass and which command-line options are
configuration keys. Under a nucleus the command-line values are defaults and the component configuration
wins; with ``--no-ipc`` (development) the messages it would publish are JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from .config import ConfigError
from .ipc import Ipc, IpcError

NOT_COMPONENT_KEYS = frozenset({"accessControl"})
"""Keys of the component configuration that belong to the nucleus, not to the component."""

EXIT_FAILED = 2
"""Exit status of a component that cannot run as configured (it reported ERRORED)."""
EXIT_IPC = 3
"""Exit status of a component that lost (or never had) its IPC connection."""


def argument_parser(prog: str, description: str | None, *,
                    no_ipc_help: str = "run without a nucleus (development)") -> argparse.ArgumentParser:
    """The parser of a component's command line, with ``--no-ipc`` first (its own options come next)."""
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-ipc", action="store_true", help=no_ipc_help)
    return ap


def add_runner_arguments(ap: argparse.ArgumentParser) -> None:
    """The options every component ends its command line with: ``--ipc-timeout``, ``--log-level``."""
    ap.add_argument("--ipc-timeout", type=float, default=10.0, help="seconds to wait for any IPC answer")
    ap.add_argument("--log-level", default="INFO")


def setup_logging(level: str) -> None:
    """Logs go to stderr (stdout carries the ``--no-ipc`` JSON lines)."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_stdout_lock = threading.Lock()


def print_json_line(doc: Mapping[str, Any]) -> None:
    """``doc`` as one JSON line on stdout, whole even when several threads print."""
    line = json.dumps(doc)
    with _stdout_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Configuration(Protocol):
    def updated(self, mapping: Mapping[str, Any]) -> Any: ...


C = TypeVar("C", bound=Configuration)


class Runner(Generic[C]):
    """One run of a component: its IPC connection (None with ``--no-ipc``), configuration and state reports."""

    name: ClassVar[str]
    """The component's name in log lines, e.g. ``greenlens.Capture``."""
    log: ClassVar[logging.Logger]
    config_type: ClassVar[Callable[[], Any]]
    """The configuration dataclass: its defaults are the base the command line and the nucleus update."""
    arg_keys: ClassVar[dict[str, str]]
    """Command-line option (argparse dest) -> configuration key, for the options that are configuration."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ipc: Ipc | None = None
        self.signalled: int | None = None  # the signal that stopped the run, if one did

    @classmethod
    def main(cls, args: argparse.Namespace) -> int:
        """The entry point once the command line is parsed: logging, the runner, its signals, its run.

        A run ended by a signal exits 128 + its number (143 for SIGTERM) after its clean shutdown, as a
        process killed by it would: when the nucleus stops a component it ignores the exit status, and when
        anything else kills it the nucleus sees an error and restarts it (exit 0 would mean "finished").
        """
        setup_logging(args.log_level)
        runner = cls(args)
        runner.handle_signals()
        code = runner.run()
        if code == 0 and runner.signalled is not None:
            return 128 + runner.signalled
        return code

    def handle_signals(self) -> None:
        """Nothing here: a runner on asyncio installs its SIGTERM/SIGINT handlers on its event loop."""

    def run(self) -> int:
        raise NotImplementedError

    # -- configuration and state

    def overrides(self) -> dict[str, Any]:
        """Command-line values, under their configuration key names (only those given)."""
        return {key: getattr(self.args, attr) for attr, key in self.arg_keys.items()
                if getattr(self.args, attr) is not None}

    def load_config(self) -> C:
        base: C = self.config_type().updated(self.overrides())
        if self.ipc is None:
            return base
        # Command-line values are defaults under a nucleus; the component configuration wins.
        return base.updated({k: v for k, v in self.ipc.get_configuration().items() if k not in NOT_COMPONENT_KEYS})

    def reload_config(self) -> C | None:
        """The configuration after an update; None, logged, when it is refused (the previous one stays)."""
        try:
            return self.load_config()
        except (ConfigError, IpcError) as exc:
            self.log.error("configuration update refused, keeping the previous one: %s", exc)
            return None

    def proposed_config(self, configuration: Mapping[str, Any]) -> C:
        """The configuration a deployment proposes (SubscribeToValidateConfigurationUpdates), made as
        :meth:`load_config` would make it; ConfigError when a value is bad."""
        base: C = self.config_type().updated(self.overrides())
        return base.updated({k: v for k, v in configuration.items() if k not in NOT_COMPONENT_KEYS})

    def answer_validation(self, deployment_id: str, accepted: bool, message: str) -> None:
        """Log and send the answer to a deployment's proposed configuration (REJECTED: the deployment fails
        with ``message`` and nothing changes)."""
        if accepted:
            self.log.info("deployment %s: proposed configuration accepted", deployment_id)
        else:
            self.log.error("deployment %s: proposed configuration rejected: %s", deployment_id, message)
        assert self.ipc is not None
        try:
            self.ipc.send_configuration_validity_report(deployment_id, accepted, message)
        except IpcError as exc:
            self.log.error("%s", exc)

    def report(self, state: str) -> None:
        if self.ipc is not None:
            try:
                self.ipc.update_state(state)
            except IpcError as exc:
                self.log.error("%s", exc)

    def failed(self, line: str) -> int:
        """Log the one line that says why the component cannot run, and report ERRORED."""
        self.log.error("%s", line)
        self.report("ERRORED")
        return EXIT_FAILED

    # -- proposed configurations (SubscribeToValidateConfigurationUpdates)

    def check_proposed(self, config: C) -> None:
        """More checks of a proposed configuration than its parsers make (raise to refuse it)."""

    def refusal(self, exc: Exception) -> str | None:
        """The one line that says why ``exc`` refuses a proposed configuration; None: not a refusal."""
        if isinstance(exc, ConfigError):
            return f"{self.name}: bad configuration: {exc}"
        return None

    def validate_proposed(self, configuration: dict[str, Any], deployment_id: str) -> None:
        """Answer a deployment's proposed configuration: ACCEPTED, or REJECTED with the one line that names
        the bad setting (the deployment then fails with nothing changed)."""
        try:
            self.check_proposed(self.proposed_config(configuration))
            accepted, message = True, f"{self.name} accepts the configuration"
        except Exception as exc:  # an unexpected failure must still answer, or the deployment waits for nothing
            line = self.refusal(exc)
            accepted, message = False, line or f"{self.name}: configuration cannot be checked: {exc!r}"
        self.answer_validation(deployment_id, accepted, message)

    def on_validate(self, configuration: dict[str, Any], deployment_id: str) -> None:
        """The SubscribeToValidateConfigurationUpdates callback (an IPC thread): the check runs on a thread of
        its own, since an IPC call made from the IPC thread would stall the connection."""
        threading.Thread(target=self.validate_proposed, args=(configuration, deployment_id),
                         name="validate-configuration", daemon=True).start()

    def request_reload(self, key_path: list[str]) -> None:
        """The configuration update callback (an IPC thread)."""
        self.log.info("configuration changed (%s)", "/".join(key_path) or "all")
        self.on_reload()

    def on_reload(self) -> None:
        raise NotImplementedError

    # -- publishing

    def publish_stdout(self, topic: str, message: dict[str, Any]) -> None:
        print_json_line({"topic": topic, "message": message})

    def publish_ipc(self, topic: str, message: dict[str, Any]) -> None:
        assert self.ipc is not None
        self.ipc.publish_json(topic, message, timeout=self.args.ipc_timeout)

    def publish_ipc_nowait(self, topic: str, message: dict[str, Any]) -> None:
        """publish_ipc for a per-frame loop: does not wait for the nucleus's answer (failures surface later)."""
        assert self.ipc is not None
        self.ipc.publish_json_nowait(topic, message)

    # -- the connection

    def connect(self) -> bool:
        """Connect to the nucleus (unless ``--no-ipc``); False, logged, when it cannot."""
        if self.args.no_ipc:
            return True
        try:
            self.ipc = Ipc.connect(timeout=self.args.ipc_timeout)
        except IpcError as exc:
            self.log.error("%s cannot start: %s", self.name, exc)
            return False
        return True

    def stops(self, exc: IpcError) -> int:
        """The IPC connection failed while running."""
        self.log.error("%s stops: %s", self.name, exc)
        return EXIT_IPC

    def serve(self, body: Callable[[], int]) -> int:
        """``body()`` connected to the nucleus (unless ``--no-ipc``); its exit status."""
        if not self.connect():
            return EXIT_IPC
        try:
            return body()
        except IpcError as exc:
            return self.stops(exc)
        finally:
            if self.ipc is not None:
                self.ipc.close()


class ThreadRunner(Runner[C]):
    """A runner whose main thread waits on :attr:`wake`, set by a stop (a signal), a reload or the component."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()  # set by stop or reload (or the component): wakes the main loop

    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    def on_signal(self, signum: int, _frame: object) -> None:
        self.signalled = signum
        # A signal handler runs between two bytecodes of the main thread, possibly while it holds the lock
        # of the very Event it waits on: setting events here could deadlock. A short thread does it.
        threading.Thread(target=self.request_stop, name=f"signal-{signum}", daemon=True).start()

    def handle_signals(self) -> None:
        """SIGTERM (the nucleus stopping the component) and SIGINT stop it cleanly."""
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

    def on_reload(self) -> None:
        self.reload.set()
        self.wake.set()
