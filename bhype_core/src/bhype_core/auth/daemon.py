"""Run the privileged authentication daemon in the foreground (``python -m bhype_core.auth.daemon``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from bhype_core.auth.privileged import PrivilegedServer
from bhype_core.auth.settings import AuthSettings
from bhype_core.config import Settings, load_settings
from bhype_core.errors import BhypeError, ConfigError

log = logging.getLogger("bhype.auth.daemon")


def auth_settings(settings: Settings) -> AuthSettings:
    """The ``[auth]`` section: the registered section once the core declares it, else validated
    here from the raw file (so the daemon runs before that wiring exists)."""
    core_section = getattr(settings, "auth", None)  # if [auth] becomes a core section
    if isinstance(core_section, AuthSettings):
        return core_section
    try:
        return settings.section("auth")
    except ConfigError:
        pass
    try:
        return AuthSettings.model_validate(settings.raw.get("auth", {}))
    except ValidationError as exc:
        problems = "; ".join(f"auth.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(problems) from None


def build_parser() -> argparse.ArgumentParser:
    """Command-line options; each overrides the matching ``[auth]`` key."""
    parser = argparse.ArgumentParser(prog="bhype-auth-daemon", description=__doc__)
    parser.add_argument(
        "--config", type=Path, help="bhype.toml (default: BHYPE_CONFIG or the platform default)"
    )
    parser.add_argument("--socket", type=Path, help="override auth.privileged_socket")
    parser.add_argument("--group", help="override auth.privileged_socket_group")
    parser.add_argument("--api-user", help="override auth.api_user (the only uid answered)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        auth = auth_settings(load_settings(args.config))
        overrides = {
            "privileged_socket": args.socket,
            "privileged_socket_group": args.group,
            "api_user": args.api_user,
        }
        auth = auth.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        if os.geteuid() != 0:
            log.warning("not running as root: PAM cannot check other users' passwords")
        server = PrivilegedServer.from_settings(auth)
    except BhypeError as exc:
        print(f"bhype-auth-daemon: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bhype-auth-daemon: cannot start: {exc}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("listening on %s for uid(s) %s", auth.privileged_socket, sorted(server.allowed_uids))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
