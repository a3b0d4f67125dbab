"""The lines a load ends with: one per project (its provider last, in parentheses), a total, and one `error:`
line per failure."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..load.runner import LoadOutcome
    from ..sources.ledger.counts import LedgerCounts


def print_summary(result: LoadOutcome, label: str = "load") -> None:
    if (r := result.resumed) is not None:
        # Rows a failed run extracted (it read the API) and this run committed: counted here, once.
        ledger = f", {r.stats.ledger.requests:,} ledger requests" if r.stats.ledger is not None else ""
        print(
            f"{label} [{r.name}] finished the load a failed run left: {r.stats.counts.new} new, "
            f"{r.stats.counts.updated} updated{ledger} ({r.provider})"
        )
    for o in result.outcomes:
        c = o.stats.counts
        if o.error:
            # Nothing of a failed project was loaded: its counts would only say what it had read.
            print(f"{label} [{o.name}] FAILED after {o.stats.api_calls} requests: nothing loaded ({o.provider})")
            continue
        print(
            f"{label} [{o.name}] ok: {o.stats.api_calls} requests, {c.new} new, "
            f"{c.updated} updated, {c.still_open} still open"
            + (f", {c.gone} gone" if c.gone else "")
            + f" ({o.provider})"
        )
        if o.stats.ledger is not None:
            print(f"{label} [{o.name}] {ledger_summary(o.stats.ledger)}")
    # The reconciliation line covers both providers: said once, after the last organisation read.
    books = result.anthropic_admin
    later = books.findings.summary() if books is not None and books.findings is not None else None
    if result.admin is not None:
        from ..load.admin_run import summary_lines

        for line in summary_lines(result.admin, label):
            if later is None or result.admin.findings is None or line != result.admin.findings.summary():
                print(line)
    if books is not None:
        from ..load import anthropic_admin_run

        for line in anthropic_admin_run.summary_lines(books, label):
            print(line)
    loaded = result.loaded()
    total_new = sum(o.stats.counts.new for o in loaded)
    total_upd = sum(o.stats.counts.updated for o in loaded)
    total_open = sum(o.stats.counts.still_open for o in result.outcomes if not o.error)
    print(
        f"{label}: {result.api_calls} requests, {total_new} new, {total_upd} updated, {total_open} still open, "
        f"{result.elapsed:.1f}s -> {result.db_path}"
    )
    # One `error:` line per failure: the run's own (the database before any project), then each failed
    # project's (a load step that failed says so in its project's line).
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    for o in result.outcomes:
        if o.error:
            print(f"error: project {o.name}: {o.error}", file=sys.stderr)
    if result.admin is not None and result.admin.error:
        print(f"error: organization (Admin API): {result.admin.error}", file=sys.stderr)
    if result.anthropic_admin is not None and result.anthropic_admin.error:
        print(f"error: anthropic organization (Admin API): {result.anthropic_admin.error}", file=sys.stderr)


def _mb(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _n(count: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{count:,} {noun if count == 1 else plural}"


def ledger_summary(ledger: LedgerCounts) -> str:
    """One line: what the request ledger read, found gone, and left for the next run."""
    if ledger.files_read:
        rate = f", {ledger.mb_per_s:.0f} MB/s" if ledger.seconds >= 0.05 else ""
        parts = [
            f"ledger: {_n(ledger.requests, 'request')} of {_n(ledger.batches_read, 'batch')} from "
            f"{_n(ledger.files_read, 'file')} ({_mb(ledger.bytes_read)} in {ledger.seconds:.1f}s{rate})"
        ]
    else:
        parts = ["ledger: no file read"]
    if ledger.files_gone:
        parts.append(f"{_n(ledger.files_gone, 'file')} gone (expired or deleted)")
    if ledger.batches_pending:
        parts.append(
            f"{_n(ledger.batches_pending, 'batch')} ({_mb(ledger.bytes_pending)}) left for the next run"
            + (f", {ledger.files_failed:,} after a failure" if ledger.files_failed else "")
        )
    if ledger.too_old:
        parts.append(f"{_n(ledger.too_old, 'batch')} finished longer ago than files are kept (not asked for)")
    return "; ".join(parts)


__all__ = ["ledger_summary", "print_summary"]
