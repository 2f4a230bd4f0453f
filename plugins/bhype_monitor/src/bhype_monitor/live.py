"""The live snapshot (the newest values of the host and every VM), through the core's live
metrics seam (``plugin_api.publish_live_metrics``/``read_live_metrics``: one snapshot per group
host, in Redis under ``<core.live_metrics_key>:<host>`` when ``core.redis_url`` is set, else the
fact store).

The worker also keeps it in its own memory (``runtime.extras``) for thresholds and ``/metrics``
in the same process; the snapshot is replaced each tick, never accumulated. It carries only the
VMs the sampler reads (starting, running, stopping, and one that just ended); a reader that lists
the others (stopped, crashed …) takes them from their records on demand (:func:`idle_vms`).
"""

from __future__ import annotations

from typing import Any

from bhype_core.plugin_api import list_vm_summaries, local_host_name, publish_live_metrics, read_live_metrics


def put(runtime: Any, snapshot: dict[str, Any], interval: float) -> None:
    """Publish ``snapshot``; in Redis it expires after three missed ticks (a dead sampler
    shows as no data, not as stale data)."""
    publish_live_metrics(runtime, snapshot, ttl=3 * interval)


def get(runtime: Any, host: str | None = None) -> dict[str, Any] | None:
    """The newest snapshot of ``host`` (``None``: this host), or ``None`` before its first tick
    (or after its sampler died, with Redis)."""
    return read_live_metrics(runtime, host)


def idle_vms(runtime: Any, host: str | None, snapshot: dict[str, Any] | None) -> list[Any]:
    """The VMs of ``host`` (``None``: this one) that ``snapshot`` does not carry (stopped,
    crashed …), as :func:`~bhype_core.plugin_api.list_vm_summaries` rows: their state is their
    record's and they have no metrics. One query, run only by the reader that asks."""
    sampled = (snapshot or {}).get("vms", {})
    here = (host or local_host_name(runtime), "")
    return [row for row in list_vm_summaries(runtime) if row.host in here and row.uuid not in sampled]
