"""Reports: run the files in `queries/` and print them as tables, CSV, JSON or Markdown (the command is cli/report.py).

A report only reads: it takes the shared lock and a read-only connection, builds prices and views in
its own session (see `session.py`), and never writes to the database, so it works on a read-only
copy and a one-off `--prices` file changes nothing stored.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from . import settings
from .cells import csv_cell, display, is_numeric, is_usd, jsonable
from .prices import PricesError
from .queries import Query, Result, load_queries, parse_since, run_queries
from .session import NoBatchesError, reading, refresh_after_load

if TYPE_CHECKING:
    from ..storage.store import Store

# What the top of the HTML page (cards and callouts) is drawn from, whichever reports it shows.
HEADER_REPORTS = (
    "cost_summary",
    "cost_by_provider",
    "unpriced_usage",
    "caveats",
    "project_coverage",
    "usage_reconciliation",
)


def collect(
    db_path: Store | str,
    since: str | None = None,
    only: Sequence[str] | None = None,
    prices_file: str | None = None,
    *,
    wait: float | None = None,
) -> list[Result]:
    """Run the selected queries (all by default) in a read-only session with its own prices and views."""
    return collect_queries(db_path, load_queries(only=only), since, prices_file, wait)[0]


def collect_queries(
    db_path: Store | str, queries: Sequence[Query], since: str | None, prices_file: str | None, wait: float | None
) -> tuple[list[Result], bool]:
    """The results, and whether the analysis stored in the file is what this session built."""
    parse_since(since)  # reject a bad --since before touching the database
    with reading(db_path, prices_file, wait=wait) as analysis:
        return run_queries(analysis.con, queries, since), analysis.stored_is_current or not analysis.has_batches


# --------------------------------------------------------------------------------------------- formats
def render_json(results: Sequence[Result]) -> str:
    """One object keyed by report name, each a list of row objects."""
    doc = {r.name: [{k: jsonable(v) for k, v in rec.items()} for rec in r.records()] for r in results}
    return json.dumps(doc, indent=2)


def render_csv(results: Sequence[Result]) -> str:
    """Plain CSV for one report; for several, each block is preceded by a `# name: question` line.
    Text a spreadsheet would run as a formula starts with `'` (see `cells.csv_cell`)."""
    out = io.StringIO()
    for n, result in enumerate(results):
        if len(results) > 1:
            out.write(("\n" if n else "") + f"# {result.name}: {result.query.title}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([csv_cell(v) for v in row] for row in result.rows)
    return out.getvalue()


# Markdown is rendered, and most renderers (the notebook's trusted output, pandoc, static sites) pass raw
# HTML through: a value from the API such as `<img onerror=...>` or `[x](javascript:...)` would run or
# link. As entities, each reads as the character it stands for, and no value is markup.
_MD_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "&#91;", "]": "&#93;"})


def _md_cell(text: str) -> str:
    return text.translate(_MD_ENTITIES).replace("|", "\\|").replace("\n", " ")


def _numeric_column(result: Result, i: int) -> bool:
    return any(is_numeric(row[i]) for row in result.rows)


def render_markdown(results: Sequence[Result]) -> str:
    parts: list[str] = []
    for result in results:
        parts.append(f"## {result.name}\n\n{result.query.title}\n")
        if not result.rows:
            parts.append("_No rows._\n")
            continue
        numeric = [_numeric_column(result, i) for i in range(len(result.columns))]
        parts.append("| " + " | ".join(_md_cell(c) for c in result.columns) + " |")
        parts.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
        for row in result.rows:
            cells = (_md_cell(display(v, c)) for v, c in zip(row, result.columns, strict=True))
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def batches_in_scope(results: Sequence[Result]) -> int | None:
    """How many batches the reports cover (from `cost_summary`), None when it was not run."""
    summary = next((r for r in results if r.name == "cost_summary"), None)
    if summary is None or not summary.rows:
        return None
    return int(summary.records()[0]["batches"] or 0)


def print_tables(
    results: Sequence[Result], limit: int = settings.TABLE_ROW_LIMIT, file: Any = None, since: str | None = None
) -> None:
    """Rich tables, ``limit`` rows each; off a terminal rich prints plain text at a width that fits."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich exits 1 on a closed pipe by itself; 1 means "database unreadable" here. The CLI turns
            # the error into the quiet 141 of `report | head`, as for every other command.
            self.quiet = True
            raise BrokenPipeError

    console = _Console(file=file)
    if not console.is_terminal:
        console = _Console(file=file, width=200)
    if since:
        console.print(Text(f"Batches created since {parse_since(since)} UTC."))
    if batches_in_scope(results) == 0:
        console.print(Text("No batches in scope: every report is empty and every cost is $0."))
    ledger = [r for r in results if r.name in settings.LEDGER_REPORTS]
    ledger_off = len(ledger) > 1 and not any(r.rows for r in ledger)
    for result in results:
        if ledger_off and result in ledger:
            if result is ledger[0]:
                console.print(Text(settings.LEDGER_OFF_NOTE))
            continue
        table = Table(
            title=f"[bold]{result.name}[/]: {result.query.title}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for i, column in enumerate(result.columns):
            # Ids are copied into other tools; folding one over two lines would break the copy.
            table.add_column(
                column,
                justify="right" if _numeric_column(result, i) else "left",
                overflow="fold",
                no_wrap=column == "id" or column.endswith("_id"),
            )
        for row in result.rows[:limit]:
            # Text objects, not strings: a value from the API such as a model named `[/]` is shown as it
            # is, never read as rich markup (which would fail or restyle the table).
            table.add_row(
                *(
                    Text(display(v, c), style="yellow" if v is None and is_usd(c) else "")
                    for v, c in zip(row, result.columns, strict=True)
                )
            )
        more = len(result.rows) - limit
        if not result.rows:
            table.caption = "no rows"
        elif more > 0:
            table.caption = f"… {more:,} more rows: openai-batches report --only {result.name} --format csv"
        console.print(table)


def print_terminal_report(where: Store | str, since: str | None = None) -> None:
    """The report `run` ends with: every query as a terminal table.

    Reads like `report` (shared lock, nothing written). When the views and prices stored in the file
    for direct SQL are missing or out of date (a demo database, an edited price file), it refreshes
    them first under the exclusive lock, as a load does, and says so. Never raises for anything a
    database or price file can do: it says so on stderr, so a load that succeeded is not turned into
    a failure by its report."""
    from ..settings import DEFAULT_LOCK_WAIT_S
    from ..storage.extensions import ExtensionUnavailable
    from ..storage.lock import DatabaseUnavailable
    from ..storage.store import as_store

    store = as_store(where)
    db_path = store.shown()
    try:
        results, stored_is_current = collect_queries(store, load_queries(), since, None, None)
    except NoBatchesError:
        print("No batches loaded yet: nothing to report.", file=sys.stderr)
        return
    except (PricesError, DatabaseUnavailable, ExtensionUnavailable, duckdb.Error, OSError, ValueError) as e:
        print(f"report skipped: {e}", file=sys.stderr)
        return
    if not stored_is_current:
        try:
            with store.locked(wait=DEFAULT_LOCK_WAIT_S):
                warnings = refresh_after_load(store)
        except DatabaseUnavailable as e:
            warnings = [f"report views stored in {db_path} not refreshed: {e}"]
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if not warnings:
            print(f"note: stored the current report views and prices in {db_path} (for SQL run on it)", file=sys.stderr)
    print_tables(results, since=since)
