"""Built-in plugin ``core_storage``: the directory storage backend (sparse image files)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bhype_core.errors import ConfigError
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import StorageBackendEntry
from bhype_core.storage.directory import DirectoryStorage

DEFAULT_DIRECTORY = "datastore"  # under core.data_dir when a datastore gives no path


def directory_backend(runtime: Any, options: Mapping[str, Any]) -> DirectoryStorage:
    """Open a directory datastore.

    :param options: the datastore's table: ``name`` (set by the caller), ``path`` (absolute;
        default ``<core.data_dir>/datastore``).
    :raises ConfigError: the runner drives a remote host (this backend works on the worker's
        own file system), or ``path`` is not absolute.
    """
    name = str(options.get("name", "default"))
    target = runtime.settings.runner.target
    if target != "local":
        raise ConfigError(
            f"vm.datastores.{name}: the directory backend works on the worker's own file system, "
            f"but runner.target is {target!r}; use a backend that runs through the runner (zfs)"
        )
    path = options.get("path") or runtime.settings.core.data_dir / DEFAULT_DIRECTORY
    if not Path(path).is_absolute():
        raise ConfigError(f"vm.datastores.{name}.path: {path} must be an absolute path")
    return DirectoryStorage(Path(path), datastore=name)


@hookimpl
def bhype_register_storage_backends(register: Callable[[StorageBackendEntry], None]) -> None:
    """The ``directory`` backend."""
    register(StorageBackendEntry(
        name="directory",
        factory=directory_backend,
        description="sparse raw image files in a directory (any file system)",
    ))
