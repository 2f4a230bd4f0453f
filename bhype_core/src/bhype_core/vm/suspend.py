"""Task ``vm.suspend`` and the VM service's suspend questions: save a running VM to disk and
stop it; its next ``vm.start`` resumes it (``vm.start {"discard_saved_state": true}`` boots it
afresh instead). The driver does the work (:meth:`~bhype_core.drivers.base.HypervisorDriver.suspend`,
:mod:`bhype_core.drivers.saved_state`); a driver or host that cannot is refused before
anything happens (``not_supported``).

A suspend ends the hypervisor, so it fires the ``stop`` lifecycle hooks (a ``before_stop`` veto
keeps the VM running); a resume is a start and fires the ``start`` hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bhype_core.drivers.base import VMState
from bhype_core.errors import Conflict, NotSupported
from bhype_core.vm.hooks import hook_errors, vm_after, vm_before
from bhype_core.vm.nics import release_nics

if TYPE_CHECKING:
    from bhype_core.runtime import Runtime

DEFAULT_TIMEOUT = 600.0  # seconds to write the guest's memory (a 16 GiB guest on a slow disk)


def suspend_vm(context: Any, name: str, timeout: float | None = None) -> dict[str, Any]:
    """Suspend VM ``name`` to disk (its memory and device state in its directory, 0600).

    :param timeout: seconds the save may take (default 600).
    :raises NotSupported: the driver, or this host's hypervisor build, cannot suspend.
    :raises Conflict: the VM is not running.
    :raises SuspendFailed: saving failed; the VM runs on, nothing saved.
    """
    from bhype_core.vm.power import _load, record_status
    from bhype_core.vm.services import active_driver

    runtime = context.runtime
    _, ref, _ = _load(context, name)
    driver = active_driver(runtime)
    if not driver.suspend_supported():
        raise NotSupported("suspend", f"driver {driver.name} on this host")
    current = driver.status(ref.spec, ref.vm_dir)
    if current.state is not VMState.RUNNING:
        record_status(runtime, name, current)
        raise Conflict(f"VM {name} is {current.state.value}: only a running VM can be suspended")
    vm_before(runtime.pm, "stop", ref, context)
    timeout = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
    context.progress(10, f"saving the guest's memory and devices to disk (up to {timeout:g} s)")
    try:
        status = driver.suspend(ref.spec, ref.vm_dir, timeout)
    finally:
        record_status(runtime, name, driver.status(ref.spec, ref.vm_dir))
    release_nics(runtime, driver, ref.spec, ref.vm_dir, context.log)
    size = (status.suspended or {}).get("size") or 0
    context.log(f"VM {name} is suspended to disk ({size / 2**20:.0f} MiB): its next start resumes it")
    failures = vm_after(runtime.pm, "stop", ref, context)
    context.progress(100, "suspended")
    return {**status.to_dict(), **hook_errors(failures)}


def suspend_supported(runtime: Runtime) -> bool:
    """Whether this host's driver can suspend VMs (it declares ``suspend`` and, on bhyve, the
    build has ``BHYPE_SNAPSHOT``: detected once through ``bhyve -h``). Worker side: it may run
    that host command."""
    from bhype_core.vm.services import active_driver

    return bool(active_driver(runtime).suspend_supported())


def suspended_state(runtime: Runtime, name: str) -> dict[str, Any] | None:
    """VM ``name``'s saved state (``path``, ``files``, ``at``, ``size`` …) when it is suspended,
    else ``None`` (also for a VM bHype does not know)."""
    from bhype_core.vm.service import find_vm, vm_ref
    from bhype_core.vm.services import active_driver

    vm = find_vm(runtime, name)
    if vm is None:
        return None
    saved = active_driver(runtime).saved_state(vm_ref(runtime, vm).vm_dir)
    return saved.to_dict() if saved is not None else None
