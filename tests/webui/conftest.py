"""Web UI plugin fixtures: a runtime with only the webui plugin."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bhype_webui.plugin
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_core.testing.guest_image import READY_MARKER, GuestImage

sys.path.insert(0, str(Path(__file__).parent))  # the helpers beside the tests (console_lab, rfb_client)
from browser_kit import launch_chromium  # noqa: E402
from console_lab import ConsoleLab  # noqa: E402

BOOT_TIMEOUT = 180
PASSWORD = "pw8chars"


@pytest.fixture
def webui_runtime(tmp_path, plugin_manager, register_plugin):
    """``webui_runtime(runner=None, **webui_section)`` → a runtime whose only plugin is ``webui``."""
    register_plugin(bhype_webui.plugin, "webui")

    def build(runner=None, **webui):
        sections = {"webui": webui}
        if runner:
            sections["runner"] = runner
        return build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)

    return build


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian chromium under Playwright, one per test module."""
    yield from launch_chromium()


@pytest.fixture(scope="session")
def lab(tiny_guest: GuestImage) -> Iterator[ConsoleLab]:
    """bHype under uvicorn with two running guests of ``alice``'s (shared by the console
    tests: booting guests under TCG is the slow part)."""
    lab = ConsoleLab(console_recheck_seconds=0.3)
    try:
        lab.create_vm("wcsecret", "alice", tiny_guest, graphics={"vnc": True, "password": PASSWORD})
        lab.create_vm("wcplain", "alice", tiny_guest, graphics={"vnc": True})
        lab.start("wcsecret")
        lab.start("wcplain")
        for name in ("wcsecret", "wcplain"):
            deadline = time.monotonic() + BOOT_TIMEOUT
            while READY_MARKER not in lab.serial_log(name):
                assert time.monotonic() < deadline, f"{name} did not boot: {lab.serial_log(name)[-2000:]}"
                time.sleep(0.5)
        yield lab
    finally:
        lab.close()
