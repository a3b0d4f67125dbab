"""DuckDB extensions from installed packages, never from the internet.

DuckDB fetches an extension it lacks (`ducklake` for `ATTACH 'ducklake:...'`, `postgres_scanner` for a
PostgreSQL catalog) from its extension repository the first time a statement needs it, and stores it under
`~/.duckdb/extensions`. A machine with no internet then fails at the first DuckLake load, and a machine
with internet runs whatever the repository serves that day. Instead the extension binaries come from
packages on the package index (`duckdb-extension-<name>`, pinned in requirements.lock together with
DuckDB, because an extension only loads into the exact DuckDB version it was built for), and every
connection that needs one gets:

- `SET autoinstall_known_extensions = false`: DuckDB never downloads an extension for this connection;
  a missing one is an error naming it, at once, instead of a network timeout.
- `LOAD '<path inside the package>'`: the file is loaded where pip put it; nothing is copied into the
  user's home. DuckDB still checks the binary's signature (~80 ms per extension for each new database
  instance; an in-memory connection is a new instance every time).

`prepare(con, ...)` does both on a connection; `dlt_credentials_config(...)` gives the same as the
`extensions` / `global_config` of dlt's DuckDB and DuckLake credentials, which dlt applies on every
connection it opens.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sql import quote_literal

if TYPE_CHECKING:
    import duckdb

# DuckDB's own names of the extensions this program loads. `postgres` is an alias of `postgres_scanner`,
# `sqlite` of `sqlite_scanner`; the packages are named after the canonical names.
DUCKLAKE = "ducklake"
POSTGRES = "postgres_scanner"
SQLITE = "sqlite_scanner"
# S3 and S3-compatible object stores (a DuckLake whose Parquet files are in a bucket), and HTTP(S) reads.
HTTPFS = "httpfs"

# Turned off on every connection that loads packaged extensions (see the module docstring).
OFFLINE_SETTINGS: dict[str, Any] = {"autoinstall_known_extensions": False}


class ExtensionUnavailable(RuntimeError):
    """A DuckDB extension cannot be loaded from its package; the message says what to install."""


@dataclass(frozen=True)
class PackagedExtension:
    name: str  # DuckDB's canonical name: `ducklake`, `postgres_scanner`

    @property
    def distribution(self) -> str:
        """The package to install: `duckdb-extension-postgres-scanner`."""
        return "duckdb-extension-" + self.name.replace("_", "-")

    @property
    def module(self) -> str:
        """The package's import name: `duckdb_extension_postgres_scanner`."""
        return "duckdb_extension_" + self.name

    def install_hint(self) -> str:
        return f"pip install '{self.distribution}=={_duckdb_version()}' (it must match the installed DuckDB)"

    def path(self) -> Path:
        """The extension binary for the running DuckDB: `<package>/extensions/v<version>/<name>.duckdb_extension`.

        Raises ExtensionUnavailable when the package is not installed or ships no binary for this DuckDB."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ExtensionUnavailable(
                f"the DuckDB extension {self.name!r} is not installed: {self.install_hint()}; "
                "DuckDB extensions are never downloaded at run time"
            )
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        version = _duckdb_version()
        file = package_dir / "extensions" / f"v{version}" / f"{self.name}.duckdb_extension"
        if file.is_file():
            return file
        shipped = sorted(p.parent.name for p in package_dir.glob(f"extensions/*/{self.name}.duckdb_extension"))
        built_for = f"built for DuckDB {', '.join(v.lstrip('v') for v in shipped)}" if shipped else "with no binary"
        raise ExtensionUnavailable(
            f"the DuckDB extension {self.name!r} from {self.distribution} {_installed_version(self.distribution)} "
            f"is {built_for}, but DuckDB is {version}: {self.install_hint()}"
        )


def _duckdb_version() -> str:
    import duckdb

    return str(duckdb.__version__)


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def load_targets(*names: str) -> list[str]:
    """What follows `LOAD` for each extension: the quoted path of its packaged binary.

    Raises ExtensionUnavailable (naming the package to install) for the first one that is missing."""
    return [quote_literal(str(PackagedExtension(name).path())) for name in names]


def prepare(con: duckdb.DuckDBPyConnection, *names: str) -> duckdb.DuckDBPyConnection:
    """Turns off DuckDB's downloads for `con` and loads `names` (default: DuckLake and the PostgreSQL
    scanner) from their packages. Returns `con`.

    Raises ExtensionUnavailable when an extension's package is missing, built for another DuckDB, or its
    file does not load (a damaged install)."""
    import duckdb

    names = names or (DUCKLAKE, POSTGRES)
    targets = load_targets(*names)
    for setting, value in OFFLINE_SETTINGS.items():
        con.execute(f"SET {setting} = {str(value).lower()}")
    for name, target in zip(names, targets, strict=True):
        try:
            con.execute(f"LOAD {target}")
        except duckdb.Error as e:
            extension = PackagedExtension(name)
            raise ExtensionUnavailable(
                f"the DuckDB extension {name!r} from {extension.distribution} did not load ({e}); "
                f"reinstall it: {extension.install_hint()}"
            ) from e
    return con


def dlt_credentials_config(*names: str) -> dict[str, Any]:
    """`extensions` and `global_config` for dlt's `DuckDbCredentials` / `DuckLakeCredentials`, which dlt
    applies to every connection it opens (`LOAD <each extension>`, then `SET GLOBAL <each setting>`):

        DuckLakeCredentials(..., **dlt_credentials_config(DUCKLAKE, POSTGRES))  # then set any other keys

    Merge, don't replace, when you have a `global_config` of your own (threads, memory_limit)."""
    return {"extensions": load_targets(*(names or (DUCKLAKE, POSTGRES))), "global_config": dict(OFFLINE_SETTINGS)}


# Connections with extensions loaded on a thread ahead of need (`preload`), by (names, config).
_PRELOADED: dict[tuple[Any, ...], concurrent.futures.Future[duckdb.DuckDBPyConnection]] = {}


def preload(*names: str, config: dict[str, Any]) -> None:
    """Open an in-memory DuckDB instance with `config` and load `names` into it on a thread, for `preloaded` to
    take later: a lake's load starts this before dlt is imported, and the signature checks (~0.1-0.3 s per
    extension) run meanwhile. Nothing happens twice for the same names and config."""
    key = (names, tuple(sorted(config.items())))
    if key in _PRELOADED:
        return
    future: concurrent.futures.Future[duckdb.DuckDBPyConnection] = concurrent.futures.Future()

    def load() -> None:
        try:
            import duckdb

            con = duckdb.connect(":memory:", config=dict(config))
            try:
                prepare(con, *names)
            except BaseException:
                con.close()
                raise
            future.set_result(con)
        except BaseException as e:  # noqa: BLE001 -- handed to the taker, who opens the usual way instead
            future.set_exception(e)

    threading.Thread(target=load, name="duckdb-extensions", daemon=True).start()
    _PRELOADED[key] = future


def preloaded(*names: str, config: dict[str, Any]) -> duckdb.DuckDBPyConnection | None:
    """The connection `preload` opened for the same names and config (waiting for it), once; None when there is
    none or it failed: the caller then opens one itself, and meets the same error, if any, there."""
    future = _PRELOADED.pop((names, tuple(sorted(config.items()))), None)
    if future is None:
        return None
    try:
        return future.result()
    except Exception:  # noqa: BLE001 -- see the docstring
        return None


__all__ = [
    "DUCKLAKE",
    "HTTPFS",
    "OFFLINE_SETTINGS",
    "POSTGRES",
    "SQLITE",
    "ExtensionUnavailable",
    "PackagedExtension",
    "dlt_credentials_config",
    "load_targets",
    "preload",
    "preloaded",
    "prepare",
]
