"""`db.shared_instance`: one DuckDB instance of a file for everything a load does with it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.openai_batches.db import CATALOG, connect, open_shared, shared_instance
from pipelines.openai_batches.destination import load_config


def test_connections_inside_the_block_are_cursors_of_the_one_instance(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    with shared_instance(db, config=load_config(str(db))) as shared:
        assert open_shared(db) is shared
        # Another spelling of the same path is the same file.
        assert open_shared(tmp_path / "." / db.name) is shared
        writer = connect(db)
        writer.execute("CREATE TABLE t AS SELECT 42 AS answer")
        writer.close()  # a cursor: the instance stays open
        reader = connect(db, read_only=True)
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
