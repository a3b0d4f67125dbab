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
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from openai_batches import settings
from openai_batches.cli.status import read_status
from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import make_pipeline, run_load
from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.assertions import rows_by_id, table
from .support.cli import cli_env, run_cli
from .support.fake_api import Reply, ScriptedApi, envelope, json_reply, make_batch, newest_first, paged, serve_all
from .support.providers import World
from .support.workload import KEY_A, config_for

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def project_state(db: str, project: str) -> dict[str, Any]:
    state = make_pipeline(db).state.get("sources", {}).get("openai_batches", {}).get("resources", {})
    return dict(state.get("batches", {}).get("projects", {}).get(project) or {})


# --- 2. late-visible batches -------------------------------------------------------------------------


@pytest.mark.parametrize("late_by", [30, 300])
def test_a_batch_that_becomes_visible_late_inside_the_lookback_window_is_loaded(
    db: str, world: World, server: SimulatorServer, late_by: int
) -> None:
    world.generate_history(300, project=world.a, days=20, open_fraction=0.0)
    world.advance(3 * 86_400)  # everything settled
    newest = world.create_batch(world.a)
    world.advance(60)
    assert run_load(db, world.config(server)).ok
    # Created `late_by` seconds before the newest batch already loaded, but listed only now.
    late = world.create_batch(world.a, created_at=world.org.clock.now() - 60 - late_by)
    server.reset_requests()
    result = run_load(db, world.config(server))
    assert result.ok
    assert late in world.rows(db) and newest in world.rows(db)
    assert result.outcomes[0].stats.counts.new == 1
    # Fewer than a page of batches in the window: still one list request, nothing asked for by id (the results
    # of an Anthropic batch that ended are read besides: the ledger).
    by_id = [r for r in server.requests if r.path.startswith(world.list_path + "/") and not r.path.endswith("/results")]
    assert ([r.path for r in server.requests if r.path == world.list_path], by_id) == ([world.list_path], [])
    # And the run after that loads nothing twice.
    again = run_load(db, world.config(server))
    assert again.outcomes[0].stats.counts.new == 0
    world.assert_matches_simulator(db, world.a)


def test_lookback_seconds_is_configurable_and_zero_means_none(db: str, world: World, server: SimulatorServer) -> None:
    world.generate_history(50, project=world.a, days=20, open_fraction=0.0)
    world.advance(3 * 86_400)
    world.create_batch(world.a)
    no_lookback = world.config(server, lookback_seconds=0)
    assert run_load(db, no_lookback).ok
    late = world.create_batch(world.a, created_at=world.org.clock.now() - 30)
    assert run_load(db, no_lookback).ok
    assert late not in world.rows(db)  # what the window is for
    assert run_load(db, world.config(server, lookback_seconds=60)).ok
    assert late in world.rows(db)


def test_lookback_seconds_comes_from_the_dlt_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from openai_batches.config import run_config

    monkeypatch.setenv("OPENAI_API_KEY", KEY_A)
    assert run_config().lookback_seconds == 900
    monkeypatch.setenv("SOURCES__OPENAI_BATCHES__LOOKBACK_SECONDS", "3600")
    assert run_config().lookback_seconds == 3600


# --- 3. a bad created_at ---------------------------------------------------------------------------


# Odd creation times, each as the provider would send it: (OpenAI's epoch seconds, Anthropic's RFC 3339 text).
ODD_CREATED_AT = {
    "null": (None, None),
    "string": ("not a time", "not a time"),
    "milliseconds": (1_790_000_000 * 1000, "2026-09-21T12:00:00"),  # Anthropic: no UTC offset, not RFC 3339
    "future": (4_102_444_800, "2100-01-01T00:00:00Z"),
    "zero": (0, "1970-01-01T00:00:00Z"),
    "number": (1_790_000_000.5, 1_790_000_000),  # Anthropic: epoch seconds where text is due
}


@pytest.mark.parametrize("odd", list(ODD_CREATED_AT))
def test_one_bad_created_at_loses_nothing_and_does_not_move_the_watermark(
    db: str, world: World, odd: str, caplog: pytest.LogCaptureFixture
) -> None:
    value = ODD_CREATED_AT[odd][world.anthropic]
    old = world.newest_first(100)
    # Pages of 100 either way: the odd batch is on the second page of the run after.
    with ScriptedApi(world.serve_all(old, 100)) as api:
        assert run_load(db, world.scripted_config(api)).ok
        watermark = world.project_state(db, "proj_scripted")["watermark"]
        new = [world.make_batch(n) for n in range(250, 100, -1)]
        new[40] = world.make_batch(999, created_at=value)  # read as 0, this ended paging: 51 of 150 lost
        api.route = world.serve_all(new + old, 100)
        with caplog.at_level(logging.WARNING):
            result = run_load(db, world.scripted_config(api))
        assert result.ok
        assert set(world.rows(db)) == {b["id"] for b in new + old}
        assert result.outcomes[0].stats.counts.new == 150
        assert any(new[40]["id"] in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        state = world.project_state(db, "proj_scripted")
        assert state["watermark"] == 1_790_000_000 + 250 * 60 > watermark  # what was really seen
        # Batches created later still load: a future value did not swallow them.
        newer = [world.make_batch(n) for n in range(260, 250, -1)]
        api.route = world.serve_all(newer + new + old, 100)
        result = run_load(db, world.scripted_config(api))
    assert result.ok and result.outcomes[0].stats.counts.new == 10
    assert world.ids_and_duplicates(db) == (260, 260)
    kept = world.rows(db)[new[40]["id"]]
    if world.anthropic and odd in ("string", "milliseconds", "number"):  # not RFC 3339: NULL, kept as sent
        assert kept["created_at"] is None and json.loads(kept["extra_fields"]) == {"created_at": value}
    elif world.anthropic and value is not None:  # a time, just not a believable creation time: stored
        assert kept["created_at"] == datetime.fromisoformat(value)


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


def test_empty_pages_with_has_more_mid_backfill_fail_the_run_and_the_next_one_loads_everything(
    db: str, world: World
) -> None:
    batches = world.newest_first(500)
    served = world.serve_all(batches, 100)
    glitching = True

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if glitching and query.get(world.cursor) == batches[199]["id"]:
            return json_reply(world.envelope([], True))  # "more", but nothing: twice, three times, ...
        return served(path, query, number)

    with ScriptedApi(route) as api:
        failed = run_load(db, world.scripted_config(api, max_attempts=3))
        assert not failed.ok and "has_more is true but the page has no data" in (failed.outcomes[0].error or "")
        assert not Path(db).exists()  # nothing committed: no watermark at the head
        glitching = False
        result = run_load(db, world.scripted_config(api))
    assert result.ok and result.outcomes[0].stats.counts.new == 500
    assert world.ids_and_duplicates(db) == (500, 500)


def test_empty_pages_with_has_more_after_an_earlier_load_commit_no_state(db: str, world: World) -> None:
    batches = world.newest_first(300)
    with ScriptedApi(world.serve_all(batches[100:], 100)) as api:
        assert run_load(db, world.scripted_config(api)).ok
        before = world.project_state(db, "proj_scripted")
        new_then_glitch = world.paged([(batches[:100], True), ([], True)])
        api.route = new_then_glitch
        assert not run_load(db, world.scripted_config(api, max_attempts=2)).ok
        assert world.project_state(db, "proj_scripted") == before
        api.route = world.serve_all(batches, 100)
        assert run_load(db, world.scripted_config(api)).ok
    assert world.ids_and_duplicates(db) == (300, 300)


# --- 9. a 404 for an open batch -------------------------------------------------------------------


def test_one_404_does_not_freeze_an_open_batch(db: str, world: World) -> None:
    batches = world.newest_first(400)
    deep = world.opened(batches[395])  # the one open batch, far below the head: read by id
    served = world.serve_all(batches, 100)
    misses = {"left": 1}

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path.endswith(deep["id"]) and misses["left"] > 0:
            misses["left"] -= 1
            return json_reply(world.not_found(deep["id"]), 404)
        return served(path, query, number)

    with ScriptedApi(route) as api:
        assert run_load(db, world.scripted_config(api)).ok
        world.finished(deep)
        result = run_load(db, world.scripted_config(api))  # the 404
        assert result.ok and result.outcomes[0].stats.counts.gone == 0
        assert world.project_state(db, "proj_scripted")["open"][deep["id"]][2] == 1
        result = run_load(db, world.scripted_config(api))  # asked again: there it is
    assert result.ok and result.outcomes[0].stats.counts.updated >= 1
    assert world.rows(db)[deep["id"]][world.status] == world.ended
    assert deep["id"] not in world.project_state(db, "proj_scripted")["open"]


def test_a_batch_missing_three_runs_in_a_row_is_recorded_gone_in_the_table_and_status(db: str, world: World) -> None:
    batches = world.newest_first(400)
    deep = world.opened(batches[395])
    served = world.serve_all(batches, 100)

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path.endswith(deep["id"]):
            return json_reply(world.not_found(deep["id"]), 404)
        return served(path, query, number)

    with ScriptedApi(route) as api:
        assert run_load(db, world.scripted_config(api)).ok
        counts = [run_load(db, world.scripted_config(api)).outcomes[0].stats.counts.gone for _ in range(3)]
    assert counts == [0, 0, 1]
    assert world.rows(db)[deep["id"]][world.status] == "in_progress"  # kept, as last served
    assert table(db, "SELECT id, project, reason FROM openai_batches.batches_gone") == [
        (deep["id"], "proj_scripted", "missing 3 runs in a row")
    ]
    status = read_status(db).projects[0]
    assert (status.open_now, status.gone) == (0, 1)
    assert "gone" in run_cli("status", "--db", db).stdout
    if world.anthropic:
        return  # the reports read Anthropic's batches through batch_jobs (the views' branch): checked there
    # The reports agree: not open, not finished, and said why.
    report = json.loads(run_cli("report", "--db", db, "--format", "json").stdout)
    assert report["open_batches"] == []
    assert any("stopped returning" in row["caveat"] for row in report["caveats"]), report["caveats"]


def test_batch_ids_are_escaped_in_the_path(db: str, world: World) -> None:
    odd = world.opened(world.make_batch(1, id=world.id_prefix + "x/../files?q=1#y"))
    others = [world.make_batch(n) for n in range(300, 1, -1)]
    paths: list[str] = []
    served = world.serve_all([*others, odd], 100)
    prefix = world.list_path + "/"

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        paths.append(path)
        if path.startswith(prefix) and not path.endswith("/results"):
            return json_reply(world.finished(dict(odd)))
        return served(path, query, number)

    with ScriptedApi(route) as api:
        assert run_load(db, world.scripted_config(api)).ok
        paths.clear()
        result = run_load(db, world.scripted_config(api))
    assert result.ok
    gets = [p for p in paths if p.startswith(prefix) and not p.endswith("/results")]
    assert gets == [f"{prefix}{world.id_prefix}x%2F..%2Ffiles%3Fq%3D1%23y"]  # one path segment, nothing interpreted
    assert world.rows(db)[odd["id"]][world.status] == world.ended


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


def test_the_apis_error_text_is_cleaned_and_cut(tmp_path: Path, world: World) -> None:
    message = "first line\r\nerror: forged line\x1b[31m red\x1b[0m \u202eevil" + "x" * 10_000
    error = {"type": "permission_error", "message": message} if world.anthropic else {"message": message}

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        return json_reply({"type": "error", "error": error} if world.anthropic else {"error": error}, 403)

    with ScriptedApi(route) as api:
        env = world.env(api) if world.anthropic else {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": api.base_url}
        result = run_cli("load", "--db", str(tmp_path / "x.duckdb"), env=cli_env(**env))
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


def test_a_failed_projects_summary_does_not_claim_new_batches(tmp_path: Path, world: World) -> None:
    batches = world.newest_first(150)
    served = world.serve_all(batches, 100)
    boom = {"type": "error", "error": {"type": "permission_error", "message": "boom"}} if world.anthropic else {
        "error": {"message": "boom"}
    }  # fmt: skip

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        return json_reply(boom, 403) if query.get(world.cursor) else served(path, query, number)

    with ScriptedApi(route) as api:
        env = world.env(api) if world.anthropic else {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": api.base_url}
        result = run_cli("load", "--db", str(tmp_path / "x.duckdb"), env=cli_env(**env))
    assert result.returncode == 1
    assert "nothing loaded" in result.stdout and "100 new" not in result.stdout


def test_no_change_run_with_history_in_the_window_stays_cheap(db: str, world: World, server: SimulatorServer) -> None:
    world.generate_history(1000, project=world.a, days=15, open_fraction=0.0)
    world.advance(3 * 86_400)
    for _ in range(60):  # a burst: 60 batches within the lookback window of the newest
        world.create_batch(world.a)
    world.advance(5 * 86_400)
    assert run_load(db, world.config(server)).ok
    server.reset_requests()
    assert run_load(db, world.config(server)).api_calls == 1
    assert [r.path for r in server.requests] == [world.list_path]


# --- a finished batch deleted on Anthropic's side ---------------------------------------------------------


def test_an_ended_batch_deleted_on_anthropics_side_stays_in_the_table_marked_gone(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """Anthropic allows a delete only once a batch ended, and incremental runs never look at ended batches
    again (a no-change run stays one request): the next --full-refresh, which lists everything, marks it."""
    from .support.providers import make_world

    world = make_world("anthropic", org)
    world.generate_history(50, project=world.a, days=5)
    assert run_load(db, world.config(server)).ok
    ended = [i for i, b in world.truth(world.a).items() if not world.is_open(b)]
    assert world.delete(ended[0]) and world.delete(ended[-1])  # the newest and the oldest ended ones
    for _ in range(settings.GONE_AFTER_MISSES):
        world.advance(600)
        assert run_load(db, world.config(server)).ok
    assert run_load(db, world.config(server), full_refresh=True).ok
    assert {ended[0], ended[-1]} <= set(world.rows(db))  # kept, as last served
    assert set(table(db, "SELECT id FROM openai_batches.batches_gone")) == {(ended[0],), (ended[-1],)}
