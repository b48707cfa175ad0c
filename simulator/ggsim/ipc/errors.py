"""The modeled IPC errors (spec ../shared/spec/greengrass-ipc.md §3.5).

A handler raises one of these; the server sends it as APPLICATION_ERROR with its shape name and a body
with `message` (what the Python SDK reads) plus the nucleus's framework fields.
"""

from __future__ import annotations

from typing import Any


class IpcError(Exception):
    shape = "ServiceError"

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.message is not None:
            body["message"] = self.message
        body.update(self.fields)
        body["_service"] = "aws.greengrass#GreengrassCoreIPC"
        if self.message is not None:
            body["_message"] = self.message
        body["_errorCode"] = self.shape
        return body


class ServiceError(IpcError):
    shape = "ServiceError"


class UnauthorizedError(IpcError):
    shape = "UnauthorizedError"


class InvalidArgumentsError(IpcError):
    shape = "InvalidArgumentsError"


class ResourceNotFoundError(IpcError):
    shape = "ResourceNotFoundError"


class ComponentNotFoundError(IpcError):
    shape = "ComponentNotFoundError"


class ConflictError(IpcError):
    shape = "ConflictError"


class FailedUpdateConditionCheckError(IpcError):
    shape = "FailedUpdateConditionCheckError"


class InvalidTokenError(IpcError):
    shape = "InvalidTokenError"


class InvalidArtifactsDirectoryPathError(IpcError):
    shape = "InvalidArtifactsDirectoryPathError"


class InvalidRecipeDirectoryPathError(IpcError):
    shape = "InvalidRecipeDirectoryPathError"
