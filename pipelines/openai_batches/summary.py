"""The lines a load ends with: one per project, a total, and one `error:` line per failure."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import LoadResult


def print_summary(result: LoadResult, label: str = "load") -> None:
    for o in result.outcomes:
        c = o.stats.counts
        if o.error:
            # Nothing of a failed project was loaded: its counts would only say what it had read.
            print(f"{label} [{o.name}] FAILED after {o.stats.requests} requests: nothing loaded")
            continue
        print(
            f"{label} [{o.name}] ok: {o.stats.requests} requests, {c.new} new, "
            f"{c.updated} updated, {c.still_open} still open" + (f", {c.gone} gone" if c.gone else "")
        )
    if result.organization is not None:
        from .organization_run import summary_lines

        for line in summary_lines(result.organization, label):
            print(line)
    loaded = [o for o in result.outcomes if not o.error]
    total_new = sum(o.stats.counts.new for o in loaded)
    total_upd = sum(o.stats.counts.updated for o in loaded)
    total_open = sum(o.stats.counts.still_open for o in loaded)
    print(
        f"{label}: {result.requests} requests, {total_new} new, {total_upd} updated, {total_open} still open, "
        f"{result.elapsed:.1f}s -> {result.db_path}"
    )
    # One `error:` line per failure: the run's own (the database before any project), then each failed
    # project's (a load step that failed says so in its project's line).
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    for o in result.outcomes:
        if o.error:
            print(f"error: project {o.name}: {o.error}", file=sys.stderr)
    if result.organization is not None and result.organization.error:
        print(f"error: organization (Admin API): {result.organization.error}", file=sys.stderr)


__all__ = ["print_summary"]
