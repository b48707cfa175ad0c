"""The way out to IoT Core: sends messages in order, spools them to disk while IoT Core is unreachable.

``send(topic, payload)`` is PublishToIoTCore (or stdout in development); it raises when IoT Core does not
take the message. While the spool holds anything, every new message goes behind it, so the order is
kept; a thread retries the spool's head with exponential backoff (from ``retry_initial`` up to
``retry_max`` seconds, 2 by default: an attempt while offline fails at once, so trying often costs nothing
and the spool drains within ``retry_max`` seconds of IoT Core being reachable again) and drains it, one
message after the other without a pause, once a send succeeds. After an outage in which the spool overflowed, an ``spool_overflow``
event says how many messages were lost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from greenlens_common import messages

from .spool import Spool, SpooledMessage

log = logging.getLogger("greenlens.publisher.cloud")

MAX_MESSAGE_BYTES = 128 * 1024
"""AWS IoT Core's limit on one message's payload."""

COMPONENT = "greenlens.StreamPublisher"
Send = Callable[[str, bytes], None]


class MessageTooLarge(ValueError):
    pass


def encode(message: Mapping[str, Any]) -> bytes:
    """Compact JSON within IoT Core's 128 KB: long top_k/detections lists are cut (``truncated`` says so)."""
    payload = json.dumps(message, separators=(",", ":")).encode()
    if len(payload) <= MAX_MESSAGE_BYTES:
        return payload
    trimmed = dict(message)
    for key in ("detections", "top_k"):
        items = trimmed.get(key)
        if isinstance(items, list) and items:
            trimmed[key] = items[:10]
            trimmed["truncated"] = True
    payload = json.dumps(trimmed, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"message of {len(payload)} bytes exceeds IoT Core's limit of {MAX_MESSAGE_BYTES}")
    return payload


class CloudOutbox:
    """See the module docstring. ``submit`` never blocks; a thread does the sending."""

    def __init__(self, send: Send, spool: Spool, *, retry_max: float = 2.0, retry_initial: float = 0.25,
                 queue_limit: int = 1000, events_topic: str = "greenlens/unknown/events") -> None:
        self.send = send
        self.spool = spool
        self.retry_max = retry_max
        self.retry_initial = retry_initial
        self.queue_limit = queue_limit
        self._queue: deque[SpooledMessage] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._retry_at = 0.0
        self._delay = retry_initial
        self._thread: threading.Thread | None = None
        self._reported_overflow = 0
        self.online = True
        self.sent = 0
        self.sent_by_kind: Counter[str] = Counter()
        self.send_failures = 0
        self.too_large = 0
        self.events_topic = events_topic
        """Where the ``spool_overflow`` event goes (the owner updates it with the topic prefix)."""
        self.last_error: str | None = None
        self.offline_since: float | None = None
        if len(spool):
            self.online = False  # messages left from before go first

    # -- producers

    def submit(self, topic: str, message: Mapping[str, Any], kind: str) -> bool:
        """Queue a message for IoT Core; False (counted, logged) when it cannot be sent at all."""
        try:
            payload = encode(message)
        except MessageTooLarge as exc:
            self.too_large += 1
            log.error("IoT Core %s message to %s dropped: %s (%d so far)", kind, topic, exc, self.too_large)
            return False
        with self._cond:
            if len(self._queue) >= self.queue_limit:
                # The sender is stuck (each attempt waits for the IPC timeout): keep order on disk instead.
                self._spool_locked(SpooledMessage(topic, payload, kind))
            else:
                self._queue.append(SpooledMessage(topic, payload, kind))
            self._cond.notify_all()
        return True

    def _spool_locked(self, message: SpooledMessage | None) -> None:
        """Move the memory queue, then ``message``, to the spool's tail (in order)."""
        while self._queue:
            self.spool.append(self._queue.popleft())
        if message is not None:
            self.spool.append(message)

    # -- the thread

    def start(self) -> CloudOutbox:
        self._thread = threading.Thread(target=self._run, name="publisher-cloud", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; what is still queued in memory goes to the spool (sent at the next start)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            while self._queue:
                self.spool.append(self._queue.popleft())

    def wake(self) -> None:
        """Retry the spool now (e.g. after a configuration change)."""
        with self._cond:
            self._retry_at = 0.0
            self._delay = self.retry_initial
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    spooled = len(self.spool) > 0
                    if spooled and self._queue:
                        while self._queue:  # order: new messages go behind the spooled ones
                            self.spool.append(self._queue.popleft())
                    if spooled:
                        wait = self._retry_at - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    elif self._queue:
                        break
                    else:
                        self._cond.wait()
                from_spool = len(self.spool) > 0
                item = self.spool.peek() if from_spool else self._queue.popleft()
            if item is None:
                continue
            self._handle(item, from_spool)
            with self._cond:
                self._cond.notify_all()  # progress: wakes wait_idle() and anyone watching the queue

    def _handle(self, item: SpooledMessage, from_spool: bool) -> None:
        if self._attempt(item):
            if from_spool:
                self.spool.pop(item.number)
                if not len(self.spool):
                    self._back_online()
            else:
                self._report_losses()
        elif not from_spool:
            with self._cond:
                self.spool.append(item)  # first: it is older than what is still queued
                self._spool_locked(None)

    def _attempt(self, item: SpooledMessage) -> bool:
        try:
            self.send(item.topic, item.payload)
        except Exception as exc:  # PublishToIoTCore failed: IoT Core unreachable, refused, or no answer
            self.send_failures += 1
            self.last_error = str(exc)
            with self._cond:
                if self.online:
                    log.warning("IoT Core unreachable, spooling to %s: %s", self.spool.directory, exc)
                    self.offline_since = time.monotonic()
                self.online = False
                self._retry_at = time.monotonic() + min(self._delay, self.retry_max)
                self._delay = min(self._delay * 2, self.retry_max)
            return False
        self.sent += 1
        self.sent_by_kind[item.kind] += 1
        with self._cond:
            self._delay = self.retry_initial
            if not self.online and not len(self.spool):
                self.online = True
        return True

    def _back_online(self) -> None:
        with self._cond:
            self.online = True
            self._delay = self.retry_initial
            offline, self.offline_since = self.offline_since, None
        took = f" after {time.monotonic() - offline:.1f} s offline" if offline is not None else ""
        log.info("IoT Core reachable again%s: the spool is sent (%d sent so far)", took, self.sent)
        self._report_losses()

    def _report_losses(self) -> None:
        lost = sum(self.spool.overflowed.values()) + sum(self.spool.failed.values())
        if lost > self._reported_overflow:
            self.report_overflow(lost)

    def report_overflow(self, lost: int) -> None:
        """Send the ``spool_overflow`` event for losses not reported yet."""
        new = lost - self._reported_overflow
        self._reported_overflow = lost
        status = self.spool.status()
        counters: dict[str, float] = {"lost_since_last_report": new, "lost_total": lost}
        for kind, n in status["overflowed"].items():
            counters[f"overflowed_{kind}"] = n
        for kind, n in status["write_failed"].items():
            counters[f"write_failed_{kind}"] = n
        event = messages.event_message(
            component=COMPONENT, kind="spool_overflow",
            detail=f"{new} message(s) to IoT Core were lost while it was unreachable: the spool "
                   f"({status['max_messages']} messages / {status['max_bytes']} bytes) overflowed or could "
                   f"not be written ({status['error'] or 'see counters'})",
            counters=counters)
        log.warning("%s", event["detail"])
        self.submit(self.events_topic, event, "event")

    def status(self) -> dict[str, Any]:
        with self._cond:
            queued = len(self._queue)
        return {"online": self.online, "sent": self.sent, "send_failures": self.send_failures,
                "queued": queued, "too_large": self.too_large, "last_error": self.last_error,
                "spool": self.spool.status()}

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or spooled (for an orderly stop)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or len(self.spool):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True
