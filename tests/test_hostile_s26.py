"""A hostile tester's holes in the stored `batch_requests.custom_id_prefix` (tables/ledger.py), each kept closed: custom
ids a server can send, read by the real loader from a scripted loopback API, then reported by the views both ways
(the value stored at load, and the one they compute for rows an older version wrote)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from openai_batches.analysis import reading
from openai_batches.load.runner import run_load
from openai_batches.tables.ledger import NO_PREFIX, OUTCOMES, custom_id_prefix

from .support.assertions import table
from .support.fake_api import Reply, ScriptedApi, json_reply, make_batch
from .support.workload import KEY_A, config_for

# id -> the job the README names for it: "its part before the last `-`, `_` or `:`". A custom id is any string;
# a newline before the last separator is still part of the job (a multi-line id pasted from a spreadsheet cell).
JOBS = {
    "job-17-req-00042": "job-17-req",
    "line1\nline2-7": "line1\nline2",
    "ticket\n:123": "ticket\n",
    "a\r\nb_c": "a\r\nb",
    "multi\nline\nid": NO_PREFIX,
    "\n-x": "\n",
    "tail-\n": "tail",
    "plain": NO_PREFIX,
    "-lead": NO_PREFIX,
}


def _result_line(custom_id: str, n: int) -> bytes:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    body = {"id": f"chatcmpl-{n}", "model": "gpt-4o-mini-2024-07-18", "usage": usage}
    response = {"status_code": 200, "request_id": f"req_{n}", "body": body}
    return json.dumps({"id": f"batch_req_{n}", "custom_id": custom_id, "response": response, "error": None}).encode()


def _api(custom_ids: list[str]) -> ScriptedApi:
    """One completed batch (finished an hour ago) whose output file answers one succeeded request per custom id."""
    batch = make_batch(1, error_file_id=None)
    batch["created_at"] = int(time.time()) - 2 * 3600
    batch["in_progress_at"] = batch["created_at"] + 5
    batch["finalizing_at"] = batch["created_at"] + 100
    batch["completed_at"] = int(time.time()) - 3600
    batch["expires_at"] = batch["created_at"] + 86_400
    n = len(custom_ids)
    batch["request_counts"] = {"total": n, "completed": n, "failed": 0}
    batch["usage"] = {
        "input_tokens": 10 * n,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 2 * n,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 * n,
    }
    files = {
        batch["output_file_id"]: b"\n".join(_result_line(c, i) for i, c in enumerate(custom_ids)) + b"\n",
        batch["input_file_id"]: b"".join(json.dumps({"custom_id": c, "body": {}}).encode() + b"\n" for c in custom_ids),
    }

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        parts = path.split("/")
        if path.startswith("/v1/files/") and path.endswith("/content"):
            return Reply(200, files[parts[3]], "application/octet-stream")
        if path.startswith("/v1/files/"):
            size = len(files[parts[3]])
            return json_reply({"id": parts[3], "object": "file", "bytes": size, "purpose": "batch_output"})
        if path.startswith("/v1/batches/"):
            return json_reply(batch)
        return json_reply({"object": "list", "data": [batch], "has_more": False})

    return ScriptedApi(route)


def _per_request(db: str) -> dict[str, Any]:
    with reading(db) as analysis:
        rows = analysis.con.execute("SELECT custom_id, custom_id_prefix FROM openai_batches.request_costs").fetchall()
    return dict(rows)


def test_a_newline_in_a_custom_id_leaves_its_job_the_part_before_the_last_separator(db: str) -> None:
    """`.` of the pattern did not match a newline: `line1\\nline2-7` was `(no prefix)`, its own job, although its part
    before the last `-` is `line1\\nline2`; stored so by the loader and computed so by the views alike."""
    assert custom_id_prefix(pa.chunked_array([list(JOBS)], pa.string())).to_pylist() == list(JOBS.values())
    with _api(list(JOBS)) as api:
        result = run_load(db, config_for(api.base_url, KEY_A, requests=True, max_attempts=2))
    assert result.ok, [o.error for o in result.outcomes]
    stored = dict(table(db, "SELECT custom_id, custom_id_prefix FROM openai_batches.batch_requests"))
    assert stored == JOBS
    assert _per_request(db) == JOBS
    # A row an older version wrote (no stored prefix): the views compute the same job.
    with duckdb.connect(db) as con:
        con.execute("UPDATE openai_batches.batch_requests SET custom_id_prefix = NULL")
    assert _per_request(db) == JOBS


def test_request_outcomes_counts_are_bigint_as_every_count(db: str) -> None:
    """Query 19 adds per-batch counts: DuckDB's sum of BIGINT is a HUGEINT, a type other clients read as a decimal or
    a string; the counts are cast back to the BIGINT of a count, as before the query counted per batch."""
    with _api(["job-1", "job-2", "other_1"]) as api:
        assert run_load(db, config_for(api.base_url, KEY_A, requests=True, max_attempts=2)).ok
    sql = (Path(__file__).parents[1] / "queries" / "19_request_outcomes.sql").read_text()
    with reading(db) as analysis:
        rel = analysis.con.sql(sql)
        types = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
        rows = rel.fetchall()
    counts = ("batches", "requests", *OUTCOMES)
    assert {c: types[c] for c in counts} == dict.fromkeys(counts, "BIGINT")
    assert [r[2:5] for r in rows] == [(1, 3, 3)]


def test_query_19_and_ledger_check_count_every_outcome_the_ledger_writes(db: str) -> None:
    """The outcomes are listed twice: in `ledger_check` (built from `OUTCOMES`) and in queries/19, a SQL file users
    read. An outcome added to the ledger and left out of either would be counted in `requests` and nowhere else."""
    with _api(["job-1"]) as api:
        assert run_load(db, config_for(api.base_url, KEY_A, requests=True, max_attempts=2)).ok
    sql = (Path(__file__).parents[1] / "queries" / "19_request_outcomes.sql").read_text()
    with reading(db) as analysis:
        query = analysis.con.sql(sql).columns
        check = analysis.con.sql("SELECT * FROM openai_batches.ledger_check").columns
    assert query[query.index("requests") + 1 : query.index("requests") + 1 + len(OUTCOMES)] == list(OUTCOMES)
    assert {f"ledger_{o}" for o in OUTCOMES} <= set(check)
