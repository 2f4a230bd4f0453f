"""SNMPv3 on the read-only agent with real net-snmp ``snmpget``/``snmptable`` (snmpcmd(1): ``-v3
-l authPriv -u USER -a SHA-256 -A KEY -x AES -X KEY``; ``-e`` names the engine ID instead of
discovering it): the right keys read, a wrong key is refused, noAuthNoPriv and authNoPriv are
refused, v2c is off without a community, users added and removed take effect at the next
refresh, the engine ID survives a restart while snmpEngineBoots grows, and no key is logged."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import bhype_snmp.plugin
from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing import make_settings
from bhype_core.testing.parts import require_program
from bhype_core.testing.waiting import wait_for
from bhype_core.vm.create import create_vm
from bhype_snmp import agent_users, engines
from bhype_snmp.agent_service import EXTRAS_KEY, start_agent

from .kit import free_udp_port, mib_path

BUILTINS = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers), ("core_tasks", tasks),
            ("core_vms", vm_tasks), ("snmp", bhype_snmp.plugin)]
AUTH, PRIV = "auth-Agent-S3cret", "priv-Agent-S3cret"
COMMUNITY = "agent-v2c-S3cret"


@pytest.fixture
def host():
    """``host(community="")``: a runtime with one VM record (web1) and the agent enabled on a
    free loopback port (refresh 1 s); the agent is stopped afterwards."""
    built = []

    def build(community: str = ""):
        short = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
        port = free_udp_port()
        settings = make_settings(short / "data", core={"data_dir": str(short / "data")},
                                 vm={"datastores": {"default": {"path": str(short / "ds")}}},
                                 snmp={"agent_enabled": True, "agent_community": community,
                                       "agent_address": f"127.0.0.1:{port}", "agent_refresh": 1,
                                       "host_name": "hv3"})
        runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=BUILTINS))
        upgrade(runtime)
        runtime.port, runtime.short = port, short
        built.append(runtime)
        create_vm(TaskContext(runtime, "t-create", "vm.create", None, MemoryReporter()), "web1",
                  overrides={"boot": "grub", "memory": "64M", "cpus": 1}, owner="alice")
        return runtime

    yield build
    for runtime in built:
        agent = runtime.extras.get(EXTRAS_KEY)
        if agent is not None:
            agent.stop()
        runtime.engine.dispose()
        shutil.rmtree(runtime.short, ignore_errors=True)


def snmp(tool: str, port: int, *security: str, oid: str = "BHYPE-MIB::bhypeHostName.0") -> subprocess.CompletedProcess:
    """``tool`` with BHYPE-MIB loaded and the given security options (one try, 2 s)."""
    argv = [require_program(tool, "snmp"), *security, "-t", "2", "-r", "0", "-M", mib_path(), "-m", "BHYPE-MIB",
            f"udp:127.0.0.1:{port}", oid]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def v3(user: str = "nms", auth: str = AUTH, priv: str = PRIV, level: str = "authPriv", auth_protocol: str = "SHA-256",
       priv_protocol: str = "AES") -> list[str]:
    """snmpcmd(1) v3 options (SHA-256 = usmHMAC192SHA256AuthProtocol, RFC 7860; AES = CFB128, RFC 3826)."""
    options = ["-v3", "-l", level, "-u", user]
    if level != "noAuthNoPriv":
        options += ["-a", auth_protocol, "-A", auth]
    if level == "authPriv":
        options += ["-x", priv_protocol, "-X", priv]
    return options


def add_user(runtime, name: str = "nms", **keys: str) -> None:
    agent_users.create_user(runtime, agent_users.AgentUserCreate(name=name, **{"auth_key": AUTH, "priv_key": PRIV,
                                                                               **keys}))


def test_v3_auth_priv_reads_and_everything_else_is_refused(host, caplog):
    caplog.set_level(logging.DEBUG)
    runtime = host()  # no community: SNMPv2c is off
    add_user(runtime)
    tick = start_agent(runtime)
    port = runtime.port

    good = snmp("snmpget", port, *v3())
    assert good.returncode == 0, good.stderr
    assert "BHYPE-MIB::bhypeHostName.0 = STRING: hv3" in good.stdout
    table = snmp("snmptable", port, *v3(), "-Cf", "|", oid="BHYPE-MIB::bhypeVmTable")
    assert table.returncode == 0 and "web1|" in table.stdout, table.stderr

    wrong_auth = snmp("snmpget", port, *v3(auth="auth-Wrong-phrase"))
    assert wrong_auth.returncode != 0 and "Authentication failure" in wrong_auth.stderr
    wrong_priv = snmp("snmpget", port, *v3(priv="priv-Wrong-phrase"))  # decrypts to garbage: no answer
    assert wrong_priv.returncode != 0 and "hv3" not in wrong_priv.stdout
    wrong_protocol = snmp("snmpget", port, *v3(auth_protocol="SHA-512"))
    assert wrong_protocol.returncode != 0 and "hv3" not in wrong_protocol.stdout
    unknown = snmp("snmpget", port, *v3(user="intruder"))
    assert unknown.returncode != 0 and "Unknown user name" in unknown.stderr
    for level in ("noAuthNoPriv", "authNoPriv"):  # the user exists, but only authPriv is answered
        refused = snmp("snmpget", port, *v3(level=level))
        assert refused.returncode != 0 and "hv3" not in refused.stdout, (level, refused.stdout)
        # The agent's refusal: a usmStatsUnsupportedSecLevels report (RFC 3414 §3.2 step 5) or,
        # past USM, VACM's noAccess (RFC 3415 §3.2) as authorizationError.
        said = refused.stdout + refused.stderr
        assert "Unsupported security level" in said or "authorizationError" in said, (level, said)
    v2c = snmp("snmpget", port, "-v2c", "-c", COMMUNITY)
    assert v2c.returncode != 0 and "Timeout" in v2c.stderr

    # Removing the user refuses it from the next refresh; a new one is answered, no restart.
    agent_users.delete_user(runtime, "nms")
    add_user(runtime, "nms2", auth_protocol="SHA512", priv_protocol="AES256",
             auth_key="auth-Other-S3cret", priv_key="priv-Other-S3cret")
    tick()
    wait_for(lambda: (tick(), snmp("snmpget", port, *v3()).returncode != 0)[1], "the removed user to be refused")
    other = snmp("snmpget", port, *v3("nms2", "auth-Other-S3cret", "priv-Other-S3cret", auth_protocol="SHA-512",
                                      priv_protocol="AES-256"))
    assert other.returncode == 0 and "hv3" in other.stdout, other.stderr

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SNMPv3" in logged  # the start-up line was captured: the check below means something
    assert not any(secret in logged for secret in (AUTH, PRIV, "auth-Other-S3cret", "priv-Other-S3cret"))


def test_v2c_and_v3_together_and_the_engine_id_survives_a_restart(host):
    runtime = host(COMMUNITY)
    add_user(runtime)
    start_agent(runtime)
    port = runtime.port
    engine_id = engines.engine_id(runtime, "agent")
    assert engine_id != engines.engine_id(runtime)  # not the notification sender's (its clock differs)
    first_boots = runtime.extras[EXTRAS_KEY].clock.boots
    v2c = snmp("snmpget", port, "-v2c", "-c", COMMUNITY)
    assert v2c.returncode == 0 and "hv3" in v2c.stdout, v2c.stderr

    runtime.extras[EXTRAS_KEY].stop()
    start_agent(runtime)  # the worker restarted (same database)
    assert runtime.extras[EXTRAS_KEY].clock.boots == first_boots + 1  # RFC 3414 §2.2.2
    pinned = snmp("snmpget", port, *v3(), "-e", "0x" + engine_id.hex())  # a manager that kept the engine ID
    assert pinned.returncode == 0 and "hv3" in pinned.stdout, pinned.stderr
    # What the manager learnt from the agent's messages (net-snmp's debug token for its engine
    # time cache, snmpcmd(1) -D): the boots the database gave this start, not pysnmp's own.
    learnt = snmp("snmpget", port, *v3(), "-Dlcd_set_enginetime")
    assert learnt.returncode == 0 and f"boots={first_boots + 1}," in learnt.stderr, learnt.stderr
    other = snmp("snmpget", port, *v3(), "-e", "0x80001f8805" + "ab" * 12)
    assert other.returncode != 0 and "hv3" not in other.stdout
