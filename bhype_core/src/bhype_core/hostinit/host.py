"""The whole host init plan for one platform, read through the runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.hostinit.accounts import Ask, plan_accounts
from bhype_core.hostinit.database import plan_database
from bhype_core.hostinit.files import plan_directories, plan_pam
from bhype_core.hostinit.kernel import not_applicable, plan_modules, plan_tunables
from bhype_core.hostinit.layout import Layout
from bhype_core.hostinit.plan import Step
from bhype_core.hostinit.zfs import ZfsRequest, plan_zfs


def plan_host(platform: str, layout: Layout, ask: Ask,
              database: Callable[[], Step] | None = None, zfs: ZfsRequest | None = None) -> list[Step]:
    """Every step in the order they must be applied: kernel first, then accounts (the
    directories' group must exist before ``install -g``), directories, PAM, database, and ZFS
    when asked (``zfs``)."""
    steps = [plan_modules(ask), plan_tunables(ask)] if platform == "freebsd" else not_applicable()
    steps += [plan_accounts(platform, layout, ask), plan_directories(platform, layout, ask),
              plan_pam(platform, layout, ask)]
    if database is not None:
        steps.append(database())
    if zfs is not None:
        steps.append(plan_zfs(platform, zfs, ask))
    return steps


def asker(runner: Any) -> Ask:
    """Read-only queries through ``runner`` that never raise (doctor's probe)."""
    from bhype_core.builtins.doctor_probe import probe

    return lambda argv: probe(runner, argv)


def plan_from_settings(settings: Any, platform: str, runner: Any, *, check_database: bool = True,
                       runtime: Any = None, zfs: ZfsRequest | None = None) -> list[Step]:
    """The plan for this configuration and host; with ``runtime``, a configured (MariaDB)
    database's pending migrations become a change; with ``zfs``, the ZFS step."""
    from bhype_core.hostinit.layout import layout_from_settings

    layout = layout_from_settings(settings, platform)
    pending = None
    if runtime is not None:
        from bhype_core.db.migrate import pending as pending_migrations

        pending = lambda: pending_migrations(runtime)  # noqa: E731 (deferred: needs a reachable server)
    database = (lambda: plan_database(settings, pending=pending)) if check_database else None
    return plan_host(platform, layout, asker(runner), database, zfs)
