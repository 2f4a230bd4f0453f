"""``bhype snmp …`` against the real API (uvicorn on loopback, real tokens) with an in-process
worker running ``snmp.test`` against a real snmptrapd: add (secrets from the environment, never
argv), list --json without secrets, test reporting an acknowledged inform and a refused key,
remove; operators are refused in one line."""

from __future__ import annotations

import io
import json
import sys

import pytest

from bhype_core import cli
from bhype_core.testing.api_server import served_cli
from bhype_core.testing.roles import role_account

from .kit import snmptrapd

AUTH_KEY, PRIV_KEY = "cli-auth-S3cret", "cli-priv-S3cret"


@pytest.fixture
def bhype(snmp_runtime, tmp_path, monkeypatch, local_user, capsys):
    """``bhype(*args, user="root")`` → (exit status, stdout, stderr) of one CLI run."""
    runtime = snmp_runtime(sections={"queue": {"backend": "sqlite"}, "host": {"name": "cli-host"}})
    admin = role_account(local_user, runtime).name
    with served_cli(runtime, tmp_path, monkeypatch, ((admin, "admin"), ("olive", "operator")), as_user=admin) as server:
        server["tokens"]["root"] = server["tokens"][admin]

        def run(*args: str, user: str = "root") -> tuple[int, str, str]:
            monkeypatch.setenv("BHYPE_TOKEN", server["tokens"][user])
            monkeypatch.setattr(sys, "stdin", io.StringIO(""))
            status = cli.main(["--config", str(server["config"]), *args])
            out, err = capsys.readouterr()
            return status, out, err

        yield run


def test_manager_add_list_test_remove(bhype, tmp_path, monkeypatch):
    config = f"createUser nms SHA-256 {AUTH_KEY} AES {PRIV_KEY}\nauthUser log nms priv\n"
    with snmptrapd(tmp_path, config) as trapd:
        status, _, err = bhype("snmp", "manager", "add", "nms", "127.0.0.1", "--port", str(trapd.port), "--v3",
                               "--user", "nms", "--inform")
        assert status == 1 and "$BHYPE_SNMP_AUTH_KEY" in err  # no terminal to ask on: nothing added
        monkeypatch.setenv("BHYPE_SNMP_AUTH_KEY", AUTH_KEY)
        monkeypatch.setenv("BHYPE_SNMP_PRIV_KEY", PRIV_KEY)
        status, out, err = bhype("snmp", "manager", "add", "nms", "127.0.0.1", "--port", str(trapd.port), "--v3",
                                 "--user", "nms", "--inform", "--retries", "1")
        assert status == 0, err
        assert out == f"manager nms: informs (SNMPv3) to 127.0.0.1:{trapd.port}\n"
        monkeypatch.setenv("BHYPE_SNMP_AUTH_KEY", "wrong-auth-key")
        status, _, err = bhype("snmp", "manager", "add", "badkey", "127.0.0.1", "--port", str(trapd.port), "--v3",
                               "--user", "nms", "--inform", "--retries", "1")
        assert status == 0, err

        status, out, _ = bhype("snmp", "manager", "list", "--json")
        listed = json.loads(out)
        assert [m["name"] for m in listed] == ["badkey", "nms"] and all(m["keys_set"] for m in listed)
        assert AUTH_KEY not in out and PRIV_KEY not in out and "wrong-auth-key" not in out

        status, out, err = bhype("snmp", "manager", "test", "nms", "--json")
        assert status == 0, err
        assert json.loads(out) == {"manager": "nms", "notify_type": "inform", "acknowledged": True, "error": None,
                                   "attempts": 1}
        [line] = trapd.wait_notifications(1)
        assert "BHYPE-MIB::bhypeTestNotification" in line

        status, out, err = bhype("snmp", "manager", "test", "badkey")
        assert status == 1
        assert out.startswith("manager badkey: inform NOT acknowledged after 1 attempt(s): ")
        assert "wrong-auth-key" not in out + err
        assert len(trapd.notifications()) == 1  # the refused one was not decoded

    status, out, _ = bhype("snmp", "manager", "remove", "badkey")
    assert (status, out) == (0, "manager badkey removed\n")
    status, out, _ = bhype("snmp", "manager", "list")
    assert status == 0 and "badkey" not in out and "nms" in out and "inform" in out


def test_operators_are_refused_in_one_line(bhype):
    status, out, err = bhype("snmp", "manager", "list", user="olive")
    assert status == 1 and out == "" and err.count("\n") == 1 and "admin" in err


def test_status_prints_the_engine_id(bhype):
    status, out, _ = bhype("snmp", "status")
    assert status == 0 and out.startswith("engine ID: 0x80001f8805") and "agent: off" in out
    assert out.splitlines()[0].endswith(" (this host, cli-host)")


def test_agent_user_add_list_remove_with_keys_from_the_environment(bhype, monkeypatch):
    status, _, err = bhype("snmp", "agent", "user", "add", "nms")
    assert status == 1 and "$BHYPE_SNMP_AUTH_KEY" in err  # no terminal to ask on: nothing added
    monkeypatch.setenv("BHYPE_SNMP_AUTH_KEY", AUTH_KEY)
    monkeypatch.setenv("BHYPE_SNMP_PRIV_KEY", PRIV_KEY)
    status, out, err = bhype("snmp", "agent", "user", "add", "nms", "--auth-protocol", "SHA512")
    assert (status, out) == (0, "agent user nms: SHA512 + AES (authPriv)\n"), err
    status, out, _ = bhype("snmp", "agent", "user", "list", "--json")
    assert json.loads(out) == [{"name": "nms", "auth_protocol": "SHA512", "priv_protocol": "AES", "keys_set": True}]
    status, out, _ = bhype("snmp", "status")
    assert "SNMPv2c off, 1 v3 user(s)" in out and "agent engine ID: 0x80001f8805" in out
    assert AUTH_KEY not in out and PRIV_KEY not in out
    status, out, _ = bhype("snmp", "agent", "user", "remove", "nms")
    assert (status, out) == (0, "agent user nms removed\n")
    status, out, _ = bhype("snmp", "agent", "user", "list")
    assert (status, out) == (0, "no agent users\n")
