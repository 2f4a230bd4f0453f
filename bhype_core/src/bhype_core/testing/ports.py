"""Free TCP ports for test servers that must be told their port before they bind it (a child
``bhype serve``, sshd, QEMU's port forward).

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the same range it
draws from for every outgoing connection: between choosing such a port and the server binding
it, any connect(2) on the machine may take it. Ports are chosen below that range instead
(``net.ipv4.ip_local_port_range``, ip(7)), where only explicit binds land. A server that can
take a socket bound in advance should get one instead (see :func:`~bhype_core.testing.api_server.served_app`).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 20000
ATTEMPTS = 200


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        low, high = (int(value) for value in PORT_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now, outside the ephemeral range."""
    low, high = ephemeral_range()
    candidates = range(LOWEST, low) if low - LOWEST >= 100 else range(high + 1, 65536)
    for port in random.sample(candidates, min(ATTEMPTS, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on {host} in {candidates.start}-{candidates.stop - 1}")
