"""Time every `queries/*.sql` against one database, as the report runs them; prints one JSON object.

Usage: `python bench/report_queries.py DB_PATH`. The database is prepared first (prices and views, as
`openai-batches report` does before reading), and that preparation is timed separately from the queries.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]


def main(db_path: str) -> int:
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    try:
        from openai_batches.analysis import refresh_analysis
        from openai_batches.analysis.queries import load_queries, run_query, set_since
    except ImportError as e:  # the report code is young; still time the raw files
        refresh_analysis = None
        load_queries = run_query = set_since = None
        print(f"analysis package not importable ({e}); running the raw SQL files", file=sys.stderr)
    prepare_s = 0.0
    if refresh_analysis is not None:
        t = time.perf_counter()
        refresh_analysis(db_path)
        prepare_s = time.perf_counter() - t
    timings: dict[str, float] = {}
    rows: dict[str, int] = {}
    with duckdb.connect(db_path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        if load_queries is not None and run_query is not None and set_since is not None:
            set_since(con, None)
            for query in load_queries():
                t = time.perf_counter()
                result = run_query(con, query)
                timings[query.path.name] = time.perf_counter() - t
                rows[query.path.name] = len(result.rows)
        else:
            for path in sorted((ROOT / "queries").glob("*.sql")):
                t = time.perf_counter()
                fetched = con.execute(path.read_text()).fetchall()
                timings[path.name] = time.perf_counter() - t
                rows[path.name] = len(fetched)
    print(
        json.dumps(
            {
                "prepare_s": prepare_s,
                "queries_s": sum(timings.values()),
                "timings": timings,
                "rows": rows,
                "total_s": time.perf_counter() - started,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
