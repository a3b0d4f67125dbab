"""A load on a DuckLake runs in one DuckDB instance with the lake attached writable from its start
(storage/store.py `DuckLake.one_instance`): what a hostile environment does to that, through the real CLI
against the simulator."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import duckdb
import pytest

from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.cli import assert_one_clear_error, run_cli
from .support.workload import PROJECT_A
from .test_ducklake import lake_env


def _someone_elses_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        con.execute("INSERT INTO users VALUES (1, 'ann')")


def _someone_elses_duckdb(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE users (id INTEGER, name VARCHAR)")
        con.execute("INSERT INTO users VALUES (1, 'ann')")


@pytest.mark.parametrize(("kind", "make"), [("sqlite", _someone_elses_sqlite), ("duckdb", _someone_elses_duckdb)])
def test_a_catalog_file_of_another_program_is_refused_with_nothing_written(
    kind: str, make: object, tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """A `sqlite:///` or `duckdb:///` catalog naming another application's database (or a DuckDB file of ours,
    given as a catalog by mistake): the load's writable ATTACH created DuckLake's ~40 metadata tables among
    that application's tables, then loaded the lake into it. The read-only probe before did refuse it."""
    org.generate_history(5, project=PROJECT_A, days=5)
    catalog = tmp_path / f"app.{kind}"
    make(catalog)  # type: ignore[operator]
    before = catalog.read_bytes()
    env = lake_env(f"{kind}:///{catalog}", tmp_path / "lake", server, tmp_path / "dlt")
    result = run_cli("load", "--destination", "ducklake", env=env)
    assert_one_clear_error(result, 2, "not created by openai-batches", str(catalog), "nothing was written")
    assert catalog.read_bytes() == before
    assert not (tmp_path / "lake").exists()


def test_a_damaged_extension_package_fails_a_lake_load_as_a_configuration_error_naming_the_package(
    tmp_path: Path, server: SimulatorServer
) -> None:
    """The extensions load on a thread from the CLI's start and again when the lake opens: a damaged DuckLake
    package is the one-line configuration error the CLI means it to be (exit 2, the package to reinstall, as
    `status` says it), not a failed load (exit 1) showing DuckDB's message without the hint."""
    from .test_extensions import fake_package

    fake_package(tmp_path / "site", "ducklake", duckdb.__version__, b"\x7fELF truncated")
    catalog = tmp_path / "catalog.sqlite"
    path = os.pathsep.join(p for p in (str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")) if p)
    env = lake_env(f"sqlite:///{catalog}", tmp_path / "lake", server, tmp_path / "dlt", PYTHONPATH=path)
    result = run_cli("load", "--destination", "ducklake", env=env)
    assert_one_clear_error(result, 2, "'ducklake' from duckdb-extension-ducklake did not load", "reinstall it")
    assert not catalog.exists()
