"""``GET /metrics``: the live snapshot in the Prometheus text format (prometheus-client), one
sample per VM labelled ``vm``/``owner`` (and ``nic`` for interfaces).

Refused (403) unless the caller shows the bearer token whose SHA-256 is
``monitor.metrics_token_sha256`` or comes from an address in ``monitor.metrics_allow``; both are
empty by default, so the endpoint is closed until configured. The route is public to the API's
own login guard (a scraper has no bHype session) and does this check itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.registry import Collector

from bhype_core.plugin_api import PUBLIC, Forbidden, RuntimeDep, client_address
from bhype_monitor import live

HOST_GAUGES = {
    "cpu_percent": "Host CPU busy, percent of all CPUs",
    "load1": "Host 1-minute load average", "load5": "Host 5-minute load average",
    "load15": "Host 15-minute load average",
    "mem_total": "Host physical memory, bytes", "mem_used": "Host memory in use (total - available), bytes",
    "swap_used": "Host swap in use, bytes", "uptime": "Seconds since the host booted",
    "disk_read_bps": "Host disks read, bytes/s", "disk_write_bps": "Host disks written, bytes/s",
    "net_rx_bps": "Host interfaces received, bytes/s", "net_tx_bps": "Host interfaces sent, bytes/s",
    "net_errors": "Host interface errors per second", "arc_size": "ZFS ARC size, bytes",
}
VM_GAUGES = {
    "cpu_percent": "VM hypervisor process CPU, percent of one CPU",
    "cpu_seconds": "VM hypervisor process CPU time, seconds",
    "mem_rss": "VM hypervisor process resident memory, bytes",
    "uptime": "Seconds since the VM's hypervisor started",
    "disk_read_bps": "VM disk reads, bytes/s", "disk_write_bps": "VM disk writes, bytes/s",
    "disk_read_iops": "VM disk read operations/s", "disk_write_iops": "VM disk write operations/s",
}
NIC_GAUGES = {"rx_bps": "VM NIC received (by the guest), bytes/s", "tx_bps": "VM NIC sent (by the guest), bytes/s",
              "rx_pps": "VM NIC received packets/s", "tx_pps": "VM NIC sent packets/s"}


class SnapshotCollector(Collector):
    """Turns one snapshot into metric families (built per scrape: no global registry)."""

    def __init__(self, snapshot: dict[str, Any] | None, idle: Sequence[Any] = ()) -> None:
        self.snapshot = snapshot or {}
        self.idle = idle  # VMs not sampled (their records: name, owner): bhype_vm_running 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        host = (self.snapshot.get("host") or {}).get("metrics", {})
        for key, text in HOST_GAUGES.items():
            if key in host:
                yield GaugeMetricFamily(f"bhype_host_{key}", text, value=host[key])
        cores = GaugeMetricFamily("bhype_host_core_cpu_percent", "Host CPU busy per core, percent", labels=["core"])
        for index, value in enumerate((self.snapshot.get("host") or {}).get("cores") or []):
            if value is not None:
                cores.add_metric([str(index)], value)
        yield cores
        pools = GaugeMetricFamily("bhype_pool_capacity_percent", "ZFS pool capacity used, percent", labels=["pool"])
        healthy = GaugeMetricFamily("bhype_pool_online", "1 when the ZFS pool is ONLINE", labels=["pool"])
        for pool in self.snapshot.get("pools", []):
            if pool.get("cap") is not None:
                pools.add_metric([pool["name"]], pool["cap"])
            healthy.add_metric([pool["name"]], 1 if pool.get("health") == "ONLINE" else 0)
        yield pools
        yield healthy
        vms = self.snapshot.get("vms", {})
        up = GaugeMetricFamily("bhype_vm_running", "1 while the VM's hypervisor runs", labels=["vm", "owner"])
        families = {k: GaugeMetricFamily(f"bhype_vm_{k}", t, labels=["vm", "owner"]) for k, t in VM_GAUGES.items()}
        nics = {k: GaugeMetricFamily(f"bhype_vm_nic_{k}", t, labels=["vm", "owner", "nic", "tap"])
                for k, t in NIC_GAUGES.items()}
        for vm in vms.values():
            labels = [vm["name"], vm.get("owner") or ""]
            metrics = vm.get("metrics", {})
            up.add_metric(labels, 1 if metrics else 0)
            for key, family in families.items():
                if metrics.get(key) is not None:
                    family.add_metric(labels, metrics[key])
            for nic, values in (vm.get("nics") or {}).items():
                for key, family in nics.items():
                    if values.get(key) is not None:
                        family.add_metric([*labels, nic, values.get("tap") or ""], values[key])
        for row in self.idle:
            up.add_metric([row.name, row.owner or ""], 0)
        yield up
        yield from families.values()
        yield from nics.values()


def allowed(request: Request, settings: Any) -> bool:
    """Whether this scrape may read: the configured token, or an allowed address."""
    header = request.headers.get("authorization", "")
    if settings.metrics_token_sha256 and header.lower().startswith("bearer "):
        digest = hashlib.sha256(header[7:].strip().encode()).hexdigest()
        if hmac.compare_digest(digest, settings.metrics_token_sha256):
            return True
    if settings.metrics_allow:
        try:
            peer = ipaddress.ip_address(client_address(request))
        except ValueError:
            return False
        return any(peer in ipaddress.ip_network(net, strict=False) for net in settings.metrics_allow)
    return False


def render(snapshot: dict[str, Any] | None, idle: Sequence[Any] = ()) -> bytes:
    """The exposition text of one snapshot (``idle``: the VMs it does not carry, shown as not
    running)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, idle))
    return generate_latest(registry)


def make_metrics_router() -> APIRouter:
    """``GET /metrics`` (mounted at the root, where scrapers look)."""
    router = APIRouter(tags=["monitor"])

    @router.get("/metrics", dependencies=[PUBLIC], response_class=Response)
    def metrics(request: Request, runtime: RuntimeDep) -> Response:
        """Prometheus text of the newest sample; 403 unless a token or an allowed address."""
        if not allowed(request, runtime.settings.section("monitor")):
            raise Forbidden("/metrics needs the configured bearer token or an allowed address "
                            "(monitor.metrics_token_sha256, monitor.metrics_allow)")
        snapshot = live.get(runtime)
        idle = live.idle_vms(runtime, None, snapshot) if snapshot else []
        return Response(render(snapshot, idle), media_type=CONTENT_TYPE_LATEST)

    return router
