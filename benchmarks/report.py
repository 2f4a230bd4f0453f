"""Shared helpers for benchmark scripts: percentiles and a plain-text table."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``samples`` by nearest rank."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(samples: Sequence[float]) -> dict[str, str]:
    """p50/p99/mean of durations given in seconds, formatted in milliseconds."""
    return {
        "n": str(len(samples)),
        "p50 ms": f"{percentile(samples, 50) * 1000:.2f}",
        "p99 ms": f"{percentile(samples, 99) * 1000:.2f}",
        "mean ms": f"{statistics.fmean(samples) * 1000:.2f}",
    }


def print_table(title: str, rows: Iterable[dict[str, str]]) -> None:
    """Print rows (dicts with the same keys) as an aligned table under a title."""
    rows = list(rows)
    print(f"\n## {title}")
    if not rows:
        print("(no rows)")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
