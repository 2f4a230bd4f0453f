"""One helper for a plugin's API sub-command: its parser with ``--json`` and the connection
options, and the handler the command's dispatcher calls."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bhype_core.commands.template import connection_options


def api_subcommand(sub: Any, name: str, handler: Callable[[argparse.Namespace], Any], help: str, *,
                   key: str, json_out: bool = True) -> argparse.ArgumentParser:
    """Add sub-command ``name`` to ``sub`` (an ``add_subparsers()`` result) that talks to the API.

    The parser gets ``--json`` (unless ``json_out`` is false), ``--url``/``--token``
    (:func:`~bhype_core.commands.template.connection_options`) and ``handler`` stored under
    ``key`` in the parsed namespace, where the plugin's top-level command finds it
    (``getattr(args, key)(args)``). The caller adds the command's own arguments to the result.
    """
    parser = sub.add_parser(name, help=help)
    if json_out:
        parser.add_argument("--json", action="store_true", help="print JSON")
    connection_options(parser)
    parser.set_defaults(**{key: handler})
    return parser
