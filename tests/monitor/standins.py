"""Real idle processes standing in for running VMs (tests and ``benchmarks/bench_monitor.py``).

Each stand-in is a VM row plus a real process whose command line carries the VM's instance name
as a word (what the QEMU driver checks, ``hypervisor_markers``) and a ``state.json`` in the
VM's directory naming it as the hypervisor, so the driver's own ``status`` finds it exactly as
it finds a QEMU it started. A stand-in may burn CPU on demand (``burn=True``: a busy loop).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from bhype_core.spec import validate_spec
from bhype_core.vm.models import VM
from bhype_core.vm.services import open_datastore

IDLE = "import sys, time\nwhile True: time.sleep(3600)\n"
BUSY = "import sys\nwhile True: pass\n"


@dataclass
class StandIn:
    """One stand-in VM: its name, UUID, owner and process."""

    name: str
    uuid: str
    owner: str
    process: subprocess.Popen


def add_vm_row(runtime: Any, name: str, owner: str, state: str = "running", **spec: Any) -> dict[str, Any]:
    """A VM row as ``vm.create`` leaves it (spec validated, UUID generated); its spec data."""
    data = validate_spec({"name": name, "owner": owner, "boot": "grub", **spec}).to_data()
    with Session(runtime.engine) as db:
        db.add(VM(name=name, uuid=data["uuid"], owner=owner, datastore="default", spec=data, state=state))
        db.commit()
    return data


def start_standin(runtime: Any, name: str, owner: str = "alice", *, burn: bool = False,
                  argv: list[str] | None = None, taps: list[str] | None = None, **spec: Any) -> StandIn:
    """A VM row and its real process (``argv``: the process to run, default a Python sleeper;
    the instance name is appended as the last word)."""
    data = add_vm_row(runtime, name, owner, memory=spec.pop("memory", "64M"), **spec)
    instance = validate_spec(data).instance_name
    command = argv or [sys.executable, "-c", BUSY if burn else IDLE]
    process = subprocess.Popen([*command, instance], stdin=subprocess.DEVNULL)
    vm_dir = Path(open_datastore(runtime, "default").vm_dir(name))
    vm_dir.mkdir(parents=True, exist_ok=True)
    (vm_dir / "state.json").write_text(json.dumps({"state": "running", "hypervisor_pid": process.pid,
                                                   "supervisor_pid": None}))
    if taps:
        (vm_dir / "taps.json").write_text(json.dumps([{"tap": tap, "switch": None, "vlan": None} for tap in taps]))
    return StandIn(name, data["uuid"], owner, process)


def stop_all(standins: list[StandIn]) -> None:
    """End every stand-in process this test started (by its own handle)."""
    for standin in standins:
        if standin.process.poll() is None:
            standin.process.kill()
        standin.process.wait(timeout=10)
