"""The Anthropic path under a hostile server and a hostile user: the real CLI against loopback servers that
answer what no well-behaved API would (tests/support/fake_api.py), with the outcomes asserted where they
land: rows in DuckDB, the requests the server saw, exit codes, every line printed, every file dlt left.
Each test failed on the code before its fix."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from openai_batches.load.runner import run_load
from openai_batches.simulator import SimulatorServer

from .support.assertions import files_containing
from .support.cli import assert_one_clear_error, cli_env, run_cli
from .support.fake_api import RawApi, Reply, ScriptedApi, json_reply, raw_response
from .test_anthropic_books import DAY, WS_A, T, config, openai_only, organisation

KEY = "sk-ant-api03-hostileQ7rTw-Zq8Wm3Xv7Lp2Rt5Y"
LIST = "/v1/messages/batches"
NOT_FOUND = {"type": "error", "error": {"type": "not_found_error", "message": "not found"}}


def message_batch(n: int, **fields: Any) -> dict[str, Any]:
    """An ended message batch as the API sends it (two succeeded requests); `fields` override."""
    batch: dict[str, Any] = {
        "id": f"msgbatch_01Hostile{n:016d}",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 0},
        "created_at": "2026-12-01T10:00:00.000000Z",
        "ended_at": "2026-12-01T10:30:00.000000Z",
        "expires_at": "2026-12-02T10:00:00.000000Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": None,
    }
    return batch | fields


def listing(data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def result_line(custom_id: str, **usage: Any) -> dict[str, Any]:
    counts = {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 0}
    return {
        "custom_id": custom_id,
        "result": {
            "type": "succeeded",
            "message": {
                "id": f"msg_{custom_id}",
                "type": "message",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "CONTENT-NEVER-STORED"}],
                "usage": counts | {"cache_creation_input_tokens": 0, "service_tier": "batch"} | usage,
            },
        },
    }


def jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def root(api: ScriptedApi) -> str:
    """ANTHROPIC_BASE_URL of a loopback server: the API root, without /v1."""
    return api.base_url.removesuffix("/v1")


def anthropic_api(batches: Callable[[str], list[dict[str, Any]]], results: bytes = b"") -> ScriptedApi:
    """One workspace listing `batches(root)` on one page; every results URL answers `results`."""
    holder: dict[str, ScriptedApi] = {}

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path == LIST:
            return json_reply(listing(batches(root(holder["api"]))))
        if path.endswith("/results"):
            return Reply(200, results, "application/binary")
        return json_reply(NOT_FOUND, 404)

    holder["api"] = api = ScriptedApi(route, project=None)
    return api


def load(api: ScriptedApi, db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("load", "--db", str(db), env=cli_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=root(api), **env))


def key_runs(text: str, key: str = KEY) -> list[str]:
    """The runs of 8 characters of `key` (the redaction rule's) that `text` contains."""
    return sorted({key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in text})


def assert_key_nowhere(tmp_path: Path, result: subprocess.CompletedProcess[str]) -> None:
    """No run of the key in anything printed, nor in any file under the test's directory (the database,
    dlt's working directory: state.json, traces, load packages)."""
    assert key_runs(result.stdout + result.stderr) == [], result.stdout + result.stderr
    for needle in (KEY[-16:], KEY[13:29]):
        assert files_containing(tmp_path, needle.encode()) == []


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


# --- keys the server sends back ----------------------------------------------------------------------------------


def test_a_key_echoed_in_a_field_name_or_an_odd_value_is_never_logged(tmp_path: Path) -> None:
    """Odd values and fields this version does not declare are named in warnings: with the key in them, the
    warning printed it (the stored copy was masked)."""
    odd = message_batch(
        1,
        created_at=KEY,  # not a time: the plan and the table both warn, showing the value
        ended_at={"echo": KEY},
        request_counts={"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 0, f"x_{KEY}": 1},
    )
    odd[f"note_{KEY}"] = "new field, its name the key"
    with anthropic_api(lambda _: [odd]) as api:
        result = load(api, tmp_path / "b.duckdb")
    assert result.returncode == 0, result.stderr
    assert "does not declare" in result.stderr and "not an RFC 3339 timestamp" in result.stderr  # warned, masked
    assert_key_nowhere(tmp_path, result)
    (redacted,) = rows(tmp_path / "b.duckdb", "SELECT redacted_fields FROM openai_batches.anthropic_batches")
    assert "created_at" in json.loads(redacted[0])


def test_a_key_echoed_in_a_batch_id_is_refused_and_never_stored(tmp_path: Path) -> None:
    """A batch id is a merge key, a cursor and the ledger's key: masked in `anthropic_batches`, it still
    went raw into `batch_requests.batch_id`, `batch_files` and dlt's state.json. Now the page is refused in
    one line (like an item without a usable id) and nothing is stored."""
    echoing = message_batch(2, id=f"msgbatch_{KEY}")
    with anthropic_api(lambda r: [echoing | {"results_url": f"{r}{LIST}/x/results"}], jsonl(result_line("a"))) as api:
        result = load(api, tmp_path / "b.duckdb")
        seen = [path for path, _ in api.requests]
    assert_one_clear_error(result, 1, "a batch id carries a configured API key", "refused")
    assert seen == [LIST]  # refused at once, not retried; its results never asked for
    assert_key_nowhere(tmp_path, result)


# --- odd values -----------------------------------------------------------------------------------------------


def test_a_timestamp_that_is_not_rfc_3339_is_null_whatever_the_rest_of_the_page(tmp_path: Path) -> None:
    """`2026-12-01T10:00Z` (no seconds) and `+0500` (no colon) are not RFC 3339. Arrow's parser, tried first on
    the whole page, took them: alone on a page such a value was stored as a time; next to any value Arrow
    refused, the same batch's column was NULL (kept in extra_fields), as documented."""
    short = message_batch(1, created_at="2026-12-01T10:00Z", ended_at="2026-12-01T10:30:00+0500")
    with anthropic_api(lambda _: [short]) as api:
        result = load(api, tmp_path / "b.duckdb")
    assert result.returncode == 0, result.stderr
    ((created, ended, extra),) = rows(
        tmp_path / "b.duckdb", "SELECT created_at, ended_at, extra_fields FROM openai_batches.anthropic_batches"
    )
    assert (created, ended) == (None, None)
    assert json.loads(extra) == {"created_at": "2026-12-01T10:00Z", "ended_at": "2026-12-01T10:30:00+0500"}
    assert "is not an RFC 3339 timestamp" in result.stderr


# --- the results ----------------------------------------------------------------------------------------------


def test_a_results_url_with_a_user_name_or_password_is_refused_before_any_request(tmp_path: Path) -> None:
    """Same scheme, host and port as the configured root, but credentials in it: httpx turned them into an
    `Authorization: Basic` header the server chose, sent with the key. A base URL with credentials is refused;
    so is such a results_url now (the batch waits, with a warning that does not show them)."""
    url = lambda r: r.replace("http://", "http://planted:secret-pw@") + f"{LIST}/msgbatch_1/results"  # noqa: E731
    with anthropic_api(lambda r: [message_batch(1, results_url=url(r))], jsonl(result_line("a"))) as api:
        result = load(api, tmp_path / "b.duckdb")
        seen = [path for path, _ in api.requests]
        sent = [h.get("authorization") for h in api.headers]
    assert result.returncode == 0, result.stderr
    assert seen == [LIST] and sent == [None]
    assert "user name or password" in result.stderr and "secret-pw" not in result.stdout + result.stderr
    assert rows(tmp_path / "b.duckdb", "SELECT count(*) FROM openai_batches.batch_files WHERE state = 'read'") in (
        [(0,)],
        [],
    )


# --- Anthropic's books ------------------------------------------------------------------------------------------


def test_cost_amounts_beyond_a_double_or_not_ascii_decimals_are_kept_as_sent_not_infinite(tmp_path: Path) -> None:
    """`amount` is a decimal string in cents. `1e400` became an infinite amount (and so every sum over its
    month), an exponent past Decimal's range raised Overflow out of the conversion and failed the books'
    run, and `1_000` or Arabic-Indic digits were read as numbers. Now each is no number: NULL, kept as sent
    in `amount_raw`, and the run goes on."""

    org = organisation()
    day = (T - 5 * DAY) // DAY * DAY
    odd = ("1e400", "-1e400", "1E+999999999", "1_000", "\u0661\u0662\u0663")
    for amount in (*odd, "250.5"):
        org.anthropic_books.add_cost_result(
            day,
            {"cost_type": "tokens", "description": "odd", "workspace_id": WS_A, "amount": amount, "currency": "USD"},
        )
    db = str(tmp_path / "books.duckdb")
    with SimulatorServer(org) as server:
        result = run_load(db, openai_only(config(server)))
    assert result.ok, result.outcomes
    found = dict(
        rows(
            tmp_path / "books.duckdb",
            "SELECT amount_raw, amount FROM openai_batches.anthropic_costs_daily WHERE description = 'odd'",
        )
    )
    assert found == {**dict.fromkeys(odd), "250.5": 2.505}


def jobs(db: Path) -> list[tuple[Any, ...]]:
    from openai_batches.analysis.session import reading

    with reading(str(db)) as analysis:
        return analysis.con.execute(
            "SELECT batch_id, requests_total, priced, unpriced_reason, cost_usd FROM openai_batches.batch_jobs"
        ).fetchall()


def test_results_for_another_number_of_requests_than_the_batch_counts_leave_it_unpriced(tmp_path: Path) -> None:
    """An Anthropic batch's cost is the sum of its results. A download that ends cleanly without its last lines
    (no content-length, the connection closed) read 2 of 3 requests, and the batch was `priced` at the cost of
    2: a wrong total shown as exact. Lines for more requests than it counts were summed as well."""
    counts = {"processing": 0, "succeeded": 3, "errored": 0, "canceled": 0, "expired": 0}
    short = message_batch(2, request_counts=counts)
    extra = message_batch(1, request_counts=counts | {"succeeded": 1})
    whole = message_batch(3, request_counts=counts | {"succeeded": 2})

    def with_results(r: str) -> list[dict[str, Any]]:
        return [b | {"results_url": f"{r}{LIST}/{b['id']}/results"} for b in (whole, short, extra)]

    with anthropic_api(with_results, jsonl(result_line("a"), result_line("b"))) as api:
        result = load(api, tmp_path / "b.duckdb")
    assert result.returncode == 0, result.stderr
    reason = "results disagree with its request counts"
    assert sorted(jobs(tmp_path / "b.duckdb")) == [
        (extra["id"], 1, False, reason, None),
        (short["id"], 3, False, reason, None),
        (whole["id"], 2, True, None, 0.00105),  # 2 x (100 x $1.50 + 50 x $7.50) / 1e6, Sonnet 4.5's batch price
    ]


def test_a_results_stream_without_end_is_cut_and_the_run_ends(tmp_path: Path) -> None:
    """A download's time bound moves on with every byte (a large file at a good pace is never cut), so a server
    streaming result lines without end, fast, held the run and its database lock forever. Now the results are
    read to twice the batch's requests plus RESULTS_EXTRA_LINES lines at most: the batch waits for the next
    run, with a warning, and nothing of it is stored."""
    urls: dict[str, str] = {}

    def answer(path: str) -> Iterator[tuple[bytes, float]]:
        if path == LIST:
            yield raw_response(json.dumps(listing([message_batch(1, results_url=urls["results"])])).encode()), 0
            return
        yield b"HTTP/1.1 200 OK\r\ncontent-type: application/binary\r\nconnection: close\r\n\r\n", 0
        for n in itertools.count():
            yield jsonl(*(result_line(f"r{n}-{i}") for i in range(500))), 0

    with RawApi(answer) as api:
        base = api.base_url.removesuffix("/v1")
        urls["results"] = f"{base}{LIST}/msgbatch_1/results"
        env = cli_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=base)
        result = run_cli("load", "--db", str(tmp_path / "b.duckdb"), env=env, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "the results go on past 1,004 lines" in result.stderr and "left for the next run" in result.stderr
    assert rows(tmp_path / "b.duckdb", "SELECT count(*) FROM openai_batches.anthropic_batches") == [(1,)]
    assert "batch_requests" not in {
        name for (name,) in rows(tmp_path / "b.duckdb", "SELECT table_name FROM information_schema.tables")
    }
