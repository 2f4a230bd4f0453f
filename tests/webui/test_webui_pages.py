"""``/ui``: console pages and static assets, served without a CDN and without login."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bhype_core.api.app import create_app


def client(runtime) -> TestClient:
    return TestClient(create_app(runtime=runtime))


def test_console_pages_escape_the_vm_name_and_forbid_inline_scripts(webui_runtime):
    with client(webui_runtime(title="Lab")) as http:
        page = http.get("/ui/console/vnc/<script>x")
        serial = http.get("/ui/console/serial/web1")
        unknown = http.get("/ui/console/spice/web1")
    assert page.status_code == 200 and "<script>x" not in page.text and "&lt;script&gt;x" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' applies
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'data-csrf-cookie="bhype_session_csrf"' in page.text and "· Lab" in page.text
    assert "/ui/static/vendor/xterm/xterm.js" in serial.text
    assert unknown.status_code == 422


def test_static_assets_are_served_with_script_types_and_confined(webui_runtime, tmp_path):
    assets = tmp_path / "assets"
    (assets / "js").mkdir(parents=True)
    (assets / "js" / "a.js").write_text("export const a = 1;")
    (tmp_path / "secret.txt").write_text("no")
    with client(webui_runtime(assets_dir=str(assets))) as http:
        script = http.get("/ui/static/js/a.js")
        escape = http.get("/ui/static/..%2Fsecret.txt")
        missing = http.get("/ui/static/js/none.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert escape.status_code == 404 and missing.status_code == 404
