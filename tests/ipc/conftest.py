"""An IPC server on a real loop in a background thread, and component processes to talk to it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from ggsim.iotcore import make_iotcore
from ggsim.ipc.auth import TokenRegistry
from ggsim.ipc.backend import IpcBackend
from ggsim.ipc.limits import ConnectionLimits
from ggsim.ipc.server import IpcServer
from ggsim.nucleus.config import ConfigStore
from ggsim.nucleus.deployment import DeploymentDocument, UpdateHub, ValidationHub, parse_request

from tests.support.agents import AgentProcess

ALL_PUBSUB = {"aws.greengrass.ipc.pubsub": {"all": {"operations": ["*"], "resources": ["*"]}}}


class QueuedDeployments:
    """LocalDeployments that validates requests as the nucleus does and keeps them queued (never runs them;
    tests/nucleus run the real DeploymentManager)."""

    def __init__(self) -> None:
        self.queued: list[DeploymentDocument] = []

    def create(self, request: Any) -> str:
        self.queued.append(parse_request(request))
        return self.queued[-1].deployment_id

    def status(self, deployment_id: str) -> dict[str, Any] | None:
        for doc in self.queued:
            if doc.deployment_id == deployment_id:
                return {"deploymentId": doc.deployment_id, "status": "QUEUED",
                        "createdOn": str(int(doc.created_on * 1000))}
        return None

    def list(self) -> list[dict[str, Any]]:
        return [status for doc in self.queued if (status := self.status(doc.deployment_id)) is not None]


class IpcHost:
    """The parts of the nucleus the IPC server needs: real tokens, configuration, IoT Core and hubs; a
    recording stand-in for the kernel (no component processes) and queued deployments."""

    def __init__(self, root: Path, broker_url: str | None = None) -> None:
        self.root = root
        self.socket_path = root / "ipc.socket"
        self.thing_name = "ggsim-test-thing"
        self.region = "us-east-1"
        self.tokens = TokenRegistry()
        self.config = ConfigStore()
        self.iotcore = make_iotcore(broker_url)
        self.update_hub = UpdateHub()
        self.validation_hub = ValidationHub()
        self.deployments = QueuedDeployments()
        self.states: dict[str, list[str]] = {}
        self.restarted: list[str] = []
        self.paused: set[str] = set()
        self.state_changed = threading.Condition()

    def backend(self) -> IpcBackend:
        return IpcBackend(socket_path=self.socket_path, tokens=self.tokens, config=self.config,
                          iotcore=self.iotcore, components=self, deployments=self.deployments,
                          update_hub=self.update_hub, validation_hub=self.validation_hub)

    def report_state(self, component: str, state: str) -> None:
        with self.state_changed:
            self.states.setdefault(component, []).append(state)
            self.state_changed.notify_all()

    def list_components(self) -> list[dict[str, Any]]:
        return [d for d in (self.component_details(n) for n in self.config.components()) if d]

    def component_details(self, name: str) -> dict[str, Any] | None:
        if name not in self.config.components():
            return None
        return {"componentName": name, "version": "1.0.0", "state": "RUNNING",
                "configuration": self.config.get(name, [])}

    def restart_component(self, name: str) -> bool:
        self.restarted.append(name)
        return True

    def stop_component(self, name: str) -> bool:
        return name in self.config.components()

    async def pause_component(self, name: str) -> None:
        if name not in self.config.components():
            raise ValueError(f"Component with name {name} not found in Greengrass")
        self.paused.add(name)

    async def resume_component(self, name: str) -> None:
        if name not in self.config.components():
            raise ValueError(f"Component with name {name} not found in Greengrass")
        self.paused.discard(name)


class Core:
    """Runs an IpcHost and its IpcServer on an asyncio loop in a thread."""

    def __init__(self, root: Path, broker_url: str | None = None, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.host = IpcHost(root, broker_url)
        self.server: IpcServer = self.run(self._start())
        self.agents: list[AgentProcess] = []

    async def _start(self) -> IpcServer:
        await self.host.iotcore.start()
        server = IpcServer(self.host.backend(), limits=self.limits)
        await server.start()
        return server

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, fn: Callable[[], Any]) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except Exception as exc:  # noqa: BLE001
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(10)

    def component(self, name: str, configuration: dict[str, Any] | None = None, api: str = "v2",
                  token: str | None = None) -> AgentProcess:
        """Register a component (its configuration, accessControl included) and start its process."""
        def register() -> str:
            if configuration is not None:
                self.host.config.merge(name, configuration)
            return self.host.tokens.issue(name)

        issued = self.call_soon(register)
        agent = AgentProcess({"SVCUID": token or issued,
                              "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(self.host.socket_path),
                              "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH": str(self.host.socket_path)}, api=api)
        self.agents.append(agent)
        return agent

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        self.run(self.server.close())
        self.run(self.host.iotcore.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    c = Core(tmp_path)
    yield c
    c.close()


@pytest.fixture(params=["v2", "v1"])
def api(request: pytest.FixtureRequest) -> str:
    return request.param
