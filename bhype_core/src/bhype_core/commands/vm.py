"""``bhype vm list|create|start|stop|restart|force-stop|console|info|edit|destroy|show-command``.

Everything except ``console`` goes through the REST API (see :mod:`vm_client`): changes are
tasks, printed as ``task <id>`` or, with ``--wait``, followed to the end. ``console`` attaches
to the serial console locally, on the VM host, like vm-bhyve's ``vm console``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bhype_core.commands.plugins import format_table
from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import VmApi, all_vms, api_from
from bhype_core.errors import ValidationErrors
from bhype_core.registry import CliCommand


def parse_assignment(text: str, option: str = "--set") -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], value); the value is JSON when it parses (``2``, ``true``,
    ``[..]``), else the plain string (``2G``).

    :raises ValidationErrors: no ``=`` or an empty path (naming ``option``).
    """
    path, sep, raw = text.partition("=")
    keys = [key for key in path.strip().split(".")]
    if not sep or not all(keys):
        raise ValidationErrors([(option, f"{text!r} must look like field.sub=value")])
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return keys, value


def put(target: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``target[k1][k2]… = value``, creating the objects on the way."""
    for key in keys[:-1]:
        nested = target.get(key)
        if not isinstance(nested, dict):
            nested = target[key] = {}
        target = nested
    target[keys[-1]] = value


def spec_from_options(args: argparse.Namespace) -> dict[str, Any]:
    """Spec fields from ``--spec`` (JSON file, ``-`` for stdin), the shortcuts and ``--set``."""
    spec: dict[str, Any] = {}
    if getattr(args, "spec", None):
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise ValidationErrors([("--spec", f"not valid JSON: {exc}")]) from None
        if not isinstance(spec, dict):
            raise ValidationErrors([("--spec", "must hold a JSON object of spec fields")])
    for option, key in (("cpus", "cpus"), ("memory", "memory"), ("iso", "cdrom"), ("description", "description")):
        value = getattr(args, option, None)
        if value is not None:
            spec[key] = value
    if getattr(args, "disk", None):
        spec["disks"] = [{"size": size} for size in args.disk]
    for assignment in getattr(args, "set", None) or []:
        put(spec, *parse_assignment(assignment))
    for path in getattr(args, "unset", None) or []:
        put(spec, path.split("."), None)  # JSON merge patch: null removes the field
    return spec


def _print_json(data: Any) -> int:
    print(json.dumps(data, indent=2, default=str))
    return 0


def _task(api: VmApi, accepted: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the queued task, or follow it to the end with ``--wait``."""
    if not getattr(args, "wait", False):
        if getattr(args, "json", False):
            return _print_json(accepted)
        print(f"task {accepted['task_id']} queued: {accepted['kind']} {accepted['vm']}")
        return 0
    last: list[str] = []

    def show(task: dict[str, Any]) -> None:
        line = f"{task.get('state')} {task.get('progress', 0):.0f}% {task.get('progress_message', '')}"
        if not getattr(args, "json", False) and line != (last[-1] if last else None):
            print(line, file=sys.stderr)
            last.append(line)

    task = api.wait_task(accepted["task_id"], on_progress=show)
    if getattr(args, "json", False):
        return _print_json(task)
    print(f"task {accepted['task_id']} succeeded: {accepted['kind']} {accepted['vm']}")
    return 0


def vm_list(args: argparse.Namespace) -> int:
    vms = all_vms(api_from(args), owner=args.owner, host=args.host)
    if args.json:
        return _print_json(vms)
    rows = [[v["name"], v["owner"], v["state"], str(v["cpus"]), v["memory"], str(v["disks"]),
             v["template"] or "-", v["datastore"], v.get("host") or "-"] for v in vms]
    if not rows:
        print("no VMs")
        return 0
    print(format_table(rows, ["NAME", "OWNER", "STATE", "CPUS", "MEMORY", "DISKS", "TEMPLATE", "DATASTORE", "HOST"]))
    return 0


def vm_info(args: argparse.Namespace) -> int:
    vm = api_from(args).request("GET", f"/api/v1/vms/{args.name}")
    if args.json:
        return _print_json(vm)
    for key in ("name", "uuid", "owner", "state", "state_detail", "template", "os_type", "cpus", "memory",
                "disks", "datastore", "host", "description", "tags", "created", "updated"):
        value = vm.get(key)
        if value not in (None, "", []):
            print(f"{key + ':':14}{', '.join(value) if isinstance(value, list) else value}")
    print("spec:")
    print(json.dumps(vm["spec"], indent=2))
    return 0


def ssh_keys_from(values: list[str]) -> list[str]:
    """``--ssh-key`` values: a public key file (``~/.ssh/id_ed25519.pub``) or a key line itself.

    :raises ValidationErrors: a value that is neither.
    """
    keys: list[str] = []
    for value in values:
        path = Path(value).expanduser()
        if path.is_file():
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
            keys.extend(line for line in lines if line and not line.startswith("#"))
        elif value.startswith(("ssh-", "ecdsa-", "sk-")):
            keys.append(value.strip())
        else:
            raise ValidationErrors([("--ssh-key", f"{value} is neither a public key file nor a key line")])
    return keys


def cloud_image_options(api: VmApi, args: argparse.Namespace, spec: dict[str, Any]) -> None:
    """``--cloud-image`` and ``--ssh-key``: the first disk written from the template's cloud image
    (it must be in the library: ``bhype image fetch``), and a cloud-init seed with the keys."""
    if getattr(args, "cloud_image", False):
        if not args.template:
            raise ValidationErrors([("--cloud-image", "needs --template: the template names the image")])
        image = api.request("GET", f"/api/v1/templates/{args.template}/image", datastore=args.datastore)
        if not image["present"]:
            raise ValidationErrors([("--cloud-image", f"{image['name']} is not in the library yet: "
                                                      f"run `bhype image fetch {args.template}` first")])
        disks = spec.get("disks") or api.request("GET", f"/api/v1/templates/{args.template}")["defaults"]["disks"]
        spec["disks"] = [{**disks[0], "source": image["name"]}, *disks[1:]]
        spec.setdefault("cloud_init", {})
    keys = ssh_keys_from(getattr(args, "ssh_key", None) or [])
    if keys:
        cloud_init = spec.setdefault("cloud_init", {})
        cloud_init["ssh_keys"] = [*cloud_init.get("ssh_keys", []), *keys]


def vm_create(args: argparse.Namespace) -> int:
    api = api_from(args)
    spec = spec_from_options(args)
    cloud_image_options(api, args, spec)
    body = {"name": args.name, "template": args.template, "spec": spec,
            "datastore": args.datastore, "owner": args.owner, "host": args.host}
    return _task(api, api.request("POST", "/api/v1/vms", body), args)


def vm_action(args: argparse.Namespace) -> int:
    api = api_from(args)
    query: dict[str, Any] = {"timeout": args.timeout} if getattr(args, "timeout", None) is not None else {}
    if getattr(args, "mode", None):
        query["mode"] = args.mode
    if getattr(args, "discard_saved_state", False):
        query["discard_saved_state"] = "true"
    return _task(api, api.request("POST", f"/api/v1/vms/{args.name}/{args.action}", **query), args)


def vm_edit(args: argparse.Namespace) -> int:
    changes = spec_from_options(args)
    if not changes:
        raise ValidationErrors([("--set", "nothing to change: give --set, --unset or a shortcut option")])
    api = api_from(args)
    accepted = api.request("PATCH", f"/api/v1/vms/{args.name}", changes, allow_disk_removal=args.allow_disk_removal)
    return _task(api, accepted, args)


def vm_destroy(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValidationErrors([("--yes", "confirm destroying a VM with --yes when not on a terminal")])
        what = "its configuration (disks kept)" if args.keep_disks else "its disks and configuration"
        answer = input(f"destroy VM {args.name} and {what}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not destroyed")
            return 1
    api = api_from(args)
    return _task(api, api.request("DELETE", f"/api/v1/vms/{args.name}", keep_disks=args.keep_disks), args)


def vm_show_command(args: argparse.Namespace) -> int:
    plan = api_from(args).request("GET", f"/api/v1/vms/{args.name}/show-command", platform=args.platform,
                                  mode=args.mode or "normal")
    if args.json:
        return _print_json(plan)
    from bhype_core.vm.plan import format_plan

    print(format_plan(plan))
    return 0


def vm_console(args: argparse.Namespace) -> int:
    from bhype_core.commands.console import attach_console

    vm = api_from(args).request("GET", f"/api/v1/vms/{args.name}")  # the API decides who may
    return attach_console(args.runtime, vm, escape=args.escape)


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype vm`` sub-commands."""
    sub = parser.add_subparsers(dest="vm_command", metavar="COMMAND", required=True)

    def add(name: str, handler: Any, help: str, *, named: bool = True, json_out: bool = True,
            wait: bool = False) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help)
        if named:
            command.add_argument("name", help="the VM")
        if json_out:
            command.add_argument("--json", action="store_true", help="print JSON")
        if wait:
            command.add_argument("--wait", action="store_true", help="follow the task until it ends")
        connection_options(command)
        command.set_defaults(vm_handler=handler)
        return command

    listing = add("list", vm_list, "VMs you may see, with their state", named=False)
    listing.add_argument("--owner", help="admins: only this user's VMs")
    listing.add_argument("--host", help="only VMs on this group host (`bhype hosts`)")
    add("info", vm_info, "one VM: state and full spec")

    create = add("create", vm_create, "create a VM from a template (a task)", wait=True)
    create.add_argument("-t", "--template", help="template name (`bhype template list`)")
    create.add_argument("--datastore", help="datastore (default: vm.default_datastore)")
    create.add_argument("--host", help="group host to create it on (default: placement picks one)")
    create.add_argument("--owner", help="admins: create it for this user")
    create.add_argument("--cloud-image", action="store_true",
                        help="write the template's cloud image onto the first disk, with a cloud-init seed")
    create.add_argument("--ssh-key", action="append", metavar="FILE|KEY",
                        help="public key for the image's default user (repeat; your authorized_keys are added too)")
    spec_options(create)

    for name, help in (("start", "start a VM (preflight first)"), ("stop", "graceful ACPI shutdown"),
                       ("restart", "graceful stop, then start"), ("force-stop", "power off at once"),
                       ("suspend", "save the VM's memory to disk and stop it; start resumes it")):
        action = add(name, vm_action, help, wait=True)
        action.set_defaults(action=name)
        if name in ("stop", "restart"):
            action.add_argument("--timeout", type=float, help="seconds before forcing (default: vm.stop_timeout)")
        if name == "suspend":
            action.add_argument("--timeout", type=float, help="seconds the save may take (default 600)")
        if name == "start":
            start_modes(action)
            action.add_argument("--discard-saved-state", action="store_true",
                                help="a suspended VM: drop its saved state and boot afresh")

    edit = add("edit", vm_edit, "change spec fields (most need the VM stopped)", wait=True)
    spec_options(edit)
    edit.add_argument("--unset", action="append", metavar="FIELD", help="remove a field (back to its default)")
    edit.add_argument("--allow-disk-removal", action="store_true", help="allow dropping disks (deletes their data)")

    destroy = add("destroy", vm_destroy, "destroy a stopped VM", wait=True)
    destroy.add_argument("--keep-disks", action="store_true", help="keep the disk images")
    destroy.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    show = add("show-command", vm_show_command, "print every host command a start would run (runs nothing)")
    show.add_argument("--platform", choices=["freebsd", "linux"], help="default: this host's")
    start_modes(show)

    console = add("console", vm_console, "attach to the serial console (on the VM host)", json_out=False)
    console.add_argument("--escape", default="~.", help="sequence that detaches (default: ~. after a newline)")

    from bhype_core.commands.autostart import add_commands

    add_commands(sub, connection_options)  # autostart, shutdown-all (issue 5)


def start_modes(parser: argparse.ArgumentParser) -> None:
    """``--install`` / ``--rescue``: what a start boots (``drivers/boot_plan.py``, issue 14)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--install", dest="mode", action="store_const", const="install",
                       help="boot the attached ISO once, then the disk (the ISO is detached after the first reboot)")
    group.add_argument("--rescue", dest="mode", action="store_const", const="rescue",
                       help="boot the attached ISO first on every boot, the disks attached for repair")


def spec_options(parser: argparse.ArgumentParser) -> None:
    """Options that set spec fields: shortcuts, ``--set field.sub=value`` and ``--spec FILE``."""
    parser.add_argument("--cpus", type=int, help="vCPUs")
    parser.add_argument("--memory", help="RAM, e.g. 2G")
    parser.add_argument("--disk", action="append", metavar="SIZE", help="a disk of SIZE (repeat; replaces the list)")
    parser.add_argument("--iso", help="ISO from the datastore's ISO folder, attached as CD")
    parser.add_argument("--description", help="free text")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE",
                        help="any spec field, dotted (graphics.vnc=true, boot.mode=uefi); JSON values allowed")
    parser.add_argument("--spec", metavar="FILE", help="JSON object of spec fields ('-' = stdin)")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen sub-command."""
    return args.vm_handler(args)


def command() -> CliCommand:
    """The ``bhype vm`` command record."""
    return CliCommand(name="vm", help="manage virtual machines", configure=configure, run=run)
