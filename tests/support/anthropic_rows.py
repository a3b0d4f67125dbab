"""Anthropic batches and their requests written straight into a DuckDB file, with the columns DESIGN18 declares
for `anthropic_batches` and the Anthropic rows of `batch_requests` / `batch_files`.

Stand-in for the Anthropic loader (issue 18), which is built in parallel: the analysis is tested over the rows
the loader is specified to write. TODO(merge): load these through the real loader from the simulator instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

S = "openai_batches"

# DESIGN18's `anthropic_batches`: every field of a message batch, timestamps parsed from RFC 3339.
BATCH_DDL = """
    id VARCHAR NOT NULL, type VARCHAR, processing_status VARCHAR,
    request_counts__processing BIGINT, request_counts__succeeded BIGINT, request_counts__errored BIGINT,
    request_counts__canceled BIGINT, request_counts__expired BIGINT,
    created_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, expires_at TIMESTAMPTZ, archived_at TIMESTAMPTZ,
    cancel_initiated_at TIMESTAMPTZ, results_url VARCHAR, project VARCHAR, redacted_fields JSON,
    _dlt_load_id VARCHAR, _dlt_id VARCHAR
"""
# `batch_requests` as the ledger declares it, with DESIGN18's new columns (NULL on OpenAI rows).
REQUEST_DDL = """
    batch_id VARCHAR NOT NULL, custom_id VARCHAR NOT NULL, project VARCHAR, outcome VARCHAR, status_code BIGINT,
    request_id VARCHAR, response_id VARCHAR, model VARCHAR, input_tokens BIGINT, cached_tokens BIGINT,
    output_tokens BIGINT, reasoning_tokens BIGINT, error_code VARCHAR, error_message VARCHAR, redacted_fields JSON,
    cache_write_tokens BIGINT, cache_write_1h_tokens BIGINT, service_tier VARCHAR,
    _dlt_load_id VARCHAR, _dlt_id VARCHAR
"""
NEW_REQUEST_COLUMNS = {"cache_write_tokens": "BIGINT", "cache_write_1h_tokens": "BIGINT", "service_tier": "VARCHAR"}
FILE_DDL = """
    batch_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, file_id VARCHAR, state VARCHAR NOT NULL, bytes BIGINT,
    lines BIGINT, read_at TIMESTAMPTZ, _dlt_load_id VARCHAR, _dlt_id VARCHAR
"""


@dataclass
class Usage:
    """A succeeded result line's `usage`, as Anthropic sends it (input_tokens: uncached, uncache-written input)."""

    input_tokens: int
    output_tokens: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    thinking: int | None = None


@dataclass
class Request:
    custom_id: str
    result: str = "succeeded"  # succeeded | errored | canceled | expired
    model: str | None = None  # the message's model (succeeded lines only)
    usage: Usage | None = None
    error_type: str | None = None


@dataclass
class Batch:
    id: str
    created_at: datetime
    processing_status: str = "ended"
    project: str = "anthropic"
    requests: list[Request] = field(default_factory=list)
    results_read: bool = True  # the ledger read its results (a `batch_files` row `read`)
    results_gone: bool = False
    cancel_initiated_at: datetime | None = None
    ended_after: timedelta = timedelta(minutes=30)


_OUTCOMES = {"succeeded": "succeeded", "errored": "failed", "canceled": "cancelled", "expired": "expired"}


def request_row(batch: Batch, r: Request) -> dict[str, Any]:
    """The `batch_requests` row DESIGN18 specifies for one result line."""
    u = r.usage
    return {
        "batch_id": batch.id,
        "custom_id": r.custom_id,
        "project": batch.project,
        "outcome": _OUTCOMES[r.result],
        "status_code": None,
        "request_id": "req_011" + r.custom_id if r.result == "errored" else None,
        "response_id": "msg_01" + r.custom_id if r.result == "succeeded" else None,
        "model": r.model,
        # all input, cache reads and writes included, as on the OpenAI side
        "input_tokens": None if u is None else u.input_tokens + u.cache_read + u.cache_write_5m + u.cache_write_1h,
        "cached_tokens": None if u is None else u.cache_read,
        "output_tokens": None if u is None else u.output_tokens,
        "reasoning_tokens": None if u is None else u.thinking,
        "error_code": r.error_type,
        "error_message": None if r.error_type is None else f"{r.error_type} happened",
        "redacted_fields": None,
        "cache_write_tokens": None if u is None else u.cache_write_5m + u.cache_write_1h,
        "cache_write_1h_tokens": None if u is None else u.cache_write_1h,
        "service_tier": "batch" if u is not None else None,
    }


def batch_row(batch: Batch) -> dict[str, Any]:
    counts = {k: 0 for k in ("processing", "succeeded", "errored", "canceled", "expired")}
    for r in batch.requests:
        if batch.processing_status == "ended":
            counts[r.result] += 1
        else:
            counts["processing"] += 1
    ended = batch.processing_status == "ended"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.processing_status,
        **{f"request_counts__{k}": v for k, v in counts.items()},
        "created_at": batch.created_at,
        "ended_at": batch.created_at + batch.ended_after if ended else None,
        "expires_at": batch.created_at + timedelta(hours=24),
        "archived_at": None,
        "cancel_initiated_at": batch.cancel_initiated_at,
        "results_url": f"https://api.anthropic.com/v1/messages/batches/{batch.id}/results" if ended else None,
        "project": batch.project,
        "redacted_fields": None,
    }


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    names = list(rows[0])
    placeholders = ", ".join("?" * len(names))
    con.executemany(
        f"INSERT INTO {S}.{table} ({', '.join(names)}) VALUES ({placeholders})",
        [[row[n] for n in names] for row in rows],
    )


def write_anthropic(db: str, batches: Sequence[Batch]) -> None:
    """Write ``batches`` (and their requests and results files) into ``db``, creating the tables as the loader
    would, or adding the new `batch_requests` columns to a ledger an OpenAI load created."""
    with duckdb.connect(db) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {S}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {S}.anthropic_batches ({BATCH_DDL})")
        con.execute(f"CREATE TABLE IF NOT EXISTS {S}.batch_requests ({REQUEST_DDL})")
        con.execute(f"CREATE TABLE IF NOT EXISTS {S}.batch_files ({FILE_DDL})")
        have = {r[0] for r in con.execute(f"DESCRIBE {S}.batch_requests").fetchall()}
        for name, kind in NEW_REQUEST_COLUMNS.items():
            if name not in have:
                con.execute(f"ALTER TABLE {S}.batch_requests ADD COLUMN {name} {kind}")
        _insert(con, "anthropic_batches", [batch_row(b) for b in batches])
        _insert(con, "batch_requests", [request_row(b, r) for b in batches if b.results_read for r in b.requests])
        files = [
            {
                "batch_id": b.id,
                "kind": "results",
                "file_id": None,
                "state": "gone" if b.results_gone else "read",
                "bytes": 1000,
                "lines": len(b.requests),
                "read_at": b.created_at + timedelta(hours=1),
            }
            for b in batches
            if b.results_read or b.results_gone
        ]
        _insert(con, "batch_files", files)
