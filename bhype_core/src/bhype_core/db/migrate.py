"""Alembic driven programmatically: every registered ModelSet is its own migration branch."""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

from bhype_core.db.locks import exclusive_transaction
from bhype_core.errors import PluginError
from bhype_core.registry import ModelSet

# env.py and script.py.mako live here; the core's own revisions are in versions/ beneath it.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CORE_VERSIONS_DIR = MIGRATIONS_DIR / "versions"

# One version table for all branches (one row per branch head), named so it is recognisably
# bHype's in a shared MariaDB database.
VERSION_TABLE = "bhype_alembic_version"

# How long a second `bhype db upgrade` waits for the first one on MariaDB before giving up.
LOCK_TIMEOUT = 120

# Alembic keeps the running migration's context in module globals (alembic.context, alembic.op),
# so within one process only one thread may migrate at a time, whatever the database.
_ALEMBIC_LOCK = threading.Lock()


def model_sets(registry: Any) -> list[ModelSet]:
    """The registered model sets, checked: a set with tables needs a migrations directory."""
    catalog = registry.models
    sets = list(catalog)
    for model_set in sets:
        owner = catalog.plugin_of(model_set.name)
        if model_set.migrations is None:
            if model_set.models:
                raise PluginError(
                    f"model set {model_set.name!r} of plugin {owner!r} declares tables but no migrations"
                )
            continue
        if not Path(model_set.migrations).is_dir():
            raise PluginError(
                f"model set {model_set.name!r} of plugin {owner!r}: migrations directory "
                f"{model_set.migrations} does not exist"
            )
    return sets


def target_metadata(sets: list[ModelSet]) -> MetaData:
    """A MetaData holding exactly the registered sets' tables (SQLModel's global metadata may
    also hold tables of modules that were imported but are not loaded as plugins)."""
    metadata = MetaData()
    for model_set in sets:
        for model in model_set.models:
            model.__table__.to_metadata(metadata)  # type: ignore[attr-defined]
    return metadata


def make_config(registry: Any, connection: Connection | None = None, **attributes: Any) -> Config:
    """An Alembic ``Config`` built in code (there is no alembic.ini).

    ``script_location`` is the core's migrations directory (its env.py serves every branch);
    ``version_locations`` is every registered set's migrations directory. env.py takes the
    connection, target metadata and callbacks from ``config.attributes``.
    """
    sets = model_sets(registry)
    locations = [str(Path(s.migrations).resolve()) for s in sets if s.migrations is not None]
    config = Config()
    # set_main_option goes through configparser interpolation: a "%" in a path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(locations).replace("%", "%%"))
    config.attributes.update(connection=connection, target_metadata=target_metadata(sets), **attributes)
    config.attributes["bhype_locations"] = locations
    return config


def script_directory(registry: Any) -> ScriptDirectory:
    """All registered migrations, with each branch's base checked for its branch label."""
    config = make_config(registry)
    if not config.attributes["bhype_locations"]:
        raise PluginError("no plugin registers database migrations (is core_models disabled?)")
    try:
        script = ScriptDirectory.from_config(config)
        revisions = list(script.walk_revisions())
    except AlembicCommandError as exc:
        raise PluginError(f"database migrations are inconsistent: {exc}") from exc
    except KeyError as exc:  # Alembic's answer to a depends_on naming no known revision
        raise PluginError(
            f"a migration depends on revision {exc.args[0]!r}, which no loaded plugin provides "
            "(is the plugin that owns it installed and enabled?)"
        ) from exc
    for model_set in model_sets(registry):
        if model_set.migrations is None:
            continue
        directory = Path(model_set.migrations).resolve()
        for revision in revisions:
            if Path(revision.path).resolve().parent == directory and revision.is_base:
                if model_set.name not in revision.branch_labels:
                    raise PluginError(
                        f"model set {model_set.name!r}: base migration {Path(revision.path).name} "
                        f"must declare branch_labels = ({model_set.name!r},)"
                    )
    return script


def _exclusive(engine: Engine) -> AbstractContextManager[Connection]:
    """One connection in one transaction, holding a lock so two upgraders never interleave."""
    return exclusive_transaction(engine, "migrate", LOCK_TIMEOUT, "another database upgrade")


def upgrade(runtime: Any) -> list[str]:
    """Apply every pending migration of every registered model set to ``runtime.engine``.

    All branches go to their heads in one transaction (on SQLite a failure leaves nothing
    behind; MariaDB commits each DDL statement by itself). Running it again is a no-op.

    :returns: the revision ids applied, in order (empty when already up to date).
    :raises PluginError: a model set's migrations are missing or inconsistent.
    :raises Conflict: another upgrade held the MariaDB lock too long.
    """
    script_directory(runtime.registry)  # validate before touching the database
    applied: list[str] = []

    def remember(*, step: Any, **_: Any) -> None:
        if step.is_upgrade:
            applied.extend(step.up_revision_ids)

    with _ALEMBIC_LOCK, _exclusive(runtime.engine) as connection:
        config = make_config(runtime.registry, connection, on_version_apply=remember)
        try:
            command.upgrade(config, "heads")
        except AlembicCommandError as exc:
            raise PluginError(f"database upgrade failed: {exc}") from exc
    return applied


def _context(connection: Connection, **opts: Any) -> MigrationContext:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, **opts})


def current(runtime: Any) -> list[str]:
    """The revision ids recorded as applied heads in the database (empty on a fresh one)."""
    with runtime.engine.connect() as connection:
        return sorted(_context(connection).get_current_heads())


def pending(runtime: Any) -> list[str]:
    """The revision ids :func:`upgrade` would apply, in the order it would apply them."""
    script = script_directory(runtime.registry)
    heads = tuple(current(runtime))
    try:
        revisions = list(script.revision_map.iterate_revisions("heads", heads, implicit_base=True))
    except AlembicCommandError as exc:
        raise PluginError(f"database revisions {heads} are unknown to the loaded plugins: {exc}") from exc
    return [revision.revision for revision in reversed(revisions)]


def drift(runtime: Any, all_tables: bool = False) -> list[Any]:
    """Differences between the database and the registered models (Alembic autogenerate).

    Empty when models and migrations agree. By default tables no registered model knows
    (another application's, a removed plugin's) are ignored; ``all_tables`` reports them too.
    """
    metadata = target_metadata(model_sets(runtime.registry))
    opts: dict[str, Any] = {"compare_type": True}
    if not all_tables:
        opts["include_name"] = lambda name, kind, parent: kind != "table" or name in metadata.tables
    with runtime.engine.connect() as connection:
        return list(compare_metadata(_context(connection, **opts), metadata))
