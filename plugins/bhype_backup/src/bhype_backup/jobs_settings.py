"""The ``[backup_jobs]`` settings section: weekly verification and restore drills."""

from __future__ import annotations

from pydantic import Field

from bhype_core.plugin_api import Section


class JobsSettings(Section):
    """``[backup_jobs]``: what jobs, verification and drills do by default."""

    weekly_verify: bool = Field(True, description="every Sunday 03:00 (host time), verify the newest "
                                                  "point of each VM on each target")
    drill_switch: str = Field("", max_length=15,
                              description="the isolated switch (created without uplink if missing) drill VMs' NICs "
                                          "are moved to; empty: drill VMs get no NIC at all (a TCP check then uses "
                                          "a switch named drill)")
    drill_prefix: str = Field("drill-", min_length=1, max_length=20,
                              description="name prefix of temporary drill VMs")
