"""The Host update page's values: the newest plan and the newest run (the page's script asks
for a new plan, starts, resumes or abandons runs through the API and follows their steps)."""

from __future__ import annotations

from typing import Any

from bhype_core.plugin_api import NotFound, UiRequest
from bhype_hostops.update import runs
from bhype_hostops.update.api import latest_plan
from bhype_hostops.update.cli import render_plan


def page_context(ui: UiRequest) -> dict[str, Any]:
    """``plan`` (newest plan task: state and plan), ``plan_text`` and ``run`` (newest run)."""
    try:
        plan = latest_plan(ui.runtime, ui.principal)
    except NotFound:
        plan = None
    run = runs.latest(ui.runtime)
    text = render_plan(plan["plan"]) if plan and plan.get("plan") else ""
    return {"plan": plan, "plan_text": text, "run": run.to_dict() if run else None}
