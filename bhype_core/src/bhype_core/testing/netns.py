"""Network namespaces for tests: a runner and helpers that keep every bridge, tap, veth and
packet of a test inside namespaces the test creates (``ip netns add``) and deletes, so nothing
touches the root namespace's links or sends traffic from it (reference linux-test-host.md)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bhype_core.host.process import Result
from bhype_core.host.runner import LocalRunner
from bhype_core.testing.parts import missing


class NetnsRunner(LocalRunner):
    """The host runner, with every command run inside network namespace ``netns``."""

    def __init__(self, netns: str) -> None:
        super().__init__(default_timeout=60)
        self.netns = netns

    def _execute(self, argv: list[str], **options: Any) -> Result:
        return super()._execute(["ip", "netns", "exec", self.netns, *argv], **options)

    def local_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]


def in_ns(netns: str, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a test-side command inside ``netns``."""
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True,
                          check=check, timeout=timeout)


def links(netns: str, master: str | None = None) -> set[str]:
    """Link names in ``netns`` (only those enslaved to ``master`` when given)."""
    argv = ["ip", "-j", "link", "show"] + (["master", master] if master else [])
    return {link["ifname"] for link in json.loads(in_ns(netns, *argv).stdout or "[]")}


@pytest.fixture
def netns() -> Iterator[Any]:
    """``netns(tag)`` creates a fresh namespace ``bht-<hex>-<tag>`` (with ``lo`` up) and returns
    its name; all are deleted after the test, with everything in them. Fails without root or
    iproute2, unless the run says ``--without netns``."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        missing("netns", "network namespace tests need root and iproute2")
    made: list[str] = []
    run_id = secrets.token_hex(3)

    def create(tag: str) -> str:
        name = f"bht-{run_id}-{tag}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        made.append(name)
        in_ns(name, "ip", "link", "set", "lo", "up")
        return name

    yield create
    for name in reversed(made):
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def veth_into(host_ns: str, host_end: str, other_ns: str, address: str | None) -> None:
    """A veth pair: ``host_end`` stays in ``host_ns``, its peer ``eth0`` goes to ``other_ns``
    (with ``address``) and both are up."""
    in_ns(host_ns, "ip", "link", "add", host_end, "type", "veth", "peer", "name", f"{host_end}p")
    in_ns(host_ns, "ip", "link", "set", f"{host_end}p", "netns", other_ns)
    in_ns(other_ns, "ip", "link", "set", f"{host_end}p", "name", "eth0")
    if address:
        in_ns(other_ns, "ip", "addr", "add", address, "dev", "eth0")
    in_ns(other_ns, "ip", "link", "set", "eth0", "up")
    in_ns(host_ns, "ip", "link", "set", host_end, "up")


def pings(netns: str, address: str, count: int = 2) -> bool:
    """Whether ``address`` answers pings sent from inside ``netns`` right now (``count`` tries
    a second apart). For proving isolation: ``assert not pings(...)``."""
    # busybox ping (busybox-static is installed on our machines; iputils-ping is not).
    return in_ns(netns, "busybox", "ping", "-c", str(count), "-W", "2", address, check=False).returncode == 0


def reaches(netns: str, address: str, within: float = 20.0) -> bool:
    """Whether ``address`` answers a ping from inside ``netns`` within ``within`` seconds, for
    proving a path exists: ``assert reaches(...)``.

    A path that was just made can take a moment to carry traffic (a neighbour entry left
    FAILED by an earlier, expected failure is re-resolved on the next packet; a loaded machine
    delays ARP), so one lost ping proves nothing; busybox ping also exits at the first send
    error. When the deadline passes, the namespace's links and neighbours are printed (pytest
    shows them beside the failed assertion)."""
    deadline = time.monotonic() + within
    while True:
        if in_ns(netns, "busybox", "ping", "-c", "1", "-W", "2", address, check=False).returncode == 0:
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    for argv in (["ip", "-br", "link"], ["ip", "-br", "addr"], ["ip", "neigh"], ["ip", "route"]):
        shown = in_ns(netns, *argv, check=False)
        print(f"[{netns}] {' '.join(argv)}:\n{shown.stdout}{shown.stderr}")
    return False
