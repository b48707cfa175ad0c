"""Kernel: the components, their lifecycles and their order.

The kernel runs one ComponentService (lifecycle.py) per component and keeps them in dependency order. It is
built by the composition root (ggsim.core) with what it needs: the configuration store, the logs, the
process runner and the token registry (to revoke a removed component's token).

For deployments: ``await apply(target)`` makes exactly the components of ``target`` run at those recipes
(spec components §1.7, §4.2, §5.4): new ones start; a version or Install/Bootstrap change reinstalls; any
other lifecycle or Setenv change, or a new/changed dependency, restarts; a configuration-only change
does nothing (the component learns through IPC); a BROKEN component that is part of the deployment is
reinstalled, as is one whose ``runWith`` changes (a new posixUser: run_with.py); components not in ``target``
are stopped (Uninstall runs) and forgotten. Recipe variables
are interpolated here, against the configuration the deployment has already written.
``await wait_healthy(names, timeout)`` then waits as spec §5.4 step 8 says.

State events: every transition reaches ``on_state_change`` (HARD dependers restart, listeners are called);
tests and tools wait with ``await wait_for_state(name, states, timeout, since=...)``.

For IPC: ``report_state``, ``list_components``, ``component_details``, ``restart_component``,
``stop_component``, ``pause_component``, ``resume_component``. ``await stop()`` stops every component,
dependers first, and writes effectiveConfig.yaml.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from .config import ConfigStore
from .layout import RootLayout
from .lifecycle import READY_STATES, ComponentService, State
from .process import DEFAULT_GRACE, GreengrassLogs, ProcessRunner
from .recipe import Recipe
from .run_with import needs_reinstall
from .variables import VariableContext, configuration_reader, interpolate_setenv, interpolate_step

__all__ = ["Kernel", "StateListener", "TokenRevoker"]

log = logging.getLogger(__name__)

StateListener = Callable[[str, str, str], None]
#: Lifecycle step keys whose change means a reinstall; changes of the others (but Shutdown) mean a restart.
REINSTALL_STEPS = ("install", "bootstrap")
IGNORED_STEPS = ("shutdown",)


class TokenRevoker(Protocol):
    """The SVCUID tokens: a removed component's token stops working."""

    def revoke(self, component: str) -> None: ...


class Kernel:
    """The components, their lifecycles and their order (see the module docstring)."""

    def __init__(
        self,
        *,
        root: Path,
        thing_name: str,
        config: ConfigStore,
        logs: GreengrassLogs,
        runner: ProcessRunner,
        tokens: TokenRevoker,
        stop_grace: float = DEFAULT_GRACE,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.root = root
        self.layout = RootLayout(root)
        self.thing_name = thing_name
        self.config = config
        self.logs = logs
        self.runner = runner
        self.tokens = tokens
        self.stop_grace = stop_grace
        self.timeouts = dict(timeouts or {})
        self._services: dict[str, ComponentService] = {}
        self._history: dict[str, list[str]] = {}
        #: ``services.<name>.runWith`` (run_with.py), set by deployments
        self._run_with: dict[str, dict[str, Any]] = {}
        #: Loop time at which each component entered its current state.
        self._entered: dict[str, float] = {}
        self._listeners: list[StateListener] = []
        self._changed: asyncio.Event | None = None

    async def stop(self) -> None:
        """Stop every component (dependers before their dependencies) and write effectiveConfig.yaml."""
        for name in reversed(self._start_order(self._services)):
            service = self._services.get(name)
            if service is not None:
                await service.close(timeout=max(30.0, self.stop_grace * 4))
        self.config.flush()

    # -------------------------------------------------------------- deployments

    async def apply(self, target: Mapping[str, Recipe], *, run_with: Mapping[str, Mapping[str, Any]] | None = None,
                    remove_others: bool = True) -> None:
        """Make ``target``'s components run at these recipes, as these users (``run_with``: each one's
        ``services.<name>.runWith``; see the module docstring); the others are removed too unless
        ``remove_others`` is false (a deployment removes them only once it succeeded, with
        :meth:`remove_others`)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        versions = {name: recipe.version for name, recipe in target.items()}
        previous_run_with = self._run_with
        # components left out of target keep theirs until they are removed
        self._run_with = {name: value for name, value in previous_run_with.items() if name not in target}
        self._run_with.update({name: dict(run_with[name]) for name in target if run_with and run_with.get(name)})
        new_services: list[str] = []
        for name in self._start_order(target):
            recipe = self._interpolated(target[name], versions)
            self.config.set_service_info(name, _service_info(recipe, self._run_with.get(name)))
            service = self._services.get(name)
            if service is None:
                service = ComponentService(self, recipe, timeouts=self.timeouts)
                self._services[name] = service
                self._history.setdefault(name, []).append(State.NEW.value)
                self.logs.component(name, "INFO", "service-added", "", {"serviceName": name, "version": recipe.version})
                new_services.append(name)
                continue
            previous = service.recipe
            action = _change_action(previous, recipe)
            if needs_reinstall(previous_run_with.get(name), self._run_with.get(name)):
                action = "reinstall"
            bootstrap = "bootstrap" in recipe.lifecycle and (
                previous.version != recipe.version
                or previous.lifecycle.get("bootstrap") != recipe.lifecycle.get("bootstrap")
            )
            service.update_recipe(recipe)
            if service.state == State.BROKEN or action == "reinstall":
                service.request_reinstall(bootstrap=bootstrap and self._bootstrap_needed(recipe))
            elif action == "restart":
                service.request_restart()
        for name in new_services:
            service = self._services[name]
            if self._bootstrap_needed(service.recipe):
                service.request_reinstall(bootstrap=True)
            service.start()
        if remove_others:
            await self.remove_others(target)

    async def remove_others(self, keep: Iterable[str]) -> None:
        """Stop (Uninstall runs), forget and revoke every component not in ``keep``, dependers first."""
        kept = set(keep)
        removed = [name for name in self._services if name not in kept]
        for name in reversed(self._start_order({n: self._services[n].recipe for n in removed})):
            service = self._services[name]
            await service.close(timeout=max(30.0, self.stop_grace * 4))
            await service.uninstall()
            del self._services[name]
            self._run_with.pop(name, None)
            self.config.set_service_info(name, None)
            self.tokens.revoke(name)
            self.logs.component(name, "INFO", "service-removed", "", {"serviceName": name})
            self._notify()

    def _bootstrap_needed(self, recipe: Recipe) -> bool:
        """Bootstrap runs when a deployment brings a component version (or Bootstrap step) this root has
        not bootstrapped yet; not again when ggsim restarts with the same deployment. Remembered in
        ``<root>/deployments/bootstrapped.json``."""
        step = recipe.lifecycle.get("bootstrap")
        if step is None:
            return False
        path = self.layout.bootstrapped_file
        try:
            done = json.loads(path.read_text())
        except (OSError, ValueError):
            done = {}
        if not isinstance(done, dict):
            done = {}
        mark = {"version": recipe.version, "script": step.script}
        if done.get(recipe.name) == mark:
            return False
        done[recipe.name] = mark
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=1, sort_keys=True))
        return True

    async def wait_healthy(self, names: Iterable[str], timeout: float, *, stable_for: float = 0.0) -> dict[str, str]:
        """Wait until each named component is RUNNING, FINISHED or BROKEN with no request pending, and
        (with ``stable_for``) until the RUNNING/FINISHED ones have stayed in that state that long, or
        until one of them is BROKEN; returns the state of each (its state at the timeout if it did not
        get there)."""
        wanted = list(names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            now = loop.time()
            states = {name: self._state_name(name) for name in wanted}
            settled = all(self._settled(name) for name in wanted)
            if now >= deadline or (settled and "BROKEN" in states.values()):
                return states
            if settled:
                calm_at = max((self._entered.get(name, now) + stable_for for name in wanted), default=now)
                if calm_at <= now:
                    return states
                await self._wait_any_change(min(deadline, calm_at))
                continue
            await self._wait_any_change(deadline)

    # ------------------------------------------------------------ state events

    def on_state_change(self, service: ComponentService, old: State, new: State) -> None:
        """Called by ComponentService on every transition (the lifecycle's only way out)."""
        self._history.setdefault(service.name, []).append(new.value)
        self._entered[service.name] = asyncio.get_running_loop().time()
        for listener in list(self._listeners):
            try:
                listener(service.name, old.value, new.value)
            except Exception:
                log.exception("state listener failed")
        for other in self._services.values():
            if other is service:
                continue
            if self._hard_dependency(other, service.name):
                if new not in READY_STATES and other.state in (State.STARTING, State.RUNNING):
                    self.logs.component(other.name, "INFO", "service-dependency-restart",
                                        f"HARD dependency {service.name} is {new}; restarting",
                                        {"serviceName": other.name, "dependency": service.name})
                    other.request_restart()
                else:
                    other.wake()
        self._notify()

    def on_progress(self, service: ComponentService) -> None:
        self._notify()

    def dependencies_ready(self, service: ComponentService) -> bool:
        for dep, spec in service.recipe.dependencies.items():
            if str(spec.dependency_type).upper() != "HARD":
                continue
            other = self._services.get(dep)
            if other is not None and other.state not in READY_STATES:
                return False
        return True

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """``listener(component, old, new)`` on every state change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def history(self, name: str) -> list[str]:
        """Every state ``name`` has been in, oldest first (kept across re-adds)."""
        return list(self._history.get(name, []))

    async def wait_for_state(self, name: str, states: Iterable[str] | str, timeout: float,
                             *, since: int | None = None) -> str:
        """Wait until ``name`` is in one of ``states`` (or, with ``since``, has entered one of them at
        history index ≥ ``since``); returns that state. ``TimeoutError`` names what was seen instead."""
        wanted = {states.upper()} if isinstance(states, str) else {str(s).upper() for s in states}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            history = self._history.get(name, [])
            if since is None:
                current = self._state_name(name)
                if current in wanted:
                    return current
            else:
                for state in history[since:]:
                    if state in wanted:
                        return state
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"{name} did not reach {sorted(wanted)} within {timeout:g} s; it is "
                    f"{self._state_name(name)} (history {history})"
                )
            await self._wait_any_change(deadline)

    # ------------------------------------------------------------- IPC surface

    def report_state(self, component: str, state: str) -> bool:
        """IPC UpdateState: applies spec IPC §4.6 (invalid transitions are ignored)."""
        service = self._services.get(component)
        if service is None:
            log.info("UpdateState from %s, which the kernel does not run; ignored", component)
            return False
        return service.report_state(state)

    def posix_user(self, name: str) -> str | None:
        """The ``runWith.posixUser`` a deployment gave component ``name`` (None: the default user)."""
        return self._run_with.get(name, {}).get("posixUser") or None

    def list_components(self) -> list[dict[str, Any]]:
        return [d for d in (self.component_details(n) for n in sorted(self._services)) if d is not None]

    def component_details(self, name: str) -> dict[str, Any] | None:
        service = self._services.get(name)
        if service is None:
            return None
        try:
            configuration = self.config.get(name, [])
        except KeyError:
            configuration = {}
        return {"componentName": name, "version": service.version, "state": service.state.value,
                "configuration": configuration}

    def restart_component(self, name: str) -> bool:
        service = self._services.get(name)
        if service is None:
            return False
        self.logs.component(name, "INFO", "service-restart-requested", "", {"serviceName": name})
        service.request_restart()
        return True

    def stop_component(self, name: str) -> bool:
        service = self._services.get(name)
        if service is None:
            return False
        self.logs.component(name, "INFO", "service-stop-requested", "", {"serviceName": name})
        service.request_stop()
        return True

    async def pause_component(self, name: str) -> None:
        """IPC PauseComponent: freeze the component's processes (SIGSTOP; the nucleus uses a cgroup freezer)."""
        self._signal_component(name, signal.SIGSTOP, "service-paused")

    async def resume_component(self, name: str) -> None:
        """IPC ResumeComponent: let a paused component's processes run again (SIGCONT)."""
        self._signal_component(name, signal.SIGCONT, "service-resumed")

    def _signal_component(self, name: str, sig: int, event: str) -> None:
        service = self._services.get(name)
        if service is None:
            raise ValueError(f"Component with name {name} not found in Greengrass")
        if service.state not in (State.STARTING, State.RUNNING):
            raise ValueError(f"Component {name} is {service.state.value}; only a STARTING or RUNNING "
                             "component can be paused or resumed")
        service.signal_processes(sig)
        self.logs.component(name, "INFO", event, "", {"serviceName": name})

    def component_state(self, name: str) -> str | None:
        service = self._services.get(name)
        return service.state.value if service is not None else None

    def component_pids(self, name: str) -> list[int]:
        """Process ids of ``name``'s running lifecycle scripts (empty if none or unknown)."""
        service = self._services.get(name)
        return service.pids if service is not None else []

    def components(self) -> list[str]:
        return sorted(self._services)

    # ---------------------------------------------------------------- private

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _wait_any_change(self, deadline: float) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        event = self._changed
        remaining = deadline - asyncio.get_running_loop().time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, remaining))

    def _settled(self, name: str) -> bool:
        service = self._services.get(name)
        return service is not None and service.settled

    def _state_name(self, name: str) -> str:
        service = self._services.get(name)
        return service.state.value if service is not None else "UNKNOWN"

    @staticmethod
    def _hard_dependency(service: ComponentService, dependency: str) -> bool:
        spec = service.recipe.dependencies.get(dependency)
        return spec is not None and str(spec.dependency_type).upper() == "HARD"

    @staticmethod
    def _start_order(recipes: Mapping[str, Any]) -> list[str]:
        """Names in dependency order (dependencies first); ties and cycles by name."""
        def deps_of(name: str) -> list[str]:
            value = recipes[name]
            recipe = value.recipe if isinstance(value, ComponentService) else value
            return sorted(d for d in recipe.dependencies if d in recipes)

        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order or name in visiting:
                return
            visiting.add(name)
            for dep in deps_of(name):
                visit(dep)
            visiting.discard(name)
            order.append(name)

        for name in sorted(recipes):
            visit(name)
        return order

    def _interpolated(self, recipe: Recipe, versions: Mapping[str, str]) -> Recipe:
        def read_tree(component: str) -> Any:
            return self.config.get(component, [])

        def unresolved(placeholder: str, reason: str) -> None:
            self.logs.component(recipe.name, "WARN", "config-interpolation-failed",
                                f"{placeholder} left as written: {reason}", {"serviceName": recipe.name},
                                also_kernel=False)

        ctx = VariableContext.for_component(recipe, self.root, self.thing_name, configuration_reader(read_tree),
                                            versions, on_unresolved=unresolved)
        return dataclasses.replace(
            recipe,
            lifecycle={key: interpolate_step(step, ctx) for key, step in recipe.lifecycle.items()},
            lifecycle_setenv=interpolate_setenv(recipe.lifecycle_setenv, ctx),
        )


def _service_info(recipe: Recipe, run_with: Mapping[str, Any] | None) -> dict[str, Any]:
    lifecycle: dict[str, Any] = {}
    if recipe.lifecycle_setenv:
        lifecycle["Setenv"] = dict(recipe.lifecycle_setenv)
    for key, step in recipe.lifecycle.items():
        entry: dict[str, Any] = {"Script": step.script}
        if step.timeout is not None:
            entry["Timeout"] = step.timeout
        if step.requires_privilege:
            entry["RequiresPrivilege"] = True
        if step.skipif:
            entry["Skipif"] = step.skipif
        if step.setenv:
            entry["Setenv"] = dict(step.setenv)
        lifecycle[key] = entry
    return {
        "componentType": recipe.component_type,
        "dependencies": [f"{name}:{dep.dependency_type}" for name, dep in sorted(recipe.dependencies.items())],
        "lifecycle": lifecycle,
        **({"runWith": dict(run_with)} if run_with else {}),
        "version": recipe.version,
    }


def _change_action(old: Recipe, new: Recipe) -> str:
    """"reinstall", "restart" or "" for a component whose recipe goes from ``old`` to ``new``."""
    if old.version != new.version:
        return "reinstall"
    for key in REINSTALL_STEPS:
        if old.lifecycle.get(key) != new.lifecycle.get(key):
            return "reinstall"
    keys = (set(old.lifecycle) | set(new.lifecycle)) - set(REINSTALL_STEPS) - set(IGNORED_STEPS)
    if any(old.lifecycle.get(k) != new.lifecycle.get(k) for k in keys):
        return "restart"
    if old.lifecycle_setenv != new.lifecycle_setenv or old.lifecycle_options != new.lifecycle_options:
        return "restart"
    old_deps = {n: d.dependency_type for n, d in old.dependencies.items()}
    new_deps = {n: d.dependency_type for n, d in new.dependencies.items()}
    if any(old_deps.get(n) != t for n, t in new_deps.items()):
        return "restart"
    return ""
