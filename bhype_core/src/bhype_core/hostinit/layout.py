"""Who and where: the groups, the service account and the directories host init manages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The API user's own primary group. Not the operators' group "bhype": the data directory is
# root:<api user's primary group> 1770 (docs/configuration.md, "The data directory is private"),
# and operators must not read the database.
SERVICE_GROUP = "bhype-api"
LOG_DIR = Path("/var/log/bhype")


@dataclass(frozen=True)
class Directory:
    """A directory with the owner, group and mode bHype expects (mode with special bits)."""

    path: Path
    owner: str
    group: str
    mode: int
    why: str


@dataclass(frozen=True)
class Layout:
    """Everything host init creates, named once (tests use kit-named ``bht_…`` accounts)."""

    operators: str
    admins: str
    service_user: str
    service_group: str
    directories: tuple[Directory, ...]
    pam_path: Path
    pam_text: str
    root_group: str  # "wheel" on FreeBSD, "root" on Linux

    @property
    def groups(self) -> tuple[str, ...]:
        """Groups to create, in order (the service group first: the account needs it)."""
        return (self.service_group, self.operators, self.admins)


def layout_from_settings(settings: Any, platform: str) -> Layout:
    """The layout for this configuration: ``[auth]`` names the groups, the API user and the
    socket; ``[core] data_dir`` the data directory."""
    from bhype_core.auth.daemon import auth_settings
    from bhype_core.auth.pam import service_file_path, service_file_text

    auth = auth_settings(settings)
    admins = next((group for group in auth.admin_groups if group != "wheel"), "bhype-admin")
    operators = auth.operator_groups[0] if auth.operator_groups else "bhype"
    root_group = "wheel" if platform == "freebsd" else "root"
    return make_layout(
        platform, operators=operators, admins=admins, service_user=auth.api_user,
        data_dir=Path(settings.core.data_dir), run_dir=Path(auth.privileged_socket).parent,
        pam_path=service_file_path(auth.pam_service, platform=platform),
        pam_text=service_file_text(platform), root_group=root_group,
    )


def make_layout(platform: str, *, operators: str, admins: str, service_user: str, data_dir: Path,
                run_dir: Path, pam_path: Path, pam_text: str, root_group: str,
                service_group: str = SERVICE_GROUP, log_dir: Path = LOG_DIR,
                config_dir: Path | None = None) -> Layout:
    """A :class:`Layout` from explicit names and paths."""
    directories = [
        Directory(data_dir, "root", service_group, 0o1770,
                  "the data directory: the API user's files, root's entries protected by the sticky bit"),
        Directory(run_dir, "root", root_group, 0o755, "the privileged auth daemon's socket directory"),
        Directory(log_dir, "root", root_group, 0o750, "daemon(8)'s log files (0600, rotated by newsyslog)"),
    ]
    if config_dir is None and platform == "freebsd":
        config_dir = Path("/usr/local/etc/bhype")
    if config_dir is not None:
        directories.append(Directory(config_dir, "root", root_group, 0o755, "bhype.toml"))
    return Layout(operators, admins, service_user, service_group, tuple(directories), pam_path,
                  pam_text, root_group)
