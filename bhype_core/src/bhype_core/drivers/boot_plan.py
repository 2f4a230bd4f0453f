"""Start plans: what a start boots first, and what it boots after the guest's first reboot.

Three ways to start a VM (issue 14, "Start plans"):

- ``normal``: boot the disk. An attached ISO stays attached as a CD the guest can read, but the
  loader boots the disk (bhyveload ``-d <disk>``, grub-bhyve ``-r hd0,1``) and firmware tries
  the disk first (QEMU ``bootindex``); a VM without disks boots its ISO (a live CD).
- ``install``: boot the ISO once, then the disk: the supervisor drops the ISO after the guest's
  first reboot, as vm-bhyve's ``vm install`` does (reference freebsd-host.md 1.7: "drop install
  ISO after the first boot"). bhyveload ``-d <iso>`` and grub-bhyve ``-r cd0`` for that boot
  only; under UEFI the CD is present for the install boot only.
- ``rescue``: boot the ISO first on every boot of this run, the disks attached so they can be
  repaired. Under bhyve UEFI the VM boots with a throwaway copy of the NVRAM template, so the
  installed OS's boot entry cannot win over the CD (with an empty NVRAM the firmware tries
  devices in PCI order: the CD's slot 3 before the disks' 4-19); ``bootindex=`` is added only
  where the host says its bhyve supports it (see :mod:`bhype_core.drivers.bhyve_argv`).

``graphics.wait`` (``true``) applies to the first boot of an install only; ``"always"`` to every
boot of every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from bhype_core.spec import VMSpec

StartMode = Literal["normal", "install", "rescue"]
START_MODES: tuple[str, ...] = get_args(StartMode)


@dataclass(frozen=True)
class BootStage:
    """One boot's media: ``cdrom`` the ISO is attached, ``cd_first`` it is booted before the
    disk, ``wait`` the guest waits for a VNC viewer."""

    cdrom: bool
    cd_first: bool
    wait: bool


@dataclass(frozen=True)
class BootPlan:
    """What the first boot of a start uses, and what every boot after the guest's first reboot
    uses (the same stage unless the plan changes, as an install does)."""

    mode: StartMode
    first: BootStage
    later: BootStage

    @property
    def changes(self) -> bool:
        """Whether the supervisor must switch command lines after the first reboot."""
        return self.first != self.later


def mode_errors(spec: VMSpec, mode: str) -> list[tuple[str, str]]:
    """Why ``spec`` cannot be started in ``mode`` (``(field, message)`` pairs, none if it can)."""
    if mode not in START_MODES:
        return [("mode", f"must be one of {', '.join(START_MODES)}")]
    if mode != "normal" and spec.cdrom is None:
        return [("mode", f"an {mode} start boots the VM's ISO, and VM {spec.name} has none: "
                         "attach one first (spec.cdrom)")]
    return []


def boot_plan(spec: VMSpec, mode: str = "normal") -> BootPlan:
    """The plan for starting ``spec`` in ``mode``.

    :raises ValueError: ``mode`` is unknown or needs an ISO the spec lacks (check
        :func:`mode_errors` first to report it as a field error).
    """
    problems = mode_errors(spec, mode)
    if problems:
        raise ValueError(problems[0][1])
    has_cd = spec.cdrom is not None
    always = spec.graphics.wait == "always"
    if mode == "install":
        return BootPlan("install", BootStage(True, True, bool(spec.graphics.wait)), BootStage(False, False, always))
    if mode == "rescue":
        stage = BootStage(True, True, always)
        return BootPlan("rescue", stage, stage)
    stage = BootStage(has_cd, has_cd and not spec.disks, always)
    return BootPlan("normal", stage, stage)


def stage_spec(spec: VMSpec, stage: BootStage) -> VMSpec:
    """``spec`` as one boot sees it: without the ISO when it is not attached, with
    ``graphics.wait`` as this boot's plain yes or no."""
    graphics = spec.graphics.model_copy(update={"wait": stage.wait and spec.graphics.vnc})
    return spec.model_copy(update={"cdrom": spec.cdrom if stage.cdrom else None, "graphics": graphics})
