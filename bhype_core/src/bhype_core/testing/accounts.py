"""Test roles that never depend on the host's own accounts (issue 13).

bHype reads a user's role from the host's groups (``[auth] admin_groups``/``operator_groups``,
``bhype-admin``/``bhype`` by default). A test that names a fixed account (``alice``) and
expects it to be an operator changes its outcome on a machine where a real ``alice`` is in
``bhype-admin``. So the kit's settings (:func:`bhype_core.testing.make_settings`) map the roles
to groups that exist nowhere (:data:`NO_ROLE_GROUPS`, random per test session): no host account
has a role in a test unless the test gives it one. A test that needs real members of a role
uses :func:`bhype_roles`: kit-created groups and random ``bht_…`` users, removed afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bhype_core.testing.users import LocalGroup, LocalUser, LocalUsers

# Group names no host has (``bht_`` + random, chosen once per test process): the default role
# groups of every settings object the kit builds.
_RUN = secrets.token_hex(4)
NO_ROLE_GROUPS: dict[str, Any] = {
    "admin_groups": [f"bht_noadmins_{_RUN}"],
    "operator_groups": [f"bht_noops_{_RUN}"],
}


@dataclass
class Roles:
    """Kit-created admin and operator groups and a factory of members (random ``bht_…`` users)."""

    users: LocalUsers
    admins: LocalGroup
    operators: LocalGroup

    def auth_section(self) -> dict[str, Any]:
        """The ``[auth]`` overrides that make these groups the roles' groups."""
        return {"admin_groups": [self.admins.name], "operator_groups": [self.operators.name]}

    def admin(self) -> LocalUser:
        """A new real user in the admin group."""
        return self.users(groups=[self.admins])

    def operator(self) -> LocalUser:
        """A new real user in the operator group."""
        return self.users(groups=[self.operators])


@pytest.fixture
def bhype_roles(local_user: LocalUsers) -> Iterator[Roles]:
    """Real admin/operator groups and users for this test (needs root; removed afterwards).

    Pass ``auth=bhype_roles.auth_section()`` to the settings of the runtime under test."""
    yield Roles(local_user, local_user.group(), local_user.group())
