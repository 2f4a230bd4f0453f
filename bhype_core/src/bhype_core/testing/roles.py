"""Test kit: real accounts whose groups give them a bHype role, for tests whose worker runs
tasks (the worker reads a task owner's role from their groups now, never from the request)."""

from __future__ import annotations

from typing import Any

from bhype_core.testing.users import LocalUser, LocalUsers


def role_account(users: LocalUsers, runtime: Any, role: str = "admin") -> LocalUser:
    """A fresh ``bht_…`` account in a fresh group that ``runtime``'s ``[auth]`` maps to ``role``.

    The group is added to ``auth.admin_groups`` (or ``operator_groups``) of this runtime's
    settings, so an in-process worker on it sees the account with that role; a worker in
    another process needs the same ``[auth]`` in its configuration file. Everything is removed
    with ``users`` (the ``local_user`` fixture) after the test.
    """
    if role not in ("admin", "operator"):
        raise ValueError(f"role must be 'admin' or 'operator', not {role!r}")
    group = users.group()
    auth = runtime.settings.auth
    field = "admin_groups" if role == "admin" else "operator_groups"
    setattr(auth, field, [*getattr(auth, field), group.name])
    return users(groups=[group])
