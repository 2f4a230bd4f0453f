"""``GET /api/v1/webui/status`` through the real app: settings and whether the pages are there."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.testing import act_as
from bhype_webui.settings import BUNDLED_ASSETS


def status(runtime) -> dict:
    app = create_app(runtime=runtime)
    act_as(app, "alice", "operator")
    with TestClient(app) as client:
        response = client.get("/api/v1/webui/status")
    assert response.status_code == 200, response.text
    return response.json()


def test_only_the_webui_routers_are_mounted(webui_runtime):
    runtime = webui_runtime()
    # The API router (/api/v1/webui) and the plugin's page routers: all of them its own.
    names = runtime.registry.routers.names()
    assert "webui" in names
    assert {runtime.registry.routers.plugin_of(name) for name in names} == {"webui"}
    assert "/api/v1/webui/status" in create_app(runtime=runtime).openapi()["paths"]


def test_assets_dir_with_pages(webui_runtime, tmp_path):
    assets = tmp_path / "site"
    assets.mkdir()
    (assets / "index.html").write_text("<!doctype html><title>bHype</title>")
    body = status(webui_runtime(assets_dir=str(assets), title="Lab"))
    assert body == {
        "title": "Lab",
        "session_timeout_minutes": 60,
        "assets_dir": str(assets),
        "assets_dir_exists": True,
        "index_present": True,
        "vendor": {},  # no npm manifest in this assets directory
    }


def test_assets_dir_without_index(webui_runtime, tmp_path):
    body = status(webui_runtime(assets_dir=str(tmp_path)))
    assert body["assets_dir_exists"] is True and body["index_present"] is False


def test_missing_assets_dir(webui_runtime, tmp_path):
    body = status(webui_runtime(assets_dir=str(tmp_path / "not-built")))
    assert body["assets_dir_exists"] is False and body["index_present"] is False


def test_default_is_the_bundled_directory(webui_runtime):
    body = status(webui_runtime())
    assert body["assets_dir"] == str(BUNDLED_ASSETS)
    assert body["assets_dir_exists"] is BUNDLED_ASSETS.is_dir()
