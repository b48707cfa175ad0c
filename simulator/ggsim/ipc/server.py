"""The Greengrass IPC server: asyncio Unix socket, connections, streams, dispatch to the services.

The wire rules live in ggsim.eventstream (sans-I/O); the operations live in ggsim.ipc.services, one
module per family. This module only moves bytes, tracks streams and turns handler outcomes into frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..eventstream.codec import MAX_MESSAGE_SIZE, FrameError
from ..eventstream.rpc import (
    PROTOCOL_VERSION,
    SHAPE_PREFIX,
    Connect,
    Ping,
    ProtocolError,
    Request,
    ServerConnection,
    StreamClosed,
)
from ..nucleus.layout import socket_path_fits
from ..nucleus.nesting import MAX_NESTING_DEPTH, nesting_depth_exceeds
from .auth import Authorizer
from .backend import IpcBackend
from .errors import InvalidArgumentsError, IpcError, ServiceError
from .limits import ConnectionLimits, ThrottledLog

log = logging.getLogger("ggsim.ipc")

#: Every operation of the Greengrass IPC service model the nucleus knows (spec §4.2 and §3.5); an
#: operation in this set that no service provides gets "not supported by Greengrass", any other name
#: gets the unsupported-operation reply.
MODEL_OPERATIONS = frozenset({
    "PublishToTopic", "SubscribeToTopic", "PublishToIoTCore", "SubscribeToIoTCore", "GetConfiguration",
    "UpdateConfiguration", "SubscribeToConfigurationUpdate", "SubscribeToValidateConfigurationUpdates",
    "SendConfigurationValidityReport", "UpdateState", "SubscribeToComponentUpdates", "DeferComponentUpdate",
    "PauseComponent", "ResumeComponent", "GetComponentDetails", "ListComponents", "RestartComponent",
    "StopComponent", "CreateLocalDeployment", "CancelLocalDeployment", "GetLocalDeploymentStatus",
    "ListLocalDeployments", "CreateDebugPassword", "GetThingShadow", "UpdateThingShadow", "DeleteThingShadow",
    "ListNamedShadowsForThing", "GetSecretValue", "ValidateAuthorizationToken", "PutComponentMetric",
    "SubscribeToCertificateUpdates", "VerifyClientDeviceIdentity", "GetClientDeviceAuthToken",
    "AuthorizeClientDeviceAction",
})

#: Bytes a connection may have waiting in its transport before subscription events to it are dropped.
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024

Handler = Callable[["Call", dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]


@dataclass(frozen=True)
class Operation:
    name: str  # short name, e.g. "PublishToTopic"
    handler: Handler
    event_shape: str | None = None  # set for streaming operations

    @property
    def streaming(self) -> bool:
        return self.event_shape is not None


@dataclass
class Stats:
    connections: int = 0
    requests: int = 0
    events_sent: int = 0
    events_dropped: int = 0
    protocol_errors: int = 0


class ConnectionRejected(Exception):
    """CONNECT refused (bad version or token): the refusal is sent, then the connection ends."""


class Call:
    """One request on one stream; for streaming operations, the subscription that follows it."""

    def __init__(self, conn: Connection, stream_id: int, operation: Operation) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.operation = operation
        self.component = conn.component or ""
        self._responded = False
        self._pending: list[dict[str, Any]] = []
        self._on_close: list[Callable[[], None]] = []
        self.closed = False
        self.dropped = 0

    @property
    def server(self) -> IpcServer:
        return self.conn.server

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run callback when the stream ends (client terminate, server close or disconnect)."""
        if self.closed:
            callback()
        else:
            self._on_close.append(callback)

    def send_event(self, body: dict[str, Any] | bytes) -> bool:
        """Send a stream event (a dict, or JSON bytes already encoded); False if closed or dropped."""
        if self.closed:
            return False
        if not self._responded:
            self._pending.append(body)  # events never overtake the response
            return True
        return self.conn.send_event(self, body)

    def close(self) -> None:
        """End the stream from the server side."""
        if not self.closed:
            self.conn.write(self.conn.rpc.send_terminate(self.stream_id))
            self._closed()

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.conn.calls.pop(self.stream_id, None)
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a cleanup failure must not break the connection
                log.exception("cleanup of %s stream %d failed", self.operation.name, self.stream_id)

    def _respond(self, body: dict[str, Any]) -> None:
        shape = f"{SHAPE_PREFIX}{self.operation.name}Response"
        streaming = self.operation.streaming
        self.conn.write(self.conn.rpc.send_message(self.stream_id, shape, body, terminate=not streaming))
        self._responded = True
        if not streaming:
            self._closed()
            return
        pending, self._pending = self._pending, []
        for event in pending:
            self.conn.send_event(self, event)


class Connection:
    def __init__(self, server: IpcServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.rpc = ServerConnection(server.max_message_size, server.limits.pre_connect_frame_size)
        self.component: str | None = None
        self.opened = time.monotonic()
        self._deadline: asyncio.TimerHandle | None = None
        self._ended_by_server: str | None = None
        self.calls: dict[int, Call] = {}
        self.dropped = 0
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False

    @property
    def name(self) -> str:
        return self.component or "an unauthenticated client"

    def write(self, data: bytes) -> None:
        """Queue bytes for the client; what one loop iteration queues goes out in one write."""
        if self.closing or self.writer.is_closing():
            return
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self.closing and not self.writer.is_closing():
            self.writer.write(b"".join(self._out))
        self._out.clear()
        self._out_bytes = 0

    def _pending_bytes(self) -> int:
        return self.writer.transport.get_write_buffer_size() + self._out_bytes

    def send_event(self, call: Call, body: dict[str, Any] | bytes) -> bool:
        transport = self.writer.transport
        if self.closing or transport.is_closing():
            return False
        if self._pending_bytes() > self.server.max_buffer:
            call.dropped += 1
            self.dropped += 1
            self.server.stats.events_dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("%s is not reading fast enough: %d events dropped on its %s stream "
                            "(%d on this connection)", self.name, call.dropped, call.operation.name, self.dropped)
            return False
        shape = f"{SHAPE_PREFIX}{call.operation.event_shape}"
        payload = body if isinstance(body, bytes) else None
        if payload is None:
            self.write(self.rpc.send_message(call.stream_id, shape, body))  # type: ignore[arg-type]
        else:
            self.write(self.rpc.send_raw_json(call.stream_id, shape, payload))
        self.server.stats.events_sent += 1
        return True

    # ---- deadlines: CONNECT in time, every frame in time

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self.end, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _watch_frame(self) -> None:
        """A frame begun must end within the frame timeout; between frames there is no deadline."""
        if self.rpc.buffered:
            if self._deadline is None:
                seconds = self.server.limits.frame_timeout
                self._arm(seconds, f"sent part of a frame and not the rest within {seconds:g} s")
        elif self._deadline is not None:
            self._disarm()

    def end(self, reason: str) -> None:
        """Close this connection from the server side now (a deadline passed, or room is needed)."""
        self._deadline = None
        if self._ended_by_server is None:
            self._ended_by_server = reason
            self.writer.transport.abort()

    async def serve(self) -> None:
        reason = "client closed the connection"
        level = logging.INFO
        timeout = self.server.limits.connect_timeout
        self._arm(timeout, f"did not complete CONNECT within {timeout:g} s")
        try:
            while not self.closing:
                data = await self.reader.read(256 * 1024)
                if not data:
                    break
                for event in self.rpc.receive_data(data):
                    self._handle(event)
                if self.rpc.connected:
                    self._watch_frame()
        except ConnectionRejected as exc:
            reason = str(exc)
            # The client closes once it has read the refusal; closing first can make the client report a
            # closed socket instead of AccessDenied. Wait briefly for its close, keeping nothing it sends.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    while await self.reader.read(64 * 1024):
                        pass
        except (FrameError, ProtocolError) as exc:
            self.server.stats.protocol_errors += 1
            reason = f"protocol error: {exc}"
            level = logging.WARNING
            if isinstance(exc, ProtocolError) and exc.reply:
                self.write(exc.reply)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            reason = f"connection lost: {exc}"
        finally:
            if self._ended_by_server is not None:
                reason, level = self._ended_by_server, logging.WARNING
            await self.close(reason, level)

    async def close(self, reason: str, level: int = logging.INFO) -> None:
        if self.closing:
            return
        self._disarm()
        if self.component is None:  # anyone can open these by the thousand: log a sample
            self.server.throttled.log(level, f"closed:{level}", "IPC connection of %s closed: %s", self.name,
                                      reason)
        else:
            log.log(level, "IPC connection of %s closed: %s", self.name, reason)
        for call in list(self.calls.values()):
            call._closed()
        self._flush()
        with contextlib.suppress(Exception):
            if not self.writer.is_closing():
                await asyncio.wait_for(self.writer.drain(), 1.0)
        self.closing = True
        self.writer.close()
        for task in list(self._tasks):
            task.cancel()

    # ---- events

    def _handle(self, event: object) -> None:
        if isinstance(event, Request):
            self._request(event)
        elif isinstance(event, StreamClosed):
            call = self.calls.get(event.stream_id)
            if call is not None:
                call._closed()
        elif isinstance(event, Ping):
            self.write(event.reply)
        elif isinstance(event, Connect):
            self._connect(event)

    def _connect(self, event: Connect) -> None:
        component = None
        if event.version == PROTOCOL_VERSION:
            component = self.server.backend.tokens.lookup(event.auth_token)
        why = None
        if component is None:
            why = ("unsupported :version " + repr(event.version) if event.version != PROTOCOL_VERSION
                   else "missing or unknown authToken")
        elif not self.server.admit(self, component):
            why = (f"{component} already holds {self.server.limits.max_connections_per_component} IPC "
                   "connections, the limit per component")
        if why is not None:
            self.server.throttled.log(logging.WARNING, "rejected", "IPC connection rejected: %s", why)
            self.write(self.rpc.send_connect_ack(False))
            raise ConnectionRejected(f"connection rejected: {why}")
        self._disarm()
        self.component = component
        self.write(self.rpc.send_connect_ack(True))
        log.debug("IPC connection accepted for %s", component)

    def _request(self, request: Request) -> None:
        self.server.stats.requests += 1
        full = request.operation
        short = full.removeprefix(SHAPE_PREFIX)
        operation = self.server.operations.get(short) if full.startswith(SHAPE_PREFIX) else None
        if operation is None:
            if full.startswith(SHAPE_PREFIX) and short in MODEL_OPERATIONS:
                self._error(request.stream_id, ServiceError(f"Operation {full} is not supported by Greengrass"))
            else:
                log.warning("%s called unsupported operation %s", self.name, full)
                self.write(self.rpc.send_unsupported_operation(request.stream_id, full))
            return
        payload = request.payload
        try:
            body = json.loads(payload.decode("utf-8")) if payload else {}
            if not isinstance(body, dict):
                raise ValueError("request payload is not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("%s sent a malformed %s request: %s", self.name, short, exc)
            self.write(self.rpc.send_internal_error(request.stream_id))
            return
        except RecursionError:
            body = None
        if body is None or (payload.count(b"{") + payload.count(b"[") > MAX_NESTING_DEPTH
                            and nesting_depth_exceeds(body)):
            self.server.throttled.log(logging.WARNING, f"deep:{self.name}", "%s sent a %s request nested "
                                      "deeper than %d levels", self.name, short, MAX_NESTING_DEPTH)
            self._error(request.stream_id, InvalidArgumentsError(
                f"{short} request refused: it nests objects and arrays deeper than the limit of "
                f"{MAX_NESTING_DEPTH} levels"))
            return
        limit = self.server.limits.max_streams_per_connection
        if len(self.calls) >= limit:
            self.server.throttled.log(logging.WARNING, f"streams:{self.name}", "%s has %d open streams on "
                                      "one connection, the limit: %s refused", self.name, limit, short)
            self._error(request.stream_id, ServiceError(
                f"{short} refused: this connection already has {limit} open streams (subscriptions and "
                "operations in progress), the limit per connection"))
            return
        call = Call(self, request.stream_id, operation)
        self.calls[request.stream_id] = call
        try:
            result = operation.handler(call, body)
        except Exception as exc:  # noqa: BLE001 - handler faults become IPC errors
            self._fail(call, exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish_async(call, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._complete(call, result)

    async def _finish_async(self, call: Call, result: Awaitable[dict[str, Any]]) -> None:
        try:
            body = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._fail(call, exc)
            return
        self._complete(call, body)

    def _complete(self, call: Call, body: dict[str, Any]) -> None:
        if call.closed or not self.rpc.is_open(call.stream_id):
            call._closed()
            return
        call._respond(body)

    def _fail(self, call: Call, exc: Exception) -> None:
        if not isinstance(exc, IpcError):
            log.exception("%s handler failed for %s", call.operation.name, self.name, exc_info=exc)
            exc = ServiceError(str(exc) or type(exc).__name__)
        call._closed()
        if self.rpc.is_open(call.stream_id):
            self._error(call.stream_id, exc)

    def _error(self, stream_id: int, exc: IpcError) -> None:
        self.write(self.rpc.send_error(stream_id, f"{SHAPE_PREFIX}{exc.shape}", exc.body()))


class IpcServer:
    """Serves Greengrass IPC on `backend.socket_path` for the components the nucleus runs."""

    def __init__(self, backend: IpcBackend, *, max_buffer: int = DEFAULT_MAX_BUFFER,
                 max_message_size: int | None = None, limits: ConnectionLimits | None = None) -> None:
        from .services import build_services  # the services import this module (Service, Call, Operation)

        self.backend = backend
        self.socket_path = Path(backend.socket_path)
        self.max_buffer = max_buffer
        self.max_message_size = max_message_size or MAX_MESSAGE_SIZE
        self.stats = Stats()
        self.limits = (limits or ConnectionLimits()).resolved()
        self.throttled = ThrottledLog(log)
        self._unauthenticated: dict[Connection, None] = {}  # oldest first
        self._per_component: dict[str, int] = {}
        self._previous_exception_handler: Any = None
        config = backend.config
        self.authorizer = Authorizer(config.access_control, lambda: config.revision)
        self.connections: set[Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._short_dir: Path | None = None
        self.services = build_services(self)
        self.operations: dict[str, Operation] = {}
        for service in self.services.values():
            for op in service.operations():
                self.operations[op.name] = op

    async def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        bind_path = self.socket_path
        if not socket_path_fits(self.socket_path):
            # Too long for sun_path: bind in a short private folder and link it from the root, as the
            # nucleus works around it. Components reach it by the short relative path in their env.
            self._short_dir = Path(tempfile.mkdtemp(prefix="ggsim-"))
            bind_path = self._short_dir / "ipc.socket"
        self._server = await asyncio.start_unix_server(self._accept, path=str(bind_path), limit=2 ** 20)
        os.chmod(bind_path, 0o666)  # authentication is token-only, as on the nucleus
        loop = asyncio.get_running_loop()
        self._previous_exception_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        if bind_path != self.socket_path:
            self.socket_path.symlink_to(bind_path)
        log.info("IPC server listening on %s", self.socket_path)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio reports accept() failures (out of file descriptors) with a traceback each time: one
        line per interval instead."""
        if "accept" in str(context.get("message", "")):
            self.throttled.log(logging.ERROR, "accept", "IPC server could not accept a connection: %s",
                               context.get("exception") or context.get("message"))
            return
        if self._previous_exception_handler is not None:
            self._previous_exception_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def close(self) -> None:
        if self._previous_exception_handler is not None or self._server is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().set_exception_handler(self._previous_exception_handler)
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            await conn.close("simulator stopping")
        for service in self.services.values():
            service.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        if len(self.connections) >= limits.max_connections and not self._unauthenticated:
            self.throttled.log(logging.WARNING, "refused", "IPC connection refused: %d connections are open, "
                               "the limit", len(self.connections))
            writer.transport.abort()
            return
        if len(self._unauthenticated) >= limits.max_unauthenticated or \
                len(self.connections) >= limits.max_connections:
            # Room for the newcomer: the oldest connection still without CONNECT has had its chance.
            oldest = next(iter(self._unauthenticated))
            self._forget(oldest)
            oldest.end(f"closed to make room: {limits.max_unauthenticated} connections without CONNECT or "
                       f"{limits.max_connections} in all, the limits")
        conn = Connection(self, reader, writer)
        self.connections.add(conn)
        self._unauthenticated[conn] = None
        self.stats.connections += 1
        try:
            await conn.serve()
        finally:
            self._forget(conn)

    def admit(self, conn: Connection, component: str) -> bool:
        """CONNECT with a valid token: count conn as `component`'s, unless it holds the most it may."""
        held = self._per_component.get(component, 0)
        if held >= self.limits.max_connections_per_component:
            return False
        self._per_component[component] = held + 1
        self._unauthenticated.pop(conn, None)
        return True

    def _forget(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if self._unauthenticated.pop(conn, 0) is None:
            return
        if conn.component is not None:
            left = self._per_component.get(conn.component, 1) - 1
            if left > 0:
                self._per_component[conn.component] = left
            else:
                self._per_component.pop(conn.component, None)


class Service:
    """Base of the operation families: one module each under ggsim.ipc.services."""

    def __init__(self, server: IpcServer) -> None:
        self.server = server

    @property
    def backend(self) -> IpcBackend:
        return self.server.backend

    def operations(self) -> list[Operation]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the service holds when the server stops."""
