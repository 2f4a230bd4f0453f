"""Configuration: one TOML file, environment overrides, a validated section per package."""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from bhype_core.auth.settings import AuthSettings  # [auth] lives beside the identity code
from bhype_core.errors import ConfigError
from bhype_core.section import Section

__all__ = ["Section", "Settings", "CoreSettings", "ApiSettings", "QueueSettings", "RunnerSettings", "load_settings"]

FREEBSD_CONFIG_PATH = Path("/usr/local/etc/bhype/bhype.toml")
FREEBSD_DATA_DIR = Path("/var/db/bhype")
ENV_PREFIX = "BHYPE_"


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Where bHype looks for its file when neither ``--config`` nor ``BHYPE_CONFIG`` says."""
    if sys.platform.startswith("freebsd"):
        return FREEBSD_CONFIG_PATH
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bhype" / "bhype.toml"


def default_data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the embedded database, queue and VM files live by default."""
    if sys.platform.startswith("freebsd"):
        return FREEBSD_DATA_DIR
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "bhype"


class CoreSettings(Section):
    """``[core]``: what every bHype process needs."""

    platform: Literal["auto", "freebsd", "linux"] = "auto"
    driver: str = Field("auto", description="hypervisor driver name, or auto (bhyve on FreeBSD, qemu on Linux)")
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite file in data_dir")
    redis_url: str = Field("", description="redis://host:port/db for live state; empty = none")
    live_metrics_key: str = Field("bhype:monitor:current", min_length=1, max_length=200,
                                  description="the Redis key of the live metrics snapshot (when redis_url is set)")
    disabled_plugins: list[str] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'bhype.sqlite3'}"


class ApiSettings(Section):
    """``[api]``: where the web/API process listens."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses/networks of reverse proxies whose X-Forwarded-For/-Proto headers are "
        "believed (e.g. [\"127.0.0.1\"] behind a local nginx); empty = no proxy, headers ignored",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Each entry is an address or network (a "*" would trust every client's headers)."""
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value


class QueueSettings(Section):
    """``[queue]``: the huey task queue."""

    backend: Literal["auto", "sqlite", "redis", "memory"] = Field(
        "auto", description="auto = redis when core.redis_url is set, else sqlite"
    )
    name: str = "bhype"
    workers: int = Field(2, ge=1, le=64)
    sqlite_path: Path | None = None
    in_process_worker: bool = Field(
        True, description="bhype serve also runs a worker when the queue is embedded (sqlite/memory)"
    )


class RunnerSettings(Section):
    """``[runner]``: how host commands are run."""

    dry_run: bool = False
    default_timeout: float = Field(120.0, gt=0)
    target: str = Field("local", description="local, or ssh://user@host[:port] to drive a remote host")
    ssh_identity: Path | None = None
    ssh_options: list[str] = Field(default_factory=list)


CORE_SECTIONS: dict[str, type[Section]] = {
    "core": CoreSettings,
    "api": ApiSettings,
    "queue": QueueSettings,
    "runner": RunnerSettings,
    "auth": AuthSettings,
}


class Settings:
    """Validated configuration. Core sections are attributes; plugin sections come from
    :meth:`section` once :meth:`add_plugin_sections` has validated them."""

    def __init__(self, raw: dict[str, Any], source: Path | None) -> None:
        self.raw = raw
        self.source = source
        self.core: CoreSettings = _validate(CoreSettings, "core", raw.get("core", {}), source)
        self.api: ApiSettings = _validate(ApiSettings, "api", raw.get("api", {}), source)
        self.queue: QueueSettings = _validate(QueueSettings, "queue", raw.get("queue", {}), source)
        self.runner: RunnerSettings = _validate(RunnerSettings, "runner", raw.get("runner", {}), source)
        self.auth: AuthSettings = _validate(AuthSettings, "auth", raw.get("auth", {}), source)
        self._plugins: dict[str, BaseModel] = {}

    def add_plugin_sections(self, sections: Iterable[Any]) -> None:
        """Validate each registered :class:`~bhype_core.registry.SettingsSection`."""
        for section in sections:
            if section.name in CORE_SECTIONS:
                raise ConfigError(f"a plugin may not declare the core section [{section.name}]")
            self._plugins[section.name] = _validate(
                section.model, section.name, self.raw.get(section.name, {}), self.source
            )

    def section(self, name: str) -> Any:
        """A plugin's validated section (its model instance)."""
        try:
            return self._plugins[name]
        except KeyError:
            raise ConfigError(f"no plugin declares the settings section [{name}]") from None

    def unknown_sections(self) -> list[str]:
        """Tables in the file that no core part or loaded plugin reads (typos, removed plugins)."""
        known = set(CORE_SECTIONS) | set(self._plugins)
        return sorted(name for name in self.raw if name not in known)

    def to_dict(self) -> dict[str, Any]:
        """Every section with its effective values (``bhype config show``)."""
        result = {name: getattr(self, name).model_dump(mode="json") for name in CORE_SECTIONS}
        result.update({name: model.model_dump(mode="json") for name, model in self._plugins.items()})
        return result


def _validate(model: type[BaseModel], name: str, data: Any, source: Path | None) -> Any:
    where = str(source) if source else "defaults/environment"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{name}.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None


def parse_env_value(text: str) -> Any:
    """An environment value as TOML (``8081``, ``true``, ``["a","b"]``), else the plain string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``BHYPE_<SECTION>__<KEY>=value`` variables (and ``BHYPE_DISABLED_PLUGINS``)."""
    merged = {name: dict(values) if isinstance(values, dict) else values for name, values in raw.items()}
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        section, _, key = variable[len(ENV_PREFIX):].lower().partition("__")
        if section and key:
            merged.setdefault(section, {})[key] = parse_env_value(value)
    if environ.get("BHYPE_DISABLED_PLUGINS"):
        names = [n.strip() for n in environ["BHYPE_DISABLED_PLUGINS"].split(",") if n.strip()]
        core = merged.setdefault("core", {})
        core["disabled_plugins"] = sorted(set(core.get("disabled_plugins", [])) | set(names))
    return merged


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Read the file (``path``, else ``BHYPE_CONFIG``, else the platform default if it exists),
    overlay the environment and validate the core sections.

    A file named explicitly must exist; the default file may be absent (embedded defaults).
    """
    explicit = path or environ.get("BHYPE_CONFIG")
    file = Path(explicit) if explicit else default_config_path(environ)
    raw: dict[str, Any] = {}
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"{file}: configuration file not found")
    source = file if file.exists() else None
    merged = apply_environment(raw, environ)
    core = merged.setdefault("core", {})
    if isinstance(core, dict):
        # Resolve the default from the same environment the rest was read from.
        core.setdefault("data_dir", str(default_data_dir(environ)))
    return Settings(merged, source)
