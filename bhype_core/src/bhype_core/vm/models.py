"""The ``core_vm`` table (one row per VM: identity, owner, stored spec, cached state) and the
:class:`VMRef` that lifecycle hooks receive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from bhype_core.db.models import USER_LENGTH, utcnow
from bhype_core.db.types import ID, TABLE_OPTIONS, JSONText, UTCDateTime
from bhype_core.spec import SpecContext, VMSpec, validate_spec

NAME_LENGTH = 63  # spec_parts.NAME_RE
UUID_LENGTH = 36
STATE_LENGTH = 16
DATASTORE_LENGTH = 63


class VMBase(SQLModel):
    """What every VM row holds; ``spec`` is :meth:`VMSpec.to_data` (complete, validated)."""

    name: str = Field(max_length=NAME_LENGTH, unique=True)
    uuid: str = Field(max_length=UUID_LENGTH, unique=True)
    owner: str = Field(max_length=USER_LENGTH, index=True)
    datastore: str = Field(max_length=DATASTORE_LENGTH)
    spec: dict[str, Any] = Field(sa_type=JSONText)
    # A cache of the driver's answer (the API lists 1,000 VMs without asking the hypervisor);
    # reality wins: tasks and reconciliation refresh it from driver.status().
    state: str = Field(default="stopped", max_length=STATE_LENGTH, index=True)
    state_detail: str = Field(default="", sa_type=Text)
    # The driver's last full answer (pid, exit status, consoles, restarts, recent exits).
    status: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The group host that runs it (issue 22, bhype_core.hosts).
    host: str = Field(default="", max_length=63, index=True, sa_column_kwargs={"server_default": ""})


class VM(VMBase, table=True):
    """Table ``core_vm``."""

    __tablename__ = "core_vm"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)

    def spec_model(self) -> VMSpec:
        """The stored spec as a :class:`VMSpec` (stored specs are complete and valid).

        Reading never generates anything: a VM stored without a VNC password (one on a driver
        that uses none) must not get a fresh random one at every read.
        """
        return validate_spec(self.spec, SpecContext(vnc_password=False))


VM_MODELS: tuple[type[SQLModel], ...] = (VM,)


@dataclass(frozen=True)
class VMRef:
    """A VM as the ``bhype_vm_*`` hooks see it.

    ``id`` is ``None`` before the row exists (``before_create``); ``vm_dir`` is the VM's
    private directory in its datastore; ``spec`` the validated spec.
    """

    name: str
    uuid: str
    owner: str
    datastore: str
    spec: VMSpec
    vm_dir: Path
    id: int | None = None

    @classmethod
    def of(cls, row: VM, vm_dir: Path) -> VMRef:
        """The reference for a stored row."""
        return cls(row.name, row.uuid, row.owner, row.datastore, row.spec_model(), vm_dir, row.id)
