"""The console bridges end to end: bHype's app under uvicorn, VMs started by the real QEMU
driver (tiny guest under TCG), Python WebSocket clients doing what noVNC and xterm.js do.

The guests come from the session-wide ``lab`` fixture (conftest.py): ``wcsecret`` has a VNC
password (set by the driver through QMP ``set_password``), ``wcplain`` none. Facts: RFC 6143,
reference linux-test-host.md ("noVNC and the WebSocket bridge").
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time

import httpx
import pytest
from console_lab import ConsoleLab
from rfb_client import Viewer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bhype_webui.hub import console_hub

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def ticket(lab: ConsoleLab, vm: str, kind: str, headers: dict[str, str]) -> dict:
    response = httpx.post(
        f"{lab.server.http}/api/v1/webui/consoles/{vm}/{kind}/ticket", headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def url(lab: ConsoleLab, issued: dict) -> str:
    return lab.server.ws + issued["websocket"]


async def closed_with(ws_url: str, subprotocols: list[str] | None = None) -> tuple[int, str]:
    """Connect, read until the server closes; the close code and reason."""
    async with connect(ws_url, subprotocols=subprotocols, open_timeout=30) as ws:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason


async def wait_for_text(ws, pattern: str, timeout: float = 60) -> str:
    """Serial bytes received until ``pattern`` matches."""
    seen = ""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{pattern!r} not received; got {seen[-1000:]!r}"
        data = await asyncio.wait_for(ws.recv(), remaining)
        seen += data.decode(errors="replace") if isinstance(data, bytes) else data
    return seen


def test_vnc_with_password_shows_a_non_blank_screen(lab):
    issued = ticket(lab, "wcsecret", "vnc", lab.headers("alice"))

    async def run():
        viewer = await Viewer.open(url(lab, issued))
        try:
            for _ in range(20):  # the first update may come before the text is drawn
                await viewer.next_update()
                if len(viewer.colours()) > 1:
                    break
            return viewer.width, viewer.height, len(viewer.colours())
        finally:
            await viewer.close()

    width, height, colours = asyncio.run(run())
    assert width >= 640 and height >= 400
    assert colours > 1  # text on the VGA console, not one flat colour


def test_binary_subprotocol_only_when_offered(lab):
    headers = lab.headers("alice")

    async def run(offer):
        async with connect(
            url(lab, ticket(lab, "wcplain", "vnc", headers)), subprotocols=offer, open_timeout=30
        ) as ws:
            first = await asyncio.wait_for(ws.recv(), 30)
            return ws.subprotocol, first

    assert asyncio.run(run(["binary"])) == ("binary", b"RFB 003.008\n")
    assert asyncio.run(run(None)) == (None, b"RFB 003.008\n")


def test_two_viewers_both_see_updates_and_only_the_controller_types(lab):
    headers = lab.headers("alice")
    first, second = ticket(lab, "wcplain", "vnc", headers), ticket(lab, "wcplain", "vnc", headers)
    typed = "ctl" + "".join(secrets.choice("abcdefghij") for _ in range(6))
    serial = ticket(lab, "wcplain", "serial", headers)

    async def run():
        one = await Viewer.open(url(lab, first))
        two = await Viewer.open(url(lab, second))
        async with connect(url(lab, serial), open_timeout=30) as console:
            try:
                await one.next_update()
                await two.next_update()
                viewers = httpx.get(
                    f"{lab.server.http}/api/v1/webui/consoles/wcplain/vnc/viewers", headers=headers
                ).json()
                control = {v["id"]: v["in_control"] for v in viewers["viewers"]}
                # The second viewer is not in control: its typing must not reach the guest.
                await two.type("hostname intruder\n")
                await asyncio.sleep(3)
                await console.send(b"\n")
                before = await wait_for_text(console, r"wcplain# ")
                await one.type(f"hostname {typed}\n")
                await asyncio.sleep(1)
                deadline = time.monotonic() + 90
                retype = time.monotonic() + 20
                after = ""
                while f"{typed}# " not in after and time.monotonic() < deadline:
                    if time.monotonic() > retype:  # a starved guest may have lost a key: type it again
                        await one.type(f"\nhostname {typed}\n")
                        retype = time.monotonic() + 20
                    await console.send(b"\n")
                    try:
                        after += await wait_for_text(console, r"# ", timeout=5)
                    except (AssertionError, TimeoutError):
                        pass
                # Both viewers got the screen change the typing caused.
                updates = (one.updates, two.updates)
                await one.next_update()
                await two.next_update()
                return control, before, after, updates, (one.updates, two.updates)
            finally:
                await one.close()
                await two.close()

    control, before, after, updates, later = asyncio.run(run())
    assert control == {first["viewer_id"]: True, second["viewer_id"]: False}
    assert "intruder" not in before and "intruder" not in lab.serial_log("wcplain")
    assert f"{typed}# " in after
    assert later[0] > updates[0] and later[1] > updates[1]


def test_admin_takes_control_from_an_operator(lab):
    alice, admin = lab.headers("alice"), lab.headers("root-admin", "admin")
    mine, theirs = ticket(lab, "wcplain", "vnc", alice), ticket(lab, "wcplain", "vnc", admin)
    base = f"{lab.server.http}/api/v1/webui/consoles/wcplain/vnc"

    async def run():
        one = await Viewer.open(url(lab, mine))
        two = await Viewer.open(url(lab, theirs))
        try:
            taken = httpx.post(f"{base}/control", json={"viewer_id": theirs["viewer_id"]}, headers=admin)
            back = httpx.post(f"{base}/control", json={"viewer_id": mine["viewer_id"]}, headers=alice)
            stolen = httpx.post(f"{base}/control", json={"viewer_id": mine["viewer_id"]}, headers=admin)
            return taken, back, stolen
        finally:
            await one.close()
            await two.close()

    taken, back, stolen = asyncio.run(run())
    assert taken.status_code == 200
    assert {v["user"]: v["in_control"] for v in taken.json()["viewers"]} == {
        "alice": False,
        "root-admin": True,
    }
    assert back.status_code == 409 and "only an admin" in back.json()["error"]["message"]
    assert stolen.status_code == 404  # an admin controls through their own viewers only


def test_serial_console_is_shared_and_typed_into(lab):
    headers = lab.headers("alice")
    first, second = ticket(lab, "wcsecret", "serial", headers), ticket(lab, "wcsecret", "serial", headers)

    async def run():
        async with (
            connect(url(lab, first), open_timeout=30) as one,
            connect(url(lab, second), open_timeout=30) as two,
        ):
            await one.send(b"echo bridge-$((6*7))\n")
            return await wait_for_text(one, "bridge-42"), await wait_for_text(two, "bridge-42")

    one, two = asyncio.run(run())
    assert "bridge-42" in one and "bridge-42" in two


def test_reused_and_expired_tickets_are_refused(lab):
    headers = lab.headers("alice")
    issued = ticket(lab, "wcplain", "serial", headers)

    async def use_twice():
        async with connect(url(lab, issued), open_timeout=30) as ws:
            await ws.send(b"\n")
            await wait_for_text(ws, "# ")
            return await closed_with(url(lab, issued))

    code, reason = asyncio.run(use_twice())
    assert code == 1008 and "already used" in reason

    hub = console_hub(lab.app.state.runtime)
    late = ticket(lab, "wcplain", "serial", headers)
    real_clock = hub.tickets.clock
    hub.tickets.clock = lambda: real_clock() + hub.tickets.ttl + 1  # the ticket's 30 s have passed
    try:
        code, reason = asyncio.run(closed_with(url(lab, late)))
    finally:
        hub.tickets.clock = real_clock
    assert code == 1008 and "expired" in reason
    code, reason = asyncio.run(closed_with(f"{lab.server.ws}/api/v1/webui/console/vnc?ticket=forged"))
    assert code == 1008 and "unknown" in reason


def test_other_users_get_no_ticket(lab):
    bob = lab.headers("bob")
    for kind in ("vnc", "serial"):
        response = httpx.post(f"{lab.server.http}/api/v1/webui/consoles/wcplain/{kind}/ticket", headers=bob)
        assert response.status_code == 404, response.text
    assert (
        httpx.get(f"{lab.server.http}/api/v1/webui/consoles/wcplain/vnc/viewers", headers=bob).status_code
        == 404
    )
    assert httpx.post(f"{lab.server.http}/api/v1/webui/consoles/wcplain/vnc/ticket").status_code == 401


def test_losing_access_disconnects(lab):
    headers = lab.headers("alice")
    issued = ticket(lab, "wcplain", "serial", headers)

    async def run():
        async with connect(url(lab, issued), open_timeout=30) as ws:
            await ws.send(b"\n")
            await wait_for_text(ws, "# ")
            lab.set_owner("wcplain", "bob")
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            except ConnectionClosed as closed:
                return closed.rcvd.code, closed.rcvd.reason

    try:
        code, reason = asyncio.run(run())
    finally:
        lab.set_owner("wcplain", "alice")
    assert code == 1008 and "no longer have access" in reason


def test_revoked_token_disconnects(lab):
    created = lab.app.state.auth.tokens.create("alice", "operator", "soon-revoked")
    headers = {"Authorization": f"Bearer {created.secret}"}
    issued = ticket(lab, "wcsecret", "vnc", headers)

    async def run():
        viewer = await Viewer.open(url(lab, issued))
        await viewer.next_update()
        assert lab.app.state.auth.tokens.delete(created.token.id, "alice")
        try:
            while True:
                await viewer.next_update()
        except ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason

    code, reason = asyncio.run(run())
    assert code == 1008 and "revoked" in reason


def test_tight_viewers_see_the_screen_even_one_joining_late(lab):
    """While every viewer announces Tight the multiplexer asks the VM for it; a viewer joining
    after Tight data flowed makes it reconnect and reset the zlib streams; a viewer without
    Tight turns it off for all. Every viewer decodes the same screen throughout."""
    headers = lab.headers("alice")
    issued = [ticket(lab, "wcplain", "vnc", headers) for _ in range(3)]

    def rgb(viewer: Viewer) -> list[bytes]:
        return [pixel[:3] for pixel in viewer.pixels]

    async def run():
        one = await Viewer.open(url(lab, issued[0]), tight=True)
        viewers = [one]
        try:
            for _ in range(3):  # the blinking text cursor keeps updates coming
                await one.next_update()
            mux = console_hub(lab.app.state.runtime).find("vnc", "wcplain")
            generation = mux.generation
            late = await Viewer.open(url(lab, issued[1]), tight=True)
            viewers.append(late)
            for _ in range(3):
                await late.next_update()
                await one.next_update()
            tight_screens = (rgb(one), rgb(late))
            reconnected = mux.generation > generation
            plain = await Viewer.open(url(lab, issued[2]))  # hextile and raw only
            viewers.append(plain)
            for _ in range(3):
                for viewer in viewers:
                    await viewer.next_update()
            return tight_screens, [rgb(v) for v in viewers], reconnected, [v.tight_rects for v in viewers]
        finally:
            for viewer in viewers:
                await viewer.close()

    (first, late), screens, reconnected, tight_rects = asyncio.run(run())
    assert reconnected
    assert tight_rects[0] > 0 and tight_rects[1] > 0 and tight_rects[2] == 0
    assert len(set(first)) > 1  # text on the screen

    def differing(a: list[bytes], b: list[bytes]) -> int:
        return sum(x != y for x, y in zip(a, b, strict=True))

    # At most the blinking cursor (one 9x16 text cell) may differ between two viewers that
    # stopped reading at different blinks.
    assert differing(first, late) <= 144
    assert all(differing(screens[0], other) <= 144 for other in screens[1:])
