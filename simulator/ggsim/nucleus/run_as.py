"""Which user a lifecycle step runs as (spec components §3.3), and making sure that user can run it.

As the nucleus (UnixRunWithGenerator): when ggsim runs as root, a step without ``RequiresPrivilege`` runs as
the component user — ``services.<name>.runWith.posixUser`` when a deployment gave one, else the nucleus's
``runWithDefault.posixUser`` (the installer's ``--component-default-user``, ``ggc_user:ggc_group`` by
default; ``ggsim up --component-default-user`` here) — and a step with it runs as root. When ggsim is not
root, every step runs as ggsim's own user. ``user[:group]``: names or numeric ids; without a group, the
user's primary group.

When the default ``ggc_user:ggc_group`` does not exist, ggsim creates it as the installer does (a system
user with a home, a system group, the user added to the group: ``useradd -r -m``, ``groupadd -r``,
``usermod -a -G``); any other configured user must exist.

A component user must be able to reach its working folder: ggsim refuses to start on a root that user cannot
traverse, naming the folder (a root under pytest's 0700 temporary folder, or under /root, is the usual case).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_POSIX_USER",
    "RunAs",
    "RunAsError",
    "RunAsPolicy",
    "check_traversable",
    "chown_tree",
    "current_user",
    "ensure_default_user",
    "parse_posix_user",
    "resolve",
]

DEFAULT_POSIX_USER = "ggc_user:ggc_group"
_DEFAULT_USER, _DEFAULT_GROUP = DEFAULT_POSIX_USER.split(":")


class RunAsError(Exception):
    """A component user that cannot be used: unknown, malformed, or unable to reach a folder."""


@dataclass(frozen=True)
class RunAs:
    """A resolved POSIX identity: what ``sudo -u <user> -g <group>`` would run a step as."""

    user: str
    group: str
    uid: int
    gid: int
    home: str
    #: the user's supplementary groups (sudo sets them, as a login does)
    groups: tuple[int, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.user}:{self.group}"

    def is_current(self) -> bool:
        return self.uid == os.geteuid() and self.gid == os.getegid()


def parse_posix_user(text: str) -> tuple[str, str | None]:
    """``user[:group]`` → (user, group or None); `RunAsError` names the value when it is not one."""
    user, _, group = str(text).strip().partition(":")
    if not user or ":" in group or (_ and not group):
        raise RunAsError(f"posixUser {text!r}: expected 'user' or 'user:group' (names or numeric ids)")
    return user, group or None


def _user_entry(user: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        return None


def _group_entry(group: str) -> grp.struct_group | None:
    try:
        return grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
    except KeyError:
        return None


def resolve(text: str) -> RunAs:
    """The identity ``text`` (``user[:group]``) names on this machine; `RunAsError` when it is unknown."""
    user, group = parse_posix_user(text)
    entry = _user_entry(user)
    if entry is None:
        raise RunAsError(f"posixUser {text!r}: no user {user!r} on this machine")
    if group is None:
        gid = entry.pw_gid
        group_entry = _group_entry(str(gid))
        group_name = group_entry.gr_name if group_entry is not None else str(gid)
    else:
        group_entry = _group_entry(group)
        if group_entry is None:
            if not group.isdigit():
                raise RunAsError(f"posixUser {text!r}: no group {group!r} on this machine")
            gid, group_name = int(group), group  # as the nucleus: a numeric group need not exist
        else:
            gid, group_name = group_entry.gr_gid, group_entry.gr_name
    supplementary = tuple(sorted({g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem} | {gid}))
    return RunAs(user=entry.pw_name, group=group_name, uid=entry.pw_uid, gid=gid, home=entry.pw_dir,
                 groups=supplementary)


def current_user() -> RunAs:
    """ggsim's own identity."""
    uid, gid = os.geteuid(), os.getegid()
    entry = _user_entry(str(uid))
    group = _group_entry(str(gid))
    return RunAs(user=entry.pw_name if entry else str(uid), group=group.gr_name if group else str(gid),
                 uid=uid, gid=gid, home=entry.pw_dir if entry else os.path.expanduser("~"),
                 groups=tuple(os.getgroups()))


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RunAsError(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()}")


def ensure_default_user(text: str) -> bool:
    """Create ``ggc_user:ggc_group`` when ``text`` is that default and it is missing, as the installer does
    (root only). Returns whether anything was created; any other user is left as it is."""
    user, group = parse_posix_user(text)
    if (user, group) != (_DEFAULT_USER, _DEFAULT_GROUP) or os.geteuid() != 0:
        return False
    created = False
    if _user_entry(_DEFAULT_USER) is None:
        _run(["useradd", "-r", "-m", _DEFAULT_USER])
        created = True
    if _group_entry(_DEFAULT_GROUP) is None:
        _run(["groupadd", "-r", _DEFAULT_GROUP])
        created = True
    group_entry = _group_entry(_DEFAULT_GROUP)
    if group_entry is not None and _DEFAULT_USER not in group_entry.gr_mem:
        _run(["usermod", "-a", "-G", _DEFAULT_GROUP, _DEFAULT_USER])
        created = True
    return created


def _may(who: RunAs, info: os.stat_result, bit_owner: int, bit_group: int, bit_other: int) -> bool:
    if who.uid == 0:
        return True
    if info.st_uid == who.uid:
        return bool(info.st_mode & bit_owner)
    if info.st_gid in who.groups or info.st_gid == who.gid:
        return bool(info.st_mode & bit_group)
    return bool(info.st_mode & bit_other)


def _ancestors(path: Path) -> Iterator[Path]:
    path = Path(os.path.abspath(path))
    yield from reversed([path, *path.parents])


def check_traversable(path: Path, who: RunAs, *, what: str) -> None:
    """`RunAsError` naming the first folder on the way to ``path`` (``path`` included) that ``who`` may not
    enter (no execute permission for that user by the mode bits)."""
    for folder in _ancestors(path):
        try:
            info = folder.stat()
        except FileNotFoundError:
            return  # created later by ggsim, as root, with mode 0755
        if not _may(who, info, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            raise RunAsError(
                f"{what} {path}: the component user {who.spec} cannot enter {folder} (mode "
                f"{stat.filemode(info.st_mode)}, owner {info.st_uid}:{info.st_gid}). Put the root where that user "
                "can reach it (every folder above it needs the execute bit for it), or choose another user "
                "with --component-default-user"
            )


def chown_tree(path: Path, who: RunAs, *, include_top: bool = True) -> None:
    """Give ``path`` (``include_top``) and everything below it to ``who``, as the nucleus's
    RunWithPathOwnershipHandler does; symbolic links themselves, never what they point at."""
    if not path.exists():
        return
    tops = [path] if include_top else list(path.iterdir())
    for top in tops:
        with contextlib.suppress(FileNotFoundError):
            os.chown(top, who.uid, who.gid, follow_symlinks=False)
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, filenames in os.walk(top):
                for name in (*dirnames, *filenames):
                    with contextlib.suppress(FileNotFoundError):
                        os.chown(os.path.join(dirpath, name), who.uid, who.gid, follow_symlinks=False)


class RunAsPolicy:
    """Who each step runs as: ``for_step(component, requires_privilege)`` → a `RunAs`, or None for ggsim's own
    user. ``configured()`` reads the nucleus's ``runWithDefault.posixUser`` (None when unset); ``default`` is
    what stands in for it (``ggsim up --component-default-user``); ``per_component(name)`` a deployment's
    ``runWith.posixUser`` for that component (None when unset)."""

    def __init__(
        self,
        default: str = DEFAULT_POSIX_USER,
        *,
        configured: Callable[[], str | None] | None = None,
        per_component: Callable[[str], str | None] | None = None,
    ) -> None:
        parse_posix_user(default)
        self.default = default
        self._configured = configured or (lambda: None)
        self._per_component = per_component or (lambda _name: None)

    @property
    def switches_user(self) -> bool:
        """Steps run as another user only when ggsim runs as root (as the nucleus: not root → its own user)."""
        return os.geteuid() == 0

    def spec(self, component: str) -> str:
        """The ``user[:group]`` a non-privileged step of ``component`` runs as when ggsim is root."""
        return self._per_component(component) or self._configured() or self.default

    def for_step(self, component: str, *, requires_privilege: bool) -> RunAs | None:
        if not self.switches_user or requires_privilege:
            return None
        who = resolve(self.spec(component))
        return None if who.is_current() else who

