"""The ``snmp.agent`` sampler: in the one worker per host that holds its lease, start the agent
(when ``[snmp] agent_enabled``) and refresh its snapshot from the VM records, monitoring's live
metrics and the last backup times, and its SNMPv3 users from ``snmp_agent_user``, every
``agent_refresh`` seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import last_backup_times, list_vms, read_live_metrics
from bhype_snmp.agent import Agent, AgentUser
from bhype_snmp.agent_users import list_users
from bhype_snmp.agent_values import host_facts, snapshot, vm_rows
from bhype_snmp.engines import next_boots
from bhype_snmp.notification import host_name
from bhype_snmp.settings import split_target

log = logging.getLogger(__name__)
EXTRAS_KEY = "snmp.agent"


def refresh(runtime: Any, agent: Agent, facts: dict[str, Any]) -> int:
    """Serve the VM records, monitoring's live metrics and the backup plugins' last backup
    times as they are now (one read each, no host command); returns how many VMs."""
    rows = vm_rows(list_vms(runtime))  # principal None: the system sees every VM
    try:
        live = read_live_metrics(runtime)
    except Exception as exc:  # Redis away: serve the records without live values, not nothing
        log.warning("live metrics not readable: %s", exc)
        live = None
    try:
        backups: dict[str, Any] | None = last_backup_times(runtime, [row.uuid for row in rows])
    except Exception as exc:  # a backup plugin failed: the column is absent (unknown), never "never"
        log.warning("last backup times not readable: %s", exc)
        backups = None
    agent.instrumentation.replace(snapshot(rows, host=host_name(runtime), facts=facts, live=live,
                                           backups=backups))
    agent.set_users([AgentUser(row.name, row.auth_protocol, row.auth_key, row.priv_protocol, row.priv_key)
                     for row in list_users(runtime)])
    return len(rows)


def start_agent(runtime: Any) -> Callable[[], Any]:
    """Sampler start: the agent (or nothing when it is off), and the tick that refreshes it.

    :raises OSError: the agent's port could not be bound (the worker logs it; the next lease retries).
    """
    settings = runtime.settings.section("snmp")
    if not settings.agent_enabled:
        return lambda: None
    community = settings.agent_community.get_secret_value()  # empty: no SNMPv2c, v3 users only
    host, port = split_target(settings.agent_address)
    previous = runtime.extras.pop(EXTRAS_KEY, None)
    if previous is not None:  # the lease came back to this worker: free the port first
        previous.stop()
    clock = next_boots(runtime, "agent")
    agent = Agent(host, port, community, clock)
    agent.start()
    runtime.extras[EXTRAS_KEY] = agent
    facts = host_facts()
    last = [0.0]

    def tick() -> int | None:
        if time.monotonic() - last[0] < settings.agent_refresh:
            return None
        last[0] = time.monotonic()
        return refresh(runtime, agent, facts)

    tick()
    versions = ", ".join(filter(None, ["SNMPv2c" if community else "", f"SNMPv3 ({len(agent.users)} user(s))"]))
    log.info("SNMP agent answering on %s:%d (BHYPE-MIB, read-only, %s, engine ID 0x%s)", host, port, versions,
             clock.engine_id.hex())
    if not community and not agent.users:
        log.warning("the SNMP agent answers nobody yet: no agent_community and no v3 user "
                    "(bhype snmp agent user add)")
    return tick
