"""AWS Signature Version 4 for the few requests a fleet core signs (an S3 GetObject, a Greengrass call to
AWS's public endpoint): the standard header-based signing, on the standard library alone.

Why not a library: botocore's ``SigV4Auth`` pulls in botocore.compat, urllib3 and awscrt (+15 MB resident
per core, measured) and awscrt's ``aws_sign_request`` +5 MB — a third and an eighth of the 40 MB a fleet
core may take. tests/fleet/test_sigv4.py checks every signature against botocore's signers.

`sign` returns the headers to send: ``Host``, ``X-Amz-Date``, ``X-Amz-Content-SHA256`` (S3), the
session token when there is one, and ``Authorization``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = ["Credentials", "sign"]

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str = ""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                   for k, v in parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{k}={v}" for k, v in pairs)


def sign(method: str, url: str, *, service: str, region: str, credentials: Credentials,
         headers: Mapping[str, str] | None = None, body: bytes = b"",
         now: dt.datetime | None = None) -> dict[str, str]:
    """The request's headers with its SigV4 signature. ``url``'s path must already be percent-encoded
    (S3 signs it as it is; every other service signs it encoded once more, as SigV4 says)."""
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    parts = urlsplit(url)
    payload_hash = hashlib.sha256(body).hexdigest()
    out = {k: v for k, v in (headers or {}).items()}
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = stamp
    if service == "s3":
        out["X-Amz-Content-SHA256"] = payload_hash
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in out.items()}
    names = sorted(signed)
    path = parts.path or "/"
    canonical_path = path if service == "s3" else quote(path, safe="/~")
    canonical = "\n".join([method.upper(), canonical_path, _canonical_query(parts.query),
                           "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names), payload_hash])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{credentials.secret_access_key}".encode(), day), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return out
