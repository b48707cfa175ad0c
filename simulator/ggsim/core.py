"""The composition root: one simulated Greengrass core device, built from its parts and wired together.

This is the only module that knows every part. It builds them in dependency order and hands each exactly
what it needs; no part reaches for another through a shared object:

    Store                 <root> layout, recipes, artifacts                    (nucleus)
    ConfigStore           <root>/config/effectiveConfig.yaml, persisted by a   (nucleus)
                          ConfigJournal (snapshot + log) under <root>/config
    TokenRegistry         SVCUID tokens: issued by the runner, revoked by the kernel, looked up by IPC
    GreengrassLogs        <root>/logs
    RecordingRunner       lifecycle scripts with the component environment,    (nucleus)
                          recorded in a ProcessLedger under the root
    Kernel                the components and their order                       (nucleus)
    UpdateHub,            what a deployment tells and asks the components      (nucleus.deployment)
    ValidationHub
    DeploymentManager     the deployment queue, rollback, persistence          (nucleus.deployment)
    IotCore               embedded stand-in or bridge to a real broker         (iotcore)
    ShadowManager,        AWS components' stand-ins: local shadows, secrets,   (aws)
    SecretStore,          the TokenExchangeService endpoint, and the built-in
    CredentialsServer,    components beside the kernel's in ListComponents
    BuiltinComponents
    IpcServer             <root>/ipc.socket, over an IpcBackend of the above   (ipc)
    FleetAgent            with ``fleet=``: deployments from IoT Jobs, fleet     (fleet)
                          status back, an UNHEALTHY last will on the bridge

``Core(root, ...)`` → ``await start()`` stops the component processes a killed ggsim left on this root,
loads the persisted configuration, starts IoT Core, the IPC server and the deployments (re-applying
the persisted deployment); ``await stop()`` stops the deployments, the components (dependers first), the
IPC server and IoT Core. ``ggsim up``, the tests and the benchmark all start ggsim this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from . import NUCLEUS_VERSION
from .aws.catalogue import NUCLEUS, SHADOW_MANAGER, BuiltinComponents, builtin_versions
from .aws.credentials import (
    FULL_URI_VARIABLE,
    CredentialsServer,
    StaticCredentials,
    credentials_from_environment,
)
from .aws.secrets import SecretStore
from .aws.shadows import ShadowManager
from .fleet import FleetAgent, FleetOptions
from .fleet.sigv4 import Credentials as SigningCredentials
from .iotcore import IotCore, make_iotcore
from .ipc.auth import TokenRegistry
from .ipc.backend import IpcBackend
from .ipc.server import IpcServer
from .nucleus.config import ConfigStore
from .nucleus.config_journal import ConfigJournal
from .nucleus.deployment import DeploymentManager, UpdateHub, ValidationHub
from .nucleus.kernel import Kernel
from .nucleus.layout import RootLayout
from .nucleus.platform import detect_platform
from .nucleus.process import DEFAULT_GRACE, GreengrassLogs
from .nucleus.process_ledger import ProcessLedger, RecordingRunner
from .nucleus.run_as import DEFAULT_POSIX_USER, RunAsPolicy, check_traversable, ensure_default_user, resolve
from .nucleus.store import Store

__all__ = ["Core"]

KERNEL_LOGGER = "com.aws.greengrass.lifecyclemanager.Kernel"


def _signing_credentials(served: StaticCredentials | None) -> SigningCredentials | None:
    """The token exchange role's credentials, as the fleet agent signs its S3 downloads with them."""
    if served is None:
        return None
    return SigningCredentials(served.access_key_id, served.secret_access_key, served.session_token)


class Core:
    """One simulated core device: its parts (public attributes) and their start and stop."""

    def __init__(
        self,
        root: Path | str,
        *,
        thing_name: str = "ggsim-core",
        region: str = "us-east-1",
        mqtt_broker: str | None = None,
        stop_grace: float = DEFAULT_GRACE,
        timeouts: Mapping[str, float] | None = None,
        platform: Mapping[str, str] | None = None,
        root_ca_path: str = "",
        ipc: bool = True,
        secrets: SecretStore | None = None,
        aws_credentials: StaticCredentials | None = None,
        component_user: str | None = None,
        fleet: FleetOptions | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.thing_name = thing_name
        self.region = region
        self.layout = RootLayout(self.root)
        self.socket_path = self.layout.socket_path
        self.platform: dict[str, str] = dict(platform) if platform is not None else detect_platform()
        self.store = Store(self.root)
        self.config_journal = ConfigJournal(self.layout.config_dir)
        self.config = ConfigStore(self.layout.effective_config, journal=self.config_journal)
        self.processes = ProcessLedger(self.layout.processes_file)
        self.tokens = TokenRegistry()
        self.logs = GreengrassLogs(self.layout.logs_dir)
        #: who steps run as when ggsim is root: the component's runWith.posixUser, else the nucleus's
        #: runWithDefault.posixUser, else this default
        self.run_as = RunAsPolicy(component_user or DEFAULT_POSIX_USER, configured=self._configured_user,
                                  per_component=lambda name: self.kernel.posix_user(name))
        self.runner = RecordingRunner(
            layout=self.layout, thing_name=thing_name, region=region,
            tokens=self.tokens, logs=self.logs, root_ca_path=root_ca_path, grace=stop_grace,
            ledger=self.processes, run_as=self.run_as,
        )
        self.kernel = Kernel(
            root=self.root, thing_name=thing_name, config=self.config, logs=self.logs, runner=self.runner,
            tokens=self.tokens, stop_grace=stop_grace, timeouts=timeouts,
        )
        self.update_hub = UpdateHub()
        self.validation_hub = ValidationHub()
        self.deployments = DeploymentManager(
            store=self.store, config=self.config, kernel=self.kernel, update_hub=self.update_hub,
            validation_hub=self.validation_hub, platform=self.platform, nucleus_version=NUCLEUS_VERSION,
        )
        if fleet is not None and not mqtt_broker:
            raise ValueError("a fleet member takes its deployments over MQTT: give it the fleet's broker "
                             "(mqtt_broker / --mqtt-broker)")
        will = FleetAgent.last_will(thing_name, NUCLEUS_VERSION, self.platform) if fleet is not None else None
        self.iotcore: IotCore = make_iotcore(mqtt_broker, client_id=thing_name, will=will)
        self.shadows = ShadowManager(self.layout.work_path(SHADOW_MANAGER), thing_name, self.iotcore, self.config)
        self.secrets = secrets if secrets is not None else SecretStore()
        self.credentials = CredentialsServer(
            aws_credentials if aws_credentials is not None else credentials_from_environment(os.environ),
            self.tokens.lookup)
        self.components = BuiltinComponents(self.kernel, builtin_versions(NUCLEUS_VERSION), self.config)
        self.fleet: FleetAgent | None = None
        if fleet is not None:
            self.fleet = FleetAgent(
                thing_name=thing_name, region=region, options=fleet, iotcore=self.iotcore,
                deployments=self.deployments, kernel=self.kernel, store=self.store, platform=self.platform,
                builtin=builtin_versions(NUCLEUS_VERSION), nucleus_version=NUCLEUS_VERSION,
                credentials=_signing_credentials(self.credentials.credentials))
        self.ipc_server: IpcServer | None = None
        if ipc:
            self.ipc_server = IpcServer(IpcBackend(
                socket_path=self.socket_path, tokens=self.tokens, config=self.config, iotcore=self.iotcore,
                components=self.components, deployments=self.deployments, update_hub=self.update_hub,
                validation_hub=self.validation_hub, shadows=self.shadows, secrets=self.secrets,
            ))
        self._started = False
        #: What start() has started, so that stop() (also after a failed start) stops exactly that.
        self._running: set[str] = set()

    async def start(self) -> None:
        """Start IoT Core, the IPC server and the deployments (re-applying the persisted deployment)."""
        self.logs.kernel("INFO", KERNEL_LOGGER, "system-start", "ggsim nucleus starting",
                         {"root": self.root, "thingName": self.thing_name, "version": NUCLEUS_VERSION})
        self._started = True
        try:
            leftovers = await asyncio.to_thread(self.processes.stop_leftovers, max(self.runner.grace, 1.0))
            for entry in leftovers:
                self.logs.kernel("WARN", KERNEL_LOGGER, "stale-process-stopped",
                                 "stopped a component process left running by a ggsim that was killed", entry)
            self.config.load_persisted()
            self._prepare_component_user()
            await self.iotcore.start()
            self._running.add("iotcore")
            await self.credentials.start()
            self._running.add("credentials")
            self.runner.nucleus_setenv[FULL_URI_VARIABLE] = self.credentials.full_uri
            await self.shadows.start()
            self._running.add("shadows")
            if self.ipc_server is not None:
                await self.ipc_server.start()
                self._running.add("ipc")
            self._running.add("deployments")  # from here on, stop() persists the deployment state
            await self.deployments.restore()
            if self.fleet is not None:
                await self.fleet.start()
                self._running.add("fleet")
        except BaseException:
            await self.stop()
            raise

    def _configured_user(self) -> str | None:
        """The nucleus's ``runWithDefault.posixUser`` (a deployment may set it), None when unset."""
        try:
            value = self.config.get(NUCLEUS, ["runWithDefault", "posixUser"])
        except KeyError:
            return None
        return str(value) if value not in (None, "") else None

    def _prepare_component_user(self) -> None:
        """As root: create the default component user when missing, as the installer does."""
        if not self.run_as.switches_user:
            return
        spec = self.run_as.spec("")
        if ensure_default_user(spec):
            self.logs.kernel("INFO", KERNEL_LOGGER, "system-create-user",
                             "created the default component user as the installer does", {"posixUser": spec})

    def check_component_user(self) -> None:
        """`RunAsError` when, ggsim being root, the component user is unknown or cannot reach the root's work
        folder (naming the folder); ``ggsim up`` refuses to start then. A step that would run so fails too."""
        if not self.run_as.switches_user:
            return
        self._prepare_component_user()
        who = resolve(self.run_as.spec(""))
        if not who.is_current():
            check_traversable(self.layout.work_dir, who, what="the Greengrass root's work folder")

    async def stop(self) -> None:
        """Stop the deployments, every component (dependers first), the IPC server and IoT Core."""
        if self.fleet is not None and "fleet" in self._running:
            with contextlib.suppress(Exception):
                await self.fleet.stop()
        if "deployments" in self._running:
            with contextlib.suppress(Exception):
                await self.deployments.close()
        await self.kernel.stop()
        if self.ipc_server is not None and "ipc" in self._running:
            with contextlib.suppress(Exception):
                await self.ipc_server.close()
        if "shadows" in self._running:
            with contextlib.suppress(Exception):
                await self.shadows.stop()
        if "credentials" in self._running:
            with contextlib.suppress(Exception):
                await self.credentials.stop()
        if "iotcore" in self._running:
            with contextlib.suppress(Exception):
                await self.iotcore.stop()
        self._running.clear()
        if self._started:
            self.logs.kernel("INFO", KERNEL_LOGGER, "system-shutdown", "ggsim nucleus stopped")
        self._started = False
        self.config_journal.close()
        self.logs.close()

    async def __aenter__(self) -> Core:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
