"""The web UI page ``/ui/snmp`` (through the web UI plugin's hooks, in the real app with every
installed plugin): admins see managers and the engine ID, never a secret; operators get 404
and no navigation entry."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.api.cookies import csrf_cookie_name
from bhype_core.api.session_store import SessionRecord, new_csrf_token, new_session_secret, session_key
from bhype_core.db.migrate import upgrade
from bhype_core.plugin_api import local_host_name, session
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_snmp import agent_users, engines, managers
from bhype_snmp.models import SnmpEngine

from .kit import require_webui

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def app(tmp_path):
    pm = make_plugin_manager(load_entrypoints=True)
    require_webui(pm)
    assert not pm.blocked and pm.has_plugin("snmp")
    runtime = build_runtime(make_settings(tmp_path / "data", auth={"account_recheck_interval": 3600}), pm)
    upgrade(runtime)
    managers.create_manager(runtime, managers.ManagerCreate(name="nms1", host="192.0.2.7", community="ui-S3cret"))
    managers.create_manager(runtime, managers.ManagerCreate(
        name="secure", host="nms.example.net", version="3", notify_type="inform", user="bhype",
        auth_key="ui-auth-S3cret", priv_key="ui-priv-S3cret"))
    agent_users.create_user(runtime, agent_users.AgentUserCreate(
        name="poller", auth_protocol="SHA512", auth_key="ui-agent-A-S3cret", priv_protocol="AES256",
        priv_key="ui-agent-P-S3cret"))
    made = create_app(runtime=runtime)
    yield made, runtime
    runtime.engine.dispose()


def client(app, user: str, role: str) -> TestClient:
    """A client holding a live session of ``user`` (as after logging in)."""
    made, _ = app
    browser = TestClient(made)
    auth = made.state.auth
    secret, csrf, now = new_session_secret(), new_csrf_token(), time.time()
    auth.sessions.create(SessionRecord(session_key(secret), user, role, csrf, now, now, now, "127.0.0.1"))
    browser.cookies.set(auth.settings.cookie_name, secret)
    browser.cookies.set(csrf_cookie_name(auth.settings), csrf)
    return browser


def test_admins_see_managers_and_the_engine_id_without_secrets(app):
    page = client(app, "root", "admin").get("/ui/snmp", headers=HTML)
    assert page.status_code == 200
    engine = engines.engine_id(app[1]).hex()
    assert f'<code id="snmp-engine-id">0x{engine}</code>' in page.text
    assert f"Engine ID of this host (<code>{local_host_name(app[1])}</code>)" in page.text
    assert "<td>nms1</td><td>192.0.2.7:162</td><td>v2c</td><td>trap</td>" in page.text
    assert "bhype (SHA256/AES, keys set)" in page.text and "community set" in page.text
    assert '<a href="/ui/snmp" aria-current="page">SNMP</a>' in page.text
    agent_engine = engines.engine_id(app[1], "agent").hex()
    assert f'<code id="snmp-agent-engine-id">0x{agent_engine}</code>' in page.text and agent_engine != engine
    assert "<td>poller</td><td>SHA512</td><td>AES256</td>" in page.text and "SNMPv2c off (no community)" in page.text
    assert 'data-api="DELETE /api/v1/snmp/agent/users/poller"' in page.text
    assert 'data-api-form="POST /api/v1/snmp/agent/users"' in page.text
    for secret in ("ui-S3cret", "ui-auth-S3cret", "ui-priv-S3cret", "ui-agent-A-S3cret", "ui-agent-P-S3cret"):
        assert secret not in page.text


def test_the_page_lists_the_engine_ids_of_the_other_group_hosts(app):
    runtime = app[1]
    here = engines.engine_id(runtime).hex()
    with session(runtime, write=True) as db:  # another host of the group made its engine (same database)
        db.add(SnmpEngine(engine_id="80001f8805" + "ab" * 12, role="notify", host="zz-other"))
    page = client(app, "root", "admin").get("/ui/snmp", headers=HTML)
    assert f'<code id="snmp-engine-id">0x{here}</code>' in page.text
    assert '<code>zz-other</code> <code class="snmp-host-engine-id">0x80001f8805' + "ab" * 12 in page.text


def test_operators_neither_see_nor_reach_the_page(app):
    operator = client(app, "alice", "operator")
    assert operator.get("/ui/snmp", headers=HTML).status_code == 404
    assert 'href="/ui/snmp"' not in operator.get("/ui/", headers=HTML).text
