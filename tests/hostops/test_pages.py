"""The Services and Host → Updates pages in the real app (every installed plugin): admins only,
the services as last probed with their action buttons, the open findings with their raw output."""

from __future__ import annotations

import sys
from pathlib import Path

from bhype_core.auth.principal import SYSTEM
from bhype_core.tasks import service
from bhype_core.testing.tasks import run_queued

from . import freebsd_tools as tools

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))  # the web UI tests' page kit
from pages_env import HTML, PagesEnv  # noqa: E402


def test_services_and_updates_pages(tmp_path):
    bin_dir = tmp_path / "bin"
    env = PagesEnv(tmp_path, hostops={"check_platform": "freebsd", "services": ["sshd", "ntpd"],
                                      **tools.install(bin_dir)})
    try:
        env.runtime.facts.put("hostops.service.sshd", {"name": "sshd", "running": True, "enabled": True,
                                                       "pids": [4242], "detail": "sshd is running as pid 4242."})
        admin = env.client("opsadmin", "admin")
        page = admin.get("/ui/services", headers=HTML)
        assert page.status_code == 200
        assert '<tr data-service="sshd">' in page.text and '<tr data-service="ntpd">' in page.text
        assert "4242" in page.text and 'data-api="POST /api/v1/hostops/services/ntpd/start"' in page.text
        assert 'data-confirm-check="confirm_session_loss"' in page.text  # stop asks first
        tools.scenario(bin_dir, tools.classic((1, "@audit_several.json", "")))
        service.submit(env.runtime, SYSTEM, "hostops.check", {})
        run_queued(env.runtime)
        updates = admin.get("/ui/host/updates", headers=HTML)
        assert updates.status_code == 200
        assert 'data-finding="vuln:curl"' in updates.text and "CVE-2024-00000" in updates.text
        assert "https://vuxml.FreeBSD.org/freebsd/0123abcd-0000-11ef-0000-000000000000.html" in updates.text
        assert "$ " in updates.text and "pkg audit -F -Rjson" in updates.text  # the raw output
        operator = env.client("someone", "operator")
        for path in ("/ui/services", "/ui/host/updates"):
            assert operator.get(path, headers=HTML).status_code in (403, 404)
        assert "Services" not in operator.get("/ui/", headers=HTML).text.split("</nav>")[0]
    finally:
        env.close()
