"""``bhype plugins``: every plugin with distribution, version, status and hooks."""

from __future__ import annotations

import json
from collections.abc import Sequence

from bhype_core.plugins import PluginInfo
from bhype_core.runtime import Runtime

COLUMNS = ("name", "distribution", "version", "status", "reason", "hooks")
HOOK_PREFIX = "bhype_"


def format_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def plugin_rows(infos: Sequence[PluginInfo]) -> list[list[str]]:
    """One table row per plugin; hook names lose their common ``bhype_`` prefix."""
    return [
        [
            info.name,
            info.distribution or "-",
            info.version or "-",
            info.status,
            info.reason or "-",
            ", ".join(hook.removeprefix(HOOK_PREFIX) for hook in info.hooks) or "-",
        ]
        for info in infos
    ]


def show_plugins(runtime: Runtime, as_json: bool = False) -> str:
    """The text ``bhype plugins [--json]`` prints."""
    infos = runtime.pm.infos()
    if as_json:
        return json.dumps([info.to_dict() for info in infos], indent=2)
    if not infos:
        return "no plugins"
    return format_table(plugin_rows(infos), COLUMNS)
