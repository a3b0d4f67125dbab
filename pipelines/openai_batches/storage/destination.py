"""dlt's destinations for a DuckDB file and a DuckLake, and what is checked before dlt may write into one.

dlt's DuckDB client writes `openai_batches.<table>`, which does not bind in a file whose catalog is
named like the schema (why: storage/duckdb_file.py). Here dlt's client qualifies every name with the
file's catalog (`"openai_batches"."openai_batches"."batches"`), which binds whatever the file is called.
Everything else is dlt's own DuckDB destination (its type name too, so pipeline state and
`pipeline.dataset()` are unchanged).

For a DuckLake, dlt's client takes cursors of the load's one instance with the lake attached
(`held_ducklake`, storage/store.py `DuckLake.one_instance`) instead of an instance per connection.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.schema import Schema
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.impl.duckdb.configuration import DuckDbClientConfiguration, DuckDbCredentials
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.impl.duckdb.factory import duckdb as duckdb_factory
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
from dlt.destinations.impl.ducklake.ducklake import DuckLakeClient
from dlt.destinations.impl.ducklake.factory import ducklake as ducklake_factory
from dlt.destinations.impl.ducklake.sql_client import DuckLakeSqlClient

from .. import settings
from ..tables.ledger import file_project_updates, ledger_owners
from .duckdb_file import CATALOG, duckdb_catalog_name, held_cursor, open_shared


class _CatalogQualifiedSqlClient(DuckDbSqlClient):
    """dlt's DuckDB SQL client with the file's catalog in every qualified name."""

    def _predicted_catalog(self) -> str:
        if self.credentials.external_conn() is not None:
            # the load's shared instance, where the file is attached under our alias (storage/duckdb_file.py)
            return CATALOG
        return duckdb_catalog_name(str(self.credentials.database))

    def catalog_name(self, quote: bool = True, casefold: bool = True) -> str | None:
        name = getattr(self, "_catalog", None) or self._predicted_catalog()
        if casefold:
            name = self.capabilities.casefold_identifier(name)
        return self.capabilities.escape_identifier(name) if quote else name

    def open_connection(self) -> Any:
        conn = super().open_connection()
        if self.credentials.external_conn() is not None:
            # A cursor of the shared instance starts in its in-memory catalog: make the file the default.
            conn.execute(f"USE {CATALOG}")
            with contextlib.suppress(duckdb.CatalogException):  # no schema before the first load
                conn.execute("SET search_path = ?", [self.fully_qualified_dataset_name(quote=False)])
        row = conn.execute("SELECT current_database()").fetchone()
        actual = str(row[0]) if row and row[0] else None
        if actual and actual != self._predicted_catalog():
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


# Tables whose staged rows hold each key once: the source never yields an id twice in a run (SeenIds), for any
# provider (one `sync_batches`). Every provider's batches table: Anthropic's was deduplicated by a window over
# all staged rows, ~1 KB each (0.18 of a 100k backfill's 0.33 s load step; and in a lake, whose writes do not
# spill, its memory).
UNIQUE_STAGED_TABLES = {
    **{table: ("id",) for table in settings.BATCH_TABLES.values()},
    settings.GONE_TABLE: ("id",),
}
# ... and the other tables a resumed load could have staged twice (see `remove_duplicates_after_resume`).
KEYS_AFTER_RESUME = {
    **UNIQUE_STAGED_TABLES,
    settings.ERRORS_TABLE: ("batch_id", "error_index"),
    # The request ledger's (merge key (`project`, `batch_id`), no primary key: dlt never deduplicates their staged
    # rows).
    settings.REQUESTS_TABLE: ("project", "batch_id", "custom_id"),
    settings.FILES_TABLE: ("project", "batch_id", "kind"),
}


class _UniqueStaged:
    """For the runner's clients: dlt's merge first deduplicates the staged rows with a window over all of
    them, which needs ~1 KB per row in DuckDB and cannot run under a memory limit (1.15 GB for a
    million-batch backfill in one package). The rows are unique by construction, so the window is
    skipped; the one way a row can still be staged twice, a load resumed after a kill, is repaired by the
    runner (`remove_duplicates_after_resume`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The dataset's name (the SQL client names the staging dataset instead inside `with_staging_dataset`).
        self._main_dataset: str = self.sql_client.dataset_name  # type: ignore[attr-defined]

    def prepare_load_table(self, table_name: str) -> Any:
        table = super().prepare_load_table(table_name)  # type: ignore[misc]
        if table_name in UNIQUE_STAGED_TABLES:
            table["x-stage-data-deduplicated"] = True
            # Into an empty table a merge of unique rows is an append: the rows go straight into it, without the
            # staging copy, the delete and the insert. Only while nothing is staged for it either (what a killed
            # run staged is merged, never skipped); the merge after the package's jobs runs only where rows were
            # staged (`_create_merge_followup_jobs`).
            if (
                table.get("write_disposition") == "merge"
                and not self._rows(table_name, staging=False)
                and not self._rows(table_name, staging=True)
            ):
                table["write_disposition"] = "append"
        return table

    def create_load_job(self, table: Any, file_path: str, load_id: str, restore: bool = False) -> Any:
        if (
            table["name"] in UNIQUE_STAGED_TABLES
            and table.get("write_disposition") == "merge"
            and self._rows(table["name"], staging=True) is None
        ):
            # A file to stage where the package's start chose the append, so dlt created no staging table: the
            # package resumed after a kill that followed its append (the table has rows now). Without the table
            # every later run failed at the staging copy; with it the file is staged and merged.
            self._create_staging_table(table["name"])
        return super().create_load_job(table, file_path, load_id, restore)  # type: ignore[misc]

    def _create_staging_table(self, table_name: str) -> None:
        client: Any = self
        sql_client: Any = client.sql_client
        mode = client.in_staging_dataset_mode
        opened = contextlib.nullcontext() if sql_client.native_connection is not None else sql_client
        try:
            with opened, client.with_staging_dataset():
                if not sql_client.has_dataset():
                    sql_client.create_dataset()
                client._execute_schema_update_sql(only_tables=[table_name], store_schema=False)
        finally:
            client.in_staging_dataset_mode = mode

    def initialize_storage(self, truncate_tables: Any = None) -> None:
        # After a package loaded straight into a new table, dlt truncates the staging tables of the merged ones:
        # not one that was never created (its failure was a warning line in every first run's output).
        if truncate_tables:
            truncate_tables = [
                t for t in truncate_tables if t not in UNIQUE_STAGED_TABLES or self._rows(t, staging=True) is not None
            ]
        super().initialize_storage(truncate_tables=truncate_tables)  # type: ignore[misc]

    def _create_merge_followup_jobs(self, table_chain: Sequence[Any]) -> list[Any]:
        root = table_chain[0]["name"]
        if root in UNIQUE_STAGED_TABLES and not self._rows(root, staging=True):
            return []  # loaded straight into the table (see `prepare_load_table`): nothing staged to merge
        return super()._create_merge_followup_jobs(table_chain)  # type: ignore[misc,no-any-return]

    def _rows(self, table_name: str, *, staging: bool) -> bool | None:
        """Whether the dataset's (or its staging dataset's) `table_name` has a row; None when it does not exist."""
        sql_client: Any = self.sql_client  # type: ignore[attr-defined]
        escape = sql_client.capabilities.escape_identifier
        dataset = sql_client.staging_dataset_name if staging else self._main_dataset
        name = ".".join(p for p in (sql_client.catalog_name(), escape(dataset), escape(table_name)) if p)
        # dlt asks for prepared tables with the client's connection open (a job) and without (job creation).
        opened = contextlib.nullcontext() if sql_client.native_connection is not None else sql_client
        try:
            with opened:
                return bool(sql_client.execute_sql(f"SELECT 1 FROM {name} LIMIT 1"))
        except (DatabaseUndefinedRelation, duckdb.CatalogException):
            return None


class _BoundedClient(_UniqueStaged, _Client):
    """A DuckDB file's client for the runner (`_UniqueStaged`)."""


class _ResolvedOnce:
    """A destination factory that resolves its configuration once per distinct request, not at every call.

    dlt resolves the destination's whole configuration (some 40 fields, each looked up under several
    sections in every provider) whenever it wants the destination's capabilities or a client: 18 times in
    a load, two thirds of a load's fixed cost (measured: 0.18 of 0.27 s of a run with nothing new). A factory
    lives for one load (`make_pipeline`), in which the environment and the `.dlt` files do not change, so the
    same request resolves to the same values: each is resolved once and copied for every further caller."""

    def _resolved(self) -> dict[Any, Any]:
        cache: dict[Any, Any] | None = self.__dict__.get("_resolved_configs")
        if cache is None:
            cache = self.__dict__["_resolved_configs"] = {}
        return cache

    def capabilities(self, config: Any = None, naming: Any = None) -> DestinationCapabilitiesContext:
        if config is None:
            # What dlt resolves (partially, with placeholder credentials) for capabilities without a config.
            cache = self._resolved()
            if "capabilities" not in cache:
                cache["capabilities"] = _capabilities_config(self)
            config = cache["capabilities"]
        return super().capabilities(config, naming)  # type: ignore[misc]

    def configuration(self, initial_config: Any, accept_partial: bool = False) -> Any:
        key = (accept_partial, _fingerprint(initial_config))
        cache = self._resolved()
        if key is None or key[1] is None:
            return super().configuration(initial_config, accept_partial)  # type: ignore[misc]
        if key not in cache:
            cache[key] = super().configuration(initial_config, accept_partial)  # type: ignore[misc]
        return copy.copy(cache[key])


def _capabilities_config(factory: Any) -> Any:
    """The configuration dlt's `Destination.capabilities` resolves when it is given none (its own code)."""
    init_config = factory.spec()
    init_config.update(factory.config_params)
    if not init_config.credentials:
        credentials = factory.spec.credentials_type(init_config)()
        credentials.__is_resolved__ = True
    else:
        credentials = init_config.credentials
        if isinstance(credentials, BaseConfiguration):
            credentials = credentials.copy()
    config = factory.spec(credentials=credentials)
    try:
        return factory.configuration(config, accept_partial=True)
    except Exception:  # noqa: BLE001 -- as dlt: a partial resolution may fail, then the empty config is used
        return config


def _fingerprint(config: Any) -> tuple[Any, ...] | None:
    """What an initial configuration asks for, comparable; None when a value is not plain (not cached)."""
    if config is None:
        return ()
    values = []
    for name, value in sorted(dict(config).items()):
        if value is None or isinstance(value, str | int | float | bool):
            values.append((name, value))
        else:
            return None
    return (type(config), *values)


class duckdb_file(_ResolvedOnce, duckdb_factory):  # noqa: N801 - dlt names destination factories in lower case
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
    under 400 MB (measured: ~350 MB, one merge instead of eleven, no slower).

    DuckDB's memory grows with its thread count (buffers per thread), i.e. with the machine, not the data:
    one thread. A memory limit with the rest spilled to `<file>.tmp`, and no insertion order to keep,
    bound the staging copy and the merge."""
    # Inside `db.shared_instance` (a load) dlt borrows cursors of that instance, opened with these
    # settings, and never closes it (setting `temp_directory` again once it was used is an error).
    shared = open_shared(db_path)
    if shared is not None:
        credentials = DuckDbCredentials(shared)
    else:
        credentials = DuckDbCredentials(str(Path(db_path).resolve()), global_config=load_config(db_path))
    return bounded_duckdb_file(credentials)


class _HeldLakeSqlClient(DuckLakeSqlClient):
    """dlt's DuckLake SQL client on a cursor of the load's one instance (the lake attached once, by
    `DuckLake.one_instance`), when one is held for `instance_key`; dlt's own connection otherwise."""

    instance_key = ""
    _held = False

    def open_connection(self) -> Any:
        cursor = held_cursor(self.instance_key)
        if cursor is None:
            return super().open_connection()
        with contextlib.suppress(duckdb.CatalogException):  # no schema before the first load
            cursor.execute("SET search_path = ?", [self.fully_qualified_dataset_name(quote=False)])
        self._conn, self._held = cursor, True
        return cursor

    def close_connection(self) -> None:
        if not self._held:
            return super().close_connection()
        if self._conn is not None:
            with contextlib.suppress(duckdb.Error):  # no transaction open: nothing to roll back
                self._conn.execute("ROLLBACK")
            self._conn.close()  # the lake stays attached: the instance's owner detaches it
        self._conn, self._held = None, False  # type: ignore[assignment] # dlt's own close leaves None too


class _HeldLakeClient(_UniqueStaged, DuckLakeClient):
    held_sql_client: type[_HeldLakeSqlClient] = _HeldLakeSqlClient

    def __init__(self, schema: Schema, config: Any, capabilities: DestinationCapabilitiesContext) -> None:
        super().__init__(schema, config, capabilities)
        plain = self.sql_client
        self.sql_client = self.held_sql_client(
            plain.dataset_name,
            plain.staging_dataset_name,
            config.credentials,
            capabilities,
            override_data_path=config.override_data_path,
            automatic_migration=config.automatic_migration,
        )


class held_ducklake(_ResolvedOnce, ducklake_factory):  # noqa: N801 - dlt names destination factories in lower case
    """dlt's `ducklake` destination whose connections are cursors of the load's one instance of the lake
    (`instance_key`: `DuckLake.instance_key()`) while the load holds it."""

    def __init__(self, instance_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        sql_client = type("_HeldLakeSqlClientOf", (_HeldLakeSqlClient,), {"instance_key": instance_key})
        self._client_class = type("_HeldLakeClientOf", (_HeldLakeClient,), {"held_sql_client": sql_client})

    @property
    def client_class(self) -> type[DuckLakeClient]:  # type: ignore[override]
        return self._client_class

    @property
    def destination_type(self) -> str:
        return "dlt.destinations.ducklake"


def load_config(db_path: str) -> dict[str, Any]:
    """DuckDB's settings while loading (see `duckdb_destination`)."""
    return {
        "threads": settings.DUCKDB_LOAD_THREADS,
        "memory_limit": settings.DUCKDB_LOAD_MEMORY_LIMIT,
        "preserve_insertion_order": False,
        "temp_directory": str(Path(db_path).resolve()) + ".tmp",
    }


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
        # DuckDB's DELETE answers with the count of rows it removed; not `RETURNING`, which a DuckLake table
        # refuses (every load after a killed one failed there).
        rows = sql_client.execute_sql(
            f"""DELETE FROM {name} WHERE rowid IN (
                    SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY {keys}) AS n FROM {name})
                    WHERE n > 1)"""
        )
        removed += sum(int(row[0]) for row in rows or [])
    return removed


def allow_null_file_ids(pipeline: Any) -> None:
    """`batch_files.file_id` may be NULL since Anthropic results entered the ledger (they are no file). A
    table an older version created has it NOT NULL, in the dataset and in dlt's staging dataset (a merge
    copies through it), and dlt never relaxes a constraint: the first Anthropic results loaded there failed
    at every run. Relaxed where dlt's schema still says NOT NULL (the next load of the table records it
    nullable, and this is not looked at again)."""
    schema = pipeline.default_schema if pipeline.default_schema_name else None
    column = schema.tables.get(settings.FILES_TABLE, {}).get("columns", {}).get("file_id") if schema else None
    if not column or column.get("nullable", True):
        return
    with pipeline.sql_client() as client:
        for staging in (False, True):
            with client.with_staging_dataset() if staging else contextlib.nullcontext():
                if not client.has_dataset():
                    continue
                name = client.make_qualified_table_name(settings.FILES_TABLE)
                with contextlib.suppress(DatabaseUndefinedRelation):  # created by the next load, nullable
                    client.execute_sql(f"ALTER TABLE {name} ALTER COLUMN file_id DROP NOT NULL")


def ledger_files_by_project(pipeline: Any) -> None:
    """`batch_files` has a `project` column since the ledger's rows are merged on (`project`, `batch_id`) (batch
    ids are unique only within a provider). A table an older version created lacks it: added before anything is
    loaded (dlt then finds it there), and its rows given the project whose ledger wrote them (that version kept one
    project's rows of a batch id: the project of the batch's requests, else of the batch's row in a provider's
    table), so a batch read again replaces them instead of adding a second set beside rows of no project."""
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return
        owners = ledger_owners()
        names = [settings.FILES_TABLE, *(table for table, _ in owners)]
        # The data's catalog only: every attached catalog's columns (a lake's metadata) took 0.8 s (storage/foreign.py).
        catalog = client.catalog_name(quote=False)
        columns = client.execute_sql(
            "SELECT table_name, column_name FROM information_schema.columns WHERE coalesce(%s, table_catalog) = "
            f"table_catalog AND table_schema = %s AND table_name IN ({', '.join(['%s'] * len(names))})",
            catalog,
            client.dataset_name,
            *names,
        )
        tables: dict[str, set[str]] = {}
        for table, column in columns or []:
            tables.setdefault(str(table), set()).add(str(column))
        if settings.FILES_TABLE not in tables or "project" in tables[settings.FILES_TABLE]:
            return
        files = client.make_qualified_table_name(settings.FILES_TABLE)
        client.execute_sql(f"ALTER TABLE {files} ADD COLUMN project VARCHAR")
        present = {
            client.make_qualified_table_name(table): key
            for table, key in owners
            if {"project", key} <= tables.get(table, set())
        }
        for update in file_project_updates(files, present):
            client.execute_sql(update)


__all__ = [
    "bounded_duckdb_file",
    "allow_null_file_ids",
    "ledger_files_by_project",
    "duckdb_destination",
    "duckdb_file",
    "held_ducklake",
    "load_config",
    "remove_duplicates_after_resume",
]
