"""Debian's chromium driven by Playwright for Python (headless, never a downloaded browser), for
the browser tests of the pages and the consoles. Screenshots go to test-artifacts/ for reviewers
(not committed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bhype_core.testing.parts import missing
from bhype_webui.api import vendor_packages
from bhype_webui.settings import BUNDLED_ASSETS

CHROMIUM = "/usr/bin/chromium"
# Reference linux-test-host.md, "noVNC and the WebSocket bridge"; Playwright adds a fresh
# temporary user-data dir to every launch.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def launch_chromium() -> Iterator[Any]:
    """Yield a launched headless chromium; fails (never skips) when the assets or the browser
    are missing, since ``./dev test`` installs both, unless the run says ``--without browser``."""
    if not vendor_packages(BUNDLED_ASSETS):
        missing("browser", "web UI assets not built: run ./dev setup (npm ci + build in plugins/bhype_webui/frontend)")
    if shutil.which(CHROMIUM) is None:
        missing("browser", "Debian's chromium is not installed (tools/install-test-deps)")
    try:
        from playwright import sync_api
    except ImportError as exc:
        missing("browser", f"playwright (the Python API) is not installed: {exc}")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def session_page(browser: Any, url: str, client: Any, *, height: int = 900) -> tuple[Any, list[str]]:
    """A new Chromium page holding ``client``'s session cookies for the app served at ``url``,
    and the list its uncaught page errors are appended to (a test asserts it stays empty)."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    host = url.split("//", 1)[1].split(":", 1)[0]
    context.add_cookies([{"name": key, "value": value, "domain": host, "path": "/"}
                         for key, value in client.cookies.items()])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors
