"""``bhype zfs status|init|import-vms|snapshots|snapshot``: the host administrator's ZFS commands.

These run on the VM host itself (as root, like ``bhype db upgrade``): ``init`` always prints
the exact commands first and runs them only after confirmation (``--yes``), through the same
code as the ``zfs.*`` task kinds, with every host command audited under the local user.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from bhype_core.registry import CliCommand
from bhype_core.tasks import LogLine, Progress, TaskContext


class PrintReporter:
    """Task log lines and progress messages printed as they happen."""

    def log(self, context: TaskContext, line: LogLine) -> None:
        print(line.message, flush=True)

    def progress(self, context: TaskContext, progress: Progress) -> None:
        pass  # every step also logs its command: printing both would repeat it


def local_context(runtime: Any, kind: str) -> TaskContext:
    """A task context for running a ``zfs.*`` task's code in this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return TaskContext(runtime, task_id=f"cli-{kind}", kind=kind, user=user, reporter=PrintReporter())


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype zfs`` sub-commands."""
    sub = parser.add_subparsers(dest="zfs_command", required=True)
    sub.add_parser("status", help="OpenZFS version and the configured pool's health")
    init = sub.add_parser("init", help="create (or adopt) a pool with bHype's dataset layout")
    init.add_argument("pool")
    init.add_argument("disks", nargs="*", help="device paths (none with --adopt)")
    init.add_argument("--layout", default="mirror", choices=["single", "mirror", "raidz1", "raidz2", "raidz3"])
    init.add_argument("--adopt", action="store_true", help="use an existing pool (imported or importable)")
    init.add_argument("--force", action="store_true",
                      help="overwrite old partition tables, file systems and exported pools' labels")
    init.add_argument("--root", default=None, help="bHype's dataset under the pool (default zfs.root)")
    init.add_argument("--ashift", type=int, default=12)
    init.add_argument("--mountpoint", default=None)
    init.add_argument("--dry-run", action="store_true", help="only print the commands")
    init.add_argument("--yes", action="store_true", help="run without asking")
    found = sub.add_parser("import-vms", help="register VMs found on a pool by their user properties")
    found.add_argument("--datastore", default=None)
    found.add_argument("--list", action="store_true", help="only list what would be registered")
    listing = sub.add_parser("snapshots", help="list a VM's snapshots")
    listing.add_argument("vm")
    take = sub.add_parser("snapshot", help="snapshot every disk of a VM at once")
    take.add_argument("vm")
    take.add_argument("name", nargs="?")


def run(args: argparse.Namespace) -> int:
    """Dispatch ``bhype zfs <command>``; returns the exit status."""
    runtime = args.runtime
    command = args.zfs_command
    if command == "status":
        from bhype_zfs.status import zfs_status

        print(json.dumps(zfs_status(runtime.runner, runtime.settings.section("zfs")).model_dump(), indent=2))
        return 0
    if command == "init":
        return _init(runtime, args)
    if command == "import-vms":
        from bhype_zfs.tasks import import_vms_task

        result = import_vms_task(local_context(runtime, "zfs.import_vms"), args.datastore, register=not args.list)
        print(json.dumps(result, indent=2))
        return 0
    from bhype_zfs import snapshots
    from bhype_zfs.vms import host_for, resolve

    target = resolve(runtime, vm=args.vm)
    host = host_for(runtime, target)
    if command == "snapshots":
        for group in snapshots.list_snapshots(host, target.dataset):
            print(f"{group.name}\t{group.created.isoformat()}\t{group.used}\t{group.holds}")
        return 0
    from bhype_zfs.tasks import snapshot

    print(json.dumps(snapshot(local_context(runtime, "zfs.snapshot"), args.name, vm=args.vm), indent=2))
    return 0


def _init(runtime: Any, args: argparse.Namespace) -> int:
    from bhype_zfs import pool_init
    from bhype_zfs.tool import zfs_host, zfs_settings

    host = zfs_host(runtime)
    plan = pool_init.plan_init(host, args.pool, disks=args.disks, layout=args.layout, adopt=args.adopt,
                               force=args.force, root=args.root or zfs_settings(runtime).root,
                               ashift=args.ashift, mountpoint=args.mountpoint)
    print(f"bhype zfs init will run on {runtime.runner.target}:")
    for step in plan.steps:
        print(f"  {' '.join(step.argv)}    # {step.purpose}")
    if args.dry_run:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("not running without --yes (no terminal to ask)", file=sys.stderr)
            return 1
        if input("Run these commands? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    context = local_context(runtime, "zfs.init_pool")
    with context.acting_as():
        pool_init.apply_plan(host, plan, context)
    print("\nDone. Add this to the configuration:\n\n" + plan.settings)
    return 0


def command() -> CliCommand:
    """The ``bhype zfs`` command record."""
    return CliCommand(name="zfs", help="ZFS pools, VM snapshots and re-registration", configure=configure, run=run)
