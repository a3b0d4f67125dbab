"""`batch_requests.custom_id_prefix`, the job a custom id names: stored by the loader (arrow's RE2), computed by the
views for rows an older version wrote (DuckDB's RE2), the same value either way; the report of cost per job reads it."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa

from openai_batches.analysis import reading, refresh_after_load
from openai_batches.simulator import SimulatedOrg, SimulatorServer
from openai_batches.tables.ledger import custom_id_prefix, custom_id_prefix_sql

from .support.ledger import finished, load

ODD_IDS = [
    "job-17-req-00042",
    "ticket:123",
    "acme:doc-4411-3",
    "plain",
    "-x",
    "x-",
    "::",
    "a\nb-c",
    "a-b\nc",
    "ab-\n",
    "\r-1",
    "x_\u00e9-1",
    "a\u2028b-c",
    "\u65e5\u672c-\u8a9e",
    "a\x00b-c",
    "",
]


def _sql_prefixes(ids: list[str]) -> list[str]:
    with duckdb.connect() as con:
        sql = (
            f"SELECT {custom_id_prefix_sql('r')} FROM (SELECT s AS custom_id, NULL AS custom_id_prefix, i "
            "FROM unnest(?) WITH ORDINALITY AS t(s, i)) AS r ORDER BY i"
        )
        return [row[0] for row in con.execute(sql, [ids]).fetchall()]


def test_the_loader_and_the_views_give_every_custom_id_the_same_prefix() -> None:
    rng = random.Random(7)
    alphabet = "-_:ab\n\r \u00e9\u2028\t/"
    fuzzed = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    ids = ODD_IDS + fuzzed
    stored = custom_id_prefix(pa.chunked_array([ids[:1000], ids[1000:]])).to_pylist()
    assert stored == _sql_prefixes(ids)
    assert stored[:3] == ["job-17-req", "ticket", "acme:doc-4411"]


def test_rows_written_before_the_column_existed_report_the_same_jobs(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """An older version's file: `custom_id_prefix` absent (dropped here), then added empty, and NULL in its rows. The
    views compute it for those rows; the cost per job is what it was with the stored column."""
    finished(org, outcome="completed", total_requests=40)
    load(db, server)
    per_job = "SELECT * FROM openai_batches.request_costs ORDER BY batch_id, custom_id"
    with reading(db) as analysis:
        before = analysis.con.execute(per_job).fetchall()
    with duckdb.connect(db) as con:
        stored = con.execute("SELECT count(custom_id_prefix) FROM openai_batches.batch_requests").fetchone()
        assert stored == (40,)
        con.execute("ALTER TABLE openai_batches.batch_requests DROP COLUMN custom_id_prefix")
    with reading(db) as analysis:  # the column absent: the report's session reads it as NULL
        assert analysis.con.execute(per_job).fetchall() == before
    assert refresh_after_load(db) == []  # the column added, empty
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(custom_id_prefix) FROM openai_batches.batch_requests").fetchone() == (0,)
        assert con.execute(per_job).fetchall() == before
    finished(org, outcome="completed", total_requests=5)
    load(db, server)  # new rows get theirs stored; the old ones keep NULL and the same job
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(custom_id_prefix) FROM openai_batches.batch_requests").fetchone() == (5,)
        rows = con.execute(per_job).fetchall()
    assert [r for r in rows if r in before] == before
    assert len(rows) == 45
