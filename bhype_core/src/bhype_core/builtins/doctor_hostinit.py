"""The ``host-init`` doctor check: would ``bhype host init`` change anything?

Reuses host init's planners (read-only queries only) so doctor and host init never disagree.
"""

from __future__ import annotations

from typing import Any

from bhype_core.registry import CheckResult


def run_host_init(settings: Any) -> list[CheckResult]:
    """One result per step: ok, or what host init would change and the command that fixes it."""
    from bhype_core.builtins.doctor import doctor_runner
    from bhype_core.host.platform import detect_platform
    from bhype_core.hostinit.host import plan_from_settings
    from bhype_core.hostinit.plan import count_changes

    platform = detect_platform(settings.core.platform)
    steps = plan_from_settings(settings, platform, doctor_runner(settings), check_database=False)
    results = []
    for step in steps:
        name = f"host init: {step.name}"
        if step.done:
            results.append(CheckResult(name, True, "; ".join(step.notes) or "nothing to change"))
            continue
        detail = "; ".join([*(c.summary for c in step.changes), *step.problems])
        fix = "bhype host init --yes (as root)" if step.changes else "see the detail"
        # Optional (warn): a development checkout runs without host init; the prerequisites
        # bHype cannot run without are the other checks' business.
        results.append(CheckResult(name, False, detail, fix, optional=True))
    total = count_changes(steps)
    summary = f"host init would change {total} thing(s)" if total else "host init would change nothing"
    results.append(CheckResult("host init", total == 0, summary, "bhype host init --yes (as root)" if total else "",
                               optional=True))
    return results
