"""``bhype hosts`` and ``bhype vm list --host`` against a real uvicorn server with an in-process
worker whose heartbeat sampler registers its host; a second host's row goes stale."""

from __future__ import annotations

import io
import json
import sys
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col

from bhype_core import __version__, cli
from bhype_core.db.models import utcnow
from bhype_core.hosts.models import Host
from bhype_core.hosts.registry import register
from bhype_core.spec import validate_spec
from bhype_core.testing.api_server import served_cli
from bhype_core.testing.waiting import wait_for
from bhype_core.vm.models import VM


def bhype(server, capsys, *args: str) -> tuple[int, str, str]:
    sys.stdin = io.StringIO("")
    try:
        status = cli.main(["--config", str(server["config"]), *args])
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return status, out, err


def add_vm(runtime, name: str, host: str, state: str = "running") -> None:
    data = validate_spec({"name": name, "owner": "alice", "boot": "grub"}).to_data()
    with Session(runtime.engine) as db:
        db.add(VM(name=name, uuid=data["uuid"], owner="alice", datastore="default", spec=data, state=state,
                  host=host))
        db.commit()


def test_hosts_and_the_vm_host_filter_through_the_cli(make_host_runtime, short_dir, monkeypatch, capsys):
    runtime = make_host_runtime("alpha", queue={"backend": "sqlite"}, tasks={"poll_interval": 0.2},
                                host={"heartbeat_interval": 0.2, "unreachable_after": 60})
    beta = make_host_runtime("beta")
    with served_cli(runtime, short_dir, monkeypatch, (("alice", "operator"),), as_user="alice") as server:
        wait_for(lambda: Session(runtime.engine).get(Host, "alpha") is not None, "the worker to register alpha")
        register(beta)
        with runtime.engine.begin() as connection:  # beta's worker stopped two minutes ago
            connection.execute(update(Host).where(col(Host.name) == "beta")
                               .values(last_seen=utcnow() - timedelta(seconds=120)))
        add_vm(runtime, "web-a", "alpha", state="stopped")  # alpha's reconciliation checks it: really stopped
        add_vm(runtime, "web-b", "beta")  # beta's own worker would check it; alpha's leaves it alone

        status, out, err = bhype(server, capsys, "hosts", "--json")
        assert status == 0, err
        hosts = {host["name"]: host for host in json.loads(out)}
        assert {name: host["state"] for name, host in hosts.items()} == {"alpha": "reachable", "beta": "unreachable"}
        assert hosts["alpha"]["versions"]["bhype-core"] == __version__
        assert hosts["beta"]["heartbeat_age"] >= 120

        status, out, _ = bhype(server, capsys, "hosts")
        lines = out.splitlines()
        assert lines[0].split()[:4] == ["NAME", "STATE", "HEARTBEAT", "ADDRESS"]
        assert lines[2].split()[:2] == ["beta", "unreachable"]

        status, out, _ = bhype(server, capsys, "vm", "list", "--host", "beta", "--json")
        [vm] = json.loads(out)
        assert (vm["name"], vm["host"], vm["state"]) == ("web-b", "beta", "unknown")
        status, out, _ = bhype(server, capsys, "vm", "list")
        rows = [line.split() for line in out.splitlines()]
        assert rows[0][-1] == "HOST"
        assert [(row[0], row[2], row[-1]) for row in rows[1:]] == [("web-a", "stopped", "alpha"),
                                                                   ("web-b", "unknown", "beta")]
