"""A deployment's per-component ``runWith`` and what it leaves in ``services.<name>.runWith``.

As the nucleus's KernelConfigResolver: every component keeps the ``runWith`` it had; for a root component of
the deploying group whose entry in the deployment has ``runWith``, ``posixUser`` is set when given (an empty
one removes it) and ``systemResourceLimits`` is set when given and removed when not. Other keys
(``windowsUser``) are kept as given. A change of anything but ``systemResourceLimits`` reinstalls the
component (spec components §3.3 and the restart/reinstall table); ggsim does not apply resource limits.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from ggsim.nucleus.run_as import RunAsError, parse_posix_user

__all__ = ["LIVE_KEYS", "RunWithError", "check_run_with", "needs_reinstall", "next_run_with"]

POSIX_USER = "posixUser"
LIMITS = "systemResourceLimits"
#: runWith keys whose change the nucleus applies without a reinstall.
LIVE_KEYS = (LIMITS,)


class RunWithError(ValueError):
    """A runWith entry that is not one; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_run_with(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A request's runWith for one component, checked: ``posixUser`` a string (``user`` or ``user:group``, or
    empty to remove it), ``systemResourceLimits`` an object."""
    out = dict(value)
    user = out.get(POSIX_USER)
    if user is not None:
        if not isinstance(user, str):
            raise RunWithError(f"{where}.{POSIX_USER}", f"expected a string ('user' or 'user:group'), got {user!r}")
        if user:
            try:
                parse_posix_user(user)
            except RunAsError as exc:
                raise RunWithError(f"{where}.{POSIX_USER}", str(exc)) from None
    limits = out.get(LIMITS)
    if limits is not None and not isinstance(limits, Mapping):
        raise RunWithError(f"{where}.{LIMITS}", f"expected an object (cpus, memory), got {limits!r}")
    return out


def next_run_with(
    components: Iterable[str],
    current: Mapping[str, Mapping[str, Any]],
    requested: Mapping[str, Mapping[str, Any]],
    roots: Iterable[str],
) -> dict[str, dict[str, Any]]:
    """``services.<name>.runWith`` after the deployment, for every one of ``components`` that has one."""
    root_set = set(roots)
    out: dict[str, dict[str, Any]] = {}
    for name in components:
        run_with = copy.deepcopy(dict(current.get(name, {})))
        given = requested.get(name) if name in root_set else None
        if given is not None:
            if POSIX_USER in given:
                if given[POSIX_USER]:
                    run_with[POSIX_USER] = given[POSIX_USER]
                else:
                    run_with.pop(POSIX_USER, None)
            if given.get(LIMITS) is not None:
                run_with[LIMITS] = copy.deepcopy(dict(given[LIMITS]))
            else:
                run_with.pop(LIMITS, None)
            run_with.update({k: v for k, v in given.items() if k not in (POSIX_USER, LIMITS)})
        if run_with:
            out[name] = run_with
    return out


def needs_reinstall(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """True when going from ``old`` to ``new`` changes anything a running component cannot take live."""
    def fixed(value: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (value or {}).items() if k not in LIVE_KEYS}

    return fixed(old) != fixed(new)
