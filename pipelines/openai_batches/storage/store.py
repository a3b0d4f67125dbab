"""Where the loaded data lives: a DuckDB file (the default), a DuckLake (a SQL catalog plus Parquet
files; PostgreSQL is the catalog for teams), or MotherDuck. One object per place, and everything that
touches the data goes through it: how our own SQL opens it (`connect`), how a load and readers keep out
of each other's way (`locked`), and the dlt destination a load writes with (`dlt_destination`).

Every connection `connect` returns has the data as its default catalog under the alias `db.CATALOG`,
so the same SQL (views, `queries/`, reports, `status`) runs on every kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import settings
from .sql import quote_literal

if TYPE_CHECKING:
    import duckdb

    from .object_store import S3Access


class Store(ABC):
    """A place the data lives."""

    kind: str

    @abstractmethod
    def shown(self) -> str:
        """How to name the place in a message: never a password or token."""

    @abstractmethod
    def connect(self, *, read_only: bool = False, in_load: bool = False) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the data as the default catalog (alias `db.CATALOG`).

        `in_load`: the caller is a step of this process's load, and accepts the load's one (writable)
        instance for a `read_only` request (see `duckdb_file.connect`; only a DuckDB file has one)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether there is anything at the place yet (a file, a catalog that can be attached)."""

    @abstractmethod
    def locked(self, *, wait: float, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """Exclusive (a load) or shared (a reader) use for the duration of the block; DatabaseBusy
        after `wait` seconds, DatabaseUnusable when it cannot be used at all."""

    @abstractmethod
    def dlt_destination(self) -> Any:
        """The dlt destination a load writes here with."""

    # Whether opening the load's one instance (`one_instance`) may write: then the foreign-database check
    # runs before it, on a connection of its own; otherwise inside it, on a cursor of it.
    opening_writes: bool = False

    def one_instance(self, *, wait: float = 0.0) -> contextlib.AbstractContextManager[object]:
        """The block a load runs in: a place may keep one open connection for all of it, waiting up to `wait`
        seconds for it (then DatabaseBusy). Nothing by default."""
        return contextlib.nullcontext()

    @abstractmethod
    def identity(self) -> str:
        """Stable and free of secrets: keys dlt's working directory for this place."""

    def warnings(self) -> list[str]:
        """What a user should know before loading here (e.g. a file name that makes their SQL ambiguous)."""
        return []

    @abstractmethod
    def setup_sql(self) -> str:
        """Statements that make a DuckDB CLI session read the data as `openai_batches.<table>`, with no
        secret in them (`duckdb -cmd "$(openai-batches sql-setup)"`)."""

    def problem(self) -> str | None:
        """Why nothing can be loaded here at all, else None (checked before anything is written)."""
        return None


@dataclass(frozen=True)
class DuckDBFile(Store):
    """One DuckDB file: one writer, readers wait while it writes (`flock` on `<file>.lock`)."""

    path: str
    kind: str = field(default="duckdb", init=False)
    # Opening a file writable creates it, and DuckDB may replay a foreign file's WAL into it.
    opening_writes: bool = field(default=True, init=False)

    def shown(self) -> str:
        return self.path

    def connect(self, *, read_only: bool = False, in_load: bool = False) -> duckdb.DuckDBPyConnection:
        from .duckdb_file import connect

        return connect(self.path, read_only=read_only, in_load=in_load)

    def exists(self) -> bool:
        return Path(self.path).is_file()

    def locked(self, *, wait: float, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        from .lock import locked_database

        return locked_database(self.path, wait=wait, shared=shared)

    def dlt_destination(self) -> Any:
        from .destination import duckdb_destination

        return duckdb_destination(self.path)

    def one_instance(self, *, wait: float = 0.0) -> contextlib.AbstractContextManager[object]:
        """One DuckDB instance of the file for the whole load, dlt's steps and ours (`db.shared_instance`)."""
        from .destination import load_config
        from .duckdb_file import shared_instance
        from .lock import open_when_free

        # A DuckDB shell may have opened the file since `locked` waited for it: wait for it here too.
        return shared_instance(
            self.path, config=load_config(self.path), opening=lambda open_: open_when_free(self.path, open_, wait=wait)
        )

    def identity(self) -> str:
        return str(Path(self.path).resolve())

    def warnings(self) -> list[str]:
        from .duckdb_file import ambiguous_file_name

        warning = ambiguous_file_name(self.path)
        return [warning] if warning else []

    def problem(self) -> str | None:
        from .duckdb_file import unusable_file_name

        return unusable_file_name(self.path)

    def setup_sql(self) -> str:
        from .duckdb_file import CATALOG

        literal = quote_literal(str(Path(self.path).resolve()))
        return f"ATTACH {literal} AS {CATALOG} (READ_ONLY); USE {CATALOG};"


# DuckDB's settings of the instance a load on a lake runs in (`DuckLake.one_instance`): one thread, as a file's
# load, and no insertion order to keep. No memory limit: DuckLake's writes do not spill, and a 100k-batch backfill
# under the file's 80 MB limit failed (Out of Memory); without one it peaked at 433 MB (a file's: 337 MB).
LAKE_LOAD_CONFIG: dict[str, Any] = {"threads": settings.DUCKDB_LOAD_THREADS, "preserve_insertion_order": False}


def preload_lake_extensions(destination: str | None) -> None:
    """When the environment alone says the load goes to a DuckLake (`--destination ducklake` or
    OPENAI_BATCHES_DESTINATION, and dlt's catalog variable), load the lake's extensions on a thread while the
    CLI reads its configuration and imports dlt (`extensions.preload`); `DuckLake.one_instance` takes them.
    Settings in `.dlt/` files are not looked at: the lake then loads its extensions when it opens, as before."""
    chosen = destination or os.environ.get("OPENAI_BATCHES_DESTINATION", "")
    catalog = os.environ.get("DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG", "").strip()
    if chosen.strip().lower() != "ducklake" or not catalog:
        return
    storage = (
        os.environ.get("DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL")
        or os.environ.get("DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE")
        or ""
    ).strip()
    lake = DuckLake(catalog=catalog, storage=storage)
    if lake.driver not in ("postgres", "sqlite", "duckdb"):
        return
    from .extensions import preload

    preload(*lake._extensions(), config=LAKE_LOAD_CONFIG)  # a failure is met again, and said, when the lake opens


@dataclass(frozen=True)
class DuckLake(Store):
    """A DuckLake: metadata in a SQL catalog (`postgres://...`, `sqlite:///file`, `duckdb:///file`), data
    as Parquet files under `storage` (a local folder or an object-store URL).

    With a PostgreSQL catalog several people and machines read while one load writes (readers see the
    snapshot before or after a load, never half of one), and loads on different machines exclude each
    other with an advisory lock held in PostgreSQL for the whole run. With a file catalog the lock is a
    `flock` next to that file; a `duckdb:///` catalog admits one process at a time."""

    catalog: str = field(repr=False)  # may hold a password
    storage: str
    name: str = settings.LAKE_NAME
    # Keys and endpoint of an `s3://` storage (storage/object_store.py); None: none configured.
    s3: S3Access | None = field(default=None, repr=False)
    kind: str = field(default="ducklake", init=False)

    @property
    def driver(self) -> str:
        scheme = self.catalog.split(":", 1)[0].lower()
        return "postgres" if scheme in ("postgres", "postgresql") else scheme

    def _catalog_file(self) -> Path | None:
        if self.driver in ("sqlite", "duckdb"):
            return Path(self.catalog.split(":///", 1)[-1] if ":///" in self.catalog else self.catalog.split(":", 1)[1])
        return None

    def _storage_url(self) -> str:
        from .object_store import is_object_store

        if is_object_store(self.storage):
            return self.storage  # an object store: as given
        local = self.storage.removeprefix("file://")
        return str(Path(local).resolve()) + os.sep

    def shown(self) -> str:
        from ..client.urls import shown_url

        return f"DuckLake {self.name} (catalog {shown_url(self.catalog)}, data {self.storage})"

    def _credentials(self) -> Any:
        from dlt.common.configuration.specs import ConnectionStringCredentials

        credentials = ConnectionStringCredentials(self.catalog)
        if credentials.drivername == "postgresql":
            credentials.drivername = "postgres"  # what DuckDB calls it
        return credentials

    def _extensions(self) -> tuple[str, ...]:
        from .extensions import DUCKLAKE, HTTPFS, POSTGRES, SQLITE
        from .object_store import is_object_store

        catalog = (DUCKLAKE, POSTGRES) if self.driver == "postgres" else (DUCKLAKE, SQLITE)
        return (*catalog, HTTPFS) if is_object_store(self.storage) else catalog

    def _s3_access(self) -> S3Access | None:
        """The keys and endpoint of an `s3://` storage, None for a local folder."""
        from .object_store import S3Access, is_s3

        return (self.s3 or S3Access()) if is_s3(self.storage) else None

    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """What a connection needs before the ATTACH: the extensions, and the bucket's keys as a temporary
        secret (the same keys dlt's loader connections get, see `dlt_destination`)."""
        from .extensions import prepare

        prepare(con, *self._extensions())
        if (s3 := self._s3_access()) is not None:
            con.execute(s3.secret_sql(self._storage_url()))

    def attach_statement(self, alias: str, *, read_only: bool) -> str:
        """The ATTACH that dlt's ducklake destination uses for this lake (so both see the same one), under
        `alias`, with the metadata schema named after the lake."""
        from dlt.destinations.impl.ducklake.sql_client import DuckLakeSqlClient

        statement = DuckLakeSqlClient.build_attach_statement(
            ducklake_name=alias, metadata_schema=self.name, catalog=self._credentials(), storage_url=self._storage_url()
        )
        return statement[:-1] + ", READ_ONLY)" if read_only else statement

    def connect(self, *, read_only: bool = False, in_load: bool = False) -> duckdb.DuckDBPyConnection:
        """Inside this process's load (`one_instance`), a cursor of its instance for a writer or a step of the
        load; a reader elsewhere gets an instance of its own, which sees the lake's last snapshot."""
        from .duckdb_file import CATALOG, held_cursor, open_attached

        if (in_load or not read_only) and (cursor := held_cursor(self.instance_key())) is not None:
            return cursor
        return open_attached(self.attach_statement(CATALOG, read_only=read_only), prepare=self._prepare)

    def instance_key(self) -> str:
        """Keys the load's one instance of this lake (`duckdb_file.held_instance`)."""
        return f"ducklake:{self.identity()}"

    def one_instance(self, *, wait: float = 0.0) -> contextlib.AbstractContextManager[object]:
        """One DuckDB instance with the lake attached, for the whole load: ours and dlt's steps take cursors of
        it (storage/destination.py `held_ducklake`). Each of dlt's connections otherwise opened an instance of
        its own, loaded the extensions and attached the lake (reading its catalog), then detached it: ~0.5 s
        each, six times in a run with nothing new. Detached before it closes, as dlt does (a catalog left
        attached at close was seen corrupted)."""
        from .duckdb_file import CATALOG, held_instance, open_attached
        from .extensions import preloaded

        def open_() -> duckdb.DuckDBPyConnection:
            return open_attached(
                self.attach_statement(CATALOG, read_only=False),
                prepare=self._prepare,
                config=LAKE_LOAD_CONFIG,
                instance=preloaded(*self._extensions(), config=LAKE_LOAD_CONFIG),
            )

        def detach(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"USE memory; DETACH {CATALOG}")

        return held_instance(self.instance_key(), open_, before_close=detach)

    def exists(self) -> bool:
        from .duckdb_file import held_cursor

        if (cursor := held_cursor(self.instance_key())) is not None:
            cursor.close()
            return True  # attached by this process's load
        catalog_file = self._catalog_file()
        if catalog_file is not None:
            return catalog_file.is_file()
        try:
            self.connect(read_only=True).close()
        except Exception:
            return False
        return True

    def locked(self, *, wait: float, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        from .lock import database_lock, postgres_lock

        if shared:
            return contextlib.nullcontext()  # readers see a snapshot: they neither wait nor block a load
        if self.driver == "postgres":
            return postgres_lock(self._psycopg_dsn(), key=self._lock_key(), wait=wait, shown=self.shown())
        catalog_file = self._catalog_file()
        assert catalog_file is not None
        return database_lock(str(catalog_file), wait=wait)

    def _lock_key(self) -> int:
        """One advisory lock per lake (the metadata schema names it within its database)."""
        digest = hashlib.sha256(f"openai-batches:{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def setup_sql(self) -> str:
        """The LOAD lines of the packaged extensions (no downloads) and the ATTACH, read-only. A password in
        a PostgreSQL catalog URL is left out: libpq takes it from PGPASSWORD or ~/.pgpass instead; so are an
        S3 bucket's keys: DuckDB takes them from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY instead."""
        from dlt.common.configuration.specs import ConnectionStringCredentials

        from .duckdb_file import CATALOG
        from .extensions import OFFLINE_SETTINGS, load_targets

        settings_sql = " ".join(f"SET {k} = {str(v).lower()};" for k, v in OFFLINE_SETTINGS.items())
        loads = " ".join(f"LOAD {target};" for target in load_targets(*self._extensions()))
        shown = self
        if self.driver == "postgres":
            credentials = ConnectionStringCredentials(self.catalog)
            credentials.password = None
            shown = DuckLake(
                catalog=credentials.to_native_representation(), storage=self.storage, name=self.name, s3=self.s3
            )
        s3 = self._s3_access()
        secret = f" {s3.settings_sql()}" if s3 is not None else ""
        return f"{settings_sql} {loads}{secret} {shown.attach_statement(CATALOG, read_only=True)}; USE {CATALOG};"

    def _psycopg_dsn(self) -> str:
        return "postgresql:" + self.catalog.split(":", 1)[1]

    def dlt_destination(self) -> Any:
        from dlt.destinations.impl.ducklake.configuration import DuckLakeCredentials

        from .destination import held_ducklake
        from .duckdb_file import CATALOG
        from .extensions import dlt_credentials_config

        s3 = self._s3_access()
        # Attached under our alias with the lake's name as its metadata schema: the statement of `connect`, so
        # that inside a load dlt's ATTACH IF NOT EXISTS finds the lake the load's instance attached.
        credentials = DuckLakeCredentials(
            ducklake_name=CATALOG,
            metadata_schema=self.name,
            catalog=self._credentials(),
            storage=s3.dlt_storage(self._storage_url()) if s3 is not None else self._storage_url(),
        )
        loading = dlt_credentials_config(*self._extensions())
        credentials.extensions = loading["extensions"]
        credentials.global_config = {**loading["global_config"], "threads": settings.DUCKDB_LOAD_THREADS}
        return held_ducklake(self.instance_key(), credentials=credentials)

    def identity(self) -> str:
        from ..client.urls import shown_url

        return f"ducklake:{shown_url(self.catalog)}#{self.name}"

    def problem(self) -> str | None:
        from .duckdb_file import OWN_SCHEMAS
        from .object_store import is_object_store

        if self.driver not in ("postgres", "sqlite", "duckdb"):
            return (
                f"the DuckLake catalog must be postgres://..., sqlite:///FILE or duckdb:///FILE, not "
                f"{self.driver}://..."
            )
        if self.name.lower() in OWN_SCHEMAS or self.name.lower() in ("main", "memory", "system", "temp"):
            # dlt attaches the lake under its name: `openai_batches` would make every `openai_batches.<table>`
            # ambiguous, as a DuckDB file of that name does.
            return f"the DuckLake name {self.name!r} is reserved here: choose another (default {settings.LAKE_NAME!r})"
        if is_object_store(self.storage):
            return self._object_store_problem()
        return None

    def _object_store_problem(self) -> str | None:
        s3 = self._s3_access()
        if s3 is None:
            scheme = self.storage.split("://", 1)[0]
            return (
                f"the DuckLake storage must be a folder or an S3 URL (s3://BUCKET/PATH, on AWS or an S3-compatible "
                f"endpoint), not {scheme}://..."
            )
        if problem := s3.problem():
            return problem
        if not s3.key_id:
            return (
                f"the DuckLake storage {self.storage} needs S3 keys: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(and AWS_ENDPOINT_URL for a store other than AWS), or aws_access_key_id, aws_secret_access_key "
                "(and endpoint_url) under [destination.ducklake.credentials.storage.credentials]"
            )
        return None


@dataclass(frozen=True)
class MotherDuck(Store):
    """A MotherDuck database (DuckDB in the cloud, the same SQL), configured the dlt way. It needs the
    network and a token, so the test suite cannot exercise it; loads exclude each other only by running
    from one machine (there is no lock in MotherDuck that a load could hold)."""

    database: str
    kind: str = field(default="motherduck", init=False)

    def shown(self) -> str:
        return f"MotherDuck md:{self.database}"

    def connect(self, *, read_only: bool = False, in_load: bool = False) -> duckdb.DuckDBPyConnection:
        from .duckdb_file import CATALOG, open_attached

        return open_attached(f"ATTACH 'md:{self.database}' AS {CATALOG}{' (READ_ONLY)' if read_only else ''}")

    def exists(self) -> bool:
        return True

    def locked(self, *, wait: float, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def dlt_destination(self) -> Any:
        import dlt

        return dlt.destinations.motherduck()

    def identity(self) -> str:
        return f"md:{self.database}"

    def setup_sql(self) -> str:
        from .duckdb_file import CATALOG

        return f"ATTACH 'md:{self.database}' AS {CATALOG} (READ_ONLY); USE {CATALOG};"


def as_store(where: Store | str) -> Store:
    """A Store for a DuckDB file path, or the Store itself."""
    return where if isinstance(where, Store) else DuckDBFile(str(where))


@contextlib.contextmanager
def connected(store: Store, *, read_only: bool = False, in_load: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    con = store.connect(read_only=read_only, in_load=in_load)
    try:
        yield con
    finally:
        con.close()


__all__ = ["DuckDBFile", "DuckLake", "MotherDuck", "Store", "as_store", "connected", "preload_lake_extensions"]
