"""The load pipeline end to end, over real HTTP against the simulator."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest

from openai_batches import openai_batches
from openai_batches.load.runner import make_pipeline, run_load, working_dir
from openai_batches.simulator import Fault, SimulatedOrg, SimulatorServer

from .support.assertions import TERMINAL, assert_matches_simulator, list_requests, rows_by_id, table
from .support.fake_api import StaticApi
from .support.workload import KEY_A, KEY_B, PROJECT_A, PROJECT_B, config_for, load


def test_backfill_equals_simulator_field_by_field(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(1234, project=PROJECT_A, days=400)
    result = load(db, server, KEY_A)
    assert result.ok, result.outcomes
    assert_matches_simulator(db, org, PROJECT_A)
    # A backfill of N batches costs ceil(N/100) requests, each asking for the maximum page.
    requests = list_requests(server)
    assert len(requests) == math.ceil(1234 / 100) == result.api_calls
    assert all(r.query.get("limit") == "100" for r in requests)
    # Every cursor is the last id of the previous page: never a stored one.
    ordered = [b["id"] for b in org.batches(PROJECT_A)]
    assert "after" not in requests[0].query
    assert [r.query["after"] for r in requests[1:]] == [ordered[i * 100 - 1] for i in range(1, len(requests))]
    assert result.outcomes[0].stats.counts.new == 1234


def test_no_change_run_costs_one_request(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(2500, project=PROJECT_A, days=400, open_fraction=0.0)
    assert load(db, server, KEY_A).ok
    server.reset_requests()
    result = load(db, server, KEY_A)
    assert result.ok
    assert len(server.requests) == 1 == result.api_calls
    assert result.outcomes[0].stats.counts.new == 0
    assert_matches_simulator(db, org, PROJECT_A)


def test_a_load_opens_the_database_file_once(
    db: str, org: SimulatedOrg, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt's steps and jobs and our own SQL share one DuckDB instance of the file (`db.shared_instance`):
    each open and close costs a checkpoint (this two-project backfill opened it 17 times before), and two
    instances of one file in one process could checkpoint over each other."""
    opened: list[object] = []
    real_connect = duckdb.connect

    def counting_connect(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        opened.append(args[0] if args else kwargs.get("database"))
        return real_connect(*args, **kwargs)

    org.generate_history(450, project=PROJECT_A, days=30, open_fraction=0.1)
    org.generate_history(120, project=PROJECT_B, days=30)
    monkeypatch.setattr(duckdb, "connect", counting_connect)
    assert load(db, server, KEY_A, KEY_B).ok  # a new file: nothing to check before it is opened
    assert len(opened) == 1
    org.advance(3600)
    opened.clear()
    assert load(db, server, KEY_A, KEY_B).ok  # the check that the file is ours, then the load
    assert len(opened) == 2
    monkeypatch.undo()
    assert_matches_simulator(db, org, PROJECT_A)
    assert_matches_simulator(db, org, PROJECT_B)


def test_a_backfill_appends_into_the_new_table_and_later_runs_merge_exactly(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """Into a table with no row a merge of the run's unique rows is an append: the backfill's rows go straight in,
    nothing is staged (no staging copy, delete, insert). The runs after it merge: open batches updated in place,
    new ones added, each id once, every field as the simulator has it."""
    org.generate_history(900, project=PROJECT_A, days=30, open_fraction=0.2)
    assert load(db, server, KEY_A).ok
    with duckdb.connect(db, read_only=True) as con:
        staged = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'openai_batches_staging' "
            "AND table_name = 'batches'"
        ).fetchone()
    assert staged == (0,)
    assert_matches_simulator(db, org, PROJECT_A)
    for _ in range(2):
        org.advance(6 * 3600)  # open ones end, new ones arrive
        assert load(db, server, KEY_A).ok
        assert_matches_simulator(db, org, PROJECT_A)
    assert table(db, "SELECT count(*) = count(DISTINCT id) FROM openai_batches.batches") == [(True,)]


def test_lifecycle_changes_are_picked_up_and_nothing_else_is_reread(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(800, project=PROJECT_A, days=60)
    fresh = [org.create_batch(project=PROJECT_A) for _ in range(3)]
    assert load(db, server, KEY_A).ok
    open_before = {b["id"] for b in org.batches(PROJECT_A) if b["status"] not in TERMINAL}
    assert set(fresh) <= open_before

    org.advance(2 * 86400)  # everything open is terminal two days later
    new = [org.create_batch(project=PROJECT_A) for _ in range(5)]
    server.reset_requests()
    result = load(db, server, KEY_A)
    assert result.ok
    assert_matches_simulator(db, org, PROJECT_A)
    counts = result.outcomes[0].stats.counts
    assert counts.new == len(new)
    assert counts.updated == len(open_before)
    # One head page, then the open batches by the cheaper route, and not one request more.
    by_id = [r for r in server.requests if not r.path.rstrip("/").endswith("/batches")]
    assert {r.path.rsplit("/", 1)[1] for r in by_id} <= open_before
    assert len(server.requests) <= 1 + len(open_before)
    assert len(server.requests) == result.api_calls


def test_open_batches_deep_in_history_are_refreshed_by_id(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    old = org.create_batch(
        project=PROJECT_A, created_at=org.clock.now() - 30_000, outcome="completed", processing_seconds=86_000
    )
    # One a minute: the lookback window (15 min) below the newest holds far fewer than a page.
    for i in range(450):
        org.create_batch(
            project=PROJECT_A, created_at=org.clock.now() - 28_000 + 60 * i, outcome="failed", validating_seconds=30
        )
    org.advance(600)  # the many newer ones failed validation within minutes; `old` is still running
    assert load(db, server, KEY_A).ok
    assert rows_by_id(db)[old]["status"] not in TERMINAL

    org.advance(2 * 86400)
    server.reset_requests()
    result = load(db, server, KEY_A)
    assert result.ok
    # Paging down to `old` would take 5 pages; one GET is cheaper: 1 head page + 1 GET.
    assert [r.path.rsplit("/", 1)[1] for r in server.requests[1:]] == [old]
    assert result.api_calls == 2
    assert rows_by_id(db)[old]["status"] in TERMINAL
    assert_matches_simulator(db, org, PROJECT_A)


def test_many_open_batches_are_refreshed_by_paging_when_cheaper(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    start = org.clock.now()
    for i in range(250):
        org.create_batch(project=PROJECT_A, created_at=start - 5000 + i, outcome="completed", processing_seconds=36_000)
    org.advance(60)  # all 250 are still open (validating or in progress)
    assert load(db, server, KEY_A).ok
    org.advance(2 * 86400)
    server.reset_requests()
    result = load(db, server, KEY_A)
    assert result.ok
    # 250 open batches: 3 pages beat 250 GETs.
    assert result.api_calls == 3
    assert all(r.path.rstrip("/").endswith("/batches") for r in server.requests)
    assert result.outcomes[0].stats.counts.updated == 250
    assert_matches_simulator(db, org, PROJECT_A)


def test_recorded_real_page_loads_with_all_columns_and_null_usage(db: str, fixture_page: dict[str, Any]) -> None:
    with StaticApi(fixture_page["data"]) as api:
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok
    columns = dict(
        table(db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='batches'")
    )
    for name in (
        "created_at",
        "in_progress_at",
        "expires_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
    ):
        assert columns[name] == "TIMESTAMP WITH TIME ZONE"
    for name in (
        "usage__input_tokens",
        "usage__input_tokens_details__cached_tokens",
        "usage__output_tokens",
        "usage__output_tokens_details__reasoning_tokens",
        "usage__total_tokens",
        "request_counts__total",
    ):
        assert columns[name] == "BIGINT"
    assert columns["metadata"] == "JSON"
    assert columns["model"] == "VARCHAR"
    assert table(db, "SELECT count(*), count(usage__input_tokens), count(model) FROM openai_batches.batches") == [
        (20, 0, 0)
    ]
    assert table(db, "SELECT DISTINCT project FROM openai_batches.batches") == [("proj_static",)]
    assert api.paths == ["/v1/batches?limit=100"]
    first = fixture_page["data"][0]
    row = rows_by_id(db)[first["id"]]
    assert row["request_counts__total"] == first["request_counts"]["total"]
    assert row["completed_at"] == datetime.fromtimestamp(first["completed_at"], UTC)


def test_stale_error_rows_disappear_when_a_batch_is_merged_again(db: str, fixture_page: dict[str, Any]) -> None:
    batch = dict(fixture_page["data"][0], status="validating", created_at=1_790_000_000)
    batch["errors"] = {
        "object": "list",
        "data": [
            {"code": "invalid_json_line", "line": 3, "message": "bad line", "param": None},
            {"code": "invalid_json_line", "line": 9, "message": "bad line", "param": None},
        ],
    }
    with StaticApi([batch]) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        assert len(table(db, "SELECT * FROM openai_batches.batches__errors__data")) == 2
        batch.update(status="completed", errors=None)  # the batch was open, so the next run re-reads it
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    assert table(db, "SELECT count(*) FROM openai_batches.batches__errors__data") == [(0,)]
    assert table(db, "SELECT status FROM openai_batches.batches") == [("completed",)]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="429", count=2, retry_after=0.05),
        Fault(kind="500", count=1),
        Fault(kind="502-html", count=1),
        Fault(kind="503", count=1, retry_after=0.01),
        Fault(kind="truncated-json", count=1),
        Fault(kind="timeout", count=1, delay=2.0),
    ],
    ids=lambda f: f.kind,
)
def test_retries_on_injected_faults(db: str, org: SimulatedOrg, server: SimulatorServer, fault: Fault) -> None:
    org.generate_history(300, project=PROJECT_A, days=30)
    injected = fault.count
    server.inject(fault)
    result = run_load(db, config_for(server.base_url, KEY_A, timeout=1.0))
    assert result.ok, result.outcomes
    assert result.api_calls == 3 + injected
    assert_matches_simulator(db, org, PROJECT_A)


def test_faults_beyond_the_retry_budget_fail_clearly(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(50, project=PROJECT_A, days=30)
    server.inject(Fault(kind="500", count=10))
    result = run_load(db, config_for(server.base_url, KEY_A, max_attempts=2))
    assert not result.ok
    error = result.outcomes[0].error or ""
    assert "HTTP 500" in error and "gave up after 2 attempts" in error and "x-request-id" in error


def test_crash_after_extract_then_rerun_loses_nothing(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(500, project=PROJECT_A, days=30)
    # Extract (which commits state locally) and stop before normalize/load, as a killed run would.
    pipeline = make_pipeline(db)
    pipeline.extract(openai_batches(api_key=KEY_A, base_url=server.base_url), loader_file_format="parquet")
    assert pipeline.has_pending_data
    org.advance(3 * 3600)
    for _ in range(7):
        org.create_batch(project=PROJECT_A)
    result = load(db, server, KEY_A)
    assert result.ok
    assert_matches_simulator(db, org, PROJECT_A)


def test_deleted_database_gets_the_whole_history_again(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(400, project=PROJECT_A, days=30)
    assert load(db, server, KEY_A).ok
    import os

    os.remove(db)
    server.reset_requests()
    result = load(db, server, KEY_A)
    assert result.ok
    assert result.api_calls == 4
    assert_matches_simulator(db, org, PROJECT_A)


def test_two_databases_on_one_machine_keep_their_own_history(
    tmp_path: Any, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(300, project=PROJECT_A, days=30)
    first, second = str(tmp_path / "one.duckdb"), str(tmp_path / "two.duckdb")
    assert working_dir(first) != working_dir(second)
    assert load(first, server, KEY_A).ok
    assert load(second, server, KEY_A).ok
    assert_matches_simulator(first, org, PROJECT_A)
    assert_matches_simulator(second, org, PROJECT_A)


def test_database_copied_elsewhere_keeps_its_state(tmp_path: Any, org: SimulatedOrg, server: SimulatorServer) -> None:
    import shutil

    org.generate_history(300, project=PROJECT_A, days=30, open_fraction=0.0)
    original, copy = str(tmp_path / "one.duckdb"), str(tmp_path / "moved.duckdb")
    assert load(original, server, KEY_A).ok
    shutil.copy(original, copy)
    server.reset_requests()
    result = load(copy, server, KEY_A)  # new path: no local working dir, state comes from the file
    assert result.ok
    assert result.api_calls == 1


def test_full_refresh_rereads_everything(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(350, project=PROJECT_A, days=30)
    assert load(db, server, KEY_A).ok
    server.reset_requests()
    result = load(db, server, KEY_A, full_refresh=True)
    assert result.ok
    assert result.api_calls == 4
    assert_matches_simulator(db, org, PROJECT_A)
    assert table(db, "SELECT count(*), count(DISTINCT id) FROM openai_batches.batches") == [(350, 350)]


def test_two_projects_in_one_run(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(220, project=PROJECT_A, days=30)
    org.generate_history(130, project=PROJECT_B, days=30)
    result = load(db, server, KEY_A, KEY_B)
    assert result.ok
    assert [o.name for o in result.outcomes] == [PROJECT_A, PROJECT_B]
    assert_matches_simulator(db, org, PROJECT_A)
    assert_matches_simulator(db, org, PROJECT_B)
    # State is per project: a second run costs one request per project.
    server.reset_requests()
    assert load(db, server, KEY_A, KEY_B).api_calls == 2


def test_one_failing_project_keeps_the_others_data(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(120, project=PROJECT_A, days=30)
    config = config_for(server.base_url, "sk-wrong-key-000000000", KEY_A, names=("broken", "good"))
    result = run_load(db, config)
    assert not result.ok
    assert result.outcomes[0].error and "HTTP 401" in result.outcomes[0].error
    assert result.outcomes[1].error is None
    assert table(db, "SELECT DISTINCT project FROM openai_batches.batches") == [("good",)]
    assert set(rows_by_id(db)) == {b["id"] for b in org.batches(PROJECT_A)}


def test_columns_are_stable_from_the_first_load(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.create_batch(project=PROJECT_A)  # one young batch: nearly every timestamp is still NULL
    assert load(db, server, KEY_A).ok
    columns = dict(
        table(db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='batches'")
    )
    assert columns["cancelled_at"] == "TIMESTAMP WITH TIME ZONE"
    assert columns["usage__output_tokens_details__reasoning_tokens"] == "BIGINT"
    errors = dict(
        table(
            db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='batches__errors__data'"
        )
    )
    assert errors["line"] == "BIGINT" and errors["batch_id"] == "VARCHAR"


def test_working_directory_does_not_keep_loaded_data(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    from pathlib import Path

    org.generate_history(250, project=PROJECT_A, days=30)
    assert load(db, server, KEY_A).ok
    org.advance(3600)
    assert load(db, server, KEY_A).ok
    # An hourly cron job must not accumulate every package's data files for months.
    assert not list(Path(working_dir(db)).rglob("*.parquet"))
