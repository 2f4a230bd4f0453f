"""The VM list page in a group of hosts (issue 22): a host column and filter once VMs live on
more than one host, and VMs of a host that stopped heartbeating shown as "unknown"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pages_env import HTML, PagesEnv
from sqlalchemy import update
from sqlmodel import col

from bhype_core.db.models import utcnow
from bhype_core.hosts.models import Host
from bhype_core.hosts.registry import register
from bhype_core.vm.models import VM


@pytest.fixture
def env(tmp_path) -> Iterator[PagesEnv]:
    made = PagesEnv(tmp_path, host={"name": "alpha", "unreachable_after": 60})
    yield made
    made.close()


def rows(page: str) -> list[tuple[str, str]]:
    """``(name, state)`` of each VM row."""
    return re.findall(r'<tr data-vm-id="\d+" data-vm-name="([^"]+)" data-current-state="([^"]+)"', page)


def test_the_vm_list_shows_and_filters_hosts_and_unknown_states(env):
    env.add_vms("alice", 2, state="running")
    client = env.client("alice")
    single = client.get("/ui/vms", headers=HTML).text
    assert '<th scope="col">Host</th>' not in single and 'name="host"' not in single  # one host: nothing new

    register(env.runtime)  # adopts the two VMs as alpha's
    with env.runtime.engine.begin() as connection:
        connection.execute(update(VM).where(col(VM.name) == "alice-0001").values(host="beta"))
        connection.execute(Host.__table__.insert().values(
            name="beta", address="beta", platform="linux", hypervisor="qemu", capacity={}, versions={},
            task_kinds=[], registered=utcnow(), last_seen=utcnow() - timedelta(seconds=120)))
    env.runtime.extras.pop("host.unreachable", None)  # the states this process remembers for a second
    page = client.get("/ui/vms", headers=HTML).text
    assert '<th scope="col">Host</th>' in page and '<select id="host" name="host">' in page
    assert rows(page) == [("alice-0000", "running"), ("alice-0001", "unknown")]
    assert "host beta is unreachable; last known state: running" in page
    only_beta = client.get("/ui/vms?host=beta", headers={"HX-Request": "true", "HX-Target": "vm-table"}).text
    assert rows(only_beta) == [("alice-0001", "unknown")]
    detail = client.get("/ui/vms/alice-0001", headers=HTML).text
    assert "unknown" in detail
