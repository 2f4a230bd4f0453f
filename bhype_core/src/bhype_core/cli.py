"""The ``bhype`` command line: core sub-commands plus every plugin's CLI commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bhype_core import __version__
from bhype_core.errors import BhypeError, PluginError
from bhype_core.runtime import Runtime

Handler = Callable[[argparse.Namespace], int]


def _print(text: str) -> int:
    print(text)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``bhype serve``: the API (and the in-process worker on the embedded queue)."""
    from bhype_core.commands.serve import serve

    return serve(args.runtime, host=args.host, port=args.port)


def cmd_worker(args: argparse.Namespace) -> int:
    """``bhype worker``: the task consumer, until a signal stops it."""
    from bhype_core.tasks.worker import run_worker

    run_worker(args.runtime, workers=args.workers)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """``bhype plugins [--json]``: every plugin with version, status and hooks."""
    from bhype_core.commands.plugins import show_plugins

    return _print(show_plugins(args.runtime, as_json=args.json))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """``bhype db upgrade``: apply every pending migration, printing each."""
    from bhype_core.db.migrate import upgrade

    applied = upgrade(args.runtime)
    for revision in applied:
        print(f"applied {revision}")
    print(f"database is up to date ({len(applied)} migration(s) applied)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``bhype doctor [--json]``: host prerequisites; exit 1 when a required one is missing."""
    from bhype_core.commands.doctor import doctor

    text, status = doctor(args.runtime, as_json=args.json)
    print(text)
    return status


def cmd_config_show(args: argparse.Namespace) -> int:
    """``bhype config show [--json]``: effective settings with their source file."""
    from bhype_core.commands.config import show_config

    return _print(show_config(args.runtime.settings, as_json=args.json))


def _core_commands(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the API (and, on the embedded queue, a worker)")
    serve.add_argument("--host", help="listen address (default: api.host)")
    serve.add_argument("--port", type=int, help="listen port (default: api.port)")
    serve.set_defaults(handler=cmd_serve)

    worker = sub.add_parser("worker", help="run the task worker until SIGINT (graceful) or SIGTERM")
    worker.add_argument("--workers", type=int, help="worker threads (default: queue.workers)")
    worker.set_defaults(handler=cmd_worker)

    plugins = sub.add_parser("plugins", help="list plugins: version, status, hooks")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=cmd_plugins)

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    db_sub.add_parser("upgrade", help="apply every pending migration").set_defaults(handler=cmd_db_upgrade)

    doctor = sub.add_parser("doctor", help="check the host's prerequisites (read-only)")
    doctor.add_argument("--json", action="store_true", help="print JSON")
    doctor.set_defaults(handler=cmd_doctor)

    config = sub.add_parser("config", help="configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = config_sub.add_parser("show", help="effective settings, their source file, unknown sections")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_config_show)

    from bhype_core.commands.login import configure as configure_login

    configure_login(sub)  # bhype login / bhype logout

    from bhype_core.commands.host import configure as configure_host

    configure_host(sub)  # bhype host init


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _plugin_commands(sub: argparse._SubParsersAction, runtime: Runtime) -> None:
    catalog = runtime.registry.cli_commands
    for name in catalog.names():
        command = catalog[name]
        words = name.split(" ")
        target: argparse._SubParsersAction | None = sub
        if len(words) == 2:  # "host update": under a core command that has sub-commands
            parent = sub.choices.get(words[0])
            target = _subcommands(parent) if parent is not None else None
            if target is None:
                raise PluginError(f"plugin {catalog.plugin_of(name)!r} registers CLI command {name!r}, "
                                  f"but there is no command {words[0]!r} with sub-commands")
        elif len(words) != 1:
            raise PluginError(f"plugin {catalog.plugin_of(name)!r} registers CLI command {name!r}: "
                              "one word, or two to nest under a core command")
        assert target is not None
        if words[-1] in target.choices:
            raise PluginError(
                f"plugin {catalog.plugin_of(name)!r} registers CLI command {name!r}, which already exists"
            )
        parser = target.add_parser(words[-1], help=command.help)
        command.configure(parser)
        parser.set_defaults(handler=command.run)


def build_parser(runtime: Runtime) -> argparse.ArgumentParser:
    """The full parser: global options, core sub-commands, then each plugin's commands."""
    parser = argparse.ArgumentParser(prog="bhype", description="bHype: a bhyve/QEMU VM host")
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help="configuration file (default: BHYPE_CONFIG or the platform default)")
    parser.add_argument("--version", action="version", version=f"bhype {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _core_commands(sub)
    _plugin_commands(sub, runtime)
    return parser


def _load_runtime(argv: Sequence[str]) -> Runtime:
    """Settings and plugins first: plugin commands are part of the parser."""
    from bhype_core.config import load_settings
    from bhype_core.runtime import build_runtime

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    return build_runtime(load_settings(known.config))


def one_line(message: str) -> str:
    """A message on one line (a command's stderr tail may span several)."""
    return " | ".join(line.strip() for line in message.splitlines() if line.strip())


def quiet_logging() -> None:
    """A command prints its own answer, and its failures as ``bhype: error: …``: bHype's log
    (host-command audit lines, warnings the answer already shows, like a probe that timed out,
    and the log lines of tasks it follows) stays off the terminal. Without a handler, Python
    would print every warning and error there."""
    logger = logging.getLogger("bhype")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bhype`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Errors bHype expects (:class:`BhypeError`: bad configuration, failed host command, plugin
    trouble) print ``bhype: error: <message>`` on one line and exit 1, without a traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        runtime = _load_runtime(argv)
        args = build_parser(runtime).parse_args(argv)
        if args.command in ("serve", "worker"):
            from bhype_core.tasks.worker import configure_logging

            configure_logging(runtime.settings.core.log_level)
        else:
            quiet_logging()
        args.runtime = runtime
        handler: Handler = args.handler
        return handler(args)
    except BhypeError as exc:
        print(f"bhype: error: {one_line(exc.message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
