"""Grow a request ledger loaded from the simulator into a large history, and time the ledger's queries over it.

Usage: `python bench/ledger_history.py grow DB ROWS` copies the batches the database holds (their `batches`,
`batch_files` and `batch_requests` rows, as a load from the simulator wrote them) under new ids until
`batch_requests` holds at least ROWS rows; `python bench/ledger_history.py time DB` times the ledger's queries
(`queries/*.sql` that read it) and a full read of the views `request_costs` and `ledger_check`, and reports the
file's size and the ledger's bytes; each prints one JSON object.

The copies are what a year of loads would have written: a copy's batch is a new batch (id, file ids, request and
response ids new, as random as the API's), with the same requests, outcomes and tokens as the batch it copies.
Building 50M rows through the simulator and the loader would take an hour of JSONL (~1.5 kB a line); the
benchmark loads one part that way and measures the loader on top of the grown history (bench/run.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
S = "openai_batches"
# Copies per statement: ~5M rows at 200k rows a part, so the copying itself needs no more memory than that.
COPIES_PER_STATEMENT = 25
# How far back copy k is moved: every copy's times in the past (the simulator's batches finish days ahead of the
# wall clock, where the views take a time for impossible), two hours apart: 250 copies are three weeks of batches.
SHIFT = "to_seconds(4 * 86400 + k * 7200)"
# The ledger's report queries (they read `request_costs` or `ledger_check`), and the two views read whole.
LEDGER_QUERIES = (
    "19_request_outcomes.sql",
    "20_missing_requests.sql",
    "21_failure_reasons.sql",
    "22_cost_by_custom_id_prefix.sql",
    "23_ledger_check.sql",
)
VIEW_READS = {
    "request_costs (every row)": f"SELECT count(*), count(*) FILTER (WHERE priced), sum(cost_usd) "
    f"FROM {S}.request_costs",
    "ledger_check (every row)": f"SELECT count(*), count(*) FILTER (WHERE consistent), sum(ledger_requests) "
    f"FROM {S}.ledger_check",
}


def _copy_sql(table: str, columns: dict[str, str], key: str, k0: int, k1: int, part: str) -> str:
    """Copies k0..k1-1 of the part's rows of ``table``: every id made new (`_h<k>` on the batch id; file, request and
    response ids re-drawn from md5, the API's length and alphabet), every time moved into the past (`SHIFT`)."""
    suffix = "'_h' || k"
    replaced = {
        key: f"{key} || {suffix}",
        "file_id": "'file-' || left(md5(file_id || k), 22)",
        "request_id": "'req_' || md5(request_id || k)",
        "response_id": "left(response_id, strpos(response_id, '-')) || left(md5(response_id || k), 29)",
        "input_file_id": "'file-' || left(md5(input_file_id || k), 22)",
        "output_file_id": "'file-' || left(md5(output_file_id || k), 22)",
        "error_file_id": "'file-' || left(md5(error_file_id || k), 22)",
    }
    for name, kind in columns.items():
        if kind.startswith("TIMESTAMP"):
            replaced[name] = f"{name} - {SHIFT}"
    select = ", ".join(replaced.get(c, f'"{c}"') for c in columns)
    return (
        f"INSERT INTO {S}.{table} SELECT {select} FROM {S}.{table} AS t, range({k0}, {k1}) AS r(k) "
        f"WHERE t.{key} IN (SELECT id FROM {part})"
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [S, table],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def grow(db: str, rows: int) -> dict[str, float]:
    started = time.perf_counter()
    con = duckdb.connect(db)
    # The part: the batches a load from the simulator wrote (no copy's id has `_h`).
    con.execute(f"CREATE TEMP TABLE part AS SELECT id FROM {S}.batches WHERE id NOT LIKE '%\\_h%' ESCAPE '\\'")
    part_rows = con.execute(
        f"SELECT count(*) FROM {S}.batch_requests WHERE batch_id IN (SELECT id FROM part)"
    ).fetchone()[0]
    have = con.execute(f"SELECT count(*) FROM {S}.batch_requests").fetchone()[0]
    # The next copy number: after every one made so far (the part may have grown since: a load between two grows).
    copy = "TRY_CAST(regexp_extract(id, '_h(\\d+)$', 1) AS INTEGER)"
    last = con.execute(f"SELECT max({copy}) FROM {S}.batches").fetchone()
    k = 1 + (last[0] or 0)
    tables = (("batches", "id"), ("batch_files", "batch_id"), ("batch_requests", "batch_id"))
    columns = {t: _columns(con, t) for t, _ in tables}
    while have < rows:
        step = min(COPIES_PER_STATEMENT, -(-(rows - have) // part_rows))
        con.execute("BEGIN")
        for table, key in tables:
            con.execute(_copy_sql(table, columns[table], key, k, k + step, "part"))
        con.execute("COMMIT")
        k += step
        have += step * part_rows
    con.execute("CHECKPOINT")
    total = con.execute(f"SELECT count(*) FROM {S}.batch_requests").fetchone()[0]
    con.close()
    return {"rows": total, "part_rows": part_rows, "seconds": time.perf_counter() - started}


def _ledger_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes of `batch_requests`' blocks in the file (`pragma_storage_info`: every column segment's block; a block
    shared by several segments counted once)."""
    row = con.execute(
        f"SELECT count(DISTINCT block_id) FROM pragma_storage_info('{S}.batch_requests') WHERE persistent"
    ).fetchone()
    block = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
    return int(row[0]) * int(block[0]) if row and block else 0


def time_queries(db: str) -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "pipelines"))
    from openai_batches.analysis.queries import load_queries, run_query, set_since

    timings: dict[str, float] = {}
    with duckdb.connect(db, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        set_since(con, None)
        rows = con.execute(f"SELECT count(*) FROM {S}.batch_requests").fetchone()
        batches = con.execute(f"SELECT count(*) FROM {S}.batches").fetchone()
        ledger_bytes = _ledger_bytes(con)
        for query in load_queries(only=[Path(name).stem.split("_", 1)[1] for name in LEDGER_QUERIES]):
            t = time.perf_counter()
            run_query(con, query)
            timings[query.path.name] = time.perf_counter() - t
        for name, sql in VIEW_READS.items():
            t = time.perf_counter()
            con.execute(sql).fetchall()
            timings[name] = time.perf_counter() - t
    return {
        "rows": rows[0] if rows else 0,
        "batches": batches[0] if batches else 0,
        "file_bytes": os.path.getsize(db),
        "ledger_bytes": ledger_bytes,
        "timings": timings,
    }


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "grow":
        print(json.dumps(grow(argv[1], int(argv[2]))))
        return 0
    if len(argv) == 2 and argv[0] == "time":
        print(json.dumps(time_queries(argv[1])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
