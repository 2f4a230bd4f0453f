"""The ``[migrate]`` settings section."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bhype_core.plugin_api import ConfigError


class MigrateSettings(BaseModel):
    """``[migrate]``: how moves estimate and how warm moves converge."""

    assumed_rate: int = Field(100 * 2**20, ge=1, description="bytes/s a plan assumes for its time estimates")
    warm_passes: int = Field(5, ge=1, le=50, description="at most this many copies while a warm move's VM runs")
    warm_delta: int = Field(64 * 2**20, ge=0,
                            description="a warm move stops the VM once a pass sent fewer bytes than this")
    dirty_tracking: bool = Field(True, description="warm moves of VMs whose hypervisor tracks dirty blocks (QEMU) "
                                                   "copy only the blocks written since the previous pass")
    remote_python: str = Field("python3", min_length=1, description="Python 3 on the target host (runs the "
                                                                    "block receiver of a dirty-block warm move)")
    peer_task_timeout: float = Field(3600.0, gt=0, description="seconds to wait for a task on the peer")
    stop_timeout: float | None = Field(None, gt=0, description="graceful stop timeout (default: vm.stop_timeout)")
    # Moves inside a group (issue 22): the data path is SSH to the other host's registered address.
    group_ssh_user: str = Field("root", min_length=1, max_length=63, description="SSH user on the group's hosts")
    group_ssh_port: int = Field(22, ge=1, le=65535, description="SSH port of the group's hosts")
    group_ssh_key: str = Field("", description="private key for SSH to the group's hosts (admin-provided); "
                                              "empty: bHype's own key <data_dir>/migrate/id_ed25519")
    group_known_hosts: str = Field("", description="known_hosts file with the group's host keys (admin-provided); "
                                                   "empty: <data_dir>/migrate/group.known_hosts")


def migrate_settings(runtime: Any) -> MigrateSettings:
    """The runtime's ``[migrate]`` section (defaults when absent)."""
    try:
        return runtime.settings.section("migrate")
    except ConfigError:  # a runtime without the plugin's section uses the defaults
        return MigrateSettings()
