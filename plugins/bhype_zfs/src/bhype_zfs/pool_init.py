"""``zfs.init_pool``: plan (exact commands, shown before anything runs) and apply a new or adopted pool
with bHype's dataset layout ``<pool>/<root>/{vms,isos,templates}``.

A plan is computed read-only: disks are probed (:mod:`bhype_zfs.disks`), existing datasets
looked up. Applying recomputes the plan, runs it step by step and, on any failure, reverses
what it did (a pool it created is destroyed, disks it partitioned are wiped of that table,
datasets it created are destroyed, a pool it imported is exported again).
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bhype_core.plugin_api import BhypeError, Conflict, Undo, ValidationErrors
from bhype_zfs import argv, pool_argv
from bhype_zfs.disks import check_disks, imported_pools
from bhype_zfs.names import check_dataset
from bhype_zfs.tool import ZfsHost

LAYOUT = ("vms", "isos", "templates")
# Per-child properties: ISOs and templates are large sequential files (zfsprops(7) recordsize).
CHILD_PROPERTIES = {"isos": {"recordsize": "1M"}, "templates": {}, "vms": {}}
ROOT_PROPERTIES = {"compression": "lz4", "atime": "off"}
ROLE_PROPERTY = "org.bhype:role"
HOST_PROPERTY = "org.bhype:host"
INITIALISED_PROPERTY = "org.bhype:initialised"
INITIALISED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
INITIALISED_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


@dataclass(frozen=True)
class Step:
    """One host command of a plan and why it runs."""

    argv: list[str]
    purpose: str
    undo: list[str] | None = None  # the command reversing this step if a later one fails


@dataclass
class InitPlan:
    """What ``zfs.init_pool`` would do: ``mode`` is ``create`` or ``adopt``."""

    pool: str
    root: str
    mode: str
    steps: list[Step] = field(default_factory=list)
    settings: str = ""
    initialised_at: str = ""  # the org.bhype:initialised mark its commands set

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "commands": [shlex.join(step.argv) for step in self.steps]}


def settings_snippet(pool: str, root: str, mountpoint: str | None = None) -> str:
    """The configuration that makes bHype use the pool (``[zfs]`` and a ``zfs`` datastore;
    with the root's ``mountpoint`` when known, so the API can show paths without asking)."""
    text = (
        f'[zfs]\npool = "{pool}"\nroot = "{root}"\n\n'
        f'[vm.datastores.zfs]\nbackend = "zfs"\ndataset = "{pool}/{root}"\n'
    )
    return text + (f'mountpoint = "{mountpoint}"\n' if mountpoint else "")


def plan_init(
    host: ZfsHost,
    pool: str,
    *,
    disks: list[str] | None = None,
    layout: str = "mirror",
    adopt: bool = False,
    force: bool = False,
    root: str = "bhype",
    ashift: int | None = 12,
    mountpoint: str | None = None,
    owner_host: str | None = None,
    initialised_at: str | None = None,
) -> InitPlan:
    """Work out the commands that create (or adopt) ``pool`` and bHype's layout on it.

    :param disks: device paths for a new pool (``adopt`` takes none).
    :param force: use disks that hold an old partition table, file system or an exported
        pool's label (never mounted, swap or imported-pool disks).
    :param initialised_at: the ``org.bhype:initialised`` mark (default now, UTC); a plan shown
        earlier passes its own so the same inputs give the same commands.
    :raises ValidationErrors: bad arguments, or disks that are not blank (``disks.N``, one
        entry per reason).
    :raises Conflict: creating a pool that exists, or adopting one that cannot be found.
    """
    tools = host.tools
    pool_argv.check_pool(pool)
    root_dataset = check_dataset(f"{pool}/{root}", "root")
    stamp = initialised_at or datetime.now(UTC).strftime(INITIALISED_FORMAT)
    plan = InitPlan(pool, root_dataset, "adopt" if adopt else "create", settings=settings_snippet(pool, root),
                    initialised_at=stamp)
    pools = imported_pools(host)
    if adopt:
        if disks:
            raise ValidationErrors([("disks", "adopting an existing pool takes no disks")])
        if pool not in pools:
            scan = host.probe(pool_argv.import_scan(tools))
            if f"pool: {pool}" not in scan.stdout:
                raise Conflict(f"pool {pool!r} is neither imported nor importable (zpool import lists no such pool)")
            plan.steps.append(Step(pool_argv.import_pool(tools, pool), f"import pool {pool}",
                                   pool_argv.export_pool(tools, pool)))
    else:
        _plan_create(host, plan, pools, disks or [], layout, force, ashift, mountpoint)
        if mountpoint not in ("none", "legacy"):  # zpool-create(8): default mountpoint /<pool>
            plan.settings = settings_snippet(pool, root, f"{(mountpoint or '/' + pool).rstrip('/')}/{root}")
    if not adopt:
        existing: set[str] | None = set()
    elif plan.steps:  # the pool is imported by the plan itself: its datasets cannot be listed yet
        existing = None
    else:
        existing = _existing(host, root_dataset)
    _plan_layout(host, plan, existing, owner_host or socket.gethostname())
    return plan


def _plan_create(
    host: ZfsHost, plan: InitPlan, pools: set[str], disks: list[str], layout: str,
    force: bool, ashift: int | None, mountpoint: str | None,
) -> None:
    tools = host.tools
    if plan.pool in pools:
        raise Conflict(f"pool {plan.pool!r} already exists; adopt it instead of creating it")
    members = pool_argv.pool_disks(tools, plan.pool, disks)
    # Validate layout and disk count before probing anything.
    pool_argv.create_pool(tools, plan.pool, layout, [m.vdev for m in members], ashift=ashift, mountpoint=mountpoint)
    blocked = check_disks(host, disks, force)
    if blocked:
        errors = ValidationErrors()
        for index, device in enumerate(disks):
            for finding in blocked.get(device, []):
                hint = " (use force to overwrite it)" if finding.forceable else ""
                errors.add(f"disks.{index}", finding.reason + hint)
        raise errors
    for member in members:
        if force and tools.platform == "freebsd":
            # gpart(8): "destroy -F" removes an old table even when it has partitions.
            probe = host.probe(["gpart", "show", pool_argv.geom_name(member.device)])
            if probe.returncode == 0:
                plan.steps.append(Step(["gpart", "destroy", "-F", pool_argv.geom_name(member.device)],
                                       f"remove the old partition table of {member.device}"))
        for command in pool_argv.partition_disk(tools, member):
            undo = ["gpart", "destroy", "-F", command[-1]] if command[1] == "create" else None
            plan.steps.append(Step(command, f"partition {member.device} for ZFS (label {member.label})", undo))
    create = pool_argv.create_pool(
        tools, plan.pool, layout, [m.vdev for m in members], ashift=ashift, mountpoint=mountpoint, force=force
    )
    plan.steps.append(Step(create, f"create {layout} pool {plan.pool} from {len(members)} disk(s)",
                           [tools.zpool, "destroy", "-f", plan.pool]))


def _existing(host: ZfsHost, root_dataset: str) -> set[str]:
    result = host.probe(argv.list_datasets(host.tools, ["name"], [root_dataset], recursive=True, depth=1))
    return set(result.stdout.split()) if result.returncode == 0 else set()


def _plan_layout(host: ZfsHost, plan: InitPlan, existing: set[str] | None, owner_host: str) -> None:
    """Create the root and its children, mark the root as bHype's. ``existing`` is ``None``
    when unknown (a pool the plan imports): then ``zfs create -p`` (a no-op for a dataset
    that exists, zfs-create(8)) and no undo, which could destroy a dataset bHype did not make."""
    tools = host.tools
    marks = {ROLE_PROPERTY: "root", HOST_PROPERTY: owner_host, INITIALISED_PROPERTY: plan.initialised_at}
    unknown = existing is None
    known = existing or set()
    if plan.root in known or unknown:
        if unknown:
            plan.steps.append(Step(argv.create_filesystem(tools, plan.root, ROOT_PROPERTIES, parents=True),
                                   f"create bHype's root dataset {plan.root} unless it exists"))
        plan.steps.append(Step(argv.set_properties(tools, plan.root, marks), f"mark {plan.root} as bHype's"))
    else:
        props = {**ROOT_PROPERTIES, **marks}
        plan.steps.append(Step(argv.create_filesystem(tools, plan.root, props, parents=True),
                               f"create bHype's root dataset {plan.root}",
                               argv.destroy(tools, plan.root, recursive=True)))
    for name in LAYOUT:
        dataset = f"{plan.root}/{name}"
        if unknown:
            plan.steps.append(Step(argv.create_filesystem(tools, dataset, CHILD_PROPERTIES[name], parents=True),
                                   f"create {dataset} unless it exists"))
        elif dataset not in known:
            plan.steps.append(Step(argv.create_filesystem(tools, dataset, CHILD_PROPERTIES[name]),
                                   f"create {dataset}", argv.destroy(tools, dataset, recursive=True)))


def apply_plan(host: ZfsHost, plan: InitPlan, context: Any = None) -> list[str]:
    """Run ``plan``'s steps in order, logging each; on failure reverse what was done.

    :returns: the command lines that ran.
    :raises BhypeError: the failing step's error (after the rollback), naming anything that
        could not be rolled back.
    """
    undo = Undo(context)
    ran = []
    try:
        for index, step in enumerate(plan.steps):
            if context is not None:
                context.progress(10 + 85 * index / max(1, len(plan.steps)), step.purpose)
                context.log(f"{step.purpose}: {' '.join(step.argv)}")
            host.run(step.argv)
            ran.append(" ".join(step.argv))
            if step.undo is not None:
                undo.push(" ".join(step.undo), _runner(host, step.undo))
    except BaseException as exc:
        failures = undo.rollback()
        if failures:
            raise BhypeError(f"initialising pool {plan.pool} failed ({exc}) and was not fully rolled back: "
                             + "; ".join(failures)) from exc
        raise
    undo.discard()
    return ran


def _runner(host: ZfsHost, command: list[str]) -> Callable[[], Any]:
    return lambda: host.run(command)


def check_confirmed(plan: InitPlan, confirmed: list[str]) -> None:
    """Refuse to run ``plan`` unless its commands are exactly the ``confirmed`` ones (the plan
    shown to whoever asked): disks or pools that changed in between must be looked at again.

    :raises Conflict: names the first command that differs; nothing has run.
    """
    commands = plan.to_dict()["commands"]
    if commands == confirmed:
        return
    for index, (now, shown) in enumerate(zip(commands, confirmed, strict=False)):
        if now != shown:
            difference = f"command {index + 1} is now `{now}`, not `{shown}`"
            break
    else:
        difference = f"it has {len(commands)} commands now, not {len(confirmed)}"
    raise Conflict(f"the plan for pool {plan.pool} changed since it was shown ({difference}); nothing ran: "
                   "look at the new plan and confirm it")
