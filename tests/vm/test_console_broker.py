"""The console broker's refusals, in process (the full path across the privilege line, with a
real root worker, kit users and a guest, is tests/webui/test_console_privsep.py)."""

from __future__ import annotations

import os
import select
import socket
import stat

import pytest
from sqlmodel import Session

from bhype_core.consoles.broker import BrokerThread, ConsoleBroker
from bhype_core.consoles.client import ConsoleBrokerClient, ConsoleBrokerUnavailable
from bhype_core.drivers.select import select_driver
from bhype_core.errors import Conflict, NotFound, ValidationErrors
from bhype_core.spec import validate_spec
from bhype_core.vm.models import VM


@pytest.fixture
def broker(vm_runtime, short_dir):
    """``broker(allowed_uids)`` → a client of a broker serving ``vm_runtime``."""
    started = []

    def start(allowed=None):
        path = short_dir / "console.sock"
        allowed = allowed if allowed is not None else (os.getuid(),)
        server = ConsoleBroker(path, vm_runtime, select_driver(vm_runtime), allowed, os.getgid())
        started.append(BrokerThread(server).start())
        return ConsoleBrokerClient(path, timeout=10)

    yield start
    for thread in started:
        thread.stop()


def test_the_broker_names_only_what_it_may_open(vm_runtime, broker):
    client = broker()
    assert stat.S_IMODE(os.stat(client.socket_path).st_mode) == 0o660
    with pytest.raises(NotFound):
        client.locate("nosuchvm", "vnc")
    spec = validate_spec({"name": "idle", "graphics": {"vnc": True}})
    with Session(vm_runtime.engine) as db:
        db.add(VM(name="idle", uuid=str(spec.uuid), owner="alice", datastore="default", spec=spec.to_data()))
        db.commit()
    with pytest.raises(Conflict, match="start it"):
        client.open("idle", "vnc")
    # Only a VM name and a console kind: never a path, never the QMP monitor.
    for vm, kind in (("../etc", "vnc"), ("idle", "qmp"), ("/tmp/x.sock", "serial")):
        with pytest.raises(ValidationErrors):
            client.locate(vm, kind)


def test_a_peer_that_is_not_the_api_user_is_refused(broker):
    client = broker(allowed=(os.getuid() + 12345,))
    with pytest.raises(ConsoleBrokerUnavailable, match="forbidden_peer"):
        client.locate("idle", "vnc")


def test_a_planted_file_is_replaced_and_the_socket_removed_at_stop(vm_runtime, short_dir):
    path = short_dir / "console.sock"
    path.write_text("planted")
    thread = BrokerThread(ConsoleBroker(path, vm_runtime, select_driver(vm_runtime), [os.getuid()])).start()
    assert path.is_socket()
    thread.stop()
    assert not path.exists()
    path.mkdir()
    with pytest.raises(OSError, match="directory"):
        ConsoleBroker(path, vm_runtime, select_driver(vm_runtime), [os.getuid()])


def test_open_console_reaches_a_tty_and_loopback_tcp_and_nothing_else():
    from bhype_core.consoles.locate import open_console

    # bhyve's serial console is the nmdm(4) B side; a pty stands in for it on Linux.
    master, slave = os.openpty()
    fd = open_console({"device": os.ttyname(slave)})
    try:
        os.write(master, b"ping\r")
        assert select.select([fd], [], [], 30)[0]  # opened non-blocking: wait for the bytes
        assert os.read(fd, 100) == b"ping\r"  # raw mode: no CR-to-NL translation
    finally:
        for each in (fd, master, slave):
            os.close(each)
    # bhyve's fbuf: loopback TCP only.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        fd = open_console({"host": "127.0.0.1", "port": listener.getsockname()[1], "password": True})
        os.close(fd)
    for bad in ({"host": "192.0.2.1", "port": 5900}, {"device": "/tmp/nmdm0B"}, {"unix": "relative.sock"}):
        with pytest.raises(ValueError):
            open_console(bad)
