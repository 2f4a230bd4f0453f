"""The plugin's tables: the managers notifications go to, and this host's SNMP engine ID."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, TABLE_OPTIONS, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SnmpManager(SQLModel, table=True):
    """Table ``snmp_manager``: one notification receiver. ``community``, ``auth_key`` and
    ``priv_key`` are secrets: never in API output, logs or task results."""

    __tablename__ = "snmp_manager"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=63, unique=True)
    host: str = Field(max_length=253)
    port: int = 162
    version: str = Field(default="2c", max_length=4)  # "2c" or "3"
    notify_type: str = Field(default="trap", max_length=8)  # "trap" or "inform"
    community: str = Field(default="", sa_type=Text)
    user: str = Field(default="", max_length=32)
    auth_protocol: str = Field(default="SHA256", max_length=8)
    auth_key: str = Field(default="", sa_type=Text)
    priv_protocol: str = Field(default="AES", max_length=8)
    priv_key: str = Field(default="", sa_type=Text)
    min_severity: str = Field(default="info", max_length=8)
    rate_limit: int | None = None  # per event kind per window; None: the [snmp] default
    timeout: int = 1  # seconds before an inform's first retry (then doubled: back-off)
    retries: int = 3
    enabled: bool = True
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SnmpEngine(SQLModel, table=True):
    """Table ``snmp_engine``: each host's snmpEngineIDs (RFC 3411), made once and kept, so v3
    receivers configured with one (``createUser -e``) and managers that polled the agent keep
    working across restarts. One row per ``host`` (group hosts share the database: a receiver
    keeps one (boots, time) per engine ID, RFC 3414 §3.2 step 7, and each host has its own
    clock) and ``role``: ``notify`` (the notification sender) and ``agent`` (the read-only
    agent: its own ID, because the two engines' clocks differ). ``boots`` is the engine's
    snmpEngineBoots (RFC 3414 §2.2.2), grown at every start; ``booted`` when it last grew
    (snmpEngineTime counts from there, the same in every process of the host)."""

    __tablename__ = "snmp_engine"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("role", "host", name="uq_snmp_engine_role_host"), dict(TABLE_OPTIONS))

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    engine_id: str = Field(max_length=66)  # hex, 5 to 32 octets
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    role: str = Field(default="notify", max_length=8)
    boots: int = 0
    host: str = Field(default="", max_length=63)  # "" only on rows made before snmp_0003 (adopted on first use)
    booted: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SnmpAgentUser(SQLModel, table=True):
    """Table ``snmp_agent_user``: an SNMPv3 user the read-only agent answers (authPriv only:
    SHA-2 authentication, AES privacy). ``auth_key`` and ``priv_key`` are secrets: never in
    API output, logs or command lines."""

    __tablename__ = "snmp_agent_user"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=32, unique=True)
    auth_protocol: str = Field(default="SHA256", max_length=8)
    auth_key: str = Field(default="", sa_type=Text)
    priv_protocol: str = Field(default="AES", max_length=8)
    priv_key: str = Field(default="", sa_type=Text)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


SNMP_MODELS: tuple[type[SQLModel], ...] = (SnmpManager, SnmpEngine, SnmpAgentUser)
