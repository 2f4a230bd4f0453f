"""The ``/api/v1/snmp`` router (admins): managers, their test, the engine IDs, the agent's v3
users. Secrets (community, v3 keys) are accepted, stored and never echoed: only whether they
are set."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel

from bhype_core.plugin_api import AdminDep, AuthenticatedDep, RuntimeDep, TaskAccepted, accept_task, local_host_name
from bhype_snmp import agent_users, engines
from bhype_snmp import managers as store
from bhype_snmp.agent_users import AgentUserCreate, AgentUserPublic
from bhype_snmp.managers import ManagerCreate, ManagerPublic
from bhype_snmp.mib import mib_text

TEST_KIND = "snmp.test"
INSTALL_MIB_KIND = "snmp.install_mib"


class MibInstall(BaseModel):
    """Where to install BHYPE-MIB (``null``: net-snmp's MIB directory for this platform)."""

    directory: str | None = None


class SnmpStatus(BaseModel):
    """``GET /api/v1/snmp/status``."""

    host: str
    engine_id: str
    sender_engine_ids: dict[str, str]
    managers: int
    enabled_managers: int
    agent_enabled: bool
    agent_address: str
    agent_engine_id: str
    agent_v2c: bool
    agent_users: int


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["snmp"])

    @router.get("/status", response_model=SnmpStatus)
    def status(runtime: RuntimeDep, principal: AdminDep) -> SnmpStatus:
        """This host's snmpEngineID (v3 receivers of traps need it: one per host of a group, all
        of them in ``sender_engine_ids``), manager counts and the agent."""
        rows = store.list_managers(runtime)
        settings = runtime.settings.section("snmp")
        here = engines.engine_id(runtime).hex()
        return SnmpStatus(host=local_host_name(runtime), engine_id=here,
                          sender_engine_ids=engines.sender_engine_ids(runtime), managers=len(rows),
                          enabled_managers=sum(row.enabled for row in rows), agent_enabled=settings.agent_enabled,
                          agent_address=settings.agent_address,
                          agent_engine_id=engines.engine_id(runtime, "agent").hex(),
                          agent_v2c=bool(settings.agent_community.get_secret_value()),
                          agent_users=len(agent_users.list_users(runtime)))

    @router.get("/managers", response_model=list[ManagerPublic])
    def managers(runtime: RuntimeDep, principal: AdminDep) -> list[ManagerPublic]:
        """Every manager, secrets shown only as set or not."""
        return [ManagerPublic.of(row) for row in store.list_managers(runtime)]

    @router.post("/managers", status_code=201, response_model=ManagerPublic)
    def add_manager(body: ManagerCreate, runtime: RuntimeDep, principal: AdminDep) -> ManagerPublic:
        """Add a manager (v2c community, or v3 user with SHA-2 auth and AES privacy)."""
        return ManagerPublic.of(store.create_manager(runtime, body))

    @router.delete("/managers/{name}", status_code=204)
    def remove_manager(name: str, runtime: RuntimeDep, principal: AdminDep) -> None:
        """Remove a manager."""
        store.delete_manager(runtime, name)

    @router.post("/managers/{name}/test", status_code=202, response_model=TaskAccepted)
    def test_manager(name: str, runtime: RuntimeDep, principal: AdminDep) -> Any:
        """Send a test notification to the manager (task ``snmp.test``: its result says whether
        an inform was acknowledged, or why not)."""
        store.get_manager(runtime, name)  # 404 now, not a failed task
        return accept_task(runtime, principal, TEST_KIND, {"manager": name})

    @router.get("/agent/users", response_model=list[AgentUserPublic])
    def agent_user_list(runtime: RuntimeDep, principal: AdminDep) -> list[AgentUserPublic]:
        """The agent's SNMPv3 users, keys shown only as set."""
        return [AgentUserPublic.of(row) for row in agent_users.list_users(runtime)]

    @router.post("/agent/users", status_code=201, response_model=AgentUserPublic)
    def agent_user_add(body: AgentUserCreate, runtime: RuntimeDep, principal: AdminDep) -> AgentUserPublic:
        """Add an SNMPv3 user the agent answers (SHA-2 auth, AES privacy; from its next refresh)."""
        return AgentUserPublic.of(agent_users.create_user(runtime, body))

    @router.delete("/agent/users/{name}", status_code=204)
    def agent_user_remove(name: str, runtime: RuntimeDep, principal: AdminDep) -> None:
        """Remove an agent user (refused from the agent's next refresh)."""
        agent_users.delete_user(runtime, name)

    # response_class=Response (no media type of its own) keeps the error answers documented as
    # bHype's JSON error shape; the 200 is declared as text/plain.
    @router.get("/mib", response_class=Response,
                responses={200: {"content": {"text/plain": {}}, "description": "BHYPE-MIB (SMIv2 text)"}})
    def mib(caller: AuthenticatedDep) -> Response:
        """BHYPE-MIB's text, for a manager's MIB browser."""
        return PlainTextResponse(mib_text())

    @router.post("/mib/install", status_code=202, response_model=TaskAccepted)
    def install_mib(body: MibInstall, runtime: RuntimeDep, principal: AdminDep) -> Any:
        """Install BHYPE-MIB where net-snmp finds MIBs on this host (task ``snmp.install_mib``)."""
        return accept_task(runtime, principal, INSTALL_MIB_KIND, body.model_dump())

    return router
