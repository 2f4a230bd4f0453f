"""Scheduled snapshot names, and the core's retention policy applied to them.

Names: ``bhype_<UTC YYYYmmddTHHMMSSZ>_<period>`` (reference 6.8: bHype's own prefix, UTC, so
it never touches sanoid's ``autosnap_*`` or zfs-auto-snapshot's ``zfs-auto-snap*``). The
policy, due periods and the pruning rule are the core's one implementation
(``bhype_core.plugin_api``: :class:`RetentionPolicy`, :func:`retention_prune` …, documented in
``bhype_core.retention_policy``); here a snapshot is labelled with the period its name says, and
a snapshot whose name is not bHype's is never pruned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from bhype_core.plugin_api import RETENTION_PERIODS as PERIODS
from bhype_core.plugin_api import RetentionCandidate as Candidate
from bhype_core.plugin_api import RetentionPolicy as Policy
from bhype_core.plugin_api import retention_bucket as bucket
from bhype_core.plugin_api import retention_due_periods as due_periods
from bhype_core.plugin_api import retention_protected as protected
from bhype_core.plugin_api import retention_prune

__all__ = ["PERIODS", "PREFIX", "Candidate", "Policy", "bucket", "due_periods", "parse_name", "protected",
           "prune", "snapshot_name"]

PREFIX = "bhype"
_NAME = re.compile(rf"^{PREFIX}_(\d{{8}}T\d{{6}}Z)_({'|'.join(PERIODS)})$")


def snapshot_name(period: str, when: datetime) -> str:
    """``bhype_20250131T140000Z_hourly`` for a scheduled snapshot taken at ``when``."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    return f"{PREFIX}_{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}_{period}"


def parse_name(name: str) -> tuple[datetime, str] | None:
    """``(time, period)`` of a bHype scheduled snapshot name; ``None`` for any other name."""
    match = _NAME.match(name)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), match.group(2)


def prune(snapshots: Iterable[Candidate], policy: Policy, now: datetime) -> list[str]:
    """Names of the snapshots to destroy under ``policy`` at ``now``, oldest first: each
    snapshot counts for the period its name says; other names are never returned."""
    labelled = []
    for snap in snapshots:
        parsed = parse_name(snap.name)
        labelled.append(replace(snap, periods=None if parsed is None else (parsed[1],)))
    return retention_prune(labelled, policy, now)
