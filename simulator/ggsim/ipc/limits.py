"""What one IPC client may make ggsim hold, and the log lines about refused clients, rate-limited.

The socket is open to every local user (authentication is the SVCUID token in CONNECT), so what a
connection may cost before it proves a token is bounded here; docs/ggsim.md has the table of values and
why. The IPC server enforces them; nothing here touches a socket.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass

#: File descriptors kept free for ggsim itself (component pipes, logs, configuration and store writes).
FD_RESERVE = 256


def _fd_budget() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(4096, soft - FD_RESERVE))


@dataclass(frozen=True)
class ConnectionLimits:
    #: Largest frame accepted before CONNECT succeeds. A real CONNECT is about 150 bytes (a :version header
    #: and {"authToken": "<26 characters>"}); 64 KiB leaves room for any client's extra headers while
    #: capping what an unauthenticated connection can make ggsim buffer (24 MiB is the limit after CONNECT).
    pre_connect_frame_size: int = 64 * 1024
    #: Seconds a connection has, from accept, to complete CONNECT (clients send it at once).
    connect_timeout: float = 10.0
    #: Seconds a frame may take from its first byte to its last (a 24 MiB frame takes milliseconds).
    frame_timeout: float = 30.0
    #: Connections held at once, authenticated or not: below the file-descriptor limit with a reserve.
    max_connections: int = 0  # 0: derived from RLIMIT_NOFILE at start
    #: Connections held at once that have not completed CONNECT; at the cap, the oldest is closed so
    #: that a new client (the CLI, a component) always gets its chance to authenticate.
    max_unauthenticated: int = 0  # 0: half of max_connections, at most 512
    #: Authenticated connections one component (or the CLI) may hold at once.
    max_connections_per_component: int = 128
    #: Open streams (subscriptions and operations in flight) on one connection.
    max_streams_per_connection: int = 1000

    def resolved(self) -> ConnectionLimits:
        """These limits with the derived values filled in."""
        total = self.max_connections or _fd_budget()
        unauthenticated = self.max_unauthenticated or min(512, max(1, total // 2))
        return ConnectionLimits(self.pre_connect_frame_size, self.connect_timeout, self.frame_timeout, total,
                                min(unauthenticated, total), self.max_connections_per_component,
                                self.max_streams_per_connection)


class ThrottledLog:
    """At most one line per kind of event per `interval` seconds; the next one says how many were skipped.

    A flood of hostile connections must not flood the log (it once grew 250 MB in two minutes).
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            message += f" ({skipped} more like this since the last such line, not logged)"
        self.logger.log(level, message, *args)
