"""The rsync daemon bHype configures: stored modules/users, and the task that writes the files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlmodel import select

from bhype_core.plugin_api import Conflict, Runtime, TaskContext, ValidationErrors, session, write_atomic
from bhype_hostops.models import HostopsRsyncModule, HostopsRsyncUser
from bhype_hostops.rsyncd_conf import RsyncdConfig, RsyncModule, render_config, render_secrets
from bhype_hostops.services import service_platform
from bhype_hostops.settings import HostopsSettings

APPLY_KIND = "hostops.rsyncd_apply"
GLOBAL_KEYS = ("pid file", "port", "address")  # a change here needs a restart, not just a new file


def _settings(runtime: Runtime) -> HostopsSettings:
    return runtime.settings.section("hostops")


def read_config(runtime: Runtime) -> tuple[list[RsyncModule], dict[str, str]]:
    """The stored modules and the users' passwords (for the worker only)."""
    with session(runtime) as db:
        modules = [RsyncModule.model_validate(row, from_attributes=True)
                   for row in db.exec(select(HostopsRsyncModule).order_by(HostopsRsyncModule.name))]
        users = {row.name: row.password for row in db.exec(select(HostopsRsyncUser))}
    return modules, users


def public_config(runtime: Runtime) -> dict[str, Any]:
    """What the API shows: the modules and the user names, never a password."""
    modules, users = read_config(runtime)
    settings = _settings(runtime)
    return {"modules": [module.model_dump() for module in modules], "users": sorted(users),
            "config_file": settings.rsyncd_config, "service": settings.rsyncd_service}


def save_config(runtime: Runtime, config: RsyncdConfig) -> None:
    """Replace the stored modules and users with ``config`` (one transaction). A user given
    without a password keeps the stored one.

    :raises ValidationErrors: a new user without a password.
    """
    with session(runtime, write=True) as db:
        stored = {row.name: row for row in db.exec(select(HostopsRsyncUser))}
        errors = [(f"users.{index}.password", "required for a new user")
                  for index, user in enumerate(config.users) if user.password is None and user.name not in stored]
        if errors:
            raise ValidationErrors(errors)
        for module_row in db.exec(select(HostopsRsyncModule)):
            db.delete(module_row)
        for name, user_row in stored.items():
            if name not in {user.name for user in config.users}:
                db.delete(user_row)
        db.flush()  # the unit of work inserts before it deletes: a kept module name would clash
        for user in config.users:
            row = stored.get(user.name) or HostopsRsyncUser(name=user.name, password="")
            if user.password is not None:
                row.password = user.password
            db.add(row)
        for module in config.modules:
            db.add(HostopsRsyncModule(**module.model_dump()))


def _global_lines(text: str) -> list[str]:
    head = text.split("\n[", 1)[0]
    return [line.strip() for line in head.splitlines() if line.split("=")[0].strip() in GLOBAL_KEYS]


def apply(context: TaskContext) -> dict[str, Any]:
    """Write rsyncd.conf and its secrets file (0600) from the stored configuration, atomically,
    after checking it, and make the running daemon use it."""
    runtime = context.runtime
    settings = _settings(runtime)
    modules, users = read_config(runtime)
    RsyncdConfig(modules=modules, users=[{"name": name} for name in users])  # the stored rows still agree
    missing = [module.path for module in modules if not os.path.isdir(module.path) or os.path.islink(module.path)]
    if missing:
        raise Conflict(f"module paths are not directories: {', '.join(missing)}; nothing was written")
    config_path, secrets_path = Path(settings.rsyncd_config), Path(settings.rsyncd_secrets)
    text = render_config(modules, pid_file=settings.rsyncd_pid_file, port=settings.rsyncd_port,
                         address=settings.rsyncd_address, secrets_file=str(secrets_path))
    try:
        before = config_path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        before = ""
    for directory in {config_path.parent, secrets_path.parent}:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    # Root owns both (the daemon refuses a secrets file others can read: "strict modes").
    owner = (0, 0) if os.geteuid() == 0 else None
    write_atomic(secrets_path, render_secrets(users).encode(), mode=0o600, owner=owner)
    context.log(f"wrote {secrets_path} (0600, {len(users)} user(s))")
    write_atomic(config_path, text.encode(), mode=0o644, owner=owner)
    context.log(f"wrote {config_path} ({len(modules)} module(s))")
    for line in text.splitlines():
        context.log("  " + line)
    platform = service_platform(runtime)
    name = settings.rsyncd_service
    restarted = False
    if not platform.status(name).running:
        context.log(f"{name} is not running: the new configuration applies when it starts")
    elif _global_lines(before) != _global_lines(text):
        context.log(f"the daemon's address, port or pid file changed: restarting {name}")
        platform.act(name, "restart", context.log)
        restarted = True
    else:
        # rsyncd.conf(5): "you should not send the rsync daemon a HUP signal to force it to
        # reread the rsyncd.conf file. The file is re-read on each client connection."
        context.log(f"{name} re-reads rsyncd.conf on each connection (rsyncd.conf(5)): no signal needed")
    return {"config_file": str(config_path), "modules": [module.name for module in modules],
            "users": sorted(users), "restarted": restarted}
