"""The ``/api/v1/snmp`` router. Secrets (community, v3 pass phrases) are never echoed: only
whether they are set."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.plugin_api import RuntimeDep
from bhype_snmp.settings import SnmpSettings, split_target


class TrapTargetStatus(BaseModel):
    """One trap receiver."""

    host: str
    port: int


class V3Status(BaseModel):
    """SNMP v3 user security, without the pass phrases."""

    user: str
    auth_protocol: str
    auth_password_set: bool
    priv_protocol: str
    priv_password_set: bool


class SnmpStatus(BaseModel):
    """``GET /api/v1/snmp/status``."""

    version: str
    trap_targets: list[TrapTargetStatus]
    community_set: bool
    v3: V3Status | None


def snmp_status(settings: SnmpSettings) -> SnmpStatus:
    """The status document for ``settings``."""
    targets = [
        TrapTargetStatus(host=host, port=port) for host, port in map(split_target, settings.trap_targets)
    ]
    v3 = None
    if settings.version == "3":
        v3 = V3Status(
            user=settings.v3_user,
            auth_protocol=settings.v3_auth_protocol,
            auth_password_set=bool(settings.v3_auth_password.get_secret_value()),
            priv_protocol=settings.v3_priv_protocol,
            priv_password_set=bool(settings.v3_priv_password.get_secret_value()),
        )
    return SnmpStatus(
        version=settings.version,
        trap_targets=targets,
        community_set=settings.version == "2c" and bool(settings.community.get_secret_value()),
        v3=v3,
    )


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["snmp"])

    @router.get("/status", response_model=SnmpStatus)
    def status(runtime: RuntimeDep) -> SnmpStatus:
        """The configured trap receivers and security settings (secrets shown only as set/unset)."""
        return snmp_status(runtime.settings.section("snmp"))

    return router
