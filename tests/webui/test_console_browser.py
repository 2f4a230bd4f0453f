"""The console pages in a real browser: Playwright for Python driving Debian's chromium
(headless, never a downloaded browser) against bHype under uvicorn and the QEMU test guests.

noVNC (npm @novnc/novnc) must reach state "connected" and draw a non-blank canvas; typing in
it must reach the guest's tty1 shell, which the xterm.js serial page then shows. Screenshots
go to test-artifacts/ for reviewers (not committed).
"""

from __future__ import annotations

import secrets

import pytest
from browser_kit import ARTIFACTS

pytestmark = [pytest.mark.guest, pytest.mark.slow]

# Predicates are functions, not expressions: the pages' CSP forbids eval, which Playwright
# would need to evaluate a bare expression string.
CANVAS_COLOURS = """() => {
  const canvas = document.querySelector('#screen canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length && seen.size < 50; i += 4 * 7) {
    seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  return seen.size;
}"""
TERMINAL_TEXT = """() => {
  const buffer = window.bhypeSerial.term.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
  return lines.join('\\n');
}"""


def test_novnc_and_xterm_consoles_in_chromium(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_cookies(lab.browser_session("alice"))
    name = "web" + "".join(secrets.choice("abcdefgh") for _ in range(6))
    try:
        vnc = context.new_page()
        vnc.goto(f"{lab.server.http}/ui/console/vnc/wcplain")
        vnc.wait_for_function(
            "() => window.bhypeConsole && window.bhypeConsole.state === 'connected'", timeout=60_000
        )
        vnc.wait_for_function(f"() => ({CANVAS_COLOURS})() > 1", timeout=60_000)
        vnc.wait_for_function("() => window.bhypeConsole.inControl === true", timeout=30_000)
        assert vnc.evaluate(CANVAS_COLOURS) > 1
        # noVNC sends QEMU extended key events (scancodes): lower-case letters type as they are.
        vnc.locator("#screen canvas").click()
        vnc.keyboard.type(f"hostname {name}", delay=30)
        vnc.keyboard.press("Enter")
        vnc.screenshot(path=str(ARTIFACTS / "webui-console-vnc.png"))

        serial = context.new_page()
        serial.goto(f"{lab.server.http}/ui/console/serial/wcplain")
        serial.wait_for_function(
            "() => window.bhypeSerial && window.bhypeSerial.state === 'connected'", timeout=60_000
        )
        serial.locator("#terminal").click()
        for _ in range(30):
            serial.keyboard.press("Enter")
            if f"{name}# " in serial.evaluate(TERMINAL_TEXT):
                break
            serial.wait_for_timeout(1000)
        serial.screenshot(path=str(ARTIFACTS / "webui-console-serial.png"))
        assert f"{name}# " in serial.evaluate(TERMINAL_TEXT)
    finally:
        context.close()


def test_console_page_without_a_session_says_why(lab, browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{lab.server.http}/ui/console/vnc/wcplain")
        page.wait_for_function(
            "() => window.bhypeConsole && window.bhypeConsole.state === 'refused'", timeout=30_000
        )
        assert "Cannot open the console" in page.locator("#status").inner_text()
    finally:
        context.close()


def test_console_pages_power_buttons_back_link_display_and_hint(lab, browser):
    # Issue 14: power buttons that ask first and call the VM API as the VM page does, a way back
    # to the VM, noVNC's scaling options, and a hint on an empty serial screen. The lab runs no
    # worker: a power task stays queued, the guest keeps running for the other tests.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_cookies(lab.browser_session("alice"))
    try:
        serial = context.new_page()
        serial.goto(f"{lab.server.http}/ui/console/serial/wcplain")
        serial.wait_for_function("() => window.bhypeSerial && window.bhypeSerial.state === 'connected'",
                                 timeout=60_000)
        hint = serial.locator("#serial-hint")
        assert "press Enter" in hint.inner_text()
        serial.locator("#terminal").click()
        serial.keyboard.press("Enter")
        hint.wait_for(state="hidden", timeout=30_000)  # the guest answered: the hint goes

        serial.get_by_role("button", name="Force stop").click()
        dialog = serial.locator("dialog#confirm")
        assert dialog.locator("#confirm-text").inner_text() == "Power wcplain off at once, without a guest shutdown?"
        dialog.get_by_role("button", name="Cancel").click()
        assert serial.evaluate("() => window.bhypePower.last") is None  # cancelled: nothing asked
        serial.get_by_role("button", name="Force stop").click()
        dialog.get_by_role("button", name="Confirm").click()
        serial.wait_for_function("() => document.getElementById('power-status').textContent !== ''", timeout=30_000)
        assert serial.locator("#power-status").inner_text() == "Force stop of wcplain queued"
        queued = serial.evaluate("() => window.bhypePower.last")
        assert (queued["kind"], queued["vm"]) == ("vm.force_stop", "wcplain")

        vnc = context.new_page()
        vnc.goto(f"{lab.server.http}/ui/console/vnc/wcplain")
        vnc.wait_for_function("() => window.bhypeConsole && window.bhypeConsole.state === 'connected'",
                              timeout=60_000)
        assert vnc.evaluate("() => [window.bhypeConsole.rfb.scaleViewport, window.bhypeConsole.rfb.resizeSession]") \
            == [True, False]
        vnc.get_by_label("Display").select_option("remote")
        assert vnc.evaluate("() => [window.bhypeConsole.rfb.scaleViewport, window.bhypeConsole.rfb.resizeSession]") \
            == [False, True]
        vnc.locator("details.clipboard summary").click()
        assert vnc.get_by_role("button", name="Send to the guest").is_enabled()
        vnc.get_by_role("link", name="VM wcplain").click()
        vnc.wait_for_url(f"{lab.server.http}/ui/vms/wcplain")
    finally:
        context.close()
