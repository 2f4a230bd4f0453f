"""``bhype zfs …``: the plugin's commands, clients of ``/api/v1/zfs`` like ``bhype vm``.

Every sub-command talks to the API with the token ``bhype login`` stored (or ``--token`` /
``$BHYPE_TOKEN``) at ``--url`` / ``$BHYPE_URL``, so it needs neither root nor the database and
gets the API's rules (pool work for admins, operators only on their own VMs). Host work is a
task the command follows to its end: the task's log lines on stderr, then the result on
stdout. Handlers: :mod:`bhype_zfs.cli_commands` (status, init, import) and
:mod:`bhype_zfs.cli_snapshots` (snapshots, clones, schedules).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bhype_core.plugin_api import CliCommand, connection_options
from bhype_zfs import cli_commands as pools
from bhype_zfs import cli_snapshots as snaps

LAYOUTS = ("single", "mirror", "raidz1", "raidz2", "raidz3")
Handler = Callable[[argparse.Namespace], int]


def _command(sub: argparse._SubParsersAction, name: str, handler: Handler, help: str, *,
             json_out: bool = False, yes: bool = False) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help)
    if json_out:
        parser.add_argument("--json", action="store_true", help="print JSON")
    if yes:
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    connection_options(parser)
    parser.set_defaults(zfs_handler=handler)
    return parser


def _pool_commands(sub: argparse._SubParsersAction) -> None:
    status = _command(sub, "status", pools.zfs_status, "OpenZFS and the configured pool, as last probed", json_out=True)
    status.add_argument("--refresh", action="store_true", help="probe the host now (admins), then show it")
    init = _command(sub, "init", pools.zfs_init, "create (or adopt) a pool with bHype's dataset layout (admins)",
                    yes=True)
    init.add_argument("pool")
    init.add_argument("disks", nargs="*", help="device paths (none with --adopt)")
    init.add_argument("--layout", default="mirror", choices=LAYOUTS)
    init.add_argument("--adopt", action="store_true", help="use an existing pool (imported or importable)")
    init.add_argument("--force", action="store_true",
                      help="overwrite old partition tables, file systems and exported pools' labels")
    init.add_argument("--root", default=None, help="bHype's dataset under the pool (default zfs.root)")
    init.add_argument("--ashift", type=int, default=12)
    init.add_argument("--mountpoint", default=None)
    init.add_argument("--dry-run", action="store_true", help="only print the commands")
    found = _command(sub, "import-vms", pools.zfs_import_vms, "register VMs found on a pool by their user "
                     "properties (admins)", json_out=True)
    found.add_argument("--datastore", default=None, help="a zfs datastore (default vm.default_datastore)")
    found.add_argument("--list", action="store_true", help="only list what would be registered")


def _snapshot_commands(sub: argparse._SubParsersAction) -> None:
    def vm_and_name(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("vm")
        parser.add_argument("name", help="the snapshot")
        return parser

    _command(sub, "snapshots", snaps.zfs_snapshots, "list a VM's snapshots", json_out=True).add_argument("vm")
    vm_and_name(_command(sub, "holds", snaps.zfs_holds, "list the holds on a snapshot", json_out=True))
    take = _command(sub, "snapshot", snaps.zfs_snapshot, "snapshot every disk of a VM at once")
    take.add_argument("vm")
    take.add_argument("name", nargs="?", help="default manual-<UTC time>")
    rollback = vm_and_name(_command(sub, "rollback", snaps.zfs_rollback, "roll a stopped VM back to a snapshot",
                                    yes=True))
    rollback.add_argument("--destroy-newer", action="store_true", help="destroy snapshots taken after it")
    vm_and_name(_command(sub, "destroy-snapshot", snaps.zfs_destroy_snapshot,
                         "destroy a snapshot (refused while held or cloned)", yes=True))
    for verb, help in (("hold", "protect a snapshot with a hold tag"), ("release", "drop a snapshot's hold tag")):
        vm_and_name(_command(sub, verb, snaps.zfs_hold, help)).add_argument("tag")
    clone = _command(sub, "clone", snaps.zfs_clone, "a new VM from a snapshot of another")
    clone.add_argument("source")
    clone.add_argument("target")
    clone.add_argument("--snapshot", help="an existing snapshot (default: a new one)")
    clone.add_argument("--mode", default="linked", choices=["linked", "full", "promote"])


def _schedule_commands(sub: argparse._SubParsersAction) -> None:
    schedules = sub.add_parser("schedules", help="snapshot schedules (admins)")
    inner = schedules.add_subparsers(dest="schedules_command", metavar="COMMAND", required=True)
    _command(inner, "list", snaps.zfs_schedules_list, "every schedule", json_out=True)
    create = _command(inner, "create", snaps.zfs_schedules_create, "add a schedule")
    create.add_argument("name")
    target = create.add_mutually_exclusive_group(required=True)
    target.add_argument("--vm", help="snapshot this VM's disks")
    target.add_argument("--dataset", help="snapshot this dataset tree")
    for period in snaps.PERIODS:
        create.add_argument(f"--{period}", type=int, default=0, metavar="N", help=f"keep N {period} snapshots")
    create.add_argument("--frequent-minutes", type=int, default=15, metavar="M", help="minutes between frequent ones")
    create.add_argument("--no-recursive", action="store_true", help="only the dataset itself, not its children")
    create.add_argument("--disabled", action="store_true", help="store it without running it")
    _command(inner, "delete", snaps.zfs_schedules_delete, "remove a schedule (its snapshots stay)").add_argument("name")


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype zfs`` sub-commands."""
    sub = parser.add_subparsers(dest="zfs_command", metavar="COMMAND", required=True)
    _pool_commands(sub)
    _snapshot_commands(sub)
    _schedule_commands(sub)


def run(args: argparse.Namespace) -> int:
    """Run the chosen sub-command; errors are bHype errors (one line, no traceback)."""
    handler: Handler = args.zfs_handler
    return handler(args)


def command() -> CliCommand:
    """The ``bhype zfs`` command record."""
    return CliCommand(name="zfs", help="ZFS pools, VM snapshots, clones and schedules", configure=configure, run=run)
