"""The serial bridge on a terminal device, as on FreeBSD: bhyve holds the nmdm(4) A side and
bHype opens the B side (reference 9.1). A Linux pty stands in for the nmdm pair: the test
holds the master (bhyve's side), the bridge opens the slave by path, like /dev/nmdm-web1.1B."""

from __future__ import annotations

import asyncio
import os
import termios

from bhype_webui.serial_mux import SerialMux
from bhype_webui.upstream import Endpoint, TtyStream, open_endpoint
from bhype_webui.viewers import Viewer


def test_tty_console_is_raw_shared_and_typed_into():
    master, slave = os.openpty()
    path = os.ttyname(slave)

    async def run():
        stream = await open_endpoint(Endpoint.from_console({"device": path}))
        assert isinstance(stream, TtyStream)
        lflag = termios.tcgetattr(stream.fd)[3]
        raw = not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
        mux = SerialMux("vm/serial", stream, history_bytes=8)
        await mux.start()
        one, two = Viewer("1", "alice", False), Viewer("2", "root", True)
        mux.join(one)
        os.write(master, b"login: \x00\xff")  # the guest prints (bytes pass unchanged in raw mode)
        first = await asyncio.wait_for(one.take(), 10)
        mux.join(two)  # a late viewer first gets the recent output (the last 8 bytes)
        history = await asyncio.wait_for(two.take(), 10)
        await mux.handle(two, b"root\r")  # any viewer may type on the serial console
        loop = asyncio.get_running_loop()
        typed = await loop.run_in_executor(None, os.read, master, 100)
        os.close(master)  # the guest side goes away: every viewer is ended after its backlog
        ends = [await asyncio.wait_for(v.take(), 10) for v in (one, two)]
        return raw, first, history, typed, ends, one.close_reason

    try:
        raw, first, history, typed, ends, reason = asyncio.run(run())
    finally:
        os.close(slave)
    assert raw
    assert first == b"login: \x00\xff"
    assert history == b"ogin: \x00\xff"[-8:] and len(history) == 8
    assert typed == b"root\r"
    assert ends == [None, None] and "closed" in reason
