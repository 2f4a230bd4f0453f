"""Small task kinds of the plugin: ``backup.delete_point``."""

from __future__ import annotations

from typing import Any

from bhype_backup.points import delete_point


def delete_point_task(context: Any, point: int) -> dict[str, Any]:
    """Task ``backup.delete_point``: the point's directory on its target, then its row."""
    result = delete_point(context.runtime, point, context.runner)
    context.log(f"deleted point {point} ({result['target']}:{result['path']})")
    return result
