"""Test helper run as an unprivileged account
(``python3 console_as_user.py SITE_PACKAGES CONFIG VM VNC_SOCKET BROKER_SOCKET``):
what the web UI's console bridge does from ``bhype serve`` as that account, reported as JSON.

1. connect straight to the VM's VNC unix socket (root's alone: must be refused);
2. locate the VNC console the bridge's way (``bhype_webui.access.locate``) and open it
   (``bhype_webui.upstream.open_endpoint``): read the RFB banner;
3. open the serial console the same way, type a command and read its answer;
4. attach the bridge's VNC multiplexer (RFB handshake through the broker's descriptor).

The test's own interpreter may live where the account cannot enter (pyenv under /root): the
test runs the host's python3 of the same version, and this script adds the virtualenv's
``SITE_PACKAGES`` (its ``.pth`` files included: the editable bHype packages).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any


def outcome(action: Any) -> dict[str, Any]:
    """``{"ok": result}`` or ``{"error": class name, "errno"?: …, "message": …}``."""
    try:
        return {"ok": action()}
    except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
        answer = {"error": type(exc).__name__, "message": str(getattr(exc, "message", exc))}
        if isinstance(exc, OSError):
            answer["errno"] = exc.errno
        return answer


def direct(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        return sock.recv(12).decode()


def runtime_for(config: Path) -> Any:
    import bhype_webui.plugin
    from bhype_core.builtins import drivers, models, storage
    from bhype_core.config import load_settings
    from bhype_core.plugins import make_plugin_manager
    from bhype_core.runtime import build_runtime

    pm = make_plugin_manager(load_entrypoints=False)
    for module, name in ((models, "core_models"), (drivers, "core_drivers"), (storage, "core_storage"),
                         (bhype_webui.plugin, "webui")):
        pm.register_plugin(module, name)
    return build_runtime(load_settings(config), pm)


async def bridge(runtime: Any, vm: str) -> dict[str, Any]:
    from bhype_webui.access import locate
    from bhype_webui.hub import console_hub
    from bhype_webui.upstream import open_endpoint

    report: dict[str, Any] = {}
    endpoint, password = await asyncio.to_thread(locate, runtime, vm, "vnc")
    report["routed"] = endpoint.route is not None
    report["password"] = password
    stream = await open_endpoint(endpoint)
    try:
        report["banner"] = (await asyncio.wait_for(stream.readexactly(12), 30)).decode()
    finally:
        stream.close()

    endpoint, _ = await asyncio.to_thread(locate, runtime, vm, "serial")
    stream = await open_endpoint(endpoint)
    seen = b""
    try:
        await stream.write(b"\necho privsep-$((6*7)) $(id -u)\n")
        deadline = time.monotonic() + 60
        # The whole answer line: it may arrive in pieces ("privsep-42", then " 0").
        while not re.search(rb"privsep-42 \d+\s", seen) and time.monotonic() < deadline:
            seen += await asyncio.wait_for(stream.read(), max(0.1, deadline - time.monotonic()))
    finally:
        stream.close()
    report["serial"] = seen.decode(errors="replace")[-400:]

    hub = console_hub(runtime)
    endpoint, password = await asyncio.to_thread(locate, runtime, vm, "vnc")
    mux = await hub.attach("vnc", vm, endpoint, password)
    report["mux_open"] = not mux.closed
    hub.close_all()
    return report


def main() -> None:
    import site

    site.addsitedir(sys.argv[1])
    config, vm, vnc_socket, broker = Path(sys.argv[2]), sys.argv[3], sys.argv[4], Path(sys.argv[5])
    report: dict[str, Any] = {"uid": os.getuid(), "groups": sorted(os.getgroups())}
    report["direct"] = outcome(lambda: direct(vnc_socket))
    from bhype_core.consoles.client import ConsoleBrokerClient

    runtime = outcome(lambda: runtime_for(config))
    if "ok" in runtime:
        report["bridge"] = outcome(lambda: asyncio.run(bridge(runtime["ok"], vm)))
    report["broker_connect"] = outcome(lambda: direct_broker(broker))
    report["broker_locate"] = outcome(lambda: ConsoleBrokerClient(broker).locate(vm, "vnc"))
    print(json.dumps(report))


def direct_broker(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        return True


if __name__ == "__main__":
    main()
