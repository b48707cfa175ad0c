"""Snapshots to S3: a thread uploads the snapshot store's head (oldest first, one at a time, so in order).

boto3 finds the credentials the nucleus gives components through its default chain: with a dependency on
aws.greengrass.TokenExchangeService, ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and
``AWS_CONTAINER_AUTHORIZATION_TOKEN`` are set and the container credentials provider asks the nucleus.

A failed upload stays at the head and is tried again with exponential backoff (up to ``retry_max``
seconds). The reasons are run-time conditions, never a crash: S3 unreachable, a bucket that does not exist
(logged once, naming it), access denied, no credentials. :attr:`condition` says which, for /health and
/metrics; it is None once an upload succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from .snapshots import SnapshotStore

log = logging.getLogger("greenlens.publisher.s3")


@dataclass(frozen=True)
class S3Target:
    region: str
    endpoint_url: str
    """Empty: AWS's endpoint for the region."""


class SnapshotUploader:
    """See the module docstring."""

    def __init__(self, store: SnapshotStore, target: S3Target, *, retry_max: float = 30.0,
                 retry_initial: float = 0.5) -> None:
        self.store = store
        self.target = target
        self.retry_max = retry_max
        self.retry_initial = retry_initial
        self._client: Any = None
        self._cond = threading.Condition()
        self._stop = False
        self._retry_at = 0.0
        self._delay = retry_initial
        self._thread: threading.Thread | None = None
        self.uploaded = 0
        self.uploaded_bytes = 0
        self.failures = 0
        self.condition: str | None = None
        """Why the head cannot be uploaded now (None: uploads work or nothing was tried yet)."""
        self.condition_kind: str | None = None
        """``bucket_missing``, ``access_denied``, ``no_credentials``, ``unreachable`` or ``error``."""

    def set_target(self, target: S3Target, retry_max: float) -> None:
        with self._cond:
            self.retry_max = retry_max
            if target != self.target:
                self.target, self._client = target, None
            self._retry_at, self._delay = 0.0, self.retry_initial
            self._cond.notify_all()

    def start(self) -> SnapshotUploader:
        self._thread = threading.Thread(target=self._run, name="publisher-s3", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """A new snapshot is in the store."""
        with self._cond:
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3", region_name=self.target.region, endpoint_url=self.target.endpoint_url or None,
                config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}))
        return self._client

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not len(self.store) or time.monotonic() < self._retry_at):
                    wait = self._retry_at - time.monotonic() if len(self.store) else None
                    self._cond.wait(wait)
                if self._stop:
                    return
            head = self.store.peek()
            if head is None:
                continue
            snap, data = head
            try:
                self._s3().put_object(Bucket=snap.bucket, Key=snap.key, Body=data, ContentType="image/jpeg",
                                      Metadata={"sha256": snap.sha256, "camera": snap.camera})
            except Exception as exc:  # S3 unreachable, refused, no credentials: all run-time conditions
                self.store.release(snap.number)
                self._failed(snap.bucket, exc)
                continue
            self.store.pop(snap.number)
            self.uploaded += 1
            self.uploaded_bytes += snap.size
            with self._cond:
                self._delay = self.retry_initial
                if self.condition is not None:
                    log.info("S3 takes snapshots again (%s); %d waiting in the store", snap.bucket, len(self.store))
                self.condition = self.condition_kind = None

    def _failed(self, bucket: str, exc: Exception) -> None:
        kind, text = describe(bucket, exc, self.target)
        self.failures += 1
        with self._cond:
            if (kind, text) != (self.condition_kind, self.condition):
                log.error("snapshots cannot be uploaded: %s; they wait in %s (%d now)", text,
                          self.store.directory, len(self.store))
            self.condition_kind, self.condition = kind, text
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, self.retry_max)

    def status(self) -> dict[str, Any]:
        return {"uploaded": self.uploaded, "uploaded_bytes": self.uploaded_bytes, "failures": self.failures,
                "condition": self.condition, "condition_kind": self.condition_kind,
                "endpoint": self.target.endpoint_url or f"AWS S3 ({self.target.region})"}


def describe(bucket: str, exc: Exception, target: S3Target) -> tuple[str, str]:
    """(kind, one clear line) for a failed upload."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = target.endpoint_url or f"S3 in {target.region}"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return "bucket_missing", (f"the S3 bucket {bucket!r} does not exist ({where}); create it or set "
                                      "snapshotBucket")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return "access_denied", (f"S3 refused PutObject on bucket {bucket!r} ({code}): does the token "
                                     "exchange role allow s3:PutObject on it?")
        return "error", f"S3 PutObject on bucket {bucket!r} failed: {code or exc}"
    if isinstance(exc, NoCredentialsError):
        return "no_credentials", ("no AWS credentials for S3: does the recipe depend on "
                                  "aws.greengrass.TokenExchangeService?")
    if isinstance(exc, EndpointConnectionError) or isinstance(exc, OSError):
        return "unreachable", f"S3 is unreachable ({where}): {exc}"
    name = type(exc).__name__
    if "Credential" in name:
        return "no_credentials", f"no AWS credentials for S3 ({name}: {exc})"
    if "Connect" in name or "Timeout" in name:
        return "unreachable", f"S3 is unreachable ({where}): {exc}"
    return "error", f"S3 PutObject on bucket {bucket!r} failed: {name}: {exc}"
