"""What a hostile or odd API can do, each with the defect it protects against.

Every test here failed on the code before its fix. They load through
the real pipeline over real HTTP: the simulator, or a scripted loopback server for answers the simulator
would never give.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openai_batches.cli.status import read_status
from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import make_pipeline, run_load
from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.assertions import assert_matches_simulator, list_requests, rows_by_id, table
from .support.cli import cli_env, run_cli
from .support.fake_api import Reply, ScriptedApi, envelope, json_reply, make_batch, newest_first, paged, serve_all
from .support.workload import KEY_A, PROJECT_A, config_for, load

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def project_state(db: str, project: str) -> dict[str, Any]:
    state = make_pipeline(db).state.get("sources", {}).get("openai_batches", {}).get("resources", {})
    return dict(state.get("batches", {}).get("projects", {}).get(project) or {})


# --- 2. late-visible batches -------------------------------------------------------------------------


@pytest.mark.parametrize("late_by", [30, 300])
def test_a_batch_that_becomes_visible_late_inside_the_lookback_window_is_loaded(
    db: str, org: SimulatedOrg, server: SimulatorServer, late_by: int
) -> None:
    org.generate_history(300, project=PROJECT_A, days=30, open_fraction=0.0)
    org.advance(3 * 86_400)  # everything settled
    newest = org.create_batch(project=PROJECT_A, outcome="completed")
    assert load(db, server, KEY_A).ok
    # Created `late_by` seconds before the newest batch already loaded, but listed only now.
    late = org.create_batch(project=PROJECT_A, created_at=org.clock.now() - late_by, outcome="completed")
    server.reset_requests()
    result = load(db, server, KEY_A)
    assert result.ok
    assert late in rows_by_id(db) and newest in rows_by_id(db)
    assert result.outcomes[0].stats.counts.new == 1
    assert result.api_calls == 1  # fewer than a page of batches in the window: still one request
    # And the run after that loads nothing twice.
    again = load(db, server, KEY_A)
    assert again.outcomes[0].stats.counts.new == 0
    assert_matches_simulator(db, org, PROJECT_A)


def test_lookback_seconds_is_configurable_and_zero_means_none(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(50, project=PROJECT_A, days=30, open_fraction=0.0)
    org.advance(3 * 86_400)
    org.create_batch(project=PROJECT_A, outcome="completed")
    no_lookback = config_for(server.base_url, KEY_A, lookback_seconds=0)
    assert run_load(db, no_lookback).ok
    late = org.create_batch(project=PROJECT_A, created_at=org.clock.now() - 30, outcome="completed")
    assert run_load(db, no_lookback).ok
    assert late not in rows_by_id(db)  # what the window is for
    assert run_load(db, config_for(server.base_url, KEY_A, lookback_seconds=60)).ok
    assert late in rows_by_id(db)


def test_lookback_seconds_comes_from_the_dlt_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from openai_batches.config import run_config

    monkeypatch.setenv("OPENAI_API_KEY", KEY_A)
    assert run_config().lookback_seconds == 900
    monkeypatch.setenv("SOURCES__OPENAI_BATCHES__LOOKBACK_SECONDS", "3600")
    assert run_config().lookback_seconds == 3600


# --- 3. a bad created_at ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "odd",
    [None, "not a time", 1_790_000_000 * 1000, 4_102_444_800, 0],
    ids=["null", "string", "milliseconds", "future", "zero"],
)
def test_one_bad_created_at_loses_nothing_and_does_not_move_the_watermark(
    db: str, odd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    old = newest_first(100)
    with ScriptedApi(serve_all(old)) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        watermark = project_state(db, "proj_scripted")["watermark"]
        new = [make_batch(n) for n in range(250, 100, -1)]
        new[40] = make_batch(999, created_at=odd)  # read as 0, this ended paging: 51 of 150 lost
        api.route = serve_all(new + old)
        with caplog.at_level(logging.WARNING):
            result = run_load(db, config_for(api.base_url, KEY_A))
        assert result.ok
        assert set(rows_by_id(db)) == {b["id"] for b in new + old}
        assert result.outcomes[0].stats.counts.new == 150
        assert any(new[40]["id"] in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        state = project_state(db, "proj_scripted")
        assert state["watermark"] == make_batch(250)["created_at"] > watermark  # what was really seen
        # Batches created later still load: a future value did not swallow them.
        newer = [make_batch(n) for n in range(260, 250, -1)]
        api.route = serve_all(newer + new + old)
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok and result.outcomes[0].stats.counts.new == 10
    assert table(db, "SELECT count(*), count(DISTINCT id) FROM openai_batches.batches") == [(260, 260)]


# --- 4. a field that changes type ------------------------------------------------------------------


def test_fields_that_change_type_never_stop_loading_and_nothing_is_truncated(db: str) -> None:
    first = [make_batch(4, priority=1, tier=1, billing={"plan": "pro"}, note="plain", request_counts={"total": 3})]
    later = [
        # int -> string, int -> float, object -> string, string -> object, and a declared int as a fraction
        make_batch(
            5,
            priority="gold",
            tier=0.5,
            billing="none",
            note={"text": "rich"},
            request_counts={"total": 2.5, "completed": 2, "failed": 0},
        )
    ]
    with ScriptedApi(serve_all(first)) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        api.route = serve_all(later + first)
        result = run_load(db, config_for(api.base_url, KEY_A))
        assert result.ok, result.outcomes[0].error
        api.route = serve_all([make_batch(6), *later, *first])
        assert run_load(db, config_for(api.base_url, KEY_A)).ok  # and the run after that still loads
    rows = rows_by_id(db)
    assert json.loads(rows[first[0]["id"]]["extra_fields"]) == {
        "priority": 1,
        "tier": 1,
        "billing": {"plan": "pro"},
        "note": "plain",
    }
    assert json.loads(rows[later[0]["id"]]["extra_fields"]) == {
        "priority": "gold",
        "tier": 0.5,  # not 0
        "billing": "none",
        "note": {"text": "rich"},
        "request_counts": {"total": 2.5},  # the declared column is NULL rather than 2
    }
    assert rows[later[0]["id"]]["request_counts__total"] is None
    assert rows[later[0]["id"]]["request_counts__completed"] == 2
    assert len(rows) == 3


# --- 7. the key echoed back ------------------------------------------------------------------------

KEY = "sk-proj-" + "Zq7" * 16  # 56 characters, real-shaped


@pytest.mark.parametrize("echo", ["whole", "less one character", "in the request id header", "in the project header"])
def test_the_key_echoed_by_the_server_is_never_shown_or_stored(tmp_path: Path, echo: str) -> None:
    echoed = KEY if echo == "whole" else KEY[1:]

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if echo == "in the request id header":
            return json_reply({"error": {"message": "denied", "code": None}}, 401, **{"x-request-id": echoed})
        if echo == "in the project header":
            return json_reply(envelope([make_batch(1)], False), **{"openai-project": KEY})
        return json_reply({"error": {"message": f"Incorrect API key provided: {echoed}.", "code": "x"}}, 401)

    db = tmp_path / "x.duckdb"
    with ScriptedApi(route) as api:
        result = run_cli("load", "--db", str(db), env=cli_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=api.base_url))
    output = result.stdout + result.stderr
    for i in range(len(KEY) - 7):
        assert KEY[i : i + 8] not in output, (KEY[i : i + 8], output)
    if echo == "in the project header":
        assert result.returncode == 0, output
        assert table(str(db), "SELECT DISTINCT project FROM openai_batches.batches") == [("default",)]
        assert KEY[:16].encode() not in db.read_bytes()
    else:
        assert result.returncode == 1 and "***" in output


# --- 8. empty pages that say there is more --------------------------------------------------------


def test_empty_pages_with_has_more_mid_backfill_fail_the_run_and_the_next_one_loads_everything(db: str) -> None:
    batches = newest_first(500)
    served = serve_all(batches)
    glitching = True

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if glitching and query.get("after") == batches[199]["id"]:
            return json_reply(envelope([], True))  # "more", but nothing: twice, three times, ...
        return served(path, query, number)

    with ScriptedApi(route) as api:
        failed = run_load(db, config_for(api.base_url, KEY_A, max_attempts=3))
        assert not failed.ok and "has_more is true but the page has no data" in (failed.outcomes[0].error or "")
        assert not Path(db).exists()  # nothing committed: no watermark at the head
        glitching = False
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok and result.outcomes[0].stats.counts.new == 500
    assert table(db, "SELECT count(*), count(DISTINCT id) FROM openai_batches.batches") == [(500, 500)]


def test_empty_pages_with_has_more_after_an_earlier_load_commit_no_state(db: str) -> None:
    batches = newest_first(300)
    with ScriptedApi(serve_all(batches[100:])) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        before = project_state(db, "proj_scripted")
        new_then_glitch = paged([(batches[:100], True), ([], True)])
        api.route = new_then_glitch
        assert not run_load(db, config_for(api.base_url, KEY_A, max_attempts=2)).ok
        assert project_state(db, "proj_scripted") == before
        api.route = serve_all(batches)
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    assert table(db, "SELECT count(*) FROM openai_batches.batches") == [(300,)]


# --- 9. a 404 for an open batch -------------------------------------------------------------------


def test_one_404_does_not_freeze_an_open_batch(db: str) -> None:
    batches = newest_first(400)
    deep = batches[395]  # the one open batch, far below the head: read by id
    deep.update(status="in_progress", completed_at=None)
    served = serve_all(batches)
    misses = {"left": 1}

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path.endswith(deep["id"]) and misses["left"] > 0:
            misses["left"] -= 1
            return json_reply({"error": {"message": "No batch found"}}, 404)
        return served(path, query, number)

    with ScriptedApi(route) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        deep.update(status="completed", completed_at=deep["created_at"] + 99)
        result = run_load(db, config_for(api.base_url, KEY_A))  # the 404
        assert result.ok and result.outcomes[0].stats.counts.gone == 0
        assert project_state(db, "proj_scripted")["open"][deep["id"]][2] == 1
        result = run_load(db, config_for(api.base_url, KEY_A))  # asked again: there it is
    assert result.ok and result.outcomes[0].stats.counts.updated >= 1
    assert rows_by_id(db)[deep["id"]]["status"] == "completed"
    assert deep["id"] not in project_state(db, "proj_scripted")["open"]


def test_a_batch_missing_three_runs_in_a_row_is_recorded_gone_in_the_table_and_status(db: str) -> None:
    batches = newest_first(400)
    deep = batches[395]
    deep.update(status="in_progress", completed_at=None)
    served = serve_all(batches)

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path.endswith(deep["id"]):
            return json_reply({"error": {"message": "No batch found"}}, 404)
        return served(path, query, number)

    with ScriptedApi(route) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        counts = [run_load(db, config_for(api.base_url, KEY_A)).outcomes[0].stats.counts.gone for _ in range(3)]
    assert counts == [0, 0, 1]
    assert table(db, "SELECT id, project, reason FROM openai_batches.batches_gone") == [
        (deep["id"], "proj_scripted", "missing 3 runs in a row")
    ]
    status = read_status(db).projects[0]
    assert (status.open_now, status.gone) == (0, 1)
    assert "gone" in run_cli("status", "--db", db).stdout
    # The reports agree: not open, not finished, and said why.
    report = json.loads(run_cli("report", "--db", db, "--format", "json").stdout)
    assert report["open_batches"] == []
    assert any("stopped returning" in row["caveat"] for row in report["caveats"]), report["caveats"]


def test_batch_ids_are_escaped_in_the_path(db: str) -> None:
    odd = make_batch(1, id="batch_x/../files?q=1#y", status="in_progress", completed_at=None)
    others = [make_batch(n) for n in range(300, 1, -1)]
    paths: list[str] = []
    served = serve_all([*others, odd])

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        paths.append(path)
        if path.startswith("/v1/batches/"):
            return json_reply(dict(odd, status="completed"))
        return served(path, query, number)

    with ScriptedApi(route) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok
    gets = [p for p in paths if p.startswith("/v1/batches/")]
    assert gets == ["/v1/batches/batch_x%2F..%2Ffiles%3Fq%3D1%23y"]  # one path segment, nothing interpreted
    assert rows_by_id(db)[odd["id"]]["status"] == "completed"


# --- 10. a response without the project header ---------------------------------------------------


def test_a_response_without_the_project_header_does_not_relabel_history(db: str) -> None:
    batches = newest_first(10)
    with ScriptedApi(serve_all(batches)) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        api.project = None
        api.route = serve_all([make_batch(11), *batches])
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok and result.outcomes[0].name == "proj_scripted"
    assert table(db, "SELECT DISTINCT project FROM openai_batches.batches") == [("proj_scripted",)]
    assert [p.project for p in read_status(db).projects] == ["proj_scripted"]


def test_the_project_id_column_comes_from_the_header_or_the_configured_id(db: str) -> None:
    with ScriptedApi(serve_all(newest_first(2)), project=None) as api:
        config = RunConfig(
            projects=(ProjectConfig(name="research", api_key=KEY_A, base_url=api.base_url, project_id="proj_cfg"),)
        )
        assert run_load(db, config).ok
    assert table(db, "SELECT DISTINCT project, project_id FROM openai_batches.batches") == [("research", "proj_cfg")]


# --- 11. a server that trickles bytes -------------------------------------------------------------


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """Accepts connections and sends one byte of a valid response every 0.2 s, forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    body = json.dumps(envelope([make_batch(1)], False)).encode()
    response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    def trickle(conn: socket.socket) -> None:
        with conn:
            for byte in response:
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    listener.close()


def test_a_server_that_trickles_bytes_cannot_hold_a_request_beyond_its_time_limit(
    db: str, trickling_server: str
) -> None:
    started = time.monotonic()
    result = run_load(db, config_for(trickling_server, KEY_A, timeout=1.0, max_attempts=2))
    elapsed = time.monotonic() - started
    assert not result.ok and "timed out" in (result.outcomes[0].error or "")
    assert elapsed < 8, elapsed  # two attempts of at most a second each, a backoff, and start-up


# --- 16. smaller ones --------------------------------------------------------------------------------


def test_the_apis_error_text_is_cleaned_and_cut(tmp_path: Path) -> None:
    message = "first line\r\nerror: forged line\x1b[31m red\x1b[0m \u202eevil" + "x" * 10_000

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        return json_reply({"error": {"message": message, "code": "bad\nline"}}, 403)

    with ScriptedApi(route) as api:
        result = run_cli(
            "load", "--db", str(tmp_path / "x.duckdb"), env=cli_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=api.base_url)
        )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "forged" in line]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr and "\r" not in result.stderr
    assert len(lines[0]) < 600


def test_a_repeated_id_is_loaded_and_counted_once(db: str) -> None:
    a, b, c = newest_first(3)
    a_again = dict(a, created_at=a["created_at"] - 10_000, status="in_progress")  # older copy, other time
    with ScriptedApi(paged([([a, b], True), ([a_again, c], False)])) as api:
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok and result.outcomes[0].stats.counts.new == 3
    assert rows_by_id(db)[a["id"]]["status"] == "completed"


def test_usage_that_is_not_an_object_is_null_with_a_warning_and_kept(db: str, caplog: pytest.LogCaptureFixture) -> None:
    odd = make_batch(1, usage="n/a")
    with caplog.at_level(logging.WARNING), ScriptedApi(serve_all([odd])) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    row = rows_by_id(db)[odd["id"]]
    assert row["usage__input_tokens"] is None and json.loads(row["extra_fields"]) == {"usage": "n/a"}
    assert any(odd["id"] in r.getMessage() and "usage" in r.getMessage() for r in caplog.records)


def test_a_failed_projects_summary_does_not_claim_new_batches(tmp_path: Path) -> None:
    batches = newest_first(150)
    served = serve_all(batches)

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        return json_reply({"error": {"message": "boom"}}, 403) if query.get("after") else served(path, query, number)

    with ScriptedApi(route) as api:
        result = run_cli(
            "load", "--db", str(tmp_path / "x.duckdb"), env=cli_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=api.base_url)
        )
    assert result.returncode == 1
    assert "nothing loaded" in result.stdout and "100 new" not in result.stdout


def test_no_change_run_with_history_in_the_window_stays_cheap(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(1000, project=PROJECT_A, days=60, open_fraction=0.0)
    org.advance(3 * 86_400)
    for _ in range(60):  # a burst: 60 batches within the lookback window of the newest
        org.create_batch(project=PROJECT_A, outcome="completed")
    org.advance(5 * 86_400)
    assert load(db, server, KEY_A).ok
    server.reset_requests()
    assert load(db, server, KEY_A).api_calls == 1 == len(list_requests(server))
