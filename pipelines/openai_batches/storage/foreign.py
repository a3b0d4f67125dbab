"""Refusing to write into a database another program made.

Another application's file with a table `openai_batches.batches` of another shape was altered by dlt
(29 columns added, dlt tables and a staging schema created) before the load failed, and every later run
failed the same way. So before dlt opens it, a database with tables in our schemas must show that they
are ours: dlt's state of this pipeline, and our columns with our types.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .. import settings
from ..tables.batches import BATCH_COLUMNS, ERROR_COLUMNS
from .duckdb_file import CATALOG, OWN_SCHEMAS
from .store import DuckDBFile, DuckLake, Store, as_store, connected


class ForeignDatabase(Exception):
    """The file holds tables in our schema that this program did not create: never written into."""


# Type DuckDB reports (information_schema.columns.data_type) for each dlt type we declare.
_SQL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "timestamp": "TIMESTAMP WITH TIME ZONE", "json": "JSON"}


def check_not_foreign(where: Store | str) -> None:
    """Raise ForeignDatabase when `where` already has an `openai_batches` schema that is not ours.

        Another application's file with a table `openai_batches.batches` of another shape was altered by
        dlt (29 columns added, dlt tables and a staging schema created) before the load failed, and every
        later run failed the same way. Ours: the schema's dlt tables record this pipeline, and the
        declared columns that exist have our types. Checked before dlt writes: a file on a read-only connection
    before the load opens it, a lake on the load's instance (`in_load`)."""
    store = as_store(where)
    if not store.exists() or (isinstance(store, DuckDBFile) and Path(store.path).stat().st_size == 0):
        return
    db_path = store.shown()
    schema = settings.DATASET_NAME
    with connected(store, read_only=True, in_load=True) as con:
        found: dict[str, set[str]] = {name: set() for name in OWN_SCHEMAS}
        for table_schema, table_name in con.execute(
            # DuckDB resolves schema names case-insensitively: `OpenAI_Batches` is the schema dlt would write.
            "SELECT lower(table_schema), table_name FROM information_schema.tables"
            " WHERE table_catalog = ? AND lower(table_schema) IN (?, ?)",
            [CATALOG, *OWN_SCHEMAS],
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


# The table every DuckLake catalog has (DuckLake's own metadata: its version and settings).
_DUCKLAKE_METADATA = "ducklake_metadata"


def check_catalog_not_foreign(where: Store | str) -> None:
    """Raise ForeignDatabase when a DuckLake's catalog is a SQLite or DuckDB file with tables but no DuckLake.

    A load attaches its lake writable from its start (`DuckLake.one_instance`), which creates DuckLake's ~40
    metadata tables in a catalog file that has none: another application's database named as the catalog (or a
    DuckDB file of ours, by mistake) was filled with them, and then with the lake. Read here without DuckDB's
    DuckLake (read-only, nothing written), before that ATTACH. Other stores and a PostgreSQL catalog (the lake
    lives in its own metadata schema there) are not looked at."""
    store = as_store(where)
    if not isinstance(store, DuckLake):
        return
    catalog_file = store._catalog_file()
    if catalog_file is None or not catalog_file.is_file() or catalog_file.stat().st_size == 0:
        return
    if store.driver == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(f"{catalog_file.resolve().as_uri()}?mode=ro", uri=True)) as lite:
            tables = {name for (name,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    else:
        import duckdb

        with duckdb.connect(str(catalog_file), read_only=True) as con:
            tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if tables and _DUCKLAKE_METADATA not in tables:
        raise ForeignDatabase(
            f"database {store.shown()} was not created by openai-batches (its catalog {catalog_file} is a "
            f"{store.driver} database with tables of its own ({_names(tables)}) and no DuckLake); nothing was "
            "written: use another catalog file"
        )


def _names(tables: set[str]) -> str:
    shown = sorted(tables)[:5]
    return ", ".join(shown) + (", ..." if len(tables) > 5 else "")


def _column_conflict(con: Any, schema: str, tables: set[str]) -> str | None:
    declared = {settings.BATCHES_TABLE: BATCH_COLUMNS, settings.ERRORS_TABLE: ERROR_COLUMNS}
    # In the data's catalog only: without it DuckDB reads every attached catalog's columns (a lake's metadata
    # catalog took 0.8 s) and a same-named table elsewhere would be taken for ours.
    actual: dict[str, dict[str, str]] = {}
    for table, column, data_type in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_catalog = ? AND table_schema = ? AND table_name IN (?, ?)",
        [CATALOG, schema, *declared],
    ).fetchall():
        actual.setdefault(table, {})[column] = data_type
    for table, columns in declared.items():
        if table not in tables:
            continue
        for column in columns:
            found = actual.get(table, {}).get(column.name)
            wanted = _SQL_TYPES[column.dlt_type]
            if found is not None and found != wanted:
                return f"{schema}.{table}.{column.name} is {found}, not {wanted}"
    return None


__all__ = ["ForeignDatabase", "check_catalog_not_foreign", "check_not_foreign"]
