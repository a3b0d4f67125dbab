"""The request ledger of Anthropic message batches: `Ledger` driven as a source drives it, with an
AnthropicClient over real HTTP against the simulator's Anthropic workspace (and a scripted loopback API
for lines no real server sends). Every row equals the simulator's truth; results are read once, closest
to their 29-day archive first, within the run's budget of bytes read; archived results are `gone`
without a request, a 404 is gone after GONE_AFTER_MISSES runs; hostile lines are skipped or cleaned."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dlt
import duckdb
import pyarrow as pa
import pytest

from openai_batches import settings
from openai_batches.analysis import reading, refresh_after_load
from openai_batches.client.anthropic import AnthropicClient
from openai_batches.client.retry import RetryPolicy
from openai_batches.load.runner import load_settings, make_pipeline
from openai_batches.simulator import CONTENT_MARKER, Fault, SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator.anthropic import EXPIRY_S, RETENTION_S
from openai_batches.sources.batches import source as batches_source
from openai_batches.sources.ledger.counts import LedgerCounts
from openai_batches.sources.ledger.reader import Ledger
from openai_batches.tables.ledger import files_column_hints

from .support.assertions import table
from .support.fake_api import Reply, ScriptedApi
from .support.ledger import FIELDS, finished, load
from .support.workload import DAY, KEY_A, PROJECT_A

T0 = 1_790_000_000.0
ANT_KEY = "sk-ant-api03-ledger-0123456789abcdefXYZ"
WS = "wrkspc_ledger"
PROJECT = "claude"


@pytest.fixture
def aorg() -> SimulatedOrg:
    return SimulatedOrg(projects={KEY_A: PROJECT_A}, clock=SimClock(T0), seed=11, anthropic_workspaces={ANT_KEY: WS})


@pytest.fixture
def asrv(aorg: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(aorg) as srv:
        yield srv


@dataclass
class Run:
    """What one run of the ledger wrote: request rows per batch and custom id, file rows per batch."""

    rows: dict[str, dict[str, dict[str, Any]]]
    files: dict[str, dict[str, Any]]
    counts: LedgerCounts
    tables: list[tuple[str, pa.Table]]
    ledger: Ledger


def run_ledger(
    base_url: str,
    state: dict[str, Any],
    batches: Sequence[dict[str, Any]],
    *,
    now: float,
    max_mb: float = settings.DEFAULT_REQUESTS_MAX_MB,
    key: str = ANT_KEY,
) -> Run:
    """One run as a source makes it: offer the batches it loaded, then read."""
    counts = LedgerCounts()
    with AnthropicClient(api_key=key, base_url=base_url, retry=RetryPolicy(sleep=lambda s: None)) as client:
        ledger = Ledger(state, client, project=PROJECT, max_mb=max_mb, now=now, counts=counts)
        for batch in batches:
            ledger.offer(batch)
        tables = list(ledger.read({"loaded": len(batches)}))
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    files: dict[str, dict[str, Any]] = {}
    for kind, t in tables:
        for row in t.to_pylist():
            if kind == "requests":
                assert row["project"] == PROJECT
                rows.setdefault(row["batch_id"], {})[row["custom_id"]] = row
            else:
                assert row["batch_id"] not in files
                files[row["batch_id"]] = row
    return Run(rows, files, counts, tables, ledger)


def truth(org: SimulatedOrg, batch_id: str) -> dict[str, tuple[Any, ...]]:
    return {t.custom_id: tuple(getattr(t, f) for f in FIELDS) for t in org.anthropic.request_truth(batch_id)}


def as_truth(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {custom_id: tuple(row[f] for f in FIELDS) for custom_id, row in rows.items()}


def listed(org: SimulatedOrg, srv: SimulatorServer) -> list[dict[str, Any]]:
    return org.anthropic.batches(WS, srv.anthropic_base_url)


def results_path(batch_id: str) -> str:
    return f"/v1/messages/batches/{batch_id}/results"


def body_of(org: SimulatedOrg, batch_id: str) -> bytes:
    found = org.anthropic.get(batch_id)
    assert found is not None
    return org.anthropic.results_body(found)


# ---------------------------------------------------------------------------------------------- truth
@pytest.mark.parametrize("compress", [False, True], ids=["identity", "gzip"])
def test_every_row_equals_the_simulators_truth_and_results_are_read_once(
    aorg: SimulatedOrg, asrv: SimulatorServer, compress: bool
) -> None:
    asrv.compress = compress  # gzip-compressed as it streams, as Cloudflare in front of the API does
    create = aorg.anthropic.create_batch
    made = [
        create(total_requests=400, processing_seconds=600, errored=30, model="claude-sonnet-4-5"),
        create(total_requests=250, processing_seconds=900, errored=0, model="claude-haiku-4-5"),
        create(total_requests=1, processing_seconds=60),
        create(total_requests=300, processing_seconds=3600, errored=10),  # cancelled part way
        create(total_requests=200, processing_seconds=2 * EXPIRY_S, errored=4),  # expires part way
    ]
    aorg.advance(1200)
    aorg.anthropic.cancel(made[3])
    aorg.advance(EXPIRY_S + 600)
    open_now = create(total_requests=50, processing_seconds=600)  # in progress: nothing to read yet
    batches = listed(aorg, asrv)
    state: dict[str, Any] = {}
    run = run_ledger(asrv.anthropic_base_url, state, batches, now=aorg.clock.now())

    outcomes: Counter[str] = Counter()
    for batch_id in made:
        expected = truth(aorg, batch_id)
        assert as_truth(run.rows[batch_id]) == expected, batch_id
        outcomes.update(row[0] for row in expected.values())
        body = body_of(aorg, batch_id)
        file = run.files[batch_id]
        assert (file["kind"], file["file_id"], file["state"]) == ("results", None, "read")
        assert (file["bytes"], file["lines"]) == (len(body), len(expected)) and file["read_at"] is not None
    assert set(outcomes) == {"succeeded", "failed", "cancelled", "expired"}
    assert open_now not in run.rows and open_now not in run.files
    every = [row for rows in run.rows.values() for row in rows.values()]
    succeeded = [r for r in every if r["outcome"] == "succeeded"]
    assert {r["service_tier"] for r in succeeded} == {"batch"}
    assert {r["model"] for r in run.rows[made[0]].values() if r["model"]} == {"claude-sonnet-4-5-20250929"}
    assert any(r["cache_write_1h_tokens"] for r in succeeded) and any(r["reasoning_tokens"] for r in succeeded)
    assert all(r["input_tokens"] >= r["cached_tokens"] + r["cache_write_tokens"] for r in succeeded)
    assert all(r["status_code"] is None and r["redacted_fields"] is None for r in every)
    failed = [r for r in every if r["outcome"] == "failed"]
    assert failed and all(r["request_id"].startswith("req_") and r["error_code"] for r in failed)
    # No content: the simulator's marker is in every succeeded line, and in no column.
    assert CONTENT_MARKER.encode() in body_of(aorg, made[0])
    assert CONTENT_MARKER not in json.dumps([t.to_pylist() for _, t in run.tables], default=str)
    # Each ended batch's results once, and nothing else (no `GET /files`).
    paths = [r.path for r in asrv.requests]
    assert sorted(paths) == sorted(results_path(b) for b in made)
    if compress:
        assert all("gzip" in r.headers.get("accept-encoding", "") for r in asrv.requests)
    c = run.counts
    assert (c.batches_read, c.files_read, c.requests) == (5, 5, sum(len(truth(aorg, b)) for b in made))
    assert c.bytes_read == sum(len(body_of(aorg, b)) for b in made) and not c.batches_pending
    assert state["pending"] == {} and state["watch"] == {}

    # The next run offers only what is new (as the source does): nothing is read again.
    asrv.reset_requests()
    aorg.advance(3600)
    new = [b for b in listed(aorg, asrv) if b["id"] == open_now]
    again = run_ledger(asrv.anthropic_base_url, state, new, now=aorg.clock.now())
    assert asrv.requests and [r.path for r in asrv.requests] == [results_path(open_now)]
    assert as_truth(again.rows[open_now]) == truth(aorg, open_now) and set(again.rows) == {open_now}


# ---------------------------------------------------------------------------------------------- gone
def test_results_answering_404_are_pending_then_gone_after_the_misses_rule(
    aorg: SimulatedOrg, asrv: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    lost = aorg.anthropic.create_batch(total_requests=40, processing_seconds=600)
    fine = aorg.anthropic.create_batch(total_requests=30, processing_seconds=600)
    aorg.advance(3600)
    asrv.inject(Fault("404", count=settings.GONE_AFTER_MISSES, path_prefix=results_path(lost)))
    state: dict[str, Any] = {}
    runs = []
    for n in range(settings.GONE_AFTER_MISSES):
        runs.append(run_ledger(asrv.anthropic_base_url, state, listed(aorg, asrv) if n == 0 else [], now=T0 + 3600))
        if n < settings.GONE_AFTER_MISSES - 1:
            assert lost not in runs[-1].rows and state["pending"][lost]["misses"] == {"results": n + 1}
            assert runs[-1].counts.files_failed == 1 and runs[-1].counts.batches_pending == 1
    first, last = runs[0], runs[-1]
    assert first.files[lost]["state"] == "pending" and first.files[lost]["file_id"] is None
    assert as_truth(first.rows[fine]) == truth(aorg, fine)
    assert last.files[lost]["state"] == "gone" and last.counts.files_gone == 1 and not last.rows.get(lost)
    assert state["pending"] == {} and state["watch"][lost]["gone"] == ["results"]
    assert "the results: the API answered 404 (run 1 of 3 in a row before it is taken as gone)" in caplog.text
    # Gone: never asked for again, except once by a full refresh that lists it (it may be back).
    after = run_ledger(asrv.anthropic_base_url, state, [], now=T0 + 3600)
    assert [r.path for r in asrv.requests].count(results_path(lost)) == settings.GONE_AFTER_MISSES
    assert after.ledger.rechecks() == []  # results need no `GET` of the batch: its results_url does not change
    (batch,) = [b for b in listed(aorg, asrv) if b["id"] == lost]
    assert after.ledger.wants_again(batch)
    back = run_ledger(asrv.anthropic_base_url, state, [batch], now=T0 + 3600)
    assert as_truth(back.rows[lost]) == truth(aorg, lost) and back.files[lost]["state"] == "read"
    assert state["watch"] == {}


def test_archived_results_are_gone_without_a_request_and_pending_ones_when_they_pass_29_days(
    aorg: SimulatedOrg, asrv: SimulatorServer
) -> None:
    create = aorg.anthropic.create_batch
    archived = create(created_at=T0 - 30 * DAY, total_requests=20, processing_seconds=600)
    oldest = create(created_at=T0 - RETENTION_S + 0.2 * DAY, total_requests=200, processing_seconds=600)
    older = create(created_at=T0 - RETENTION_S + 0.4 * DAY, total_requests=200, processing_seconds=600)
    batches = listed(aorg, asrv)
    assert [b["archived_at"] is not None for b in batches] == [False, False, True]
    state: dict[str, Any] = {}
    # A budget smaller than one batch: the one closest to its archive is read, the other waits.
    run = run_ledger(asrv.anthropic_base_url, state, batches, now=T0, max_mb=0.01)
    assert run.files[archived]["state"] == "gone" and archived not in run.rows
    assert run.files[oldest]["state"] == "read" and as_truth(run.rows[oldest]) == truth(aorg, oldest)
    assert run.files[older]["state"] == "pending" and run.files[older]["bytes"] is None
    assert [r.path for r in asrv.requests] == [results_path(oldest)]
    assert run.counts.files_gone == 1 and run.counts.batches_pending == 1 and set(state["pending"]) == {older}
    # A day later its results are archived too: recorded gone, not asked for.
    aorg.advance(DAY)
    asrv.reset_requests()
    later = run_ledger(asrv.anthropic_base_url, state, [], now=aorg.clock.now())
    assert later.files[older]["state"] == "gone" and asrv.requests == [] and state["pending"] == {}


# ---------------------------------------------------------------------------------------------- budget
def test_the_budget_counts_bytes_read_and_reads_results_closest_to_their_archive_first(
    aorg: SimulatedOrg, asrv: SimulatorServer
) -> None:
    made = [
        aorg.anthropic.create_batch(created_at=T0 - hours * 3600, total_requests=500, processing_seconds=600, errored=0)
        for hours in (5, 60, 30, 200, 90, 10)
    ]
    by_archive = [made[i] for i in (3, 4, 1, 2, 5, 0)]  # created first, archived first
    sizes = {b: len(body_of(aorg, b)) for b in made}
    budget = 2.5 * max(sizes.values())
    state: dict[str, Any] = {}
    read: list[list[str]] = []
    batches = listed(aorg, asrv)
    for n in range(3):
        asrv.reset_requests()
        run = run_ledger(asrv.anthropic_base_url, state, batches if n == 0 else [], now=T0, max_mb=budget / 2**20)
        read.append([b for b in by_archive if b in run.rows])
        assert [r.path for r in asrv.requests] == [results_path(b) for b in read[-1]]
        assert run.counts.bytes_read == sum(sizes[b] for b in read[-1]) <= budget
        for b in read[-1]:
            assert as_truth(run.rows[b]) == truth(aorg, b) and run.files[b]["bytes"] == sizes[b]
        assert run.counts.batches_pending == len(made) - 2 * (n + 1)
        if n == 0:  # pending rows say what waits (its size unknown until read)
            waiting = {b: f for b, f in run.files.items() if f["state"] == "pending"}
            assert set(waiting) == set(by_archive[2:]) and all(f["bytes"] is None for f in waiting.values())
    assert read == [by_archive[0:2], by_archive[2:4], by_archive[4:6]]
    assert state["pending"] == {}


# ---------------------------------------------------------------------------------------------- hostile
def _message(custom_id: str, usage: dict[str, Any], **fields: Any) -> dict[str, Any]:
    message = {"id": "msg_1", "type": "message", "model": "claude-x", "content": [{"type": "text", "text": "SECRET"}]}
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": {**message, **fields, "usage": usage}}}


def test_hostile_result_lines_are_skipped_or_cleaned_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(settings, "LEDGER_MAX_LINE_BYTES", 1 << 16)
    secret = "SECRET-PROMPT-TEXT"
    key = ANT_KEY
    usage = {"input_tokens": "12", "output_tokens": 3.0, "cache_read_input_tokens": None, "service_tier": "batch"}
    errored = {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": "bad\x1b]0;title\x07", "message": f"\x1b[31mno\x1b[0m {key} " + "x" * 10_000},
            "request_id": "req_9",
        },
    }
    lines = [
        b"\xef\xbb\xbf" + json.dumps(_message("a", usage)).encode() + b"\r",  # a byte-order mark, CRLF
        b'{"custom_id": "' + secret.encode() + b'", "result": ',  # cut: not JSON
        json.dumps({"result": {"type": "canceled"}}).encode(),  # no custom_id
        json.dumps({"custom_id": "huge", "result": {"type": "succeeded", "pad": secret * 10_000}}).encode(),
        json.dumps({"custom_id": "a", "result": {"type": "expired"}}).encode(),  # the same custom_id again
        json.dumps({"custom_id": "no-result"}).encode(),
        json.dumps({"custom_id": f"b-{key}", "result": errored}).encode(),
        json.dumps({"custom_id": "c", "result": {"type": "frobnicated"}}).encode(),
        json.dumps({"custom_id": "d", "result": {"type": "canceled"}}).encode(),
        b"",
        json.dumps(
            _message("e", {"input_tokens": 2**62, "cache_read_input_tokens": 2**62, "output_tokens": 1})
        ).encode(),
    ]
    bodies = {
        "/v1/messages/batches/msgbatch_h/results": b"\n".join(lines),
        "/v1/messages/batches/msgbatch_p/results": (b"<html><body>Bad gateway</body></html>\n<p>try again</p>"),
    }

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        return Reply(200, bodies[path], "application/binary") if path in bodies else Reply(404, b"{}")

    with ScriptedApi(route, project=None) as api:
        root = api.base_url.removesuffix("/v1")
        batch = {
            "id": "msgbatch_h",
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": {"processing": 0, "succeeded": 7, "errored": 1, "canceled": 1, "expired": 0},
            "created_at": "2026-09-21T10:00:00.5Z",
            "ended_at": "2026-09-21T11:00:00Z",
            "archived_at": None,
            "results_url": f"{root}/v1/messages/batches/msgbatch_h/results",
        }
        page = {**batch, "id": "msgbatch_p", "results_url": f"{root}/v1/messages/batches/msgbatch_p/results"}
        elsewhere = {**batch, "id": "msgbatch_e", "results_url": "http://127.0.0.2:9/v1/messages/batches/x/results"}
        odd = {**batch, "id": "msgbatch_o", "created_at": "yesterday", "ended_at": "0001-01-01T00:00:00+01:00"}
        with caplog.at_level(logging.WARNING):
            run = run_ledger(root, {}, [batch, page, elsewhere, odd], now=1_790_000_000, key=key)
        assert sorted(p for p, _ in api.requests) == [
            "/v1/messages/batches/msgbatch_h/results",
            "/v1/messages/batches/msgbatch_h/results",  # `odd` names the same results
            "/v1/messages/batches/msgbatch_p/results",
        ]
    rows = run.rows["msgbatch_h"]
    assert set(rows) == {"a", "b-***", "c", "d", "e"}, rows
    a = rows["a"]
    assert (a["outcome"], a["input_tokens"], a["cached_tokens"], a["output_tokens"]) == ("succeeded", 12, None, 3)
    assert (a["service_tier"], a["model"], a["response_id"]) == ("batch", "claude-x", "msg_1")
    b = rows["b-***"]
    assert (b["outcome"], b["error_code"], b["request_id"]) == ("failed", "bad", "req_9")
    assert len(b["error_message"]) <= 500 and b["error_message"].startswith("no ***")
    assert json.loads(b["redacted_fields"]) == ["custom_id", "error_message"]
    assert (rows["c"]["outcome"], rows["c"]["error_code"]) == ("failed", "frobnicated")
    assert rows["d"]["outcome"] == "cancelled"
    assert rows["e"]["input_tokens"] is None and rows["e"]["cached_tokens"] == 2**62  # beyond a BIGINT: NULL
    assert run.files["msgbatch_h"]["lines"] == 10
    text = caplog.text
    assert "4 line(s) of the results could not be read (first: line 2: not JSON)" in text
    assert "1 line(s) of the results repeat a custom_id" in text
    assert "its results account for 5 of its 9 requests" in text
    # A document that is no results at all is not taken as a batch without requests: it waits.
    assert run.files["msgbatch_p"]["state"] == "pending" and "msgbatch_p" not in run.rows
    assert "the results: none of its 2 line(s) is a request of the batch" in text
    # Results on another host: the key is not sent there, the batch waits (until its archive date).
    assert run.files["msgbatch_e"]["state"] == "pending" and "is not on the configured API host" in text
    # Timestamps that are none: read all the same (no archive date known: the API's 404 decides).
    assert set(run.rows["msgbatch_o"]) == set(rows)
    shown = text + json.dumps([t.to_pylist() for _, t in run.tables], default=str)
    assert secret not in shown and "SECRET" not in shown and key[12:] not in shown and "\x1b" not in shown


# ---------------------------------------------------------------------------------------------- database
def test_anthropic_rows_load_into_a_database_an_older_version_created(
    db: str, org: SimulatedOrg, server: SimulatorServer, aorg: SimulatedOrg, asrv: SimulatorServer
) -> None:
    """An older version declared `batch_files.file_id` NOT NULL (in the dataset and in dlt's staging
    dataset) and knew no `cache_write_tokens`, `cache_write_1h_tokens`, `service_tier`: its views are built
    again with the columns added, and Anthropic results (file_id NULL) load into it."""
    old = files_column_hints()
    old["file_id"]["nullable"] = False
    hints = batches_source.merged_table(settings.FILES_TABLE, old, merge_key="batch_id")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(batches_source._LEDGER_HINTS, "files", hints)
        finished(org, outcome="completed", total_requests=30)
        load(db, server)  # a merge: through a table of the same columns in dlt's staging dataset
    not_null = (
        "SELECT table_schema FROM information_schema.columns WHERE column_name = 'file_id' AND is_nullable = 'NO'"
    )
    assert sorted(s for (s,) in table(db, not_null)) == ["openai_batches", "openai_batches_staging"]
    with duckdb.connect(db) as con:
        for name in ("cache_write_tokens", "cache_write_1h_tokens", "service_tier"):
            con.execute(f"ALTER TABLE openai_batches.batch_requests DROP COLUMN {name}")
    with reading(db) as analysis:  # read-only: the absent columns read as NULL
        got = analysis.con.execute("SELECT count(*), count(service_tier) FROM openai_batches.batch_requests")
        assert got.fetchone() == (30, 0)
        assert analysis.con.execute("SELECT count(*) FROM openai_batches.request_costs").fetchone() == (30,)
    assert refresh_after_load(db) == []  # the columns are added to the file, the stored views built again
    with reading(db) as analysis:
        assert analysis.con.execute("SELECT count(*) FROM openai_batches.request_costs").fetchone() == (30,)
    added = (
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'openai_batches' "
        "AND table_name = 'batch_requests' AND column_name IN ('service_tier', 'cache_write_tokens')"
    )
    assert table(db, added) == [(2,)]
    load(db, server)  # nothing new: the constraint is relaxed before anything is loaded
    assert table(db, not_null) == []

    bid = aorg.anthropic.create_batch(total_requests=60, processing_seconds=600, errored=5)
    aorg.advance(3600)

    @dlt.source(name="openai_batches", max_table_nesting=0)
    def anthropic_ledger() -> Any:
        @dlt.resource(name="anthropic_ledger_test")
        def ledger_tables() -> Iterator[Any]:
            counts = LedgerCounts()
            with AnthropicClient(api_key=ANT_KEY, base_url=asrv.anthropic_base_url) as client:
                ledger = Ledger({}, client, project=PROJECT, max_mb=100, now=aorg.clock.now(), counts=counts)
                for batch in listed(aorg, asrv):
                    ledger.offer(batch)
                for kind, t in ledger.read({}):
                    yield dlt.mark.with_hints(t, batches_source._LEDGER_HINTS[kind], create_table_variant=True)

        return ledger_tables

    with load_settings():
        make_pipeline(db).run(anthropic_ledger())
    fields = ", ".join(FIELDS)
    stored = table(db, f"SELECT custom_id, {fields} FROM openai_batches.batch_requests WHERE batch_id = '{bid}'")
    assert {row[0]: tuple(row[1:]) for row in stored} == truth(aorg, bid)
    files = table(db, f"SELECT kind, file_id, state, lines FROM openai_batches.batch_files WHERE batch_id = '{bid}'")
    assert files == [("results", None, "read", 60)]
    # OpenAI's rows: the new columns NULL.
    openai_rows = "SELECT count(*) FROM openai_batches.batch_requests WHERE batch_id NOT LIKE 'msgbatch_%'"
    assert table(db, openai_rows + " AND coalesce(cache_write_tokens, cache_write_1h_tokens) IS NULL") == [(30,)]
    assert table(db, openai_rows + " AND service_tier IS NULL") == [(30,)]
