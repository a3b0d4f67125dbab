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
from typing import TYPE_CHECKING

import duckdb

from ..client.errors import error_line
from ..settings import BATCHES_TABLE, ERRORS_TABLE, FILES_TABLE, GONE_TABLE, REQUESTS_TABLE, RUN_LOG_TABLE
from ..storage.duckdb_file import CATALOG, table_exists, table_type, tables_in
from ..storage.sql import quote_identifier
from ..tables.admin import ORGANIZATION_TABLES, USAGE_TABLE
from ..tables.ledger import file_project_updates, ledger_owners
from . import settings
from .anthropic_views import ANTHROPIC_BATCHES_TABLE
from .compatible_views import OPENAI_SHAPED
from .ledger_views import LEDGER_TABLES
from .other_views import model_columns as other_model_columns
from .prices import Overrides, PriceRow, PricesError, price_overrides, resolve_prices, write_model_prices
from .reconciliation_anthropic import TABLES as ANTHROPIC_TABLES
from .views import PROVIDER_TABLES, VIEW_NAMES, create_views, fingerprint, views

if TYPE_CHECKING:
    from ..storage.store import Store
    from ..tables.batches import Column

S = settings.SCHEMA
# A one-row view that carries the fingerprint of what is stored, written in the same transaction as the
# views. (A view, not a comment on one: a DuckLake keeps views but not their comments.)
_VERSION_VIEW = "_analysis_version"
# dlt's type names of the declared columns, as DuckDB types: for the empty tables of a database whose
# projects have no batch yet (dlt creates a table with its first row).
# Tables whose declared columns a file loaded by an older version may lack (`_absent_columns`): `batches`, the
# OpenAI-shaped providers' tables (the same column list), `batch_requests` and `batch_files` (its `project`).
_DECLARED_TABLES = (BATCHES_TABLE, *(p.table for p in OPENAI_SHAPED), REQUESTS_TABLE, FILES_TABLE)
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


def _models(con: duckdb.DuckDBPyConnection, organization_tables: frozenset[str] = frozenset()) -> list[str]:
    sql = f"SELECT DISTINCT model FROM {S}.{BATCHES_TABLE} WHERE model IS NOT NULL"
    if USAGE_TABLE in organization_tables:  # the Usage API's batch tokens are priced too (reconciliation.py)
        sql += f" UNION SELECT DISTINCT model FROM {S}.{USAGE_TABLE} WHERE batch AND model IS NOT NULL"
    return [r[0] for r in con.execute(sql).fetchall()]


def _anthropic_models(con: duckdb.DuckDBPyConnection, tables: frozenset[str]) -> list[str]:
    """The models Anthropic batches' requests name (an Anthropic batch names none itself)."""
    if not {ANTHROPIC_BATCHES_TABLE, REQUESTS_TABLE} <= tables:
        return []
    sql = (
        f"SELECT DISTINCT r.model FROM {S}.{REQUESTS_TABLE} AS r JOIN {S}.{ANTHROPIC_BATCHES_TABLE} AS a "
        "ON a.id = r.batch_id WHERE r.model IS NOT NULL"
    )
    return [r[0] for r in con.execute(sql).fetchall()]


def _other_models(con: duckdb.DuckDBPyConnection, tables: frozenset[str]) -> dict[str, list[str]]:
    """The models the other providers' batches name (Azure's: deployment names), by provider."""
    found: dict[str, list[str]] = {}
    for p in OPENAI_SHAPED:
        if p.table in tables:
            sql = f"SELECT DISTINCT model FROM {S}.{quote_identifier(p.table)} WHERE model IS NOT NULL"
            found[p.provider] = [r[0] for r in con.execute(sql).fetchall()]
    for provider, (table, column) in other_model_columns().items():  # Together's `model_id`, ...
        if table in tables:
            sql = f"SELECT DISTINCT {column} FROM {S}.{quote_identifier(table)} WHERE {column} IS NOT NULL"
            found[provider] = [r[0] for r in con.execute(sql).fetchall()]
    return found


def _provider_tables(tables: dict[str, str]) -> frozenset[str]:
    """Other providers' batch tables a load has created in the file (`anthropic_batches`, `azure_batches`, ...), and
    the validation errors tables of OpenAI and the OpenAI-shaped providers (`batch_validation_errors`)."""
    return frozenset(name for name in PROVIDER_TABLES if tables.get(name) == "BASE TABLE")


def _organization_tables(tables: dict[str, str]) -> frozenset[str]:
    """The Admin APIs' tables an admin key has loaded into the file, and the tables Anthropic's rows of the
    reconciliation read (reconciliation_anthropic.py)."""
    names = (*ORGANIZATION_TABLES, *ANTHROPIC_TABLES)
    return frozenset(name for name in names if tables.get(name) == "BASE TABLE")


def _ledger_tables(tables: dict[str, str]) -> frozenset[str]:
    """The request ledger's tables a load has created in the file (`load --requests`)."""
    return frozenset(name for name in LEDGER_TABLES if tables.get(name) == "BASE TABLE")


def _stored_fingerprint(con: duckdb.DuckDBPyConnection, catalog: str) -> str | None:
    if table_type(con, S, _VERSION_VIEW, catalog) != "VIEW":
        return None
    row = con.execute(f"SELECT fingerprint FROM {quote_identifier(catalog)}.{S}.{_VERSION_VIEW}").fetchone()
    return str(row[0]) if row and row[0] else None


def _empty_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """`batches` or its errors table with the declared columns and no rows (the one column list)."""
    from ..tables.batches import ADDED_COLUMNS, BATCH_COLUMNS, ERROR_COLUMNS

    columns = (*BATCH_COLUMNS, *ADDED_COLUMNS) if name == BATCHES_TABLE else ERROR_COLUMNS
    ddl = ", ".join(f"{quote_identifier(c.name)} {_DUCKDB_TYPES[c.dlt_type]}" for c in columns)
    con.execute(f"CREATE TABLE {S}.{quote_identifier(name)} ({ddl})")


def _absent_columns(con: duckdb.DuckDBPyConnection, name: str, catalog: str | None = None) -> list[Column]:
    """The declared columns of `batches` (or `batch_requests`) a file loaded by an older version lacks: dlt
    adds them with the next load that writes the table, which a run with nothing new never does."""
    from ..tables.batches import ADDED_COLUMNS, BATCH_COLUMNS
    from ..tables.ledger import FILE_COLUMNS, REQUEST_COLUMNS

    have = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = coalesce(?, current_database()) "
            "AND table_schema = ? AND table_name = ?",
            [catalog, S, name],
        ).fetchall()
    }
    declared = {REQUESTS_TABLE: REQUEST_COLUMNS, FILES_TABLE: FILE_COLUMNS}.get(name, (*BATCH_COLUMNS, *ADDED_COLUMNS))
    return [c for c in declared if c.name not in have]


def _missing_columns(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """`, NULL AS col` for each declared column the file's table lacks (`_absent_columns`), so the views
    read it the same. The `project` of an older version's `batch_files`: its batch's in `batch_requests`, as the
    next load files it (`file_project_updates`)."""
    added = []
    for c in _absent_columns(con, name, CATALOG):
        value = f"CAST(NULL AS {_DUCKDB_TYPES[c.dlt_type]})"
        if name == FILES_TABLE and c.name == "project" and table_exists(con, S, REQUESTS_TABLE, CATALOG):
            requests = f"{quote_identifier(CATALOG)}.{S}.{REQUESTS_TABLE}"
            value = f"(SELECT min(o.project) FROM {requests} AS o WHERE o.batch_id = {FILES_TABLE}.batch_id)"
        added.append(f", {value} AS {quote_identifier(c.name)}")
    return "".join(added)


def _add_absent_columns(con: duckdb.DuckDBPyConnection, tables: dict[str, str]) -> None:
    """Add the columns `_absent_columns` names to the file's tables (empty, as dlt would add them), so the
    stored views built over them work after an upgrade; dlt then finds them there and adds nothing."""
    for name in _DECLARED_TABLES:
        if tables.get(name) == "BASE TABLE":
            for c in _absent_columns(con, name):
                column = f"{quote_identifier(c.name)} {_DUCKDB_TYPES[c.dlt_type]}"
                con.execute(f"ALTER TABLE {S}.{quote_identifier(name)} ADD COLUMN {column}")
                if name == FILES_TABLE and c.name == "project":  # whose rows they are, as a load files them
                    owners = {f"{S}.{t}": key for t, key in ledger_owners() if tables.get(t) == "BASE TABLE"}
                    for update in file_project_updates(f"{S}.{FILES_TABLE}", owners):
                        con.execute(update)


def build_in_memory(con: duckdb.DuckDBPyConnection, overrides: Overrides) -> Analysis:
    """Build prices and views in the in-memory catalog of a `db.connect(...)` connection, over the
    file's tables, and make that catalog the session's default: `openai_batches.<name>` then means the
    same as in the file (its tables, and views built just now), and nothing is written to the file."""
    tables = tables_in(con, S, CATALOG)
    stored = _stored_fingerprint(con, CATALOG)
    con.execute("USE memory")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {S}")
    # Our own objects are rebuilt here; a user's table of the same name is shadowed, not read.
    own = {*VIEW_NAMES, settings.PRICES_TABLE}
    for name, kind in tables.items():
        if kind == "BASE TABLE" and name not in own:
            table = quote_identifier(name)
            added = _missing_columns(con, name) if name in _DECLARED_TABLES else ""
            con.execute(f"CREATE VIEW {S}.{table} AS SELECT *{added} FROM {quote_identifier(CATALOG)}.{S}.{table}")
    has_batches = tables.get(BATCHES_TABLE) == "BASE TABLE"
    has_gone = tables.get(GONE_TABLE) == "BASE TABLE"
    organization = _organization_tables(tables)
    ledger = _ledger_tables(tables)
    providers = _provider_tables(tables)
    for name in (BATCHES_TABLE, ERRORS_TABLE):
        if tables.get(name) != "BASE TABLE":
            _empty_table(con, name)
    prices = resolve_prices(
        _models(con, organization),
        overrides,
        _anthropic_models(con, ledger | providers),
        _other_models(con, providers),
    )
    write_model_prices(con, prices)
    create_views(con, has_gone, organization, ledger, providers)
    current = stored == fingerprint(prices, has_gone, organization, ledger, providers)
    return Analysis(con=con, has_batches=has_batches, stored_is_current=current)


@contextlib.contextmanager
def reading(db_path: Store | str, prices_file: str | None = None, *, wait: float | None = None) -> Iterator[Analysis]:
    """The analysis of ``db_path`` in a read-only session, under the shared lock (readers share it; a
    load waits for them, they wait for a load up to ``wait`` seconds, then DatabaseBusy).

    Raises PricesError (a named price file missing or bad) before touching the database,
    NoBatchesError when nothing was ever loaded into it, DatabaseUnavailable, duckdb.Error."""
    from ..settings import DEFAULT_LOCK_WAIT_S
    from ..storage.store import as_store

    store = as_store(db_path)
    db_path = store.shown()
    overrides = price_overrides(prices_file)
    with store.locked(wait=DEFAULT_LOCK_WAIT_S if wait is None else wait, shared=True):
        con = store.connect(read_only=True)
        try:
            loaded = (BATCHES_TABLE, ANTHROPIC_BATCHES_TABLE, RUN_LOG_TABLE)
            if not any(table_exists(con, S, name) for name in loaded):
                raise NoBatchesError(f"nothing has been loaded into {db_path} yet")
            yield build_in_memory(con, overrides)
        finally:
            con.close()


# --------------------------------------------------------------------------------------------- stored
def _conflicts(tables: dict[str, str], db_path: str) -> None:
    """AnalysisConflict when one of our views or the prices table is in the way as something else (`tables`: the
    schema's tables and views, `tables_in`, read once: a query per name took 0.04 s)."""
    expected = {name: "VIEW" for name in VIEW_NAMES} | {settings.PRICES_TABLE: "BASE TABLE"}
    for name, kind in expected.items():
        found = tables.get(name)
        if found is not None and found != kind:
            what = "table" if found == "BASE TABLE" else found.lower()
            raise AnalysisConflict(
                f"{S}.{name} in {db_path} is a {what} of yours, but openai-batches keeps its report {name} "
                f"there: the report views and prices stored for SQL run directly on the file were not "
                f"refreshed. Rename it (ALTER TABLE {S}.{name} RENAME TO my_{name}) or drop it; the next "
                "load that changes data refreshes them (`openai-batches report` is not affected)"
            )


def refresh_analysis(db_path: Store | str, prices_file: str | None = None, *, wait: float = 0.0) -> list[PriceRow]:
    """Store prices (genai-prices plus the user's price file) and every view in the file, in one
    transaction (a reader never sees views without prices); returns the price rows.

    Needs the database writable and its lock held exclusively (a load holds it); waits up to `wait`
    seconds for another program's DuckDB lock on the file (a DuckDB shell reading it). Raises
    FileNotFoundError, NoBatchesError (no `batches` table yet), AnalysisConflict, PricesError,
    duckdb.Error."""
    from ..storage.lock import open_when_free
    from ..storage.store import as_store

    store = as_store(db_path)
    db_path = store.shown()
    if not store.exists():
        raise FileNotFoundError(f"no database at {db_path}")
    overrides = price_overrides(prices_file)
    with contextlib.closing(open_when_free(db_path, store.connect, wait=wait)) as con:
        if not table_exists(con, S, BATCHES_TABLE):
            raise NoBatchesError(f"no {S}.{BATCHES_TABLE} table in {db_path} yet")
        tables = tables_in(con, S)
        _conflicts(tables, db_path)
        organization = _organization_tables(tables)
        has_gone = table_exists(con, S, GONE_TABLE)
        ledger = _ledger_tables(tables)
        providers = _provider_tables(tables)
        prices = resolve_prices(
            _models(con, organization),
            overrides,
            _anthropic_models(con, ledger | providers),
            _other_models(con, providers),
        )
        mark = fingerprint(prices, has_gone, organization, ledger, providers)
        # The views are not created again when what is stored is what would be built now: the same fingerprint (the
        # views' SQL over the same tables, the same price rows) and every view there (one dropped: built again).
        # 0.1-0.2 s of every load that changed something, measured. The prices (a few hundred rows, ~15 ms) are
        # written every time: rows deleted or edited by hand are not left in the file; and the columns an upgrade
        # declares are added. (A view replaced by someone's own under our name stays until the fingerprint changes.)
        catalog = con.execute("SELECT current_database()").fetchone()
        current = (
            catalog is not None
            and _stored_fingerprint(con, str(catalog[0])) == mark
            and all(tables.get(name) == "VIEW" for name, _ in views(has_gone, organization, ledger, providers))
        )
        con.execute("BEGIN TRANSACTION")
        try:
            _add_absent_columns(con, tables)
            write_model_prices(con, prices)
            if not current:
                create_views(con, has_gone, organization, ledger, providers)
                con.execute(f"CREATE OR REPLACE VIEW {S}.{_VERSION_VIEW} AS SELECT '{mark}' AS fingerprint")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    return prices


def refresh_after_load(db_path: Store | str, *, wait: float = 0.0) -> list[str]:
    """`refresh_analysis` after a load that committed: never raises for anything it can meet (a bad
    price file, a user's table in the way, a database error); returns one warning line per problem.

    A database without batches (every project empty so far) has nothing to build views over yet:
    no warning, reports are empty until the first batch arrives. `wait`: as for `refresh_analysis`."""
    from ..storage.store import as_store

    try:
        refresh_analysis(db_path, wait=wait)
    except NoBatchesError:
        return []
    except AnalysisConflict as e:
        return [str(e)]
    except PricesError as e:
        return [f"report views not refreshed: {e}"]
    except Exception as e:  # noqa: BLE001 -- the load committed; whatever went wrong here must not undo that
        return [f"report views not refreshed in {as_store(db_path).shown()}: {error_line(e, with_type=True)}"]
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
