"""Assertions over what a run left: rows in DuckDB, requests a server saw, files on disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from openai_batches.simulator import SimulatedOrg, SimulatorServer


def ids_and_duplicates(db: str) -> tuple[int, int]:
    with duckdb.connect(db, read_only=True) as con:
        row = con.execute("SELECT count(*), count(DISTINCT id) FROM openai_batches.batches").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def paths_now(root: Path, pattern: str) -> list[Path]:
    """The paths matching `pattern` under `root` now, while a pipeline may be moving them.

    dlt moves a package directory on between our listing its parent and opening it; that is no
    state yet, so it reads as "nothing there" and the caller's next poll sees where it went.
    """
    try:
        return list(root.glob(pattern))
    except FileNotFoundError:
        return []


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Every file under `root` (or `root` itself) whose raw bytes contain `needle`."""
    paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    return [str(p) for p in paths if needle in p.read_bytes()]


def walk(root: Path) -> Iterator[Path]:
    yield from (p for p in root.rglob("*") if p.is_file())


def list_requests(server: SimulatorServer) -> list[Any]:
    return [r for r in server.requests if r.path.rstrip("/").endswith("/batches")]


def table(db: str, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql).fetchall()


def rows_by_id(db: str) -> dict[str, dict[str, Any]]:
    with duckdb.connect(db, read_only=True) as con:
        cur = con.execute("SELECT * FROM openai_batches.batches")
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


TERMINAL = {"completed", "failed", "expired", "cancelled"}


def expected_row(batch: dict[str, Any]) -> dict[str, Any]:
    """The row a batch object should become, written independently of the pipeline's own code."""
    row: dict[str, Any] = {}

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and prefix not in ("metadata",):
            for key, inner in value.items():
                if key == "data" and prefix == "errors":
                    continue  # errors.data goes to the child table
                flatten(f"{prefix}__{key}" if prefix else key, inner)
        elif value is None and prefix in ("errors", "usage", "request_counts"):
            return  # a null object has no columns of its own: its nested columns stay NULL
        else:
            row[prefix] = value

    flatten("", batch)
    for name in list(row):
        if name.endswith("_at") and row[name] is not None:
            row[name] = datetime.fromtimestamp(row[name], UTC)
    return row


def assert_matches_simulator(db: str, org: SimulatedOrg, project: str) -> None:
    rows = rows_by_id(db)
    expected = {b["id"]: b for b in org.batches(project)}
    project_rows = {k: v for k, v in rows.items() if v["project"] == project}
    assert set(project_rows) == set(expected)
    for batch_id, batch in expected.items():
        row = project_rows[batch_id]
        want = expected_row(batch)
        for name, value in want.items():
            got = row[name]
            if name == "metadata":
                got = None if got is None else json.loads(got)
            assert got == value, f"{batch_id}.{name}: {got!r} != {value!r}"
        # Columns the object lacks (usage before September 2025, model) are NULL, never 0.
        for name in row:
            if name.startswith(("usage__", "model", "errors__")) and name not in want:
                assert row[name] is None, f"{batch_id}.{name} should be NULL"
    errors = table(
        db, "SELECT batch_id, error_index, code, line, message, param FROM openai_batches.batches__errors__data"
    )
    want_errors = {
        (b["id"], i, e["code"], e["line"], e["message"], e["param"])
        for b in expected.values()
        if b["errors"]
        for i, e in enumerate(b["errors"]["data"])
    }
    assert {e for e in errors if e[0] in expected} == want_errors


def analysed(db: str, prices: str, sql: str) -> list[dict[str, Any]]:
    """`sql`'s rows as dicts, over the report's views of `db` with the price file `prices`."""
    from openai_batches.analysis.session import reading

    with reading(db, prices) as analysis:
        cur = analysis.con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def batch_jobs_by_id(db: str, prices: str) -> dict[str, dict[str, Any]]:
    """`batch_jobs` by batch id."""
    return {r["batch_id"]: r for r in analysed(db, prices, "SELECT * FROM openai_batches.batch_jobs")}
