"""The host's history keyed by its group host name (issue 22): ``monitor_0002`` makes the
single host's rows unowned (``host:``), the first host's sampler adopts them (another host's
history is never taken), each host records ``host:<name>`` and
``/api/v1/monitor/host/series?host=`` reads any registered host's. Real migrations on SQLite."""

from __future__ import annotations

import time

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text

from bhype_core.api.app import create_app
from bhype_core.builtins import hosts as core_hosts
from bhype_core.db.migrate import _ALEMBIC_LOCK, make_config, upgrade
from bhype_core.hosts.models import Host
from bhype_core.hosts.registry import register
from bhype_core.testing.api_auth import token_headers
from bhype_monitor.sampler import Monitor, adopt_single_host_history, make_history


def series_names(runtime) -> dict[str, int]:
    with runtime.engine.connect() as connection:
        rows = connection.execute(text("SELECT series, COUNT(*) FROM monitor_sample GROUP BY series")).all()
    return dict(rows)  # type: ignore[arg-type]


def monitor_at(runtime, revision: str) -> None:
    """Move the monitor branch to ``revision`` (the other branches stay at their heads)."""
    with _ALEMBIC_LOCK, runtime.engine.begin() as connection:
        command.downgrade(make_config(runtime.registry, connection), revision)


def test_the_single_hosts_history_becomes_the_first_hosts(vm_monitor_runtime):
    runtime = vm_monitor_runtime(("core_hosts", core_hosts), host={"name": "hv1"})
    monitor_at(runtime, "monitor_0001")  # a database from before issue 22
    recent = int(time.time()) // 10 * 10 - 100  # inside the raw tier's day: not pruned by the next record
    with runtime.engine.begin() as connection:
        for ts, series in ((recent, "host"), (recent + 10, "host"), (recent, "vm:0b4f2d3c")):
            connection.execute(text("INSERT INTO monitor_sample (series, tier, ts, n, data) "
                                    "VALUES (:s, 0, :ts, 1, '{\"cpu_percent\": 5}')"), {"s": series, "ts": ts})
    assert "monitor_0002" in upgrade(runtime)
    assert series_names(runtime) == {"host:": 2, "vm:0b4f2d3c": 1}  # unowned until a host's sampler starts

    register(runtime)
    monitor = Monitor(runtime)
    monitor.tick()  # hv1's sampler adopts the unowned history at its first tick
    assert series_names(runtime)["host:hv1"] >= 3  # the two adopted rows, and its own samples under its name
    assert "host:" not in series_names(runtime)

    # A second host recorded its own meanwhile: unowned rows are then nobody's to take.
    with runtime.engine.begin() as connection:
        connection.execute(text("UPDATE monitor_sample SET series = 'host:' WHERE series = 'host:hv1'"))
    make_history(runtime).record({"host:hv2": {"cpu_percent": 7}}, time.time())
    assert adopt_single_host_history(runtime, "hv1") == 0
    assert "host:" in series_names(runtime)

    monitor_at(runtime, "monitor_0001")  # the downgrade keeps the unowned rows as "host"
    assert set(series_names(runtime)) == {"host", "vm:0b4f2d3c"}  # hv2's named history is dropped


def test_the_api_reads_each_group_hosts_series(vm_monitor_runtime):
    runtime = vm_monitor_runtime(("core_hosts", core_hosts), host={"name": "hv1"})
    register(runtime)
    with runtime.engine.begin() as connection:  # hv2: another worker of the group
        connection.execute(Host.__table__.insert().values(name="hv2", address="hv2", platform="linux",
                                                          hypervisor="qemu", capacity={}, versions={},
                                                          task_kinds=[]))
    now = time.time()
    history = make_history(runtime)
    history.record({"host:hv1": {"cpu_percent": 11.0}, "host:hv2": {"cpu_percent": 22.0}}, now - 30)
    app = create_app(runtime=runtime)
    with TestClient(app) as client:
        headers = token_headers(app, "alice", "operator")

        def cpu(**params) -> tuple[int, object]:
            answer = client.get("/api/v1/monitor/host/series", headers=headers,
                                params={"from": int(now - 600), "to": int(now + 1), "metrics": "cpu_percent", **params})
            body = answer.json()
            if answer.status_code != 200:
                return answer.status_code, body
            return 200, (body.get("host"), [v for v in body["metrics"]["cpu_percent"]["avg"] if v is not None])

        assert cpu(host="hv2") == (200, ("hv2", [22.0]))
        assert cpu(host="hv1") == (200, ("hv1", [11.0]))
        assert cpu() == (200, ("hv1", [11.0]))  # default: the host answering
        status, body = cpu(host="nope")
        assert status == 404 and "no host named 'nope'" in body["error"]["message"]
        assert cpu(host="x" * 64)[0] == 422


def test_the_api_reads_each_group_hosts_live_snapshot(vm_monitor_runtime):
    """Each group host publishes its own live snapshot (issue 22): ``/current?host=`` reads any."""
    from bhype_core.plugin_api import publish_live_metrics

    runtime = vm_monitor_runtime(("core_hosts", core_hosts), host={"name": "hv1"})
    register(runtime)
    with runtime.engine.begin() as connection:
        connection.execute(Host.__table__.insert().values(name="hv2", address="hv2", platform="linux",
                                                          hypervisor="qemu", capacity={}, versions={},
                                                          task_kinds=[]))
    now = time.time()
    publish_live_metrics(runtime, {"at": now, "interval": 10, "host": {"metrics": {"cpu_percent": 11.0}},
                                   "pools": [], "vms": {}}, ttl=30)
    hv2 = vm_monitor_runtime(("core_hosts", core_hosts), host={"name": "hv2"})  # the same database
    publish_live_metrics(hv2, {"at": now, "interval": 10, "host": {"metrics": {"cpu_percent": 22.0}},
                               "pools": [], "vms": {}}, ttl=30)
    app = create_app(runtime=runtime)
    with TestClient(app) as client:
        headers = token_headers(app, "alice", "operator")

        def cpu(**params):
            answer = client.get("/api/v1/monitor/current", headers=headers, params=params)
            return answer.status_code, answer.json()

        assert cpu()[1]["host"]["metrics"]["cpu_percent"] == 11.0  # default: the host answering
        assert cpu(host="hv2")[1]["host"]["metrics"]["cpu_percent"] == 22.0
        status, body = cpu(host="nope")
        assert status == 404 and "no host named 'nope'" in body["error"]["message"]
