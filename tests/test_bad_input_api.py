"""Bad input from the API: each case is loaded or refused deliberately, and the test says how it lands.

| input                                           | how it lands                                                  |
|-------------------------------------------------|---------------------------------------------------------------|
| unknown new fields (scalar, nested, list, odd)  | kept exactly in the JSON column `extra_fields`                |
| unknown status value                            | stored as-is, counted open, re-read until terminal            |
| unknown endpoint                                | stored as-is                                                  |
| string / float where an int was                 | coerced when numeric; else NULL with a warning naming it      |
| int where a string was                          | stored as its text                                            |
| nulls in every nullable field                   | NULL columns; a NULL status counts as open                    |
| empty-string file ids (Azure while validating)  | NULL, like a file not produced yet                            |
| 16 metadata keys, 512-char values, odd keys     | JSON column, exact round trip                                 |
| `has_more: true` with no data                   | retried; still empty: the run fails, nothing committed        |
| the same item on two pages                      | one row, from its first (newest) sighting                     |
| a cursor that does not advance                  | refused: run fails, one clear line, nothing written           |
| item without a string id                        | page refused (retried), then a clear error                    |
| HTML error page (5xx), empty body, truncated    | retried; if it persists, a clear error naming it and the      |
| JSON                                            | x-request-id; the next good run loads everything              |
| a list answer of the wrong shape (bare array,   | not retried (it cannot fix itself): one clear line naming the |
| `{"batches": ...}`, a whole non-JSON 200 page)  | request and its x-request-id, exit 1                          |
| garbled `retry-after`                           | ignored: the client's own backoff applies                     |
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from openai_batches.load.runner import run_load
from openai_batches.simulator import Fault, SimulatorServer

from .support.assertions import rows_by_id, table
from .support.cli import assert_one_clear_error, cli_env, run_cli
from .support.fake_api import (
    Reply,
    ScriptedApi,
    count_requests,
    envelope,
    json_reply,
    make_batch,
    newest_first,
    serve_all,
)
from .support.providers import PROVIDERS, World, over_worlds
from .support.workload import KEY_A, config_for


def columns_of(db: str, table_name: str = "batches") -> dict[str, str]:
    return dict(
        table(db, f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name='{table_name}'")
    )


def test_unknown_fields_are_kept_exactly_in_extra_fields(db: str) -> None:
    batches = newest_first(3)
    batches[0].update(
        priority=3,
        service_tier="flex",
        billing={"tier": "flex", "discount": 0.5},
        tags=["nightly", "eu"],
        usage={**batches[0]["usage"], "audio_tokens": 7},
        request_counts={**batches[0]["request_counts"], "cancelled": 1},
    )
    batches[1]["Odd Field!"] = "x"
    with ScriptedApi(serve_all(batches)) as api:
        result = run_load(db, config_for(api.base_url, KEY_A))
        assert result.ok, result.outcomes
        columns = columns_of(db)
        # No column per unknown field: one that later changes type could otherwise stop every load.
        assert not {"priority", "service_tier", "billing__tier", "usage__audio_tokens"} & set(columns)
        assert columns["extra_fields"] == "JSON"
        rows = rows_by_id(db)
        first, second, third = (rows[b["id"]] for b in batches)
        assert json.loads(first["extra_fields"]) == {
            "priority": 3,
            "service_tier": "flex",
            "billing": {"tier": "flex", "discount": 0.5},
            "tags": ["nightly", "eu"],
            "usage": {"audio_tokens": 7},
            "request_counts": {"cancelled": 1},
        }
        assert first["usage__input_tokens"] == 1000 and first["request_counts__total"] == 10  # declared: columns
        assert json.loads(second["extra_fields"]) == {"Odd Field!": "x"}
        assert third["extra_fields"] is None

        # A later batch without the new fields loads next to them, NULL in extra_fields.
        api.route = serve_all([make_batch(9), *batches])
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    assert rows_by_id(db)[make_batch(9)["id"]]["extra_fields"] is None
    assert table(db, "SELECT count(*) FROM openai_batches.batches") == [(4,)]
    # Plain SQL reaches them.
    tiers = table(
        db, "SELECT extra_fields->>'$.billing.tier' FROM openai_batches.batches WHERE extra_fields IS NOT NULL"
    )
    assert sorted(t for (t,) in tiers if t) == ["flex"]


def test_unknown_status_and_endpoint_are_stored_as_is_and_the_batch_is_reread(db: str) -> None:
    batches = newest_first(150)
    odd = batches[120]  # beyond the head page: only re-read because it counts as open
    odd.update(status="paused", endpoint="/v1/audio/speech", completed_at=None)
    with ScriptedApi(serve_all(batches)) as api:
        result = run_load(db, config_for(api.base_url, KEY_A))
        assert result.ok
        assert result.outcomes[0].stats.counts.still_open == 1
        row = rows_by_id(db)[odd["id"]]
        assert (row["status"], row["endpoint"]) == ("paused", "/v1/audio/speech")

        odd.update(status="completed", completed_at=odd["created_at"] + 500)
        api.requests.clear()
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok
    assert [path for path, _ in api.requests] == ["/v1/batches", f"/v1/batches/{odd['id']}"]
    assert result.outcomes[0].stats.counts.updated == 1 and result.outcomes[0].stats.counts.still_open == 0
    assert rows_by_id(db)[odd["id"]]["status"] == "completed"


def test_wrong_types_are_coerced_when_numeric_and_null_with_a_warning_otherwise(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_batch(3)
    odd = make_batch(
        2,
        request_counts={"total": "12", "completed": 10.0, "failed": "2"},
        in_progress_at="1790000065",
        finalizing_at=1_790_000_100_000_000,  # microseconds where seconds belong: out of range
        usage={"input_tokens": "n/a", "output_tokens": 5, "total_tokens": "inf", "input_tokens_details": 2**70},
        input_file_id=12345,
        completion_window=24,
        errors={"object": "list", "data": [{"code": 7, "line": "3", "message": None, "param": None}]},
    )
    # `errors.data` one object instead of a list of them: still one error row.
    lone = make_batch(1, status="failed", errors={"object": "list", "data": {"code": "x", "message": "lone"}})
    with caplog.at_level(logging.WARNING), ScriptedApi(serve_all([good, odd, lone])) as api:
        result = run_load(db, config_for(api.base_url, KEY_A))
    assert result.ok, result.outcomes
    row = rows_by_id(db)[odd["id"]]
    assert (row["request_counts__total"], row["request_counts__completed"], row["request_counts__failed"]) == (
        12,
        10,
        2,
    )
    assert row["in_progress_at"].timestamp() == 1_790_000_065
    assert row["usage__input_tokens"] is None and row["usage__total_tokens"] is None
    assert row["usage__output_tokens"] == 5 and row["usage__input_tokens_details__cached_tokens"] is None
    assert row["finalizing_at"] is None and row["completed_at"] is not None
    assert (row["input_file_id"], row["completion_window"]) == ("12345", "24")
    assert table(db, "SELECT batch_id, code, line, message FROM openai_batches.batches__errors__data ORDER BY 1") == [
        (lone["id"], "x", None, "lone"),
        (odd["id"], "7", 3, None),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(odd["id"] in w and "usage__input_tokens='n/a'" in w for w in warnings), warnings
    assert any(odd["id"] in w and "finalizing_at" in w and "out of range" in w for w in warnings), warnings
    # The well-typed batch next to it is untouched by the slow path.
    assert rows_by_id(db)[good["id"]]["request_counts__total"] == 10


def test_nulls_in_every_nullable_field_load_as_null_and_count_as_open(db: str) -> None:
    nullable = [k for k in make_batch(1) if k not in ("id", "created_at")]
    empty = make_batch(1, **dict.fromkeys(nullable))
    half = make_batch(2, request_counts={"total": None, "completed": None, "failed": None}, usage=None)
    with ScriptedApi(serve_all([make_batch(3), half, empty])) as api:
        result = run_load(db, config_for(api.base_url, KEY_A))
        assert result.ok, result.outcomes
        rows = rows_by_id(db)
        stored = rows[empty["id"]]
        null_columns = [name for name, value in stored.items() if value is None]
        for column in ("status", "endpoint", "model", "metadata", "request_counts__total", "usage__total_tokens"):
            assert column in null_columns
        assert stored["created_at"] is not None and stored["project"] == "proj_scripted"
        assert rows[half["id"]]["request_counts__total"] is None
        assert result.outcomes[0].stats.counts.still_open == 1  # status NULL: not known to be terminal
        empty.update(make_batch(1))  # the API fills it in: the next run re-reads and completes it
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    assert rows_by_id(db)[empty["id"]]["status"] == "completed"


def test_empty_string_file_ids_are_stored_as_null(db: str) -> None:
    azure = make_batch(1, status="validating", input_file_id="", output_file_id="", error_file_id="")
    with ScriptedApi(serve_all([azure])) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
        row = rows_by_id(db)[azure["id"]]
        assert (row["input_file_id"], row["output_file_id"], row["error_file_id"]) == (None, None, None)
        azure.update(status="completed", input_file_id="file-in", output_file_id="file-out")
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    row = rows_by_id(db)[azure["id"]]
    assert (row["input_file_id"], row["output_file_id"], row["error_file_id"]) == ("file-in", "file-out", None)


def test_sixteen_long_metadata_values_with_odd_keys_round_trip_exactly(db: str) -> None:
    odd_keys = ["", " ", "a.b", "a__b", "ключ", "🎉 party", 'quo"te', "back\\slash", "new\nline", "null", "id", "$.x"]
    odd_keys += ["'; DROP TABLE batches; --", "x" * 64, "UPPER", "tab\there"]
    metadata = {key: (chr(0x41 + i) + "é✓" * 255 + "z")[:512] for i, key in enumerate(odd_keys)}
    assert len(metadata) == 16 and all(len(v) == 512 for v in metadata.values())
    batch = make_batch(1, metadata=metadata)
    with ScriptedApi(serve_all([batch])) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    assert json.loads(rows_by_id(db)[batch["id"]]["metadata"]) == metadata
    assert table(db, "SELECT metadata->>'$.\"a.b\"' FROM openai_batches.batches") == [(metadata["a.b"],)]


def test_has_more_with_no_data_that_persists_fails_the_run_and_commits_nothing(db: str, world: World) -> None:
    first = world.newest_first(3)
    with ScriptedApi(world.paged([(first, True), ([], True)])) as api:
        result = run_load(db, world.scripted_config(api, max_attempts=3))
    assert not result.ok
    assert "has_more is true but the page has no data" in (result.outcomes[0].error or "")
    after = first[-1]["id"]
    assert [q.get(world.cursor) for p, q in api.requests if p == world.list_path] == [None, after, after, after]
    assert not Path(db).exists()  # nothing committed: the next run starts from the head again


def test_has_more_with_no_data_once_is_a_glitch_and_paging_goes_on(db: str) -> None:
    batches = newest_first(150)
    served = serve_all(batches)

    def glitch_once(path: str, query: dict[str, str], number: int) -> Reply:
        return json_reply(envelope([], True)) if number == 2 else served(path, query, number)

    with ScriptedApi(glitch_once) as api:
        assert run_load(db, config_for(api.base_url, KEY_A)).ok
    assert count_requests(api) == 3
    assert table(db, "SELECT count(*), count(DISTINCT id) FROM openai_batches.batches") == [(150, 150)]


def test_the_same_item_on_two_pages_is_loaded_once(db: str, world: World) -> None:
    a, b, c, d = world.newest_first(4)
    status = "processing_status" if world.anthropic else "status"
    c_again = dict(c, **{status: "in_progress"})  # a stale copy further down
    with ScriptedApi(world.paged([([a, b, c], True), ([c_again, d], False)])) as api:
        result = run_load(db, world.scripted_config(api))
    assert result.ok, result.outcomes[0].error
    assert world.ids_and_duplicates(db) == (4, 4)
    assert world.rows(db)[c["id"]][status] == c[status]
    assert result.outcomes[0].stats.counts.new == 4


def test_the_same_item_twice_on_one_page_is_loaded_once(db: str, world: World) -> None:
    a, b, c = world.newest_first(3)
    a_again = world.opened(dict(a))  # a stale copy further down the same page
    with ScriptedApi(world.paged([([a, b, a_again, c], False)])) as api:
        result = run_load(db, world.scripted_config(api))
    assert result.ok, result.outcomes[0].error
    assert world.ids_and_duplicates(db) == (3, 3)
    assert world.rows(db)[a["id"]][world.status] == world.ended  # its first (newest) sighting
    assert result.outcomes[0].stats.counts.new == 3


def test_a_cursor_that_does_not_advance_fails_clearly_and_writes_nothing(db: str, world: World) -> None:
    a, b = world.newest_first(2)
    with ScriptedApi(world.paged([([a, b], True), ([b], True)])) as api:
        result = run_load(db, world.scripted_config(api))
    assert not result.ok
    error = result.outcomes[0].error or ""
    assert "same cursor twice" in error and b["id"] in error and "\n" not in error
    assert world.count_requests(api) == 2
    assert not Path(db).exists()


def test_a_server_that_ignores_the_cursor_fails_in_one_line_and_never_loops(db: str, world: World) -> None:
    head = world.newest_first(3)
    with ScriptedApi(lambda path, query, n: json_reply(world.envelope(head, True))) as api:
        result = run_load(db, world.scripted_config(api))
    assert not result.ok
    error = result.outcomes[0].error or ""
    assert "same cursor twice" in error and head[-1]["id"] in error and "\n" not in error
    assert world.count_requests(api) == 2  # the head, then the head again for the next page: refused
    assert not Path(db).exists()


def test_pages_that_cycle_back_to_an_earlier_cursor_fail_in_one_line(db: str, world: World) -> None:
    a, b, c, d = world.newest_first(4)
    pages = {None: [a, b], b["id"]: [c, d], d["id"]: [a, b]}  # the third page is the first again: a loop
    with ScriptedApi(lambda path, query, n: json_reply(world.envelope(pages[query.get(world.cursor)], True))) as api:
        result = run_load(db, world.scripted_config(api))
    assert not result.ok
    error = result.outcomes[0].error or ""
    assert "same cursor twice" in error and b["id"] in error and "\n" not in error
    assert world.count_requests(api) == 3
    assert not Path(db).exists()


@over_worlds((*PROVIDERS, "together", "mistral"))
@pytest.mark.parametrize(
    "item",
    [{"object": "batch"}, {"id": None, "status": "completed"}, {"id": 17}, {"id": ""}],
    ids=["no-id", "null-id", "int-id", "empty-id"],
)
def test_an_item_without_a_string_id_refuses_the_page(db: str, world: World, item: dict[str, Any]) -> None:
    page = world.envelope([world.make_batch(1), item], False)
    with ScriptedApi(lambda path, query, n: json_reply(page)) as api:
        result = run_load(db, world.scripted_config(api, max_attempts=2))
    assert not result.ok
    # Together's list is a bare array: it said "(not a array object)"
    shape = "an array of batch objects" if world.provider == "together" else "a list object"
    assert f"unexpected response body (not {shape})" in (result.outcomes[0].error or "")
    assert world.count_requests(api) == 2  # retried once: a proxy may have mangled it
    assert not Path(db).exists()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("502-html", "HTTP 502: non-JSON body: <html> <head><title>502 Bad Gateway</title>"),
        ("empty-body", "HTTP 200: empty body"),
        ("truncated-json", "HTTP 200: non-JSON body: {"),
    ],
)
def test_bad_bodies_are_retried_and_then_fail_clearly(
    db: str, world: World, server: SimulatorServer, kind: str, message: str
) -> None:
    world.generate_history(150, project=world.a, days=5)
    pages = -(-150 // world.page_size)
    server.inject(Fault(kind, count=1, path_prefix=world.list_path))
    result = run_load(db, world.config(server, max_attempts=2))
    assert result.ok, result.outcomes
    assert len([r for r in server.requests if r.path == world.list_path]) == pages + 1  # the bad answer retried
    world.assert_matches_simulator(db, world.a)

    world.advance(3600)
    world.create_batch(world.a)
    server.inject(Fault(kind, count=2, path_prefix=world.list_path))
    result = run_load(db, world.config(server, max_attempts=2))
    assert not result.ok
    error = result.outcomes[0].error or ""
    request_id = "request-id req_" if world.anthropic else "x-request-id req_"
    assert message.replace("api.openai.com", "api.anthropic.com") in error
    assert "gave up after 2 attempts" in error and request_id in error
    server.clear_faults()
    assert run_load(db, world.config(server)).ok
    world.assert_matches_simulator(db, world.a)


@pytest.mark.parametrize(
    "body, what",
    [
        ({"object": "list", "data": "oops"}, "the answer's `data` is a str, not a list"),
        ([make_batch(1)], "the answer is a bare JSON array of 1 items"),
        ({"batches": [make_batch(1)], "next": None}, "the answer is an object without `data` (keys: batches, next)"),
        ({"error": "not an object"}, "the answer is an object without `data` (keys: error)"),
    ],
    ids=["data-not-a-list", "bare-list", "batches-envelope", "error-string"],
)
def test_a_list_answer_of_the_wrong_shape_fails_at_once_without_a_retry(
    db: str, world: World, body: Any, what: str
) -> None:
    """A 200 of another shape is the server's answer, not a glitch: asking again cannot change it (issue 19;
    it was retried 8 times, ~30 s, before the same error)."""
    with ScriptedApi(lambda path, query, n: json_reply(body, **{"x-request-id": f"req_shape_{n}"})) as api:
        result = run_load(db, world.scripted_config(api))
    assert not result.ok
    error = result.outcomes[0].error or ""
    assert f"GET {api.base_url.removesuffix('/v1') if world.anthropic else api.base_url}" in error
    assert f"HTTP 200: {what}" in error and "not retried" in error and "\n" not in error
    assert "attempts" not in error
    assert world.count_requests(api) == 1
    assert not Path(db).exists()


def test_a_whole_non_json_page_where_the_list_was_asked_for_is_one_line_exit_1_and_one_request(
    tmp_path: Path, world: World
) -> None:
    """A base_url that points at a web page (`https://api.groq.com` without `/openai/v1`) answers 200 with HTML:
    one line naming the request and its id, exit 1, one request (it was retried ~30 s)."""
    page = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>Docs</body></html>"
    request_id = "request-id" if world.anthropic else "x-request-id"
    db = tmp_path / "html.duckdb"
    with ScriptedApi(lambda path, query, n: Reply(200, page, "text/html", {request_id: f"req_page_{n}"})) as api:
        result = run_cli("load", "--db", str(db), env=cli_env(**world.env(api)))
        requests = world.count_requests(api)
    assert_one_clear_error(
        result, 1, "GET ", world.list_path, "HTTP 200: non-JSON body: <!DOCTYPE html>", "not retried",
        f"[{request_id} req_page_1]",
    )  # fmt: skip
    assert requests == 1
    assert not db.exists()


def test_a_garbled_retry_after_is_ignored(db: str, world: World) -> None:
    served = world.serve_all(world.newest_first(5))
    error = {"type": "rate_limit_error", "message": "slow down"} if world.anthropic else {
        "message": "slow down", "code": "rate_limit_exceeded"
    }  # fmt: skip

    def garbled(path: str, query: dict[str, str], number: int) -> Reply:
        if number == 1:
            return json_reply({"type": "error", "error": error} if world.anthropic else {"error": error}, 429, **{
                "retry-after": "soon-ish", "retry-after-ms": "later"
            })  # fmt: skip
        return served(path, query, number)

    with ScriptedApi(garbled) as api:
        result = run_load(db, world.scripted_config(api))
    assert result.ok, result.outcomes
    assert world.count_requests(api) == 2


def test_a_persistent_html_error_page_through_the_cli_is_one_line_and_no_traceback(
    tmp_path: Path, world: World
) -> None:
    page = b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head></html>"
    db = tmp_path / "html.duckdb"
    request_id = "request-id" if world.anthropic else "x-request-id"
    with ScriptedApi(lambda path, query, n: Reply(403, page, "text/html", {request_id: f"req_scripted_{n}"})) as api:
        result = run_cli("load", "--db", str(db), env=cli_env(**world.env(api)))
    assert_one_clear_error(result, 1, "HTTP 403", "non-JSON body: <!DOCTYPE html>", f"[{request_id} req_scripted_1]")
    assert not db.exists()


@pytest.mark.parametrize("kind", ["corrupt-gzip", "truncated-gzip"])
def test_gzip_encoded_list_pages_are_decoded_and_a_mangled_one_is_retried(
    db: str, world: World, server: SimulatorServer, kind: str
) -> None:
    server.compress = True  # as Cloudflare in front of either API
    world.generate_history(150, project=world.a, days=5, open_fraction=0.1)
    server.inject(Fault(kind, path_prefix=world.list_path))
    result = run_load(db, world.config(server))
    assert result.ok, [o.error for o in result.outcomes]
    assert [r.fault for r in server.requests][:2] == [kind, None]
    assert all(r.headers.get("accept-encoding") for r in server.requests)
    world.assert_matches_simulator(db, world.a)
