"""`openai-batches report`: where the report reads from, what it checks first, and how each failure becomes
its one line and exit code. What a report is (queries, formats, the HTML page) is analysis/.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ..analysis.prices import PricesError
from ..analysis.queries import load_queries, parse_since
from ..analysis.report import HEADER_REPORTS, collect_queries, print_tables, render_csv, render_json, render_markdown
from ..analysis.session import NoBatchesError
from ..client.errors import error_line
from ..settings import EXIT_CONFIG, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from ..storage.store import Store


# --------------------------------------------------------------------------------------------- the command
def resolve_store(db: str | None, destination: str | None = None) -> Store:
    """As `load` finds its database; when none is configured and only the demo's exists, the demo's."""
    from ..config import configured_store
    from ..settings import DEFAULT_DB_PATH, DEMO_DB_PATH
    from ..storage.store import DuckDBFile

    store = configured_store(db, destination)
    if (
        db is None
        and isinstance(store, DuckDBFile)
        and store.path == DEFAULT_DB_PATH
        and not Path(store.path).exists()
        and Path(DEMO_DB_PATH).exists()
    ):
        print(f"note: no {DEFAULT_DB_PATH} here, reporting on the demo database {DEMO_DB_PATH}", file=sys.stderr)
        return DuckDBFile(DEMO_DB_PATH)
    return store


def _html_target_problem(html: str) -> str | None:
    target = Path(html)
    if target.is_dir():
        return f"--html {html} is a directory; name the file to write, e.g. {target / 'report.html'}"
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        return f"--html {html}: the directory {parent} does not exist"
    return None


def report_command(  # noqa: C901, PLR0912 -- every failure of a report and its exit code, read in one place
    *,
    db: str | None = None,
    destination: str | None = None,
    since: str | None = None,
    fmt: str = "table",
    html: str | None = None,
    only: Sequence[str] | None = None,
    prices: str | None = None,
) -> int:
    from ..config import ConfigError
    from ..storage.extensions import ExtensionUnavailable
    from ..storage.lock import DatabaseUnavailable
    from ..storage.store import DuckDBFile

    def fail(message: str, code: int) -> int:
        print(f"error: {message}", file=sys.stderr)
        return code

    if html and fmt != "table":
        return fail(f"--format {fmt} and --html cannot be combined: the HTML page is its own format", EXIT_CONFIG)
    problem = _html_target_problem(html) if html else None
    if problem:
        return fail(problem, EXIT_CONFIG)
    try:
        store = resolve_store(db, destination)
    except ConfigError as e:
        return fail(str(e), EXIT_CONFIG)
    db_path = store.shown()
    if isinstance(store, DuckDBFile) and Path(store.path).is_dir():
        return fail(f"database path {db_path} is a directory, not a file", EXIT_CONFIG)
    if not store.exists():
        return fail(f"no database at {db_path}; run `openai-batches load` (or `demo`) first", EXIT_CONFIG)
    try:
        queries = load_queries(only=only)
        # The page's cards and callouts come from the header reports, whichever reports it shows.
        if html:
            names = {q.name for q in queries}
            queries = [q for q in load_queries() if q.name in names or q.name in HEADER_REPORTS]
        results, _ = collect_queries(store, queries, since, prices, None)
    except DatabaseUnavailable as e:
        return fail(str(e), e.exit_code)
    except ExtensionUnavailable as e:
        return fail(str(e), EXIT_CONFIG)
    except KeyError as e:
        return fail(str(e.args[0]), EXIT_CONFIG)
    except (ValueError, PricesError) as e:
        return fail(str(e), EXIT_CONFIG)
    except NoBatchesError as e:
        return fail(str(e), EXIT_FAILED)
    except (duckdb.Error, OSError) as e:
        # one line: DuckDB's text of a refused S3 request runs on over five (the provider's answer, hints)
        return fail(f"{db_path}: {error_line(e)}", EXIT_FAILED)
    if html:
        from ..analysis.html import write_html

        try:
            write_html(html, results, db_path=db_path, since=parse_since(since), only=only)
        except OSError as e:
            return fail(f"cannot write {html}: {e.strerror or e}", EXIT_CONFIG)
        print(f"wrote {html}")
        return EXIT_OK
    if fmt == "table":
        print_tables(results, since=since)
    else:
        renderers = {"csv": render_csv, "json": render_json, "markdown": render_markdown}
        sys.stdout.write(renderers[fmt](results) + ("" if fmt == "csv" else "\n"))
    return EXIT_OK
