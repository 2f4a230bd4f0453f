"""SNMPv3 users of the read-only agent: validated creation, listing without secrets, removal.

Like managers' v3 settings (:mod:`bhype_snmp.managers`): authentication *and* privacy only
(SHA-2, RFC 7860; AES, RFC 3826 and net-snmp's Blumenthal AES192/256), pass phrases of at least
8 characters (RFC 3414 §11.2), secrets stored for the agent and never returned or logged. The
agent re-reads the table every refresh, so a user added or removed takes effect within
``[snmp] agent_refresh`` seconds, without a restart.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator
from sqlmodel import col, select

from bhype_core.plugin_api import Conflict, NotFound, ValidationErrors, session
from bhype_snmp.managers import AuthProtocol, PrivProtocol
from bhype_snmp.models import SnmpAgentUser
from bhype_snmp.settings import MIN_PASSPHRASE

# usmUserName is SnmpAdminString (SIZE(1..32)); printable ASCII without spaces keeps it
# unambiguous on command lines and in snmpd.conf-style files.
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,31}$")


class AgentUserCreate(BaseModel):
    """``POST /api/v1/snmp/agent/users``: a v3 user the agent answers (authPriv)."""

    name: str = Field(max_length=32, examples=["nms"])
    auth_protocol: AuthProtocol = "SHA256"
    auth_key: SecretStr
    priv_protocol: PrivProtocol = "AES"
    priv_key: SecretStr

    @model_validator(mode="after")
    def _check(self) -> AgentUserCreate:
        errors = ValidationErrors()
        if not USER_RE.match(self.name):
            errors.add("name", "1 to 32 letters, digits, '_', '.', '@', '-', starting with a letter or digit")
        for key in ("auth_key", "priv_key"):
            if len(getattr(self, key).get_secret_value()) < MIN_PASSPHRASE:
                errors.add(key, f"must be at least {MIN_PASSPHRASE} characters (RFC 3414)")
        errors.raise_if_any()
        return self


class AgentUserPublic(BaseModel):
    """An agent user as the API shows it: no key, only that both are set."""

    name: str
    auth_protocol: str
    priv_protocol: str
    keys_set: bool

    @classmethod
    def of(cls, row: SnmpAgentUser) -> AgentUserPublic:
        return cls(name=row.name, auth_protocol=row.auth_protocol, priv_protocol=row.priv_protocol,
                   keys_set=bool(row.auth_key and row.priv_key))


def create_user(runtime: Any, data: AgentUserCreate) -> SnmpAgentUser:
    """Store a new agent user.

    :raises Conflict: a user of that name exists (remove it first to change its keys).
    """
    with session(runtime, write=True) as db:
        if db.exec(select(SnmpAgentUser).where(SnmpAgentUser.name == data.name)).first() is not None:
            raise Conflict(f"an SNMP agent user named {data.name!r} already exists")
        row = SnmpAgentUser(name=data.name, auth_protocol=data.auth_protocol,
                            auth_key=data.auth_key.get_secret_value(), priv_protocol=data.priv_protocol,
                            priv_key=data.priv_key.get_secret_value())
        db.add(row)
    return row


def list_users(runtime: Any) -> list[SnmpAgentUser]:
    """Every agent user, by name (with keys: for the agent and the API's own filtering only)."""
    with session(runtime) as db:
        return list(db.exec(select(SnmpAgentUser).order_by(col(SnmpAgentUser.name))).all())


def delete_user(runtime: Any, name: str) -> None:
    """Remove an agent user (the agent stops answering it at its next refresh).

    :raises NotFound: no such user.
    """
    with session(runtime, write=True) as db:
        row = db.exec(select(SnmpAgentUser).where(SnmpAgentUser.name == name)).first()
        if row is None:
            raise NotFound(f"no SNMP agent user named {name!r}")
        db.delete(row)
