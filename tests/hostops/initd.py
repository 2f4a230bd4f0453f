"""Real sshd and rsync daemons as Debian init.d services for tests, on loopback ports.

Each test gets its own scripts (``/etc/init.d/bht-<random>-ssh`` …) that run the system's
``/usr/sbin/sshd``/``/usr/bin/rsync`` with a config, port and pidfile of the test's own, so the
real ``service``/``update-rc.d`` tools act on real daemons without touching the machine's own
sshd, MariaDB or Redis (start-stop-daemon matches by this pidfile only). Removed afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bhype_core.testing.ports import free_port

INIT_DIR = Path("/etc/init.d")

SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:    $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: bHype test {what} on 127.0.0.1:{port}
### END INIT INFO
# A test instance: {daemon} with its own config and pidfile (start-stop-daemon(8) matches both).
PIDFILE={pidfile}
case "$1" in
  start)
    start-stop-daemon --start --quiet --oknodo --pidfile "$PIDFILE" --exec {daemon} -- {args}
    ;;
  stop)
    start-stop-daemon --stop --quiet --oknodo --retry TERM/10/KILL/5 --pidfile "$PIDFILE" --exec {daemon}
    rm -f "$PIDFILE"
    ;;
  reload)
    start-stop-daemon --stop --quiet --signal HUP --pidfile "$PIDFILE" --exec {daemon}
    ;;
  restart)
    "$0" stop && "$0" start
    ;;
  status)
    start-stop-daemon --status --pidfile "$PIDFILE" --exec {daemon}
    status=$?
    if [ "$status" = 0 ]; then echo "{name} is running"; else echo "{name} is not running"; fi
    exit "$status"
    ;;
  *)
    echo "Usage: $0 {{start|stop|reload|restart|status}}" >&2
    exit 3
    ;;
esac
"""


@dataclass
class InitService:
    """One test daemon behind an init.d script."""

    script: str
    port: int
    pidfile: Path
    config: Path
    directory: Path
    extra: dict[str, Path] = field(default_factory=dict)

    def pid(self) -> int | None:
        """The daemon's pid if its pidfile names a live process."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def remove(self) -> None:
        """Stop the daemon (its own pidfile only) and remove the script and its links."""
        subprocess.run([str(INIT_DIR / self.script), "stop"], check=False, capture_output=True)
        (INIT_DIR / self.script).unlink(missing_ok=True)
        subprocess.run(["update-rc.d", "-f", self.script, "remove"], check=False, capture_output=True)


def _install(name: str, what: str, daemon: str, args: str, port: int, pidfile: Path) -> None:
    path = INIT_DIR / name
    path.write_text(SCRIPT.format(name=name, what=what, daemon=daemon, args=args, port=port, pidfile=pidfile))
    path.chmod(0o755)


def sshd_service(directory: Path) -> InitService:
    """An init.d script for sshd on a free loopback port (key auth only, its own host key)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"bht-{secrets.token_hex(4)}-ssh"
    port = free_port()
    key = directory / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pidfile = directory / "sshd.pid"
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}", f"HostKey {key}", f"PidFile {pidfile}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "AllowUsers nobody-bht", "",
    ]))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd(8) insists on its privilege separation dir
    _install(name, "sshd", shutil.which("sshd") or "/usr/sbin/sshd", f'-f "{config}"', port, pidfile)
    return InitService(name, port, pidfile, config, directory)


def rsyncd_service(directory: Path, config: Path, pidfile: Path) -> InitService:
    """An init.d script for ``rsync --daemon --config CONFIG`` (the port and pidfile are in the
    config bHype writes; rsync(1) detaches and writes ``pid file`` itself)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"bht-{secrets.token_hex(4)}-rsync"
    port = free_port()
    _install(name, "rsync daemon", shutil.which("rsync") or "/usr/bin/rsync", f'--daemon --config "{config}"',
             port, pidfile)
    return InitService(name, port, pidfile, config, directory)
