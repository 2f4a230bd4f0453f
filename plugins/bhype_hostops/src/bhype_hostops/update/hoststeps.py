"""The workflow's steps on the host itself: the boot environment, the install, the reboot and
the check of the boot environment the host came back on."""

from __future__ import annotations

import time
from typing import Any

from bhype_hostops.update import runs
from bhype_hostops.update.parse import booted, next_boot
from bhype_hostops.update.substeps import StepFailed


def boot_environment(context: Any, run: Any, platform: Any, settings: Any) -> str:
    """``bectl create`` the plan's boot environment (the pre-update system, bootable from the
    loader) and record it with the one the loader boots next."""
    name = run.plan["boot_environment"]["create"]
    before = platform.boot_environments()
    if any(be.name == name for be in before) and run.data.get("be_created") == name:
        return f"boot environment {name} already made by this run"
    if any(be.name == name for be in before):
        raise StepFailed(f"boot environment {name} already exists and was not made by this run")
    expected = next_boot(before)
    runs.update(context.runtime, run.id, data={"be_created": name,
                                                "be_expected": getattr(expected, "name", None),
                                                "be_booted_before": getattr(booted(before), "name", None)})
    platform.create_boot_environment(name)
    if not any(be.name == name for be in platform.boot_environments()):
        raise StepFailed(f"bectl create {name} reported success but bectl list does not show it")
    return f"boot environment {name} created (roll back by choosing it in the loader menu)"


def install(context: Any, run: Any, platform: Any, settings: Any) -> str:
    """Run the installers, every line they print in the task log."""
    mode = platform.base_mode()
    installed = dict(run.data.get("installed", {}))
    for name, tool_argv, env in platform.installers(mode):
        context.check_cancelled()
        context.log(f"installing {name}: {' '.join(platform.command(tool_argv))}")
        outcome = platform.install(name, tool_argv, env)
        for line in outcome.lines:
            context.log(f"{name}: {line}")
        installed[name] = installed.get(name, False) or outcome.installed
        runs.update(context.runtime, run.id, data={"installed": installed, "base_mode": mode})
    # A kernel or base userland update needs the reboot; packages alone do not.
    reboot = bool(installed.get("base"))
    runs.update(context.runtime, run.id, data={"reboot_needed": reboot})
    done = [name for name, changed in installed.items() if changed]
    return (f"installed: {', '.join(done) or 'nothing (already up to date)'}; "
            f"{'a reboot is needed' if reboot else 'no reboot needed'}")


def reboot(context: Any, run: Any, platform: Any, settings: Any) -> str:
    """Reboot when the install needs it. The boot id is recorded first: the worker started
    after the reboot resumes here and sees a new one; the same one means it died without a
    reboot, and the reboot is asked for again."""
    data = runs.get(context.runtime, run.id).data
    if not data.get("reboot_needed"):
        return "no reboot needed"
    before = data.get("boot_id_before")
    if before is not None and platform.boot_id() != before:
        runs.update(context.runtime, run.id, data={"rebooted": True})
        return "the host rebooted"
    if before is None:
        runs.update(context.runtime, run.id, data={"boot_id_before": platform.boot_id()})
    context.log("rebooting the host (shutdown -r now); this task resumes when the worker starts again")
    context.progress(60, "rebooting")
    platform.reboot()
    deadline = time.monotonic() + settings.reboot_wait
    while time.monotonic() < deadline:
        context.check_cancelled()
        time.sleep(1.0)
    raise StepFailed(f"asked the host to reboot, but it is still up after {settings.reboot_wait:g} s")


def verify_boot_environment(context: Any, run: Any, platform: Any, settings: Any) -> str:
    """After a reboot: the host must run the boot environment the loader was to boot; another
    one (chosen in the loader, or a failed boot falling back) stops the workflow."""
    data = runs.get(context.runtime, run.id).data
    if not data.get("rebooted"):
        return "no reboot: the boot environment did not change"
    now = booted(platform.boot_environments())
    expected = data.get("be_expected")
    name = getattr(now, "name", None)
    if name != expected:
        raise StepFailed(
            f"the host booted boot environment {name!r}, but {expected!r} was expected: stopped here, "
            f"the VMs stay stopped. Check `bectl list`; to go on with the update boot {expected!r} "
            f"(bectl activate {expected}, reboot) and resume, or bring the VMs back without updating")
    return f"booted boot environment {name}, as expected"
