"""GetSecretValue (aws.greengrass.SecretManager): parse, authorize on the secret's ARN, answer from the store."""

from __future__ import annotations

import base64
from typing import Any

from ...aws.secrets import SecretError, SecretNotFoundError
from ..errors import InvalidArgumentsError, ResourceNotFoundError
from ..server import Call, Operation, Service

SERVICE_ID = "aws.greengrass.SecretManager"


class SecretService(Service):
    def operations(self) -> list[Operation]:
        return [Operation("GetSecretValue", self.get_secret_value)]

    def get_secret_value(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        secret_id = request.get("secretId") or ""
        store = self.backend.secrets
        # Authorized on the ARN, also when asked by name (an unknown id is checked as given).
        resource = store.arn_of(secret_id) or secret_id
        self.server.authorizer.check(call.component, SERVICE_ID, "aws.greengrass#GetSecretValue", resource)
        try:
            secret, version = store.get(secret_id, request.get("versionId"), request.get("versionStage"))
        except SecretError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        except SecretNotFoundError as exc:
            raise ResourceNotFoundError(str(exc), resourceType="secret", resourceName=secret_id) from None
        if version.secret_string is not None:
            value: dict[str, Any] = {"secretString": version.secret_string}
        else:
            value = {"secretBinary": base64.b64encode(version.secret_binary or b"").decode()}
        return {"secretId": secret.arn, "versionId": version.version_id, "versionStage": list(version.stages),
                "secretValue": value}
