"""The one place that opens a DuckDB database file for this program's own SQL (status, views, reports,
the demo summary, the notebook). dlt's loader connections are made in `storage/destination.py`.

DuckDB names the catalog of `duckdb.connect(path)` after the file (`openai_batches.duckdb` becomes the
catalog `openai_batches`). When that name equals a schema we create (`openai_batches`,
`openai_batches_staging`), every `openai_batches.<table>` is ambiguous and fails to bind. So the file
is attached under a fixed alias that can never equal one of our schema names, and made the session's
default catalog: the same SQL (views, `queries/`) then runs whatever the file is called. Views bind
their bodies relative to their own catalog, so views created here also work when the file is opened
directly in the DuckDB CLI (unless its name makes the CLI's own references ambiguous, which
`ambiguous_file_name` detects so commands can warn).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import settings
from .sql import quote_literal

if TYPE_CHECKING:
    import duckdb

# The catalog alias of the database file in every connection this module opens. Not a schema name of
# ours, not one of DuckDB's reserved catalogs (memory, system, temp).
CATALOG = "openai_batches_file"

# Schemas this program (through dlt) creates in a database; a file named like one of them is ambiguous.
OWN_SCHEMAS = (settings.DATASET_NAME, f"{settings.DATASET_NAME}_staging")


def open_attached(
    attach: str,
    *,
    prepare: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
    config: dict[str, Any] | None = None,
    instance: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyConnection:
    """A new DuckDB instance in which `attach` (an ATTACH ... AS CATALOG statement) is the default catalog;
    `prepare` runs first (loading extensions). The one `duckdb.connect` of this program's own SQL: files,
    DuckLakes and MotherDuck all open through it (see storage/store.py). `instance`: an in-memory instance
    opened with `config` already (extensions.preloaded), used instead of a new one."""
    import duckdb

    con = instance if instance is not None else duckdb.connect(":memory:", config=dict(config or {}))
    try:
        if prepare is not None:
            prepare(con)
        con.execute(attach)
        con.execute(f"USE {CATALOG}")
    except BaseException:
        con.close()
        raise
    return con


# The places a load has open in its one DuckDB instance (see `shared_instance`, `held_instance`): a file's
# resolved path, or a lake's `DuckLake.instance_key()` -> connection.
_SHARED: dict[str, duckdb.DuckDBPyConnection] = {}


def _shared_key(db_path: str | Path) -> str:
    return str(Path(db_path).resolve())


@contextlib.contextmanager
def held_instance(
    key: str,
    open_: Callable[[], duckdb.DuckDBPyConnection],
    *,
    before_close: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB instance, opened by `open_`, for everything this process does with the place `key` until
    the block ends (`held_cursor(key)` hands out its cursors); nested blocks for the same key share it.
    `before_close` runs before it closes (a lake is detached first)."""
    if key in _SHARED:
        yield _SHARED[key]
        return
    con = open_()
    _SHARED[key] = con
    try:
        yield con
    finally:
        del _SHARED[key]
        try:
            if before_close is not None:
                before_close(con)
        finally:
            con.close()


def held_cursor(key: str) -> duckdb.DuckDBPyConnection | None:
    """A cursor of the instance held for `key` with the data as its default catalog, None outside its block.
    Closing it leaves the instance open."""
    shared = _SHARED.get(key)
    if shared is None:
        return None
    cursor = shared.cursor()
    cursor.execute(f"USE {CATALOG}")
    return cursor


@contextlib.contextmanager
def shared_instance(
    db_path: str | Path,
    *,
    config: dict[str, Any],
    opening: Callable[[Callable[[], duckdb.DuckDBPyConnection]], duckdb.DuckDBPyConnection] = lambda open_: open_(),
) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB instance of the file, with `config`, for everything this process does with it until
    the block ends: `connect(db_path)` hands out cursors of it, and dlt's loader uses it (storage/destination.py).

    Why: every dlt step and load job otherwise opens the file and closes it again, and each close
    checkpoints: ~10 opens and closes per load, a third of a second of a 20k-batch backfill. And two
    instances of one file must never be open in one process at once (each would checkpoint over the
    other's blocks); with one instance that cannot happen. Nested blocks for the same file share it.

    `opening` runs the open: a load waits there for another program's DuckDB lock (`lock.open_when_free`)."""
    with held_instance(_shared_key(db_path), lambda: opening(lambda: connect(db_path, config=config))) as con:
        yield con


def open_shared(db_path: str | Path) -> duckdb.DuckDBPyConnection | None:
    """The connection of the `shared_instance` block the file is open in, None outside one."""
    return _SHARED.get(_shared_key(db_path))


class LoadInProgress(RuntimeError):
    """A read-only connection was asked for while this process loads the file: its one instance is writable."""


def connect(
    db_path: str | Path,
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    in_load: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the database file, under an alias that is never ambiguous.

    Inside a `shared_instance` block of the file (a load in this process): a cursor of that instance
    (closing it leaves the instance open). That cursor is writable, so a `read_only` caller gets it only
    when it says it runs as a step of the load (`in_load=True`); any other read-only request raises
    LoadInProgress, rather than handing out a read-only connection that could write.
    Raises duckdb.Error as `duckdb.connect(db_path)` would (a lock held by another process, a corrupted
    file, a missing file when `read_only`)."""
    if open_shared(db_path) is not None:
        if read_only and not in_load:
            raise LoadInProgress(
                f"{Path(db_path).name} is being loaded by this process: no read-only connection until the load ends"
            )
        cursor = held_cursor(_shared_key(db_path))
        assert cursor is not None
        return cursor
    mode = " (READ_ONLY)" if read_only else ""
    # Absolute, as dlt was given it: ATTACH reads `:memory:` as an in-memory database (a load that kept
    # nothing) and `md:...`, `sqlite:...` as extensions to download; `--db` always names a file.
    path = str(Path(db_path).resolve())
    return open_attached(f"ATTACH {quote_literal(path)} AS {CATALOG}{mode}", config=config)


def has_tables(con: duckdb.DuckDBPyConnection, catalog: str = CATALOG) -> bool:
    """Whether ``catalog`` holds any table or view at all (in any schema)."""
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = ?", [catalog]).fetchone()
    return bool(row and row[0])


def tables_in(con: duckdb.DuckDBPyConnection, schema: str, catalog: str | None = None) -> dict[str, str]:
    """Every table and view of ``schema``: name -> `BASE TABLE`, `VIEW` (information_schema's types).

    In ``catalog``, by default the session's current one (the file, for a connection from `connect`):
    information_schema lists every attached catalog, and a same-named table elsewhere is not this one."""
    rows = con.execute(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = coalesce(?, current_database()) AND table_schema = ?",
        [catalog, schema],
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def table_type(con: duckdb.DuckDBPyConnection, schema: str, name: str, catalog: str | None = None) -> str | None:
    """`BASE TABLE` or `VIEW` for `schema.name` in ``catalog`` (as in `tables_in`), None when absent."""
    return tables_in(con, schema, catalog).get(name)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str, catalog: str | None = None) -> bool:
    """Whether `schema.name` exists (a table or a view) in ``catalog`` (default: the current one)."""
    return table_type(con, schema, name, catalog) is not None


def duckdb_catalog_name(db_path: str | Path) -> str:
    """The catalog name DuckDB gives a file opened directly (`duckdb FILE`): the file name up to its
    first dot, with `_db` appended to exactly `main`, `system` and `temp` (as DuckDB 1.5 does: case
    sensitive, and not to `memory`, which then names the file's catalog)."""
    parts = [part for part in Path(db_path).name.split(".") if part]
    name = parts[0] if parts else Path(db_path).name
    return f"{name}_db" if name in ("main", "system", "temp") else name


def ambiguous_file_name(db_path: str | Path) -> str | None:
    """A warning when the file's name makes `openai_batches.<table>` (or the staging schema's tables)
    ambiguous for SQL run directly on it (the DuckDB CLI, another tool), else None. This program itself
    is not affected (see `connect`)."""
    catalog = duckdb_catalog_name(db_path)
    clash = next((s for s in OWN_SCHEMAS if s.lower() == catalog.lower()), None)
    if clash is None:
        return None
    who = "the DuckDB CLI, `queries/`" if clash == settings.DATASET_NAME else "the DuckDB CLI"
    return (
        f"the database file name {Path(db_path).name!r} gives DuckDB the catalog name {catalog!r}, the same as the "
        f"schema {clash!r}: SQL run directly on the file ({who}) cannot resolve `{clash}.<table>`; rename the "
        f"file (e.g. {settings.DEFAULT_DB_PATH!r}) or write `{catalog}.{clash}.<table>`"
    )


def unusable_file_name(db_path: str | Path) -> str | None:
    """Why DuckDB cannot hold our data in a file of this name, else None.

    DuckDB renames the catalog of a file called exactly `main`, `system` or `temp` (to `main_db`...),
    but not `Temp` or `SYSTEM`, which then collide with its reserved catalogs: creating a schema fails
    inside DuckDB itself, and in `Main...` the DuckDB CLI cannot resolve any table."""
    catalog = duckdb_catalog_name(db_path)
    if catalog.lower() in ("main", "system", "temp"):  # exactly `main`... became `main_db`...
        return (
            f"DuckDB cannot use a database file named {Path(db_path).name!r}: its catalog name {catalog!r} collides "
            f"with DuckDB's reserved catalog {catalog.lower()!r} (names are case-insensitive); choose another name, "
            f"e.g. {settings.DEFAULT_DB_PATH!r}"
        )
    return None


__all__ = [
    "CATALOG",
    "LoadInProgress",
    "OWN_SCHEMAS",
    "ambiguous_file_name",
    "connect",
    "has_tables",
    "open_attached",
    "duckdb_catalog_name",
    "held_cursor",
    "held_instance",
    "table_exists",
    "table_type",
    "tables_in",
    "unusable_file_name",
]
