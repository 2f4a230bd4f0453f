"""Migrations: every ModelSet's branch applies on SQLite and MariaDB and matches its models."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_plugins import fakedb, fakedb_broken
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from bhype_core.builtins import models as core_models
from bhype_core.db import migrate
from bhype_core.errors import PluginError
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import ModelSet
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.testing import make_settings

CORE_TABLES = {"core_host_command", "core_audit_event"}


@pytest.fixture
def runtime_for(tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """``runtime_for(url, *plugins)`` builds a runtime on ``url`` with exactly those plugins."""
    runtimes: list[Runtime] = []

    def build(url: str, *plugins: object) -> Runtime:
        pm = make_plugin_manager(
            load_entrypoints=False,
            plugins=[(getattr(p, "__name__", repr(p)).rpartition(".")[2], p) for p in plugins],
        )
        runtime = build_runtime(make_settings(tmp_path / "data", core={"database_url": url}), pm)
        runtimes.append(runtime)
        return runtime

    yield build
    for runtime in runtimes:
        if "engine" in runtime.__dict__:
            runtime.engine.dispose()


CORE_REVISIONS = sorted(f"core_{path.name[:4]}" for path in migrate.CORE_VERSIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))


def in_order(applied: list[str], *branches: list[str]) -> bool:
    """True when ``applied`` holds exactly the given branches, each in its own order."""
    return sorted(applied) == sorted(sum(branches, [])) and all(
        [rev for rev in applied if rev in branch] == branch for branch in branches
    )


def tables(runtime: Runtime) -> set[str]:
    return set(inspect(runtime.engine).get_table_names())


def test_core_upgrade_applies_once(database_url: str, runtime_for: Callable[..., Runtime]) -> None:
    runtime = runtime_for(database_url, core_models)
    assert migrate.current(runtime) == []
    assert migrate.pending(runtime) == CORE_REVISIONS

    assert migrate.upgrade(runtime) == CORE_REVISIONS

    assert CORE_TABLES <= tables(runtime)
    assert migrate.VERSION_TABLE in tables(runtime)
    assert migrate.current(runtime) == CORE_REVISIONS[-1:]
    assert migrate.pending(runtime) == []
    # A second upgrade is a no-op: nothing applied, nothing changed.
    before = tables(runtime)
    assert migrate.upgrade(runtime) == []
    assert tables(runtime) == before
    assert migrate.current(runtime) == CORE_REVISIONS[-1:]


def _upgrade_in_child(url: str, data_dir: str, start: Any, results: Any) -> None:
    """Child process: build a runtime on ``url`` and report what its upgrade applied."""
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models)])
    runtime = build_runtime(make_settings(Path(data_dir), core={"database_url": url}), pm)
    start.wait(60)
    try:
        results.put(("ok", migrate.upgrade(runtime)))
    except Exception as exc:
        results.put(("error", repr(exc)))
    finally:
        runtime.engine.dispose()


def test_concurrent_upgrades_apply_once(database_url: str, tmp_path: Path) -> None:
    # Two processes starting at once (serve and worker) each run the upgrade: the database
    # lock makes one apply the migration and the other find nothing left to do.
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    results = context.Queue()
    children = [
        context.Process(target=_upgrade_in_child, args=(database_url, str(tmp_path / name), start, results))
        for name in ("serve", "worker")
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
    assert sorted(outcomes) == [("ok", []), ("ok", CORE_REVISIONS)]


def test_upgrades_in_threads_are_serialised(database_url: str, runtime_for: Callable[..., Runtime]) -> None:
    # Alembic keeps its migration context in module globals: two threads must take turns.
    runtimes = [runtime_for(database_url, core_models) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[list[str]] = []

    def run(runtime: Runtime) -> None:
        start.wait()
        results.append(migrate.upgrade(runtime))

    threads = [threading.Thread(target=run, args=(runtime,)) for runtime in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [[], CORE_REVISIONS]


def test_migrated_schema_matches_models(database_url: str, runtime_for: Callable[..., Runtime]) -> None:
    runtime = runtime_for(database_url, core_models, fakedb)
    migrate.upgrade(runtime)
    # Alembic's autogenerate comparison: migrations and SQLModel models describe the same schema.
    assert migrate.drift(runtime, all_tables=True) == []


def test_drift_is_detected(database_url: str, runtime_for: Callable[..., Runtime]) -> None:
    runtime = runtime_for(database_url, core_models)
    migrate.upgrade(runtime)
    with runtime.engine.begin() as connection:
        connection.execute(text("ALTER TABLE core_audit_event ADD COLUMN stray INTEGER"))
        connection.execute(text("CREATE TABLE unrelated_table (id INTEGER PRIMARY KEY)"))

    differences = migrate.drift(runtime, all_tables=True)
    assert ("remove_column", "core_audit_event", "stray") in [
        (d[0], d[2], d[3].name) for d in differences if d[0] == "remove_column"
    ]
    assert "unrelated_table" in [d[1].name for d in differences if d[0] == "remove_table"]
    # By default tables no model knows are somebody else's business; the stray column is not.
    default = migrate.drift(runtime)
    assert [d[0] for d in default] == ["remove_column"]


@pytest.mark.mariadb
def test_type_drift_is_detected_on_mariadb(
    fresh_mariadb_url: str, runtime_for: Callable[..., Runtime]
) -> None:
    runtime = runtime_for(fresh_mariadb_url, core_models)
    migrate.upgrade(runtime)
    with runtime.engine.begin() as connection:
        # What a migration that forgot the MEDIUMTEXT variant would have created.
        connection.execute(text("ALTER TABLE core_host_command MODIFY argv TEXT NOT NULL"))
    # Column changes come as one list per column.
    changes = [c for diff in migrate.drift(runtime) for c in (diff if isinstance(diff, list) else [diff])]
    assert [(c[0], c[2], c[3]) for c in changes] == [("modify_type", "core_host_command", "argv")]


def test_plugin_branch_upgrades_with_core(database_url: str, runtime_for: Callable[..., Runtime]) -> None:
    runtime = runtime_for(database_url, core_models, fakedb)
    assert in_order(migrate.pending(runtime), CORE_REVISIONS, ["fakedb_0001"])

    assert in_order(migrate.upgrade(runtime), CORE_REVISIONS, ["fakedb_0001"])

    assert CORE_TABLES | {"fakedb_widget"} <= tables(runtime)
    foreign_keys = inspect(runtime.engine).get_foreign_keys("fakedb_widget")
    assert [(fk["referred_table"], fk["constrained_columns"]) for fk in foreign_keys] == [
        ("core_host_command", ["host_command_id"])
    ]
    assert migrate.pending(runtime) == []
    assert migrate.upgrade(runtime) == []


def test_plugin_installed_later_gets_only_its_branch(
    database_url: str, runtime_for: Callable[..., Runtime]
) -> None:
    assert migrate.upgrade(runtime_for(database_url, core_models)) == CORE_REVISIONS

    later = runtime_for(database_url, core_models, fakedb)
    assert migrate.pending(later) == ["fakedb_0001"]
    assert migrate.upgrade(later) == ["fakedb_0001"]
    assert "fakedb_widget" in tables(later)
    assert migrate.drift(later, all_tables=True) == []


def test_failed_migration_leaves_nothing_on_sqlite(
    sqlite_url: str, runtime_for: Callable[..., Runtime]
) -> None:
    runtime = runtime_for(sqlite_url, core_models, fakedb_broken)
    with pytest.raises(OperationalError, match="fakedb_broken_missing_table"):
        migrate.upgrade(runtime)
    # One transaction: the core tables created before the failure are gone as well.
    assert tables(runtime) == set()
    assert in_order(migrate.pending(runtime), CORE_REVISIONS, ["fakedb_broken_0001"])


def test_branch_without_its_dependency_is_refused(
    sqlite_url: str, runtime_for: Callable[..., Runtime]
) -> None:
    runtime = runtime_for(sqlite_url, fakedb)  # core_models not loaded: core_0001 is unknown
    with pytest.raises(PluginError, match="core_0001"):
        migrate.upgrade(runtime)
    assert tables(runtime) == set()


class TablesWithoutMigrations:
    """A plugin declaring tables but no migrations directory."""

    @hookimpl
    def bhype_register_models(self, register: Callable[[ModelSet], None]) -> None:
        register(ModelSet(name="nomig", models=(fakedb.Widget,), migrations=None))


def test_model_set_without_migrations_is_refused(
    sqlite_url: str, runtime_for: Callable[..., Runtime]
) -> None:
    runtime = runtime_for(sqlite_url, core_models, TablesWithoutMigrations())
    with pytest.raises(PluginError, match="'nomig'.*no migrations"):
        migrate.upgrade(runtime)


def test_base_migration_needs_its_branch_label(
    sqlite_url: str, runtime_for: Callable[..., Runtime], tmp_path: Path
) -> None:
    versions = tmp_path / "unlabelled"
    versions.mkdir()
    (versions / "0001_x.py").write_text(
        'revision = "unlabelled_0001"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n'
        "def upgrade():\n    pass\n"
    )

    class Unlabelled:
        @hookimpl
        def bhype_register_models(self, register: Callable[[ModelSet], None]) -> None:
            register(ModelSet(name="unlabelled", migrations=versions))

    runtime = runtime_for(sqlite_url, core_models, Unlabelled())
    with pytest.raises(PluginError, match=r"branch_labels = \('unlabelled',\)"):
        migrate.upgrade(runtime)
    assert tables(runtime) == set()


def test_nothing_registered_is_a_clear_error(
    sqlite_url: str, runtime_for: Callable[..., Runtime]
) -> None:
    with pytest.raises(PluginError, match="core_models"):
        migrate.upgrade(runtime_for(sqlite_url))


def test_core_models_entry_point_registers_the_core_branch() -> None:
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models)])
    registered: list[ModelSet] = []
    pm.hook.bhype_register_models(register=registered.append)
    [core] = registered
    assert core.name == "core"
    assert {model.__tablename__ for model in core.models} >= CORE_TABLES
    assert core.migrations == migrate.CORE_VERSIONS_DIR
    assert (core.migrations / "0001_core_initial.py").is_file()
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
