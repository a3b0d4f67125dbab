"""Where the analysis (prices and views) is built: in a reader's own session, or stored in the file.

Reading never writes. `reading(db_path)` opens the file read-only under the shared lock and builds
prices and views in the connection's in-memory catalog, over the file's tables: a report, the HTML
page and the notebook therefore work on a read-only copy, never wait for or block each other, always
use the current price file, and a one-off `--prices` stays one-off.

Writing happens after a load. `refresh_after_load(db_path)` stores the same prices and views in the
file (under the load's exclusive lock), so `queries/*.sql` run in the DuckDB CLI or any other client;
it never fails the load that committed before it, it returns warnings instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..db import CATALOG, connect, table_exists, table_type, tables_in
from ..settings import BATCHES_TABLE, ERRORS_TABLE, FILES_TABLE, GONE_TABLE, REQUESTS_TABLE, RUN_LOG_TABLE
from . import settings
from .prices import Overrides, PriceRow, PricesError, price_overrides, resolve_prices, write_model_prices
from .views import LEDGER_VIEW_NAMES, VIEW_NAMES, create_views, fingerprint

S = settings.SCHEMA
# The view that carries the fingerprint of what is stored (`COMMENT ON VIEW`): created first, so a
# refresh that stopped half-way cannot leave a matching fingerprint behind (it runs in one transaction
# anyway).
_MARKED_VIEW = VIEW_NAMES[0]
_MARK = "openai-batches analysis "
# dlt's type names of the declared columns, as DuckDB types: for the empty tables of a database whose
# projects have no batch yet (dlt creates a table with its first row).
_DUCKDB_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "timestamp": "TIMESTAMPTZ", "json": "JSON", "bool": "BOOLEAN"}


class NoBatchesError(Exception):
    """Nothing was ever loaded into the database: neither batches nor a recorded load."""


class AnalysisConflict(Exception):
    """A table of the user's has the name of one of the analysis's views or tables."""


@dataclass(frozen=True)
class Analysis:
    """A read-only session with the analysis built in memory over the file's tables."""

    con: duckdb.DuckDBPyConnection
    has_batches: bool  # the file has a `batches` table (dlt creates it with the first batch loaded)
    stored_is_current: bool  # the views and prices stored in the file are the ones built here
    has_ledger: bool = False  # the file has the request ledger's tables (a load read it)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _models(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(f"SELECT DISTINCT model FROM {S}.{BATCHES_TABLE} WHERE model IS NOT NULL").fetchall()
    return [r[0] for r in rows]


def _stored_fingerprint(con: duckdb.DuckDBPyConnection, catalog: str) -> str | None:
    row = con.execute(
        "SELECT comment FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND view_name = ?",
        [catalog, S, _MARKED_VIEW],
    ).fetchone()
    comment = row[0] if row else None
    return comment[len(_MARK) :] if isinstance(comment, str) and comment.startswith(_MARK) else None


def _empty_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """`batches`, its errors table or a request-ledger table with the declared columns and no rows (the
    one column lists)."""
    from ..columns import ADDED_COLUMNS, BATCH_COLUMNS, ERROR_COLUMNS
    from ..ledger_columns import FILE_COLUMNS, REQUEST_COLUMNS

    columns = {
        BATCHES_TABLE: (*BATCH_COLUMNS, *ADDED_COLUMNS),
        ERRORS_TABLE: ERROR_COLUMNS,
        REQUESTS_TABLE: REQUEST_COLUMNS,
        FILES_TABLE: FILE_COLUMNS,
    }[name]
    ddl = ", ".join(f"{_quoted(c.name)} {_DUCKDB_TYPES[c.dlt_type]}" for c in columns)
    con.execute(f"CREATE TABLE {S}.{_quoted(name)} ({ddl})")


def build_in_memory(con: duckdb.DuckDBPyConnection, overrides: Overrides) -> Analysis:
    """Build prices and views in the in-memory catalog of a `db.connect(...)` connection, over the
    file's tables, and make that catalog the session's default: `openai_batches.<name>` then means the
    same as in the file (its tables, and views built just now), and nothing is written to the file."""
    tables = tables_in(con, S, CATALOG)
    stored = _stored_fingerprint(con, CATALOG)
    con.execute("USE memory")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {S}")
    # Our own objects are rebuilt here; a user's table of the same name is shadowed, not read.
    own = {*VIEW_NAMES, *LEDGER_VIEW_NAMES, settings.PRICES_TABLE}
    for name, kind in tables.items():
        if kind == "BASE TABLE" and name not in own:
            con.execute(f"CREATE VIEW {S}.{_quoted(name)} AS SELECT * FROM {_quoted(CATALOG)}.{S}.{_quoted(name)}")
    has_batches = tables.get(BATCHES_TABLE) == "BASE TABLE"
    has_gone = tables.get(GONE_TABLE) == "BASE TABLE"
    # The ledger's tables exist once a load read it; until then its views (and reports) are empty.
    has_ledger = all(tables.get(name) == "BASE TABLE" for name in (REQUESTS_TABLE, FILES_TABLE))
    for name in (BATCHES_TABLE, ERRORS_TABLE, REQUESTS_TABLE, FILES_TABLE):
        if tables.get(name) != "BASE TABLE":
            _empty_table(con, name)
    prices = resolve_prices(_models(con), overrides)
    write_model_prices(con, prices)
    create_views(con, has_gone, has_ledger=True)
    current = stored == fingerprint(prices, has_gone, has_ledger)
    return Analysis(con=con, has_batches=has_batches, stored_is_current=current, has_ledger=has_ledger)


@contextlib.contextmanager
def reading(db_path: str, prices_file: str | None = None, *, wait: float | None = None) -> Iterator[Analysis]:
    """The analysis of ``db_path`` in a read-only session, under the shared lock (readers share it; a
    load waits for them, they wait for a load up to ``wait`` seconds, then DatabaseBusy).

    Raises PricesError (a named price file missing or bad) before touching the database,
    NoBatchesError when nothing was ever loaded into it, DatabaseUnavailable, duckdb.Error."""
    from ..lock import holding_database
    from ..settings import DEFAULT_LOCK_WAIT_S

    overrides = price_overrides(prices_file)
    with holding_database(db_path, wait=DEFAULT_LOCK_WAIT_S if wait is None else wait, shared=True):
        con = connect(db_path, read_only=True)
        try:
            if not (table_exists(con, S, BATCHES_TABLE) or table_exists(con, S, RUN_LOG_TABLE)):
                raise NoBatchesError(f"nothing has been loaded into {db_path} yet")
            yield build_in_memory(con, overrides)
        finally:
            con.close()


# --------------------------------------------------------------------------------------------- stored
def _conflicts(con: duckdb.DuckDBPyConnection, db_path: str) -> None:
    expected = {name: "VIEW" for name in (*VIEW_NAMES, *LEDGER_VIEW_NAMES)} | {settings.PRICES_TABLE: "BASE TABLE"}
    for name, kind in expected.items():
        found = table_type(con, S, name)
        if found is not None and found != kind:
            what = "table" if found == "BASE TABLE" else found.lower()
            raise AnalysisConflict(
                f"{S}.{name} in {db_path} is a {what} of yours, but openai-batches keeps its report {name} "
                f"there: the report views and prices stored for SQL run directly on the file were not "
                f"refreshed. Rename it (ALTER TABLE {S}.{name} RENAME TO my_{name}) or drop it; the next "
                "load that changes data refreshes them (`openai-batches report` is not affected)"
            )


def refresh_analysis(db_path: str, prices_file: str | None = None) -> list[PriceRow]:
    """Store prices (genai-prices plus the user's price file) and every view in the file, in one
    transaction (a reader never sees views without prices); returns the price rows.

    Needs the database writable and its lock held exclusively (a load holds it). Raises
    FileNotFoundError, NoBatchesError (no `batches` table yet), AnalysisConflict, PricesError,
    duckdb.Error."""
    if not Path(db_path).is_file():
        raise FileNotFoundError(f"no database at {db_path}")
    overrides = price_overrides(prices_file)
    with connect(db_path) as con:
        if not table_exists(con, S, BATCHES_TABLE):
            raise NoBatchesError(f"no {S}.{BATCHES_TABLE} table in {db_path} yet")
        _conflicts(con, db_path)
        prices = resolve_prices(_models(con), overrides)
        has_gone = table_exists(con, S, GONE_TABLE)
        has_ledger = all(table_exists(con, S, name) for name in (REQUESTS_TABLE, FILES_TABLE))
        con.execute("BEGIN TRANSACTION")
        try:
            write_model_prices(con, prices)
            create_views(con, has_gone, has_ledger)
            con.execute(f"COMMENT ON VIEW {S}.{_MARKED_VIEW} IS '{_MARK}{fingerprint(prices, has_gone, has_ledger)}'")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    return prices


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def refresh_after_load(db_path: str) -> list[str]:
    """`refresh_analysis` after a load that committed: never raises for anything it can meet (a bad
    price file, a user's table in the way, a database error); returns one warning line per problem.

    A database without batches (every project empty so far) has nothing to build views over yet:
    no warning, reports are empty until the first batch arrives."""
    try:
        refresh_analysis(db_path)
    except NoBatchesError:
        return []
    except AnalysisConflict as e:
        return [str(e)]
    except PricesError as e:
        return [f"report views not refreshed: {e}"]
    except Exception as e:  # noqa: BLE001 -- the load committed; whatever went wrong here must not undo that
        return [f"report views not refreshed in {db_path}: {type(e).__name__}: {_first_line(e)}"]
    return []


__all__ = [
    "Analysis",
    "AnalysisConflict",
    "NoBatchesError",
    "build_in_memory",
    "reading",
    "refresh_after_load",
    "refresh_analysis",
]
