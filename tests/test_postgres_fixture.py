"""The throwaway PostgreSQL of tests/support/postgres.py: what dlt and DuckDB need from it, and that nothing of it
outlives the tests."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dlt
import duckdb
import pyarrow as pa
import pytest

from openai_batches.storage import extensions

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

# The fixtures. tests.support.postgres is imported inside the tests below, after pytest has imported it as a plugin
# (importing it here first would leave it without pytest's assertion rewriting, and warn).
pytest_plugins = ["tests.support.postgres"]

REPO = Path(__file__).resolve().parent.parent


def server_pid(root: Path) -> int:
    return int((root / "data" / "postmaster.pid").read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose (its parent has not reaped it yet)
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_duckdb_and_a_ducklake_catalog_use_the_dsn(postgres_dsn: str, tmp_path: Path) -> None:
    con = extensions.prepare(duckdb.connect(), extensions.DUCKLAKE, extensions.POSTGRES)
    con.execute(f"ATTACH '{postgres_dsn}' AS pg (TYPE postgres)")
    assert con.execute("SELECT * FROM postgres_query('pg', 'SELECT current_user')").fetchall() == [("postgres",)]

    con.execute(f"ATTACH 'ducklake:postgres:{postgres_dsn}' AS lake (DATA_PATH '{tmp_path / 'files'}')")
    con.execute("CREATE TABLE lake.t AS SELECT 1 AS id, TIMESTAMPTZ '2026-01-02 03:04:05+00' AS created_at")

    # the catalog really is in PostgreSQL: a second, independent DuckDB sees the table through it
    other = extensions.prepare(duckdb.connect(), extensions.DUCKLAKE, extensions.POSTGRES)
    other.execute(f"ATTACH 'ducklake:postgres:{postgres_dsn}' AS lake (DATA_PATH '{tmp_path / 'files'}', READ_ONLY)")
    assert other.execute("SELECT id, epoch(created_at) FROM lake.t").fetchall() == [(1, 1767323045.0)]
    tables = con.execute("SELECT * FROM postgres_query('pg', 'SELECT table_name FROM ducklake_table')").fetchall()
    assert tables == [("t",)]


def test_dlt_postgres_destination_loads_through_the_dsn(postgres_dsn: str) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = pa.table({"id": ["a"], "created_at": pa.array([at], pa.timestamp("us", tz="UTC"))})
    pipeline = dlt.pipeline("pg_fixture", destination=dlt.destinations.postgres(postgres_dsn), dataset_name="ds")

    pipeline.run(dlt.resource(rows, name="items", primary_key="id", write_disposition="merge"))

    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT id, created_at FROM items") == [("a", at)]


def test_the_cluster_is_unprivileged_and_reachable_only_through_its_socket(postgres_server: PostgresServer) -> None:
    import psycopg2

    from tests.support.postgres import UNPRIVILEGED_USER

    with psycopg2.connect(postgres_server.dsn()) as con, con.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone() == ("",)  # no TCP socket at all
        cur.execute("SHOW unix_socket_directories")
        assert cur.fetchone() == (postgres_server.socket_dir,)
    owner = Path(f"/proc/{server_pid(postgres_server.root)}").stat().st_uid
    if os.geteuid() == 0:
        assert pwd.getpwuid(owner).pw_name == UNPRIVILEGED_USER
    else:
        assert owner == os.geteuid()


def test_stopped_and_removed_when_the_block_fails() -> None:
    from tests.support.postgres import throwaway_postgres

    with pytest.raises(RuntimeError, match="test failed"), throwaway_postgres() as pg:
        pid, root = server_pid(pg.root), pg.root
        raise RuntimeError("test failed")

    assert not root.exists()
    assert not alive(pid)


def test_the_server_goes_with_a_killed_test_process() -> None:
    script = (
        "import sys, time\n"
        "from tests.support.postgres import throwaway_postgres\n"
        "with throwaway_postgres() as pg:\n"
        "    print(pg.root, flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    root = None
    try:
        assert child.stdout is not None
        root = Path(child.stdout.readline().strip())
        pid = server_pid(root)
        child.send_signal(signal.SIGKILL)  # no `finally` runs in the child
        child.wait(timeout=10)

        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    finally:
        child.kill()
        child.wait()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def test_missing_binaries_are_reported_with_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support import postgres

    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_config
    monkeypatch.delenv("PG_BINDIR", raising=False)
    monkeypatch.setattr(postgres, "DEBIAN_BINDIRS", str(tmp_path / "postgresql" / "*" / "bin"))

    assert postgres.find_bindir() is None
    with pytest.raises(postgres.PostgresUnavailable, match="apt-get install postgresql"), postgres.throwaway_postgres():
        pass
