"""dlt's destination for a DuckDB file, and what is checked before dlt may write into one.

dlt's DuckDB client writes `openai_batches.<table>`. DuckDB names a file's catalog after the file, so
in `openai_batches.duckdb` (or `openai_batches_staging.duckdb`) that reference is ambiguous between the
catalog and the schema, and every load failed. Here dlt's client qualifies every name with the file's
catalog (`"openai_batches"."openai_batches"."batches"`), which binds the same way whatever the file is
called. Everything else is dlt's own DuckDB destination (its type name too, so pipeline state and
`pipeline.dataset()` are unchanged).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import duckdb
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.schema import Schema
from dlt.destinations.impl.duckdb.configuration import DuckDbClientConfiguration, DuckDbCredentials
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.impl.duckdb.factory import duckdb as duckdb_factory
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

from . import settings
from .columns import BATCH_COLUMNS, ERROR_COLUMNS
from .db import OWN_SCHEMAS, connect, duckdb_catalog_name


class _CatalogQualifiedSqlClient(DuckDbSqlClient):
    """dlt's DuckDB SQL client with the file's catalog in every qualified name."""

    def catalog_name(self, quote: bool = True, casefold: bool = True) -> str | None:
        name = getattr(self, "_catalog", None) or duckdb_catalog_name(str(self.credentials.database))
        if casefold:
            name = self.capabilities.casefold_identifier(name)
        return self.capabilities.escape_identifier(name) if quote else name

    def open_connection(self) -> Any:
        conn = super().open_connection()
        row = conn.execute("SELECT current_database()").fetchone()
        actual = str(row[0]) if row and row[0] else None
        if actual and actual != duckdb_catalog_name(str(self.credentials.database)):
            # DuckDB named the catalog differently than predicted: use its name from now on.
            self._catalog = actual
            # As dlt does: before the first load the schema does not exist yet, and that is fine.
            with contextlib.suppress(duckdb.CatalogException):
                conn.execute("SET search_path = ?", [self.fully_qualified_dataset_name(quote=False)])
        return conn

    def warn_if_catalog_equals_dataset_name(self) -> None:
        """Not a problem here (names are catalog-qualified); the CLI warns about SQL users run directly."""


class _Client(DuckDbClient):
    def __init__(
        self, schema: Schema, config: DuckDbClientConfiguration, capabilities: DestinationCapabilitiesContext
    ) -> None:
        super().__init__(schema, config, capabilities)
        plain = self.sql_client
        self.sql_client = _CatalogQualifiedSqlClient(
            plain.dataset_name, plain.staging_dataset_name, config.credentials, capabilities
        )


# Tables whose staged rows hold each key once: the source never yields an id twice in a run (SeenIds).
UNIQUE_STAGED_TABLES = {settings.BATCHES_TABLE: ("id",), settings.GONE_TABLE: ("id",)}
# ... and the other tables a resumed load could have staged twice (see `remove_duplicates_after_resume`).
KEYS_AFTER_RESUME = {
    **UNIQUE_STAGED_TABLES,
    settings.ERRORS_TABLE: ("batch_id", "error_index"),
    # The request ledger's (merge key `batch_id`, no primary key: dlt never deduplicates their staged rows).
    settings.REQUESTS_TABLE: ("batch_id", "custom_id"),
    settings.FILES_TABLE: ("batch_id", "kind"),
}


class _BoundedClient(_Client):
    """For the runner: dlt's merge first deduplicates the staged rows with a window over all of them,
    which needs ~1 KB per row in DuckDB and cannot run under a memory limit (1.15 GB for a
    million-batch backfill in one package). The rows are unique by construction, so the window is
    skipped; the one way a row can still be staged twice, a load resumed after a kill, is repaired by the
    runner (`remove_duplicates_after_resume`)."""

    def prepare_load_table(self, table_name: str) -> Any:
        table = super().prepare_load_table(table_name)
        if table_name in UNIQUE_STAGED_TABLES:
            table["x-stage-data-deduplicated"] = True  # type: ignore[typeddict-unknown-key]
        return table


class duckdb_file(duckdb_factory):  # noqa: N801 - dlt names destination factories in lower case
    """dlt's `duckdb` destination, with catalog-qualified names (see the module's docstring)."""

    @property
    def client_class(self) -> type[DuckDbClient]:  # type: ignore[override]
        return _Client

    @property
    def destination_type(self) -> str:
        return "dlt.destinations.duckdb"


class bounded_duckdb_file(duckdb_file):  # noqa: N801
    """`duckdb_file` for the runner: bounded memory (see `_BoundedClient` and `duckdb_destination`)."""

    @property
    def client_class(self) -> type[DuckDbClient]:  # type: ignore[override]
        return _BoundedClient


def duckdb_destination(db_path: str) -> duckdb_file:
    """The destination `load` writes a DuckDB file with: a million-batch backfill in one package in
    under 400 MB (measured: 386 MB, one merge instead of eleven, no slower).

    DuckDB's memory grows with its thread count (buffers per thread), i.e. with the machine, not the data:
    one thread. A memory limit with the rest spilled to `<file>.tmp`, and no insertion order to keep,
    bound the staging copy and the merge."""
    path = str(Path(db_path).resolve())
    credentials = DuckDbCredentials(
        path,
        global_config={
            "threads": settings.DUCKDB_LOAD_THREADS,
            "memory_limit": settings.DUCKDB_LOAD_MEMORY_LIMIT,
            "preserve_insertion_order": False,
            "temp_directory": path + ".tmp",
        },
    )
    return bounded_duckdb_file(credentials)


def remove_duplicates_after_resume(sql_client: Any) -> int:
    """After a load package was resumed, keep one row per key in the tables it wrote.

    dlt records a staging copy as done only after it ran: a process killed in between copies that file
    again when the package is resumed, and the merge (which skips its deduplication, see
    `_BoundedClient`) would insert those rows twice. Identical copies, so which one stays is immaterial.
    Only ever needed after a resume, which is rare; returns the rows removed."""
    removed = 0
    existing = {
        r[0]
        for r in sql_client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", settings.DATASET_NAME
        )
        or []
    }
    for table, key in KEYS_AFTER_RESUME.items():
        if table not in existing:
            continue
        name = sql_client.make_qualified_table_name(table)
        keys = ", ".join(sql_client.escape_column_name(k) for k in key)
        rows = sql_client.execute_sql(
            f"""DELETE FROM {name} WHERE rowid IN (
                    SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY {keys}) AS n FROM {name})
                    WHERE n > 1)
                RETURNING 1"""
        )
        removed += len(rows or [])
    return removed


class ForeignDatabase(Exception):
    """The file holds tables in our schema that this program did not create: never written into."""


# Type DuckDB reports (information_schema.columns.data_type) for each dlt type we declare.
_SQL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "timestamp": "TIMESTAMP WITH TIME ZONE", "json": "JSON"}


def check_not_foreign(db_path: str) -> None:
    """Raise ForeignDatabase when `db_path` already has an `openai_batches` schema that is not ours.

    Another application's file with a table `openai_batches.batches` of another shape was altered by
    dlt (29 columns added, dlt tables and a staging schema created) before the load failed, and every
    later run failed the same way. Ours: the schema's dlt tables record this pipeline, and the
    declared columns that exist have our types. Checked read-only, before dlt opens the file."""
    path = Path(db_path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    schema = settings.DATASET_NAME
    with connect(db_path, read_only=True) as con:
        found: dict[str, set[str]] = {name: set() for name in OWN_SCHEMAS}
        for table_schema, table_name in con.execute(
            # DuckDB resolves schema names case-insensitively: `OpenAI_Batches` is the schema dlt would write.
            "SELECT lower(table_schema), table_name FROM information_schema.tables WHERE lower(table_schema) IN (?, ?)",
            list(OWN_SCHEMAS),
        ).fetchall():
            found[table_schema].add(table_name)
        tables = found[schema]
        if not any(found.values()):
            return
        why = None
        if "_dlt_pipeline_state" not in tables or "_dlt_version" not in tables:
            # dlt creates its state tables before anything else, its staging schema included: tables in
            # either schema without them are someone else's.
            where, names = next((name, t) for name, t in found.items() if t)
            why = f"it has tables in the schema {where} ({_names(names)}) but no dlt state of this program"
        else:
            row = con.execute(
                f"SELECT count(*) FROM {schema}._dlt_version WHERE schema_name = ?", [settings.PIPELINE_NAME]
            ).fetchone()
            if not row or not row[0]:
                why = f"the dlt schema in {schema} is not this program's ({settings.PIPELINE_NAME})"
        if why is None:
            why = _column_conflict(con, schema, tables)
    if why:
        raise ForeignDatabase(
            f"database {db_path} was not created by openai-batches ({why}); nothing was written: use another "
            "database file (--db)"
        )


def _names(tables: set[str]) -> str:
    shown = sorted(tables)[:5]
    return ", ".join(shown) + (", ..." if len(tables) > 5 else "")


def _column_conflict(con: Any, schema: str, tables: set[str]) -> str | None:
    for table, columns in ((settings.BATCHES_TABLE, BATCH_COLUMNS), (settings.ERRORS_TABLE, ERROR_COLUMNS)):
        if table not in tables:
            continue
        actual = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = ? AND table_name = ?",
                [schema, table],
            ).fetchall()
        )
        for column in columns:
            found = actual.get(column.name)
            wanted = _SQL_TYPES[column.dlt_type]
            if found is not None and found != wanted:
                return f"{schema}.{table}.{column.name} is {found}, not {wanted}"
    return None


__all__ = ["ForeignDatabase", "check_not_foreign", "duckdb_destination", "duckdb_file"]
