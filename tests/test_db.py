"""`db.shared_instance`: one DuckDB instance of a file for everything a load does with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from openai_batches.analysis import refresh_after_load
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimulatedOrg, SimulatorServer
from openai_batches.storage.destination import load_config
from openai_batches.storage.duckdb_file import CATALOG, LoadInProgress, connect, open_shared, shared_instance
from openai_batches.storage.lock import DatabaseBusy

from .support.assertions import assert_matches_simulator
from .support.workload import KEY_A, PROJECT_A, config_for, load


def test_connections_inside_the_block_are_cursors_of_the_one_instance(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    with shared_instance(db, config=load_config(str(db))) as shared:
        assert open_shared(db) is shared
        # Another spelling of the same path is the same file.
        assert open_shared(tmp_path / "." / db.name) is shared
        writer = connect(db)
        writer.execute("CREATE TABLE t AS SELECT 42 AS answer")
        writer.close()  # a cursor: the instance stays open
        # A read-only connection would be a writable cursor here: refused, unless a step of the load asks.
        with pytest.raises(LoadInProgress, match="being loaded by this process"):
            connect(db, read_only=True)
        reader = connect(db, read_only=True, in_load=True)
        assert reader.execute("SELECT current_database(), answer FROM t").fetchall() == [(CATALOG, 42)]
        reader.close()
        # The instance has the load's settings: one thread, bounded memory.
        assert shared.execute("SELECT current_setting('threads')").fetchone() == (1,)
        with shared_instance(db, config=load_config(str(db))) as nested:
            assert nested is shared
        assert open_shared(db) is shared  # the nested block did not close it
    assert open_shared(db) is None
    with duckdb.connect(str(db), read_only=True) as con:  # committed and closed: another process sees it
        assert con.execute("SELECT answer FROM t").fetchall() == [(42,)]


def test_the_instance_is_closed_when_the_block_fails(tmp_path: Path) -> None:
    db = tmp_path / "failing.duckdb"
    with pytest.raises(RuntimeError), shared_instance(db, config=load_config(str(db))):
        connect(db).execute("CREATE TABLE t AS SELECT 1 AS x")
        raise RuntimeError("the load failed")
    assert open_shared(db) is None
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]


# --- another program opens the file between the load's wait for it and the load's open -------------------

_HOLDER = (
    "import duckdb, sys, time;"
    "con = duckdb.connect(sys.argv[1], read_only=True);"
    "print('open', flush=True); time.sleep(float(sys.argv[2]))"
)


def _reader_holding(db: Path, seconds: float) -> subprocess.Popen[str]:
    """A DuckDB shell's worth of reader in another process: the file open read-only for `seconds`."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "open\n"
    return holder


def test_a_load_waits_for_a_reader_that_opened_the_file_after_the_lock_was_taken(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """`load` waits for DuckDB's lock before it starts, then opens the file for the whole load: a DuckDB
    shell polling the file got in between (5 of 12 cron loads failed, exit 1). It is waited for as well."""
    org.generate_history(200, project=PROJECT_A, days=10)
    assert load(db, server, KEY_A).ok
    org.advance(600)
    for _ in range(5):
        org.create_batch(project=PROJECT_A)
    holder = _reader_holding(Path(db), 1.0)
    result = run_load(db, config_for(server.base_url, KEY_A), wait=30)
    holder.wait()
    assert result.ok, result.error
    assert_matches_simulator(db, org, PROJECT_A)


def test_a_reader_holding_the_file_past_the_wait_is_busy_and_nothing_is_written(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(50, project=PROJECT_A, days=10)
    assert load(db, server, KEY_A).ok
    before = Path(db).read_bytes()
    holder = _reader_holding(Path(db), 30)
    try:
        with pytest.raises(
            DatabaseBusy, match=rf"database {re.escape(db)} is open in another program.*PID {holder.pid}"
        ):
            run_load(db, config_for(server.base_url, KEY_A), wait=0.3)
    finally:
        holder.kill()
        holder.wait()
    assert Path(db).read_bytes() == before


def test_the_views_after_a_load_wait_for_a_reader_too(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    """The report views are stored after the load closed the file: the same gap for a reader."""
    org.generate_history(50, project=PROJECT_A, days=10)
    assert load(db, server, KEY_A).ok
    holder = _reader_holding(Path(db), 1.0)
    assert refresh_after_load(db, wait=30) == []
    holder.wait()
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM openai_batches.batch_costs").fetchone() == (50,)
    holder = _reader_holding(Path(db), 30)
    try:
        warnings = refresh_after_load(db, wait=0)
    finally:
        holder.kill()
        holder.wait()
    assert len(warnings) == 1 and warnings[0].startswith(f"report views not refreshed in {db}: "), warnings
