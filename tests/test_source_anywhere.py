"""The dlt source on its own, in any dlt pipeline: a whole history in one `pipeline.run`, the
next run incremental; the example script in the style of dlt's verified sources; PostgreSQL as a second
destination with the same rows as DuckDB."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import dlt
import duckdb

from openai_batches import openai_batches
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.cli import REPO, cli_env
from .support.workload import KEY_A, NOW, PROJECT_A


def test_a_plain_pipeline_run_loads_a_long_history_in_one_call_then_runs_incrementally(tmp_path: Path) -> None:
    org = SimulatedOrg(projects={KEY_A: PROJECT_A}, clock=SimClock(start=NOW), seed=11)
    org.generate_history(120_000, days=700, open_fraction=0.001)
    pipeline = dlt.pipeline(
        pipeline_name="anywhere",
        destination=dlt.destinations.duckdb(str(tmp_path / "anywhere.duckdb")),
        dataset_name="openai_batches",
        pipelines_dir=str(tmp_path / "dlt"),
    )
    with SimulatorServer(org) as server:
        info = pipeline.run(openai_batches(api_key=KEY_A, base_url=server.base_url), loader_file_format="parquet")
        assert len(info.loads_ids) == 1  # one call, one package: no hand-off to a runner
        with duckdb.connect(str(tmp_path / "anywhere.duckdb"), read_only=True) as con:
            assert con.execute("SELECT count(*), count(DISTINCT id) FROM openai_batches.batches").fetchone() == (
                120_000,
                120_000,
            )
        org.advance(3 * 86_400)
        server.reset_requests()
        pipeline.run(openai_batches(api_key=KEY_A, base_url=server.base_url), loader_file_format="parquet")
        open_before = 120  # 0.1% open: the next run reads each of them (or pages to them) and one head page
        assert 1 <= len(server.requests) <= 1 + open_before
    with duckdb.connect(str(tmp_path / "anywhere.duckdb"), read_only=True) as con:
        statuses = dict(con.execute("SELECT status, count(*) FROM openai_batches.batches GROUP BY 1").fetchall())
    assert sum(statuses.values()) == 120_000
    assert set(statuses) <= {"completed", "failed", "expired", "cancelled"}  # everything settled was re-read


def run_example(destination: str | None, cwd: Path, server: SimulatorServer, **env: str) -> str:
    args = [sys.executable, str(REPO / "pipelines" / "openai_batches_pipeline.py")]
    if destination:
        args.append(destination)
    result = subprocess.run(
        args,
        cwd=cwd,
        env=cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url, DLT_DATA_DIR=str(cwd / "dlt"), **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rows(fetched: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    out = {}
    for batch_id, status, created, completed, tokens, metadata, errors in fetched:
        created = created.astimezone(UTC) if created else None
        completed = completed.astimezone(UTC) if completed else None
        out[batch_id] = (status, created, completed, tokens, metadata, errors)
    return out


_COLUMNS = (
    "b.id, b.status, b.created_at, b.completed_at, b.usage__total_tokens, b.metadata::text IS NULL,"
    " (SELECT count(*) FROM {schema}.batches__errors__data e WHERE e.batch_id = b.id)"
)


def test_the_example_script_loads_duckdb_and_postgres_with_the_same_rows(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer, postgres_dsn: str
) -> None:
    import psycopg2

    org.generate_history(800, project=PROJECT_A, days=500, open_fraction=0.02)
    assert "LOADED" in run_example(None, tmp_path, server)
    org.advance(3600)
    for _ in range(5):
        org.create_batch(project=PROJECT_A)
    run_example(None, tmp_path, server)  # the next run: incremental
    with duckdb.connect(str(tmp_path / "openai_batches_pipeline.duckdb"), read_only=True) as con:
        in_duckdb = rows(
            con.execute(f"SELECT {_COLUMNS.format(schema='openai_batches')} FROM openai_batches.batches b").fetchall()
        )

    # The same script, one argument changed: dlt's postgres destination, configured the dlt way.
    run_example("postgres", tmp_path, server, DESTINATION__POSTGRES__CREDENTIALS=postgres_dsn)
    with psycopg2.connect(postgres_dsn) as con, con.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS.format(schema='openai_batches')} FROM openai_batches.batches b")
        in_postgres = rows(cur.fetchall())
    assert len(in_duckdb) == len(org.batches(PROJECT_A)) == 805
    assert in_postgres == in_duckdb
