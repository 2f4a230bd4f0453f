"""The test kit's free_port(): outside the kernel's ephemeral range (where outgoing connections
take their ports), bindable, and the other side of the range when little room is below it."""

from __future__ import annotations

import socket

import pytest

from bhype_core.testing import ports


def test_free_ports_are_bindable_and_below_the_ephemeral_range() -> None:
    low, _ = ports.ephemeral_range()
    chosen = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= port < low for port in chosen)
    assert len(chosen) > 1  # drawn at random, not the same port for every server
    port = chosen.pop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_taken_port_is_never_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text(f"{ports.LOWEST + 200}\t60999\n")  # room for 200 ports below
    monkeypatch.setattr(ports, "PORT_RANGE_FILE", range_file)
    held = []
    try:
        for port in range(ports.LOWEST, ports.LOWEST + 190):  # all but ten taken
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        monkeypatch.setattr(ports, "ATTEMPTS", 200)
        assert ports.LOWEST + 190 <= ports.free_port() < ports.LOWEST + 200
    finally:
        for sock in held:
            sock.close()


def test_above_the_range_when_there_is_no_room_below(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("1024\t50000\n")
    monkeypatch.setattr(ports, "PORT_RANGE_FILE", range_file)
    assert 50000 < ports.free_port() <= 65535
