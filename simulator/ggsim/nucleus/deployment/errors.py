"""A failed deployment's error stack and error types, as the nucleus reports them.

The nucleus (DeploymentErrorCode, DeploymentErrorType, DeploymentErrorCodeUtils) walks the chain of
exceptions behind a failure and collects error codes, most generic first and always starting with
DEPLOYMENT_FAILURE; the error types are the distinct types of those codes (codes of type NONE add none)
plus the types an exception adds itself (a broken component adds USER_COMPONENT_ERROR, or
AWS_COMPONENT_ERROR for a component AWS publishes). ggsim knows which failure it met, so each kind
below names the codes the nucleus's exception chain would give for it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ErrorReport", "FailureKind", "error_report"]

#: Error type of each error code ggsim reports (DeploymentErrorCode's table; NONE adds no type).
CODE_TYPES: dict[str, str] = {
    "DEPLOYMENT_FAILURE": "NONE",
    "DEPLOYMENT_INTERRUPTED": "NONE",
    "ARTIFACT_DOWNLOAD_ERROR": "NONE",
    "NO_AVAILABLE_COMPONENT_VERSION": "NONE",
    "COMPONENT_PACKAGE_LOADING_ERROR": "NONE",
    "COMPONENT_VERSION_REQUIREMENTS_NOT_MET": "REQUEST_ERROR",
    "LOCAL_RECIPE_NOT_FOUND": "DEVICE_ERROR",
    "RECIPE_PARSE_ERROR": "COMPONENT_RECIPE_ERROR",
    "IO_ERROR": "NONE",
    "COMPONENT_UPDATE_ERROR": "NONE",
    "COMPONENT_BROKEN": "NONE",
    "COMPONENT_CONFIGURATION_NOT_VALID": "NONE",
}


class FailureKind:
    """The failures ggsim can meet, with the error codes (after DEPLOYMENT_FAILURE) the nucleus gives."""

    NO_VERSION = ("NO_AVAILABLE_COMPONENT_VERSION", "COMPONENT_VERSION_REQUIREMENTS_NOT_MET")
    RECIPE_NOT_FOUND = ("COMPONENT_PACKAGE_LOADING_ERROR", "LOCAL_RECIPE_NOT_FOUND")
    RECIPE_INVALID = ("COMPONENT_PACKAGE_LOADING_ERROR", "RECIPE_PARSE_ERROR")
    ARTIFACT_MISSING = ("ARTIFACT_DOWNLOAD_ERROR", "IO_ERROR")
    CONFIGURATION_INVALID = ("COMPONENT_CONFIGURATION_NOT_VALID",)
    CONFIGURATION_REJECTED = ("COMPONENT_CONFIGURATION_NOT_VALID",)
    COMPONENT_BROKEN = ("COMPONENT_UPDATE_ERROR", "COMPONENT_BROKEN")
    UPDATE_TIMEOUT = ("COMPONENT_UPDATE_ERROR",)
    INTERRUPTED = ("DEPLOYMENT_INTERRUPTED",)
    INTERNAL = ()


@dataclass(frozen=True)
class ErrorReport:
    stack: list[str]
    types: list[str]


def error_report(codes: tuple[str, ...], *, broken: list[str] | None = None) -> ErrorReport:
    """The stack and types for a failure with these codes; ``broken`` names the components that broke
    (their publisher decides USER_COMPONENT_ERROR or AWS_COMPONENT_ERROR)."""
    stack: list[str] = []
    for code in ("DEPLOYMENT_FAILURE", *codes):
        if code not in stack:
            stack.append(code)
    types: list[str] = []
    for code in stack:
        kind = CODE_TYPES.get(code, "NONE")
        if kind != "NONE" and kind not in types:
            types.append(kind)
    for name in broken or []:
        kind = "AWS_COMPONENT_ERROR" if name.startswith("aws.greengrass.") else "USER_COMPONENT_ERROR"
        if kind not in types:
            types.append(kind)
    return ErrorReport(stack, types)
