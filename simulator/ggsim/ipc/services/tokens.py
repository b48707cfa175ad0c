"""ValidateAuthorizationToken (spec §4.9): for Stream Manager only."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentsError, InvalidTokenError, UnauthorizedError
from ..server import Call, Operation, Service

STREAM_MANAGER = "aws.greengrass.StreamManager"


class TokenService(Service):
    def operations(self) -> list[Operation]:
        return [Operation("ValidateAuthorizationToken", self.validate)]

    def validate(self, call: Call, request: dict[str, Any]) -> dict[str, Any]:
        if call.component != STREAM_MANAGER:
            raise UnauthorizedError(
                f"{call.component} is not authorized to perform aws.greengrass#ValidateAuthorizationToken")
        token = request.get("token")
        if not token:
            raise InvalidArgumentsError("token is required")
        if self.backend.tokens.lookup(token) is None:
            raise InvalidTokenError("Invalid token used by stream manager when trying to authorize")
        return {"isValid": True}
