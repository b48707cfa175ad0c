"""Running one lifecycle script: environment, cwd, logs, timeouts, process-tree stop.

A script runs as ``sh -c <script>`` in ``<root>/work/<name>``, in a process group of its own, with the
environment of spec components §3.1 layered as §3.2 says (later wins): ggsim's own environment (PATH, HOME
and the rest are inherited, as the Java nucleus's ProcessBuilder does) → SVCUID,
AWS_CONTAINER_AUTHORIZATION_TOKEN, GG_ROOT_CA_PATH → the nucleus-wide variables (region, thing name,
GGC_VERSION, socket paths) → the lifecycle-level ``Setenv`` → the step's own ``Setenv``.

Its stdout and stderr go, line by line and trimmed, to ``<root>/logs/<name>.log`` in Greengrass's text
format (spec §2.4): stdout as INFO event ``stdout``, stderr as WARN event ``stderr``.

The user (spec components §3.3, ``run_as.RunAsPolicy``): when ggsim runs as root, a step without
``RequiresPrivilege`` runs as the component user (``ggc_user:ggc_group`` by default), with its primary and
supplementary groups and ``HOME``, ``USER``, ``LOGNAME`` set for it (as ``sudo -E -H -u`` does); before its
first step the component's ``work/<name>`` (the folder included) and what is inside
``packages/artifacts[-unarchived]/<name>/<version>/`` (not the folders themselves) are given to that user,
as the nucleus's RunWithPathOwnershipHandler does. A step with ``RequiresPrivilege`` runs as root. When ggsim
is not root every step runs as ggsim's user; a step asking for privilege then logs (in the component's log
and greengrass.log) that it runs unprivileged — a simulator must not prompt for sudo.

Stopping a script (timeout, component stop) sends SIGTERM to its process group and to every descendant
that left it, waits ``grace`` seconds (the nucleus waits 5 s), then sends SIGKILL to whatever is left.
The process tree comes from psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import os
import re
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import psutil

import ggsim
from ggsim.nucleus.layout import RootLayout
from ggsim.nucleus.run_as import RunAs, RunAsPolicy, check_traversable, chown_tree, resolve

__all__ = [
    "GreengrassLogs",
    "ProcessRunner",
    "ScriptProcess",
    "format_log_line",
]

DEFAULT_GRACE = 5.0
_LINE_LIMIT = 1 << 20


class Tokens(Protocol):
    def issue(self, component: str) -> str: ...


# ------------------------------------------------------------------------------------------- logs


def _kv(context: Mapping[str, Any]) -> str:
    # one event, one line: a multi-line script in `command` must not break the line format
    return "{" + ", ".join(f"{k}=" + str(v).replace("\n", "\\n") for k, v in context.items()) + "}"


def format_log_line(
    level: str,
    logger: str,
    event: str,
    message: str = "",
    context: Mapping[str, Any] | None = None,
    *,
    thread: str = "main",
    when: _dt.datetime | None = None,
) -> str:
    """One Greengrass TEXT log line: ``<ISO-8601 UTC ms>Z [LEVEL] (<thread>) <logger>: <event>. <message>. {k=v}``."""
    when = when or _dt.datetime.now(_dt.UTC)
    stamp = when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    text = f"{stamp} [{level}] ({thread}) {logger}: {event}."
    if message:
        text += f" {message}."
    if context:
        text += f" {_kv(context)}"
    return text


def _hour(when: _dt.datetime) -> str:
    return when.astimezone(_dt.UTC).strftime("%Y_%m_%d_%H")


class GreengrassLogs:
    """The files under ``<root>/logs``: ``greengrass.log`` for the kernel, ``<name>.log`` per component.

    As on the nucleus, a file is rotated every hour and when it reaches ``max_bytes`` (1024 KB), to
    ``<name>_YYYY_MM_DD_HH_<n>.log`` (the UTC hour it covers); the oldest rotated files of a log are
    deleted while they together exceed ``max_total`` (10 240 KB).
    """

    KERNEL = "greengrass"

    def __init__(self, logs_dir: Path, *, max_bytes: int = 1024 * 1024, max_total: int = 10240 * 1024) -> None:
        self.dir = Path(logs_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_total = max_total
        self._files: dict[str, IO[str]] = {}
        self._sizes: dict[str, int] = {}
        self._hours: dict[str, str] = {}

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def rotated(self, name: str) -> list[Path]:
        """The rotated files of log ``name``, oldest first."""
        pattern = re.compile(re.escape(name) + r"_\d{4}_\d\d_\d\d_\d\d_(\d+)\.log$")
        found = [p for p in self.dir.iterdir() if pattern.match(p.name)]
        return sorted(found, key=lambda p: (p.stat().st_mtime, int(pattern.match(p.name).group(1))))  # type: ignore[union-attr]

    def _file(self, name: str) -> IO[str]:
        f = self._files.get(name)
        if f is None or f.closed:
            path = self.path(name)
            existed = path.exists()
            f = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - kept open
            self._files[name] = f
            self._sizes[name] = path.stat().st_size
            when = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.UTC) if existed else _dt.datetime.now(_dt.UTC)
            self._hours[name] = _hour(when)
        return f

    def write(
        self,
        name: str,
        level: str,
        logger: str,
        event: str,
        message: str = "",
        context: Mapping[str, Any] | None = None,
        *,
        thread: str = "main",
    ) -> None:
        now = _dt.datetime.now(_dt.UTC)
        line = format_log_line(level, logger, event, message, context, thread=thread, when=now) + "\n"
        f = self._file(name)
        if self._hours.get(name) != _hour(now) and self._sizes.get(name, 0) > 0:
            self._rotate(name)
            f = self._file(name)
        f.write(line)
        self._sizes[name] = self._sizes.get(name, 0) + len(line.encode("utf-8", errors="replace"))
        if self._sizes[name] >= self.max_bytes:
            self._rotate(name)

    def _rotate(self, name: str) -> None:
        f = self._files.pop(name, None)
        if f is not None:
            f.close()
        stamp = self._hours.get(name) or _hour(_dt.datetime.now(_dt.UTC))
        n = 0
        while (self.dir / f"{name}_{stamp}_{n}.log").exists():
            n += 1
        with contextlib.suppress(OSError):
            os.replace(self.path(name), self.dir / f"{name}_{stamp}_{n}.log")
        self._sizes[name] = 0
        rotated = self.rotated(name)
        total = sum(p.stat().st_size for p in rotated)
        while rotated and total > self.max_total:
            oldest = rotated.pop(0)
            total -= oldest.stat().st_size
            with contextlib.suppress(OSError):
                oldest.unlink()

    def kernel(self, level: str, logger: str, event: str, message: str = "",
               context: Mapping[str, Any] | None = None) -> None:
        """A line of the kernel's own, in greengrass.log."""
        self.write(self.KERNEL, level, logger, event, message, context)

    def component(self, component: str, level: str, event: str, message: str = "",
                  context: Mapping[str, Any] | None = None, *, also_kernel: bool = True) -> None:
        """A lifecycle line about ``component``: in its own log and (by default) in greengrass.log."""
        self.write(component, level, component, event, message, context)
        if also_kernel:
            self.write(self.KERNEL, level, component, event, message, context)

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files.clear()


# -------------------------------------------------------------------------------------- processes


def _descendants(pid: int) -> list[psutil.Process]:
    """The live descendants of ``pid`` (children, grandchildren, ...)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _running(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` that have not exited (zombies have), each once."""
    out = []
    for process in dict.fromkeys(processes):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            out.append(process)
    return out


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` has not exited (killpg(pgid, 0) succeeds for zombies too)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _signal(processes: Iterable[psutil.Process], pgid: int | None, sig: int) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.send_signal(sig)  # psutil refuses a pid that now names another process


@dataclass
class ExitInfo:
    returncode: int | None
    timed_out: bool = False


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's subprocess protocol plus a future resolved when the process exits.

    On Python 3.11 ``Process.wait()`` returns only once the stdout/stderr pipes are closed too, so a
    daemon left behind by a Startup script would hide the script's exit; ``exited`` does not wait for
    the pipes.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[int] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport
        super().connection_made(transport)

    def process_exited(self) -> None:
        code = self.transport.get_returncode() if self.transport is not None else None
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(code if code is not None else -1)


async def _spawn(script: str, cwd: Path, env: Mapping[str, str],
                 who: RunAs | None = None) -> tuple[asyncio.subprocess.Process, _ExitAwareProtocol]:
    loop = asyncio.get_running_loop()
    identity: dict[str, Any] = {}
    if who is not None:
        identity = {"user": who.uid, "group": who.gid, "extra_groups": list(who.groups)}
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitAwareProtocol(_LINE_LIMIT, loop),
        "sh", "-c", script,
        cwd=str(cwd),
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        **identity,
    )
    return asyncio.subprocess.Process(transport, protocol, loop), protocol


class ScriptProcess:
    """One running lifecycle script."""

    def __init__(self, component: str, step: str, proc: asyncio.subprocess.Process, protocol: _ExitAwareProtocol,
                 readers: list[asyncio.Task[None]], grace: float) -> None:
        self.component = component
        self.step = step
        self._proc = proc
        self._protocol = protocol
        self._exited = protocol.exited
        self._readers = readers
        self.pid = proc.pid
        self.grace = grace
        self._stopping: asyncio.Task[None] | None = None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        """The exit code (negative: killed by that signal) once the script has exited.

        Output already written is logged first; a daemon the script left behind may keep the pipes
        open, so the readers get a short while and then keep logging in the background.
        """
        code = await asyncio.shield(self._exited)
        if self._readers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*self._readers, return_exceptions=True)), 0.5)
        return code

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the script's process group and to descendants that left it."""
        _signal(_descendants(self.pid), self.pid, sig)

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM the process tree, wait ``grace`` seconds, then SIGKILL what is left."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(self.grace if grace is None else grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> None:
        pgid = self.pid  # start_new_session: the leader's pid is the group id
        tree = _descendants(self.pid)
        if self._proc.returncode is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                tree.insert(0, psutil.Process(self.pid))
        _signal(tree, pgid, signal.SIGTERM)
        _signal(tree, pgid, signal.SIGCONT)  # a paused (SIGSTOP) tree must run to act on SIGTERM
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            tree = _running(tree + _descendants(self.pid))
            if self._proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._exited), min(0.05, grace))
                continue
            if not tree and not _group_running(pgid):
                break
            await asyncio.sleep(0.02)  # polling other processes' exit; there is nothing to await
        remaining = _running(tree)
        if remaining or _group_running(pgid) or self._proc.returncode is None:
            _signal(remaining, pgid, signal.SIGKILL)
        await asyncio.shield(self._exited)
        for reader in self._readers:
            # the output written before the end is logged; an escaped orphan may hold the pipe open
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 1.0)
            reader.cancel()
        if self._protocol.transport is not None:
            self._protocol.transport.close()


class ProcessRunner:
    """Starts lifecycle scripts with the nucleus's environment and logs."""

    def __init__(
        self,
        *,
        layout: RootLayout,
        thing_name: str,
        region: str,
        tokens: Tokens,
        logs: GreengrassLogs,
        root_ca_path: str = "",
        grace: float = DEFAULT_GRACE,
        base_env: Mapping[str, str] | None = None,
        run_as: RunAsPolicy | None = None,
    ) -> None:
        self.layout = layout
        self.thing_name = thing_name
        self.region = region
        self.tokens = tokens
        self.logs = logs
        self.root_ca_path = root_ca_path
        self.grace = grace
        self.base_env = base_env
        #: The nucleus's top-level ``setenv``, given to every component (the TokenExchangeService stand-in
        #: puts AWS_CONTAINER_CREDENTIALS_FULL_URI here, as the real one does once it serves).
        self.nucleus_setenv: dict[str, str] = {}
        #: None: every step runs as ggsim's user
        self.run_as = run_as
        self._owned: dict[str, tuple[str, str]] = {}

    def environment(
        self,
        component: str,
        lifecycle_setenv: Mapping[str, Any] | None = None,
        step_setenv: Mapping[str, Any] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment of a lifecycle script of ``component`` (spec §3.1, precedence §3.2)."""
        env = dict(os.environ if self.base_env is None else self.base_env)
        token = self.tokens.issue(component)
        env["SVCUID"] = token
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token
        env["GG_ROOT_CA_PATH"] = self.root_ca_path
        env.update(
            {
                "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH": str(self.layout.socket_path),
                "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": self.layout.socket_path_for_component(),
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_IOT_THING_NAME": self.thing_name,
                "GGC_VERSION": ggsim.NUCLEUS_VERSION,
            }
        )
        env.update(self.nucleus_setenv)
        if extra:
            env.update(extra)
        for layer in (lifecycle_setenv, step_setenv):
            for key, value in (layer or {}).items():
                env[str(key)] = "" if value is None else str(value)
        return env

    async def start(
        self,
        component: str,
        step: str,
        script: str,
        *,
        lifecycle_setenv: Mapping[str, Any] | None = None,
        step_setenv: Mapping[str, Any] | None = None,
        requires_privilege: bool = False,
        extra_env: Mapping[str, str] | None = None,
        current_state: Callable[[], str] | None = None,
        version: str = "",
    ) -> ScriptProcess:
        """Launch ``script`` for lifecycle step ``step`` (e.g. ``"Run"``) of ``component`` (at ``version``:
        whose artifacts its user is given)."""
        who = self.run_as.for_step(component, requires_privilege=requires_privilege) if self.run_as else None
        cwd = self.layout.work_path(component)
        cwd.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None and self.run_as.switches_user:
            self._give_folders(component, version)
        if who is not None:
            check_traversable(cwd, who, what=f"the work folder of {component}")
        env = self.environment(component, lifecycle_setenv, step_setenv, extra_env)
        if who is not None:
            env.update({"HOME": who.home, "USER": who.user, "LOGNAME": who.user})
        script_name = f"services.{component}.lifecycle.{step}"

        def ctx() -> dict[str, str]:
            c = {"scriptName": script_name, "serviceName": component}
            if current_state is not None:
                c["currentState"] = current_state()
            return c

        if requires_privilege and os.geteuid() != 0:
            self.logs.component(
                component, "WARN", "shell-runner-privilege",
                "RequiresPrivilege is set but ggsim does not run as root; the step runs as the current user",
                {**ctx(), "user": _user_name()},
            )
        spawn = asyncio.ensure_future(_spawn(script, cwd, env, who))
        try:
            # never cancel a spawn half-way: asyncio would kill the shell only and then wait for the
            # orphaned children to close its pipes
            proc, protocol = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                orphan, orphan_protocol = await spawn
                await ScriptProcess(component, step, orphan, orphan_protocol, [], self.grace).stop()
            raise
        self.logs.component(component, "INFO", "shell-runner-start", "",
                            {**ctx(), "command": f'["{script}"]'}, also_kernel=False)
        readers = [
            asyncio.ensure_future(self._copy(proc.stdout, component, "INFO", "stdout", ctx)),
            asyncio.ensure_future(self._copy(proc.stderr, component, "WARN", "stderr", ctx)),
        ]
        return ScriptProcess(component, step, proc, protocol, readers, self.grace)

    async def run(
        self,
        component: str,
        step: str,
        script: str,
        *,
        timeout: float | None,
        **kwargs: Any,
    ) -> ExitInfo:
        """Run a blocking step to its end; on timeout stop its tree and report ``timed_out``."""
        process = await self.start(component, step, script, **kwargs)
        try:
            if timeout is None:
                return ExitInfo(await process.wait())
            try:
                return ExitInfo(await asyncio.wait_for(asyncio.shield(process.wait()), timeout))
            except TimeoutError:
                self.logs.component(component, "ERROR", "shell-runner-timeout",
                                    f"{step} did not finish within {timeout:g} seconds; stopping it",
                                    {"scriptName": f"services.{component}.lifecycle.{step}",
                                     "serviceName": component})
                await process.stop()
                return ExitInfo(process.returncode, timed_out=True)
        except asyncio.CancelledError:
            await asyncio.shield(process.stop())
            raise

    def _give_folders(self, component: str, version: str) -> None:
        """Give the component's work folder and artifacts to its user (once per user and version, and again
        when either changes; the nucleus does it each time it works out the component's user)."""
        assert self.run_as is not None
        spec = self.run_as.spec(component)
        if self._owned.get(component) == (spec, version):
            return
        who = resolve(spec)
        chown_tree(self.layout.work_path(component), who)
        if version:
            chown_tree(self.layout.artifacts_path(component, version), who, include_top=False)
            chown_tree(self.layout.decompressed_path(component, version), who, include_top=False)
        self._owned[component] = (spec, version)

    async def _copy(self, stream: asyncio.StreamReader | None, component: str, level: str, event: str,
                    ctx: Callable[[], dict[str, str]]) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the limit: its start is lost, say so
                self.logs.write(component, "WARN", component, event, "(line longer than 1 MiB truncated)",
                                ctx(), thread="Copier")
                continue
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").strip()
            self.logs.write(component, level, component, event, line, ctx(), thread="Copier")


def _user_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
