"""``GET /api/v1/snmp/status`` through the real app: targets and security, secrets never echoed."""

from __future__ import annotations

from bhype_core.api.app import create_app
from bhype_core.testing.routes import get_route


def get_status(runtime) -> tuple[dict, str]:
    response = get_route(runtime, "/api/v1/snmp/status", "admin", "admin")
    return response.json(), response.text


def test_only_the_snmp_router_is_mounted(snmp_runtime):
    runtime = snmp_runtime()
    assert runtime.registry.routers.names() == ["snmp"]
    assert "/api/v1/snmp/status" in create_app(runtime=runtime).openapi()["paths"]


def test_v2c_status_lists_targets_and_hides_the_community(snmp_runtime):
    runtime = snmp_runtime(
        trap_targets=["127.0.0.1", "traps.example.net:10162", "[::1]:1162"], community="c0mmunity-S3cret"
    )
    body, text = get_status(runtime)
    assert body == {
        "version": "2c",
        "trap_targets": [
            {"host": "127.0.0.1", "port": 162},
            {"host": "traps.example.net", "port": 10162},
            {"host": "::1", "port": 1162},
        ],
        "community_set": True,
        "v3": None,
    }
    assert "c0mmunity-S3cret" not in text


def test_v3_status_shows_protocols_not_pass_phrases(snmp_runtime):
    runtime = snmp_runtime(
        version="3",
        trap_targets=["nms.example.net"],
        v3_user="bhype",
        v3_auth_password="auth-S3cret-phrase",
        v3_priv_protocol="AES256",
        v3_priv_password="priv-S3cret-phrase",
        community="never-used-in-v3",
    )
    body, text = get_status(runtime)
    assert body["version"] == "3"
    assert body["community_set"] is False  # v3 sends no community
    assert body["v3"] == {
        "user": "bhype",
        "auth_protocol": "SHA256",
        "auth_password_set": True,
        "priv_protocol": "AES256",
        "priv_password_set": True,
    }
    for secret in ("auth-S3cret-phrase", "priv-S3cret-phrase", "never-used-in-v3"):
        assert secret not in text
