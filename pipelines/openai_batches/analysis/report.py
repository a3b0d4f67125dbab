"""`openai-batches report`: run the files in `queries/` and print them as tables, CSV, JSON or Markdown.

Machine formats (csv, json) keep NULL costs as empty/null; the human formats print them as
"unpriced" so no reader mistakes a batch without a price for a free one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ..db import connect
from . import settings
from .prices import PricesError
from .queries import Result, load_queries, parse_since, run_queries
from .views import NoBatchesError, refresh_analysis

UNPRICED = "unpriced"

# Exit codes as in the rest of the CLI: 0 ok, 1 the database could not be read, 2 bad usage or configuration,
# 75 a load holds the database (try again later).
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_BUSY = 0, 1, 2, 75


def collect(
    db_path: str, since: str | None = None, only: Sequence[str] | None = None, prices_file: str | None = None
) -> list[Result]:
    """Refresh prices and views, then run the selected queries (all by default) on a read-only connection."""
    queries = load_queries(only=only)
    parse_since(since)  # reject a bad --since before touching the database
    refresh_analysis(db_path, prices_file)
    with connect(db_path, read_only=True) as con:
        return run_queries(con, queries, since)


# --------------------------------------------------------------------------------------------- values
def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def display(value: Any, column: str) -> str:
    """A cell for people: UTC times without seconds noise, thousands separators, NULL costs as 'unpriced'."""
    if value is None:
        return UNPRICED if column.endswith("_usd") else ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int | float | Decimal):
        return format(value, ",")
    return str(value)


def _is_numeric(result: Result, i: int) -> bool:
    return any(isinstance(row[i], int | float | Decimal) and not isinstance(row[i], bool) for row in result.rows)


# --------------------------------------------------------------------------------------------- formats
def render_json(results: Sequence[Result]) -> str:
    """One object keyed by report name, each a list of row objects."""
    doc = {r.name: [{k: jsonable(v) for k, v in rec.items()} for rec in r.records()] for r in results}
    return json.dumps(doc, indent=2)


def render_csv(results: Sequence[Result]) -> str:
    """Plain CSV for one report; for several, each block is preceded by a `# name: question` line."""
    out = io.StringIO()
    for n, result in enumerate(results):
        if len(results) > 1:
            out.write(("\n" if n else "") + f"# {result.name}: {result.query.title}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([jsonable(v) for v in row] for row in result.rows)
    return out.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(results: Sequence[Result]) -> str:
    parts: list[str] = []
    for result in results:
        parts.append(f"## {result.name}\n\n{result.query.title}\n")
        if not result.rows:
            parts.append("_No rows._\n")
            continue
        numeric = [_is_numeric(result, i) for i in range(len(result.columns))]
        parts.append("| " + " | ".join(_md_cell(c) for c in result.columns) + " |")
        parts.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
        for row in result.rows:
            cells = (_md_cell(display(v, c)) for v, c in zip(row, result.columns, strict=True))
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def print_tables(
    results: Sequence[Result], limit: int = settings.TABLE_ROW_LIMIT, file: Any = None, since: str | None = None
) -> None:
    """Rich tables, ``limit`` rows each; off a terminal rich prints plain text at a width that fits."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file)
    if not console.is_terminal:
        console = Console(file=file, width=200)
    if since:
        console.print(f"Batches created since {parse_since(since)} UTC.")
    for result in results:
        table = Table(
            title=f"[bold]{result.name}[/]: {result.query.title}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for i, column in enumerate(result.columns):
            # Ids are copied into other tools; folding one over two lines would break the copy.
            table.add_column(
                column,
                justify="right" if _is_numeric(result, i) else "left",
                overflow="fold",
                no_wrap=column == "id",
            )
        for row in result.rows[:limit]:
            table.add_row(
                *(
                    f"[yellow]{UNPRICED}[/]" if v is None and c.endswith("_usd") else display(v, c)
                    for v, c in zip(row, result.columns, strict=True)
                )
            )
        more = len(result.rows) - limit
        if not result.rows:
            table.caption = "no rows"
        elif more > 0:
            table.caption = f"… {more:,} more rows: openai-batches report --only {result.name} --format csv"
        console.print(table)


def print_terminal_report(db_path: str, since: str | None = None) -> None:
    """The report `run` and `demo` end with: every query as a terminal table. Refreshes prices and views first.

    Never raises for an empty database or a bad price file: it says so on stderr, so a load that
    succeeded is not turned into a failure by its report."""
    try:
        results = collect(db_path, since)
    except NoBatchesError:
        print("No batches loaded yet: nothing to report.", file=sys.stderr)
        return
    except (PricesError, duckdb.Error, OSError, ValueError) as e:
        print(f"report skipped: {e}", file=sys.stderr)
        return
    print_tables(results, since=since)


# --------------------------------------------------------------------------------------------- the command
def resolve_db(db: str | None) -> str:
    """As `load` finds its database; when none is configured and only the demo's exists, the demo's."""
    from ..config import database_path
    from ..settings import DEFAULT_DB_PATH, DEMO_DB_PATH

    path = database_path(db)
    if db is None and path == DEFAULT_DB_PATH and not Path(path).exists() and Path(DEMO_DB_PATH).exists():
        print(f"note: no {DEFAULT_DB_PATH} here, reporting on the demo database {DEMO_DB_PATH}", file=sys.stderr)
        return DEMO_DB_PATH
    return path


def report_command(
    *,
    db: str | None = None,
    since: str | None = None,
    fmt: str = "table",
    html: str | None = None,
    only: Sequence[str] | None = None,
    prices: str | None = None,
) -> int:
    from ..config import ConfigError
    from ..lock import DatabaseUnavailable, holding_database
    from ..settings import DEFAULT_LOCK_WAIT_S

    try:
        db_path = resolve_db(db)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if not Path(db_path).exists():
        print(f"error: no database at {db_path}; run `openai-batches load` (or `demo`) first", file=sys.stderr)
        return EXIT_CONFIG
    try:
        # Exclusive, like a load: the report rewrites prices and views, which must not interleave with
        # a cron load's steps. The HTML page draws its charts from several reports, so it runs them all.
        with holding_database(db_path, wait=DEFAULT_LOCK_WAIT_S):
            results = collect(db_path, since, None if html else only, prices)
    except DatabaseUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except (KeyError, ValueError, PricesError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return EXIT_CONFIG
    except NoBatchesError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except (duckdb.Error, OSError) as e:
        print(f"error: {db_path}: {e}", file=sys.stderr)
        return EXIT_FAILED
    if html:
        from .html import write_html

        write_html(html, results, db_path=db_path, since=parse_since(since))
        print(f"wrote {html}")
        return EXIT_OK
    if fmt == "table":
        print_tables(results, since=since)
    else:
        renderers = {"csv": render_csv, "json": render_json, "markdown": render_markdown}
        sys.stdout.write(renderers[fmt](results) + ("" if fmt == "csv" else "\n"))
    return EXIT_OK
