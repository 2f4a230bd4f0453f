"""The group's Hosts page and each host's page with its monitoring (issue 22), in Debian's
chromium under Playwright: the monitor plugin adds them through the web UI's page hooks; the
list shows the registry (state, versions, capacity), a host's page charts that host's own
recorded series (``/api/v1/monitor/host/series?host=``), not the API host's."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))  # the web UI's test kit
from browser_kit import ARTIFACTS, launch_chromium, session_page  # noqa: E402
from pages_env import HTML, PagesEnv  # noqa: E402

from bhype_core.db.models import utcnow  # noqa: E402
from bhype_core.hosts.models import Host  # noqa: E402
from bhype_core.hosts.registry import register  # noqa: E402
from bhype_core.testing.api_server import served_app  # noqa: E402
from bhype_monitor.sampler import make_history  # noqa: E402

pytestmark = [pytest.mark.slow]
WAIT = 60_000  # ms: a bound on a loaded machine, not a timing assertion


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


@pytest.fixture
def group(tmp_path) -> Iterator[PagesEnv]:
    """The real app as host ``alpha``; ``beta`` (reachable) and ``gamma`` (silent for 10
    minutes) registered by their workers; recorded CPU: alpha 11 %, beta 22 %."""
    env = PagesEnv(tmp_path, host={"name": "alpha", "unreachable_after": 60}, monitor={"sample_interval_seconds": 10})
    register(env.runtime)
    with env.runtime.engine.begin() as connection:
        for name, seen in (("beta", utcnow()), ("gamma", utcnow() - timedelta(minutes=10))):
            connection.execute(Host.__table__.insert().values(
                name=name, address=f"{name}.example.net", platform="linux", hypervisor="qemu",
                capacity={"cpus": 8, "memory_total": 32 * 2**30, "memory_free": 20 * 2**30,
                          "datastores": {"default": {"backend": "directory", "free": 100 * 2**30, "total": 2**40}}},
                versions={"bhype-core": "9.9.9", "bhype-monitor": "9.9.9"}, task_kinds=[], registered=seen,
                last_seen=seen))
    history = make_history(env.runtime)
    now = time.time()
    for ago in (300, 200, 100):
        history.record({"host:alpha": {"cpu_percent": 11.0}, "host:beta": {"cpu_percent": 22.0}}, now - ago)
    yield env
    env.close()


def test_the_hosts_page_lists_the_registry_and_a_host_page_charts_that_host(group, browser) -> None:
    alice = group.client("alice")
    listing = alice.get("/ui/hosts", headers=HTML).text
    states = dict(re.findall(r'data-host="([^"]+)" data-host-state="([^"]+)"', listing))
    assert states == {"alpha": "reachable", "beta": "reachable", "gamma": "unreachable"}
    beta = listing[listing.index('data-host="beta"'):]
    assert "bhype-core 9.9.9" in beta and "20 GiB free of 32 GiB" in beta
    assert alice.get("/ui/hosts/host?name=nope", headers=HTML).status_code == 404
    assert alice.get("/ui/hosts/host?name=beta", headers=HTML).status_code == 200

    with served_app(group.app) as url:
        page, errors = session_page(browser, url, alice)
        page.goto(f"{url}/ui/")
        page.get_by_role("link", name="Hosts").first.click()
        page.wait_for_url(re.compile(r"/ui/hosts$"))
        with page.expect_response(lambda r: "/api/v1/monitor/host/series" in r.url, timeout=WAIT) as answered:
            page.get_by_role("link", name="beta", exact=True).click()
            page.wait_for_url(re.compile(r"/ui/hosts/host\?name=beta$"))
            assert errors == [], errors
        response = answered.value
        assert "host=beta" in response.url
        cpu = [v for v in response.json()["metrics"]["cpu_percent"]["avg"] if v is not None]
        assert cpu and set(cpu) == {22.0}  # beta's own history, not the API host's 11 %
        chart = page.locator('[data-monitor-chart="cpu"]')
        chart.locator("canvas").wait_for(state="visible", timeout=WAIT)
        assert int(chart.get_attribute("data-monitor-points")) >= 3
        assert page.locator("[data-host-state]").inner_text() == "reachable"
        assert "beta.example.net" in page.locator("#host-facts").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "monitor-host-page.png"), full_page=True)
        page.context.close()
    assert errors == []
