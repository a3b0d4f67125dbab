"""Baseline: the least a loader can do: page with httpx, parse with json, one DuckDB insert from arrow.

No retries, no incremental state, no flattening or typing beyond what arrow infers, no merge: the floor
for local work per batch. Usage: `python bench/floor.py DB_PATH [--fetch-only] [--anthropic]` with OPENAI_API_KEY
and OPENAI_BASE_URL set (ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL with `--anthropic`: Anthropic's Message Batches,
pages of 1000 after `last_id`); `--fetch-only` stops after paging (the bare paging loop of the latency benchmark).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import duckdb
import httpx
import pyarrow as pa


def main(db_path: str, fetch_only: bool = False, anthropic: bool = False) -> int:
    if anthropic:
        base = os.environ["ANTHROPIC_BASE_URL"].rstrip("/") + "/v1/messages"
        headers = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
        limit, cursor = 1000, "after_id"
    else:
        base = os.environ["OPENAI_BASE_URL"].rstrip("/")
        headers = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}
        limit, cursor = 100, "after"
    rows: list[dict[str, Any]] = []
    with httpx.Client(headers=headers, timeout=60) as client:
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit, **({cursor: after} if after else {})}
            response = client.get(f"{base}/batches", params=params)
            response.raise_for_status()
            page = json.loads(response.content)
            rows.extend(page["data"])
            if not page["data"] or not page.get("has_more"):
                break
            after = page["data"][-1]["id"]
    if fetch_only:  # the bare paging loop: what any client pays before doing anything with the data
        print(f"fetch only: {len(rows)} batches")
        return 0
    # Struct inference over every row (keys absent from some batches, e.g. `usage`, become nullable fields).
    table = pa.Table.from_struct_array(pa.array(rows))
    with duckdb.connect(db_path) as con:
        con.register("page_rows", table)
        con.execute("CREATE TABLE batches AS SELECT * FROM page_rows")
    print(f"floor: {len(rows)} batches loaded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], fetch_only="--fetch-only" in sys.argv[2:], anthropic="--anthropic" in sys.argv[2:]))
