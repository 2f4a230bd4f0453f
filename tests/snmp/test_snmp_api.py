"""``/api/v1/snmp`` through the real app: managers added, listed and removed by admins only,
secrets accepted and never echoed, bad input refused with the field named and nothing stored."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.testing.api_auth import act_as
from bhype_snmp import engines, managers

V3 = {"name": "secure", "host": "nms.example.net", "version": "3", "notify_type": "inform", "user": "bhype",
      "auth_key": "auth-S3cret-phrase", "priv_key": "priv-S3cret-phrase", "auth_protocol": "SHA512",
      "priv_protocol": "AES256", "min_severity": "warning", "rate_limit": 3}
V2C = {"name": "nms1", "host": "192.0.2.7", "port": 10162, "community": "c0mmunity-S3cret"}
SECRETS = ("auth-S3cret-phrase", "priv-S3cret-phrase", "c0mmunity-S3cret")


@pytest.fixture
def client(snmp_runtime):
    runtime = snmp_runtime()
    app = create_app(runtime=runtime)

    def as_role(role: str = "admin") -> TestClient:
        act_as(app, f"{role}-user", role)
        return TestClient(app)

    as_role.runtime = runtime
    return as_role


def test_managers_round_trip_without_secrets(client):
    api = client()
    assert api.post("/api/v1/snmp/managers", json=V3).status_code == 201
    created = api.post("/api/v1/snmp/managers", json=V2C)
    assert created.status_code == 201
    listed = api.get("/api/v1/snmp/managers")
    assert [m["name"] for m in listed.json()] == ["nms1", "secure"]
    secure = listed.json()[1]
    assert secure == {"name": "secure", "host": "nms.example.net", "port": 162, "version": "3",
                      "notify_type": "inform", "community_set": False, "user": "bhype", "auth_protocol": "SHA512",
                      "priv_protocol": "AES256", "keys_set": True, "min_severity": "warning", "rate_limit": 3,
                      "timeout": 1, "retries": 3, "enabled": True}
    assert listed.json()[0]["community_set"] is True and listed.json()[0]["port"] == 10162
    for text in (created.text, listed.text, api.get("/api/v1/snmp/status").text):
        assert not any(secret in text for secret in SECRETS)
    stored = managers.get_manager(client.runtime, "secure")  # the worker can still use them
    assert (stored.auth_key, stored.priv_key, stored.community) == ("auth-S3cret-phrase", "priv-S3cret-phrase", "")
    assert api.delete("/api/v1/snmp/managers/secure").status_code == 204
    assert [m["name"] for m in api.get("/api/v1/snmp/managers").json()] == ["nms1"]
    assert api.delete("/api/v1/snmp/managers/secure").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ({**V2C, "community": ""}, "community", "required for SNMP v2c"),
        ({**V3, "user": ""}, "user", "required for SNMP v3"),
        ({**V3, "auth_key": "short"}, "auth_key", "at least 8 characters"),
        ({**V3, "auth_protocol": "MD5"}, "auth_protocol", "SHA224"),
        ({**V3, "priv_protocol": "DES"}, "priv_protocol", "AES"),
        ({**V2C, "host": "bad_host!"}, "host", "not a valid host name"),
        ({**V2C, "name": "-x"}, "name", "letters, digits"),
        ({**V2C, "port": 70000}, "port", "less than or equal to 65535"),
        ({**V2C, "min_severity": "loud"}, "min_severity", "info"),
    ],
)
def test_bad_managers_are_refused_naming_the_field(client, body, field, why):
    api = client()
    response = api.post("/api/v1/snmp/managers", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text and why in response.text
    assert not any(secret in response.text for secret in SECRETS)
    assert api.get("/api/v1/snmp/managers").json() == []


def test_a_second_manager_of_the_same_name_conflicts(client):
    api = client()
    assert api.post("/api/v1/snmp/managers", json=V2C).status_code == 201
    response = api.post("/api/v1/snmp/managers", json={**V2C, "host": "192.0.2.8"})
    assert response.status_code == 409 and "already exists" in response.text
    assert [m["host"] for m in api.get("/api/v1/snmp/managers").json()] == ["192.0.2.7"]


def test_operators_may_not_see_or_change_managers(client):
    client().post("/api/v1/snmp/managers", json=V2C)
    operator = client("operator")
    for method, path in (("get", "/api/v1/snmp/managers"), ("post", "/api/v1/snmp/managers"),
                         ("delete", "/api/v1/snmp/managers/nms1"), ("post", "/api/v1/snmp/managers/nms1/test"),
                         ("get", "/api/v1/snmp/status"), ("post", "/api/v1/snmp/mib/install")):
        response = getattr(operator, method)(path, **({"json": V2C} if method == "post" else {}))
        assert response.status_code == 403, (method, path, response.text)
    assert operator.get("/api/v1/snmp/mib").text.startswith("BHYPE-MIB DEFINITIONS ::= BEGIN")


def test_status_shows_the_engine_id_it_keeps(client):
    api = client()
    first = api.get("/api/v1/snmp/status").json()
    assert first["engine_id"].startswith("80001f8805") and len(first["engine_id"]) == 2 * 17
    assert api.get("/api/v1/snmp/status").json()["engine_id"] == first["engine_id"]
    assert first["agent_enabled"] is False and first["managers"] == 0


def test_status_shows_this_hosts_engine_id_and_every_group_hosts(client, snmp_runtime):
    api = client()
    here = client.runtime
    here.extras["host.name"] = "alpha"  # as [host] name = alpha would (a group host)
    other = snmp_runtime(sections={"host": {"name": "beta"}})  # another host, same database
    beta_id = engines.engine_id(other).hex()
    status = api.get("/api/v1/snmp/status").json()
    assert status["host"] == "alpha" and status["engine_id"] == engines.engine_id(here).hex() != beta_id
    assert status["sender_engine_ids"] == {"alpha": status["engine_id"], "beta": beta_id}


def test_testing_an_unknown_manager_is_404_and_queues_nothing(client):
    response = client().post("/api/v1/snmp/managers/nobody/test")
    assert response.status_code == 404 and "no SNMP manager named 'nobody'" in response.text


AGENT_USER = {"name": "nms", "auth_protocol": "SHA384", "auth_key": "agent-Auth-S3cret", "priv_protocol": "AES192",
              "priv_key": "agent-Priv-S3cret"}


def test_agent_users_round_trip_without_keys(client):
    api = client()
    created = api.post("/api/v1/snmp/agent/users", json=AGENT_USER)
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "nms", "auth_protocol": "SHA384", "priv_protocol": "AES192", "keys_set": True}
    assert api.post("/api/v1/snmp/agent/users", json=AGENT_USER).status_code == 409
    listed, status = api.get("/api/v1/snmp/agent/users"), api.get("/api/v1/snmp/status")
    assert [u["name"] for u in listed.json()] == ["nms"]
    assert status.json()["agent_users"] == 1 and status.json()["agent_v2c"] is False
    assert status.json()["agent_engine_id"] != status.json()["engine_id"]  # the agent's own engine
    for text in (created.text, listed.text, status.text):
        assert "agent-Auth-S3cret" not in text and "agent-Priv-S3cret" not in text
    assert api.delete("/api/v1/snmp/agent/users/nms").status_code == 204
    assert api.get("/api/v1/snmp/agent/users").json() == []
    assert api.delete("/api/v1/snmp/agent/users/nms").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [({"name": "has space"}, "name", "letters, digits"), ({"name": "x" * 33}, "name", "at most 32"),
     ({"auth_key": "short"}, "auth_key", "at least 8"), ({"priv_key": ""}, "priv_key", "at least 8"),
     ({"auth_protocol": "MD5"}, "auth_protocol", "SHA224"), ({"priv_protocol": "DES"}, "priv_protocol", "AES")],
)
def test_bad_agent_users_are_refused_naming_the_field(client, change, field, why):
    api = client()
    response = api.post("/api/v1/snmp/agent/users", json={**AGENT_USER, **change})
    assert response.status_code == 422 and field in response.text and why in response.text, response.text
    assert "agent-Auth-S3cret" not in response.text and "agent-Priv-S3cret" not in response.text
    assert api.get("/api/v1/snmp/agent/users").json() == []


def test_operators_may_not_see_or_change_agent_users(client):
    client().post("/api/v1/snmp/agent/users", json=AGENT_USER)
    operator = client("operator")
    for method, path in (("get", "/api/v1/snmp/agent/users"), ("post", "/api/v1/snmp/agent/users"),
                         ("delete", "/api/v1/snmp/agent/users/nms")):
        response = getattr(operator, method)(path, **({"json": AGENT_USER} if method == "post" else {}))
        assert response.status_code == 403, (method, path, response.text)
    assert [u["name"] for u in client().get("/api/v1/snmp/agent/users").json()] == ["nms"]
