"""The monitor in the web UI, in Debian's chromium under Playwright: the VM's Performance tab
draws its uPlot charts from the recorded series and appends live samples as the sampler takes
them; the range picker reloads; the dashboard's host panel charts too; the VM list shows the live
CPU and memory columns (the web UI's ``bhype_webui_register_vm_columns`` hook)."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from standins import start_standin, stop_all

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))  # the web UI's test kit
from browser_kit import ARTIFACTS, launch_chromium, session_page  # noqa: E402
from pages_env import HTML, PagesEnv  # noqa: E402

from bhype_core.testing.api_server import served_app  # noqa: E402
from bhype_monitor.sampler import Monitor  # noqa: E402

pytestmark = [pytest.mark.slow]
WAIT = 60_000  # ms: a bound on a loaded machine, not a timing assertion


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


@pytest.fixture
def sampled(tmp_path) -> Iterator[PagesEnv]:
    """The real app with every installed plugin, a stand-in VM of alice's burning CPU and one of
    bob's, and the monitor sampling every 2 s in a thread (as the worker's sampler does)."""
    env = PagesEnv(tmp_path, monitor={"sample_interval_seconds": 2})
    standins = [start_standin(env.runtime, "perf1", "alice", burn=True), start_standin(env.runtime, "other", "bob")]
    monitor = Monitor(env.runtime)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            monitor.tick()
            stop.wait(2.0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield env
    finally:
        stop.set()
        thread.join(timeout=30)
        stop_all(standins)


def wait_attr(page, selector: str, attribute: str, above: int) -> int:
    """Wait until ``attribute`` of ``selector`` is a number above ``above``; return it."""
    page.wait_for_function(
        "([sel, attr, above]) => "
        "Number((document.querySelector(sel) || {dataset: {}}).getAttribute(attr) || 0) > above",
        arg=[selector, attribute, above], timeout=WAIT)
    return int(page.locator(selector).get_attribute(attribute))


def test_vm_list_columns_show_live_values_only_for_the_callers_vms(sampled) -> None:
    alice = sampled.client("alice")
    rows = ""
    for _ in range(100):  # until the sampler took two samples (CPU % needs two)
        rows = alice.get("/ui/vms", headers=HTML).text
        if re.search(r'data-column="monitor-cpu">\d', rows):
            break
        threading.Event().wait(0.5)
    assert '<th scope="col" class="num" data-column="monitor-cpu">CPU %</th>' in rows
    assert re.search(r'data-column="monitor-cpu">\d+\.\d</td>', rows)
    assert re.search(r'data-column="monitor-memory">\d', rows)
    assert "other" not in rows  # bob's VM is not in alice's list, columns or not


def test_performance_tab_draws_and_updates_and_the_host_panel_draws(sampled, browser) -> None:
    alice = sampled.client("alice")
    with served_app(sampled.app) as url:
        page, errors = session_page(browser, url, alice)
        page.goto(f"{url}/ui/vms/perf1")
        page.get_by_role("navigation", name="VM sections").get_by_role("link", name="Performance").click()
        page.wait_for_url(re.compile(r"\?tab=performance$"))
        cpu = '[data-monitor-chart="cpu"]'
        page.locator(f"{cpu} canvas").wait_for(state="visible", timeout=WAIT)
        first = wait_attr(page, cpu, "data-monitor-updates", 0)
        wait_attr(page, cpu, "data-monitor-updates", first)  # and again: it keeps moving
        assert int(page.locator(cpu).get_attribute("data-monitor-points")) >= 2
        assert re.fullmatch(r"\d+(\.\d)?", page.locator('[data-monitor-live="cpu_percent"]').inner_text())
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "monitor-performance-tab.png"), full_page=True)
        loaded = int(page.locator("[data-monitor-scope]").get_attribute("data-monitor-loaded"))
        page.get_by_role("button", name="7d").click()
        wait_attr(page, "[data-monitor-scope]", "data-monitor-loaded", loaded)
        assert page.get_by_role("button", name="7d").get_attribute("aria-pressed") == "true"

        page.goto(f"{url}/ui/")
        page.locator('.monitor-card [data-monitor-chart="cpu"] canvas').wait_for(state="visible", timeout=WAIT)
        wait_attr(page, '.monitor-card [data-monitor-chart="memory"]', "data-monitor-points", 0)
        page.screenshot(path=str(ARTIFACTS / "monitor-dashboard.png"), full_page=True)
        # Bob's VM has no Performance tab for alice: the VM page itself is not found.
        assert page.goto(f"{url}/ui/vms/other?tab=performance").status == 404
        page.context.close()
    assert errors == []
