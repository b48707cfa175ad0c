"""The fleet core's SigV4 signatures are the ones botocore's own signers compute for the same request."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from ggsim.fleet.sigv4 import Credentials, sign

NOW = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def _botocore(signer: type[SigV4Auth], method: str, url: str, service: str, body: bytes, token: str) -> str:
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"}
                         if body else {})
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer(BotoCredentials("AKIDEXAMPLE", "secret/KEY+example", token or None), service,
               "eu-west-1").add_auth(request)
    return request.headers["Authorization"]


@pytest.mark.parametrize("token", ["", "session-token"])
@pytest.mark.parametrize(("signer", "method", "url", "service", "body"), [
    (S3SigV4Auth, "GET", "https://bucket.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd/hello.txt", "s3", b""),
    (S3SigV4Auth, "GET", "http://127.0.0.1:4566/bucket/key/with~tilde", "s3", b""),
    (SigV4Auth, "POST", "https://greengrass.eu-west-1.amazonaws.com/greengrass/v2/resolveComponentCandidates",
     "greengrass", b'{"componentCandidates": []}'),
    (SigV4Auth, "GET", "https://greengrass.eu-west-1.amazonaws.com/greengrass/v2/components?scope=PRIVATE&maxResults=5",
     "greengrass", b""),
])
def test_signature_matches_botocore(signer, method, url, service, body, token) -> None:
    headers = sign(method, url, service=service, region="eu-west-1", body=body, now=NOW,
                   credentials=Credentials("AKIDEXAMPLE", "secret/KEY+example", token),
                   headers={"Content-Type": "application/json"} if body else {})
    assert headers["Authorization"] == _botocore(signer, method, url, service, body, token)
    assert headers.get("X-Amz-Security-Token", "") == token
