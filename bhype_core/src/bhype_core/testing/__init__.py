"""bHype's test kit, a pytest plugin (entry point ``pytest11: bhype``).

Plugin authors get the same fixtures the core's own tests use: an empty plugin manager, a way
to register fake plugins, settings in a temporary data directory, a runtime, and fixtures for
the real services (MariaDB, Redis, OpenSSH) bHype talks to. A service or guest the machine
lacks fails the test unless the run leaves it out by name (``--without PART``,
``--no-guests``: :mod:`bhype_core.testing.parts`). The guest images themselves are built by the
dev/test-only distribution ``bhype-testimages``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.config import Settings, apply_environment
from bhype_core.plugins import BhypePluginManager, make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.testing import parts
from bhype_core.testing.accounts import NO_ROLE_GROUPS, Roles, bhype_roles  # noqa: F401  (fixture export)
from bhype_core.testing.api_auth import act_as, token_headers  # noqa: F401  (helper export)
from bhype_core.testing.database import (  # noqa: F401  (fixture export)
    database_url,
    db_engine,
    db_session,
    fresh_mariadb_url,
    mariadb_databases,
    mariadb_url,
    sqlite_url,
)
from bhype_core.testing.guest_builds import pytest_collection_finish, pytest_sessionfinish  # noqa: F401  (hooks)
from bhype_core.testing.guest_image import tiny_guest  # noqa: F401  (fixture export)
from bhype_core.testing.parts import (  # noqa: F401  (hook export: --without PART, the "NOT TESTED" line)
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_deselected,
    pytest_terminal_summary,
)
from bhype_core.testing.private_servers import private_mariadb, private_redis  # noqa: F401  (fixture export)
from bhype_core.testing.queue import redis_prefix, redis_url, start_worker  # noqa: F401  (fixture export)
from bhype_core.testing.sshd import SshdServer, sshd_server  # noqa: F401  (fixture export)
from bhype_core.testing.users import LocalUser, LocalUsers, local_user  # noqa: F401  (fixture export)
from bhype_core.testing.zfs_guest import fresh_zfs_host, zfs_host  # noqa: F401  (fixture export)


def make_settings(data_dir: Path, **sections: dict) -> Settings:
    """Settings for a test: everything under ``data_dir``, plus the given section overrides.

    The roles map to groups no host has (:data:`~bhype_core.testing.accounts.NO_ROLE_GROUPS`),
    so the machine's own accounts never have a role in a test; give ``auth=`` (for example
    ``bhype_roles.auth_section()``) to a test that needs real admins or operators."""
    raw: dict = {"core": {"data_dir": str(data_dir)}, "auth": dict(NO_ROLE_GROUPS)}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return Settings(apply_environment(raw, {}), None)


@pytest.fixture
def plugin_manager() -> BhypePluginManager:
    """An empty plugin manager: no entry points, no built-ins. Register what the test needs."""
    return make_plugin_manager(load_entrypoints=False)


@pytest.fixture
def register_plugin(plugin_manager: BhypePluginManager) -> Iterator:
    """``register_plugin(obj, name=None)`` registers a (fake) plugin for this test only."""

    def register(plugin: object, name: str | None = None) -> object:
        label: str = name or getattr(plugin, "__name__", None) or repr(plugin)
        plugin_manager.register_plugin(plugin, label)
        if plugin_manager.blocked:
            raise AssertionError(f"plugin blocked: {plugin_manager.blocked}")
        return plugin

    yield register


@pytest.fixture
def bhype_settings(tmp_path: Path) -> Settings:
    """Settings with the data directory, SQLite database and SQLite queue under ``tmp_path``."""
    return make_settings(tmp_path / "data")


@pytest.fixture
def bhype_runtime(bhype_settings: Settings, plugin_manager: BhypePluginManager) -> Runtime:
    """A runtime over ``bhype_settings`` and the (initially empty) ``plugin_manager``.

    Register fake plugins with ``register_plugin`` *before* requesting this fixture.
    """
    return build_runtime(bhype_settings, plugin_manager)


MARKERS = {
    "mariadb": "needs the MariaDB server on 127.0.0.1:3306",
    "redis": "needs the Redis server on 127.0.0.1:6379",
    "sshd": "starts a real OpenSSH server on loopback",
    "slow": "takes more than a few seconds (real processes, venvs, guests)",
    "guest": "boots a QEMU guest under TCG or builds a guest image (--no-guests leaves them out)",
}


def pytest_configure(config: pytest.Config) -> None:
    """Declare the test kit's markers, so plugin repositories using --strict-markers work, and
    read ``--without``/``--no-guests`` (:mod:`bhype_core.testing.parts`)."""
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    parts.configure(config)
