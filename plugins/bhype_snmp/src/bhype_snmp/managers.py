"""Managers (notification receivers): validated creation, listing without secrets, removal."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from sqlmodel import col, select

from bhype_core.plugin_api import NAME_RE, SEVERITIES, Conflict, NotFound, ValidationErrors, session
from bhype_snmp.models import SnmpManager
from bhype_snmp.settings import MIN_PASSPHRASE, check_host

# SHA-2 (RFC 7860) authentication and AES privacy (RFC 3826; 192/256 as net-snmp's AES192/AES256,
# the Blumenthal key extension) only: MD5, SHA-1 and DES are not offered.
AuthProtocol = Literal["SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["AES", "AES192", "AES256"]
Severity = Literal["info", "warning", "error", "critical"]


class ManagerCreate(BaseModel):
    """``POST /api/v1/snmp/managers``: a new receiver. v2c needs ``community``; v3 needs
    ``user``, ``auth_key`` and ``priv_key`` (auth+priv only: noAuthNoPriv is not offered)."""

    name: str = Field(max_length=63, examples=["nms1"])
    host: str = Field(max_length=253, examples=["nms.example.net"])
    port: int = Field(162, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    notify_type: Literal["trap", "inform"] = "trap"
    community: SecretStr = SecretStr("")
    user: str = Field("", max_length=32)
    auth_protocol: AuthProtocol = "SHA256"
    auth_key: SecretStr = SecretStr("")
    priv_protocol: PrivProtocol = "AES"
    priv_key: SecretStr = SecretStr("")
    min_severity: Severity = "info"
    rate_limit: int | None = Field(None, ge=0, le=1_000_000, description="per event kind per window; null: default")
    timeout: int = Field(1, ge=1, le=60, description="seconds before an inform's first retry")
    retries: int = Field(3, ge=0, le=10, description="inform retries (each waits twice as long)")
    enabled: bool = True

    @model_validator(mode="after")
    def _security(self) -> ManagerCreate:
        errors = ValidationErrors()
        if not NAME_RE.match(self.name):
            errors.add("name", "letters, digits, '-', '_', '.', starting with a letter or digit")
        try:
            self.host = check_host(self.host)
        except ValueError as exc:
            errors.add("host", str(exc))
        if self.version == "2c" and not self.community.get_secret_value():
            errors.add("community", "is required for SNMP v2c")
        if self.version == "3":
            if not self.user:
                errors.add("user", "is required for SNMP v3")
            for key in ("auth_key", "priv_key"):
                if len(getattr(self, key).get_secret_value()) < MIN_PASSPHRASE:
                    errors.add(key, f"must be at least {MIN_PASSPHRASE} characters for SNMP v3 (RFC 3414)")
        errors.raise_if_any()
        return self


class ManagerPublic(BaseModel):
    """A manager as the API shows it: secrets only as set or not."""

    name: str
    host: str
    port: int
    version: str
    notify_type: str
    community_set: bool
    user: str
    auth_protocol: str | None
    priv_protocol: str | None
    keys_set: bool
    min_severity: str
    rate_limit: int | None
    timeout: int
    retries: int
    enabled: bool

    @classmethod
    def of(cls, row: SnmpManager) -> ManagerPublic:
        v3 = row.version == "3"
        return cls(name=row.name, host=row.host, port=row.port, version=row.version, notify_type=row.notify_type,
                   community_set=not v3 and bool(row.community), user=row.user if v3 else "",
                   auth_protocol=row.auth_protocol if v3 else None, priv_protocol=row.priv_protocol if v3 else None,
                   keys_set=v3 and bool(row.auth_key and row.priv_key), min_severity=row.min_severity,
                   rate_limit=row.rate_limit, timeout=row.timeout, retries=row.retries, enabled=row.enabled)


def create_manager(runtime: Any, data: ManagerCreate) -> SnmpManager:
    """Store a new manager.

    :raises Conflict: a manager of that name exists.
    """
    values = data.model_dump()
    for key in ("community", "auth_key", "priv_key"):
        values[key] = getattr(data, key).get_secret_value()
    if data.version == "2c":
        values.update(user="", auth_key="", priv_key="")
    else:
        values["community"] = ""
    with session(runtime, write=True) as db:
        if db.exec(select(SnmpManager).where(SnmpManager.name == data.name)).first() is not None:
            raise Conflict(f"a manager named {data.name!r} already exists")
        row = SnmpManager(**values)
        db.add(row)
    return row


def list_managers(runtime: Any, *, enabled_only: bool = False) -> list[SnmpManager]:
    """Every manager (or only the enabled ones), by name."""
    with session(runtime) as db:
        query = select(SnmpManager).order_by(col(SnmpManager.name))
        if enabled_only:
            query = query.where(SnmpManager.enabled == True)  # noqa: E712 (SQL, not Python)
        return list(db.exec(query).all())


def get_manager(runtime: Any, name: str) -> SnmpManager:
    """The manager named ``name``.

    :raises NotFound: no such manager.
    """
    with session(runtime) as db:
        row = db.exec(select(SnmpManager).where(SnmpManager.name == name)).first()
    if row is None:
        raise NotFound(f"no SNMP manager named {name!r}")
    return row


def delete_manager(runtime: Any, name: str) -> None:
    """Remove a manager.

    :raises NotFound: no such manager.
    """
    with session(runtime, write=True) as db:
        row = db.exec(select(SnmpManager).where(SnmpManager.name == name)).first()
        if row is None:
            raise NotFound(f"no SNMP manager named {name!r}")
        db.delete(row)


def severity_passes(event_severity: str, minimum: str) -> bool:
    """Whether an event of ``event_severity`` reaches a manager filtering at ``minimum``."""
    return SEVERITIES.index(event_severity) >= SEVERITIES.index(minimum)
