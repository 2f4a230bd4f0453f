"""``bhype host init [--dry-run] [--yes] [--json]``: prepare this host for bHype.

Not a task: host init must work on a fresh host, before the service user, the database, the
auth daemon and the API it would submit through exist (it creates them). Like ``bhype doctor``
it runs in the CLI process, as root, through the same host command runner (argv lists,
audited); only root can run it, and it always shows the plan before changing anything.
docs/install-freebsd.md, "Why host init is not a task".
"""

from __future__ import annotations

import argparse
import json
import os

from bhype_core.errors import BhypeError
from bhype_core.hostinit.plan import apply, count_changes, render, to_dict


class NotRoot(BhypeError):
    """host init changes the host: only root may run it."""

    code = "not_root"
    http_status = 403


def host_init(args: argparse.Namespace) -> int:
    """Plan, show, and with ``--yes`` apply; exit 0 when nothing is left to do."""
    from bhype_core.builtins.doctor import doctor_runner
    from bhype_core.commands.doctor import current_platform
    from bhype_core.hostinit.host import plan_from_settings

    settings = args.runtime.settings
    platform = current_platform(args.runtime)
    runner = doctor_runner(settings)  # queries and changes alike: never the [runner] dry run
    zfs = zfs_request(args)
    steps = plan_from_settings(settings, platform, runner, runtime=args.runtime, zfs=zfs)
    if args.json:
        print(json.dumps({"platform": platform, **to_dict(steps)}, indent=2))
    else:
        print(render(steps))
    if args.dry_run or not count_changes(steps):
        return 0 if not any(step.problems for step in steps) else 1
    if not args.yes:
        print("nothing changed: run again with --yes to apply this plan")
        return 0
    if os.geteuid() != 0 and runner.target == "local":
        raise NotRoot("bhype host init changes groups, accounts and system files: run it as root")
    outcome = apply(runner, steps)
    if outcome.failed:
        return 1
    again = plan_from_settings(settings, platform, runner, check_database=False, zfs=zfs)
    left = count_changes(again)
    print(f"host init: {len(outcome.applied)} change(s) applied"
          + (f"; {left} still differ (see the plan above)" if left else ""))
    return 1 if left else 0


def zfs_request(args: argparse.Namespace):
    """The ZFS step's request, or ``None`` when ``--zfs-pool`` was not given."""
    from bhype_core.hostinit.zfs import ZfsRequest

    if not getattr(args, "zfs_pool", None):
        return None
    return ZfsRequest(args.zfs_pool, args.zfs_dataset, tuple(args.zfs_disk or ()), args.zfs_layout,
                      args.zfs_create_pool)


def configure(sub: argparse._SubParsersAction) -> None:
    """Add ``bhype host init``."""
    host = sub.add_parser("host", help="host administration (root)")
    host_sub = host.add_subparsers(dest="host_command", metavar="COMMAND", required=True)
    init = host_sub.add_parser("init", help="prepare this host: modules, tunables, groups, service user, "
                               "directories, PAM, database, ZFS when asked (plan first; --yes applies)")
    init.add_argument("--dry-run", action="store_true", help="show the plan only (the default without --yes)")
    init.add_argument("--yes", action="store_true", help="apply the plan")
    init.add_argument("--json", action="store_true", help="print the plan as JSON")
    init.add_argument("--zfs-pool", metavar="POOL", help="also create bHype's datasets on this pool")
    init.add_argument("--zfs-dataset", metavar="PATH", default="bhype",
                      help="bHype's root dataset below the pool (default bhype: POOL/bhype/{vms,isos,templates})")
    init.add_argument("--zfs-create-pool", action="store_true",
                      help="create --zfs-pool on the --zfs-disk devices (zpool create refuses disks in use)")
    init.add_argument("--zfs-disk", action="append", metavar="DEV", help="a blank disk for the new pool (repeat)")
    init.add_argument("--zfs-layout", default="mirror", choices=["single", "mirror", "raidz1", "raidz2", "raidz3"],
                      help="vdev layout of the new pool (default mirror)")
    init.set_defaults(handler=host_init)
