"""The request ledger beyond OpenAI and Anthropic (issue 19): the ledger's rows of one project never replace
another's (batch ids are unique only within a provider: a gateway lists OpenAI's own ids), on a new database and
on one an older version created."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from openai_batches import settings
from openai_batches.analysis.session import reading
from openai_batches.client import others as client_others
from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import CONTENT_MARKER, Fault, SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator import others as sim
from openai_batches.sources.batches import source as batches_source
from openai_batches.sources.ledger.reader import Ledger
from openai_batches.tables.ledger import files_column_hints, requests_column_hints

from .support.assertions import batch_jobs_by_id, table
from .support.fake_api import Reply, ScriptedApi, json_reply
from .support.ledger import FIELDS, finished
from .support.ledger import truth as request_truth
from .support.workload import DAY, KEY_A, NOW, PROJECT_A

GATEWAY = "gateway"


def _ledger_of(db: str, project: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    """batch id -> custom id -> (outcome, input tokens, output tokens) of `project`'s ledger."""
    got: dict[str, dict[str, tuple[Any, ...]]] = {}
    for batch_id, custom_id, *rest in table(
        db,
        "SELECT batch_id, custom_id, outcome, input_tokens, output_tokens FROM openai_batches.batch_requests "
        f"WHERE project = '{project}'",
    ):
        got.setdefault(batch_id, {})[custom_id] = tuple(rest)
    return got


def _truth(org: SimulatedOrg, batch_ids: list[str]) -> dict[str, dict[str, tuple[Any, ...]]]:
    at = [FIELDS.index(f) for f in ("outcome", "input_tokens", "output_tokens")]
    return {b: {c: tuple(v[i] for i in at) for c, v in request_truth(org, b).items()} for b in batch_ids}


def _assert_both_projects_hold(db: str, org: SimulatedOrg, ids: list[str]) -> None:
    """The OpenAI project's and the gateway's ledger of the same batch ids: each complete, each under its project."""
    want = _truth(org, ids)
    assert _ledger_of(db, PROJECT_A) == want
    assert _ledger_of(db, GATEWAY) == want
    files = table(db, "SELECT project, batch_id, kind, state FROM openai_batches.batch_files ORDER BY ALL")
    assert files == sorted((p, b, "output", "read") for p in (PROJECT_A, GATEWAY) for b in ids)


def _gateway_run(db: str, server: SimulatorServer, *, gateway: bool = True) -> None:
    projects = [ProjectConfig(name=PROJECT_A, api_key=KEY_A, base_url=server.base_url)]
    if gateway:  # the same batches through an openai-compatible endpoint (a gateway in front of OpenAI)
        projects.append(
            ProjectConfig(name=GATEWAY, api_key=KEY_A, base_url=server.base_url, provider="openai-compatible")
        )
    result = run_load(db, RunConfig(projects=tuple(projects), requests=True))
    assert result.ok, [o.error for o in result.outcomes]


def test_a_gateways_ledger_never_replaces_the_openai_projects_ledger_of_the_same_batch_ids(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """Merged on `batch_id` alone, the gateway's ledger of OpenAI's batch ids deleted the OpenAI project's rows
    (and its file rows): both are kept now, each complete, each under its project."""
    ids = [finished(org, outcome="completed", total_requests=4), finished(org, outcome="completed", total_requests=3)]
    _gateway_run(db, server)
    _assert_both_projects_hold(db, org, ids)


def _old_ledger_read(self: Ledger, batches_state: Any) -> Iterator[tuple[str, pa.Table]]:
    """What an older version wrote: `batch_files` without its `project` column."""
    for kind, rows in _real_read(self, batches_state):
        yield kind, rows.drop_columns(["project"]) if kind == "files" else rows


_real_read = Ledger.read


def test_a_database_an_older_version_created_keeps_its_ledger_and_takes_a_second_projects(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """A database written with the ledger merged on `batch_id` (and `batch_files` without `project`): the next
    load adds the column, files its old rows under their project, and a second project's ledger of the same
    batch ids is added beside them, nothing deleted, no file row twice."""
    old_files = files_column_hints()
    del old_files["project"]
    for hints in (old_files, requests_hints := requests_column_hints()):
        hints.get("project", {}).pop("merge_key", None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(
            batches_source._LEDGER_HINTS,
            "files",
            batches_source.merged_table(settings.FILES_TABLE, old_files, merge_key="batch_id"),
        )
        patch.setitem(
            batches_source._LEDGER_HINTS,
            "requests",
            batches_source.merged_table(settings.REQUESTS_TABLE, requests_hints, merge_key="batch_id"),
        )
        patch.setattr(Ledger, "read", _old_ledger_read)
        ids = [finished(org, outcome="completed", total_requests=3)]
        _gateway_run(db, server, gateway=False)
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'batch_files'"
    assert "project" not in {c for (c,) in table(db, columns)}
    with reading(db) as analysis:  # read before the next load: each file row under its batch's project
        files = analysis.con.execute("SELECT project, batch_id FROM openai_batches.batch_files").fetchall()
        assert files == [(PROJECT_A, ids[0])]
        checked = analysis.con.execute("SELECT batch_id, consistent FROM openai_batches.ledger_check").fetchall()
        assert checked == [(ids[0], True)]

    ids.append(finished(org, outcome="completed", total_requests=2, days_ago=1.0))
    _gateway_run(db, server)
    _assert_both_projects_hold(db, org, ids)


# --- Together, Mistral, OpenRouter: their results in the one ledger ------------------------------------------------
KEYS = {
    "together": "tgt-sim-0123456789abcdef0123456789abcdef",
    "mistral": "MistralSimKey0123456789abcdefABCD",
    "openrouter": "sk-or-v1-sim0123456789abcdef0123456789abcdef",
}
PROJECTS = {"together": "together_team", "mistral": "mistral_team", "openrouter": "openrouter_team"}
MODELS = {  # Together's priced by the price file, Mistral's by genai-prices' batch price (from 2026-10-14)
    "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "mistral": "mistral-small-latest",
    "openrouter": "gpt-4o-mini",
}
ENDED = ("completed", "expired", "cancelled")
PRICES_TOML = """
[[prices]]
provider = "together"
model = "meta-llama/*"
input = 0.88
output = 0.88
"""


@pytest.fixture
def others() -> SimulatedOrg:
    """Each provider's project: batches that ended (small), one that failed validation, one open."""
    org = SimulatedOrg(projects={KEYS[p]: PROJECTS[p] for p in KEYS}, clock=SimClock(start=NOW), seed=31)
    for provider, project in PROJECTS.items():
        for outcome in (*ENDED, "failed"):
            org.create_batch(
                project=project, created_at=NOW - 2 * DAY, outcome=outcome, total_requests=5, model=MODELS[provider]
            )
        org.create_batch(project=project, model=MODELS[provider])  # validating now
    return org


def _config(server: SimulatorServer, *providers: str, **kw: Any) -> RunConfig:
    root = server.base_url.removesuffix("/v1")
    projects = tuple(
        ProjectConfig(name=PROJECTS[p], api_key=KEYS[p], base_url=root + sim.PREFIXES[p], provider=p) for p in providers
    )
    return RunConfig(projects=projects, **kw)


def _load(db: str, server: SimulatorServer, *providers: str, **kw: Any) -> Any:
    result = run_load(db, _config(server, *providers, **kw))
    assert result.ok, [o.error for o in result.outcomes]
    return result


def _shown(server: SimulatorServer, provider: str, batch_id: str) -> str:
    """The id the provider shows for the organisation's batch (Together's and Mistral's are UUIDs)."""
    return batch_id if provider == "openrouter" else server._other_ids.out(batch_id)


def _ended(org: SimulatedOrg, provider: str) -> list[dict[str, Any]]:
    return [b for b in org.batches(PROJECTS[provider]) if b["status"] in ("completed", "expired", "cancelled")]


def _want(org: SimulatedOrg, server: SimulatorServer, provider: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Every ledger field of every request of the provider's ended batches, from the simulator's truth. OpenRouter's
    results name only the requests they hold (no input file names the others)."""
    want = {}
    for batch in _ended(org, provider):
        rows = request_truth(org, batch["id"])
        if provider == "openrouter":
            rows = {c: v for c, v in rows.items() if v[0] != "missing"}
        if rows:  # a batch of no row has no ledger rows either (its file rows say it was read)
            want[_shown(server, provider, batch["id"])] = rows
    return want


def _got(db: str, provider: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    got: dict[str, dict[str, tuple[Any, ...]]] = {}
    for batch_id, custom_id, *rest in table(
        db,
        f"SELECT batch_id, custom_id, {', '.join(FIELDS)} FROM openai_batches.batch_requests "
        f"WHERE project = '{PROJECTS[provider]}'",
    ):
        got.setdefault(batch_id, {})[custom_id] = tuple(rest)
    return got


def _stored_text(db: str) -> str:
    """Every value of every table the loads wrote, as text."""
    names = table(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'openai_batches'")
    return json.dumps([table(db, f'SELECT * FROM openai_batches."{n}"') for (n,) in names], default=str)


@pytest.mark.parametrize("provider", ["together", "mistral", "openrouter"])
def test_each_providers_results_are_read_into_the_ledger_exactly_once_and_never_their_content(
    db: str, others: SimulatedOrg, provider: str
) -> None:
    """Together's and Mistral's files (`GET /files/{id}` then its content, OpenAI-shaped JSONL) and OpenRouter's
    results (`GET /batches/{id}/results`): every request of every batch that ended, each field as the simulator's
    truth has it; each file read once, nothing read again by a run with nothing new; no content stored."""
    with SimulatorServer(others) as server:
        # The ledger is on by default for Together and Mistral (their only tokens); asked for on OpenRouter.
        _load(db, server, provider, requests=True if provider == "openrouter" else None)
        assert _got(db, provider) == _want(others, server, provider)
        prefix = sim.PREFIXES[provider]
        reads = [r for r in server.requests if r.path.startswith(prefix) and r.path != prefix + "/batches"]
        reads = [r for r in reads if not r.path.startswith(prefix + "/batch/jobs")]
        files = table(
            db,
            "SELECT batch_id, kind, file_id, state FROM openai_batches.batch_files "
            f"WHERE project = '{PROJECTS[provider]}' ORDER BY ALL",
        )
        ended = {_shown(server, provider, b["id"]): b for b in _ended(others, provider)}
        if provider == "openrouter":
            assert files == sorted((i, "results", None, "read") for i in ended)
            assert sorted(r.path for r in reads) == sorted(f"{prefix}/batches/{i}/results" for i in ended)
            assert all(r.query == {"limit": "1000"} for r in reads)
        else:
            assert {f[3] for f in files} == {"read"} and {f[0] for f in files} == set(ended)
            for batch_id, kind, file_id, _ in files:
                assert file_id == ended[batch_id][f"{kind}_file_id"], (batch_id, kind)
            contents = sorted(r.path for r in reads if r.path.endswith("/content"))
            assert contents == sorted(f"{prefix}/files/{f[2]}/content" for f in files)  # each once
            described = [r.path for r in reads if not r.path.endswith("/content")]
            assert set(described) <= {f"{prefix}/files/{f[2]}" for f in files}
        done = next(b for b in ended.values() if b["status"] == "completed")
        path = (
            f"/batches/{done['id']}/results" if provider == "openrouter" else f"/files/{done['output_file_id']}/content"
        )
        served = httpx.get(
            server.base_url.removesuffix("/v1") + prefix + path, headers={"Authorization": f"Bearer {KEYS[provider]}"}
        )
        assert CONTENT_MARKER in served.text  # what was read carried content ...
        assert CONTENT_MARKER not in _stored_text(db)  # ... and none of it was kept

        server.reset_requests()
        _load(db, server, provider, requests=True)
        assert [r.path for r in server.requests] == [
            {"together": prefix + "/batches", "mistral": prefix + "/batch/jobs"}.get(provider, prefix + "/batches")
        ]
        assert _got(db, provider) == _want(others, server, provider)


def test_the_ledger_of_these_providers_keeps_to_the_budget_and_leaves_the_rest_pending(
    db: str, others: SimulatedOrg
) -> None:
    """The one budget: a run reads the first batch whatever its size and leaves the others `pending` (their files
    named, sizes as described) for the next runs, which read them; nothing is read twice."""
    with SimulatorServer(others) as server:
        _load(db, server, "mistral", requests_max_mb_per_run=0.000001)
        states = table(db, "SELECT batch_id, state FROM openai_batches.batch_files")
        assert len({b for b, s in states if s == "read"}) == 1
        assert {b for b, s in states if s == "pending"} == {
            _shown(server, "mistral", b["id"]) for b in _ended(others, "mistral")
        } - {b for b, s in states if s == "read"}
        for _ in ENDED[1:]:
            _load(db, server, "mistral", requests_max_mb_per_run=0.000001)
        assert {s for _, s in table(db, "SELECT batch_id, state FROM openai_batches.batch_files")} == {"read"}
        assert _got(db, "mistral") == _want(others, server, "mistral")
        contents = [r.path for r in server.requests if r.path.endswith("/content")]
        assert len(contents) == len(set(contents))


def test_a_together_file_that_answers_404_waits_then_is_gone_by_the_rule_of_files(
    db: str, others: SimulatedOrg
) -> None:
    """A file the API answers 404 for: its batch waits (`pending`), and after GONE_AFTER_MISSES runs in a row
    it is recorded `gone` (no age stops the reads: Together keeps files for as long as it does)."""
    batch = next(b for b in _ended(others, "together") if b["status"] == "completed")
    with SimulatorServer(others) as server:
        server.inject(Fault("404", count=10, path_prefix=f"/together/v1/files/{batch['output_file_id']}"))
        shown = _shown(server, "together", batch["id"])
        for run in range(1, settings.GONE_AFTER_MISSES + 1):
            _load(db, server, "together")
            state = table(
                db, f"SELECT state FROM openai_batches.batch_files WHERE batch_id = '{shown}' AND kind = 'output'"
            )
            assert state == [("gone" if run == settings.GONE_AFTER_MISSES else "pending",)], run


def _sums(org: SimulatedOrg, batch_id: str) -> tuple[int, int, int, int, int, int]:
    """(requests, succeeded, failed, input, cached, output tokens) of a batch, from the simulator's truth."""
    rows = list(org.request_truth(batch_id))
    return (
        len(rows),
        sum(r.outcome == "succeeded" for r in rows),
        sum(r.outcome == "failed" for r in rows),
        sum(r.input_tokens or 0 for r in rows),
        sum(r.cached_tokens or 0 for r in rows),
        sum(r.output_tokens or 0 for r in rows),
    )


def _expected_cost(provider: str, created: float, tokens: tuple[int, int, int]) -> Decimal:
    """Mistral: genai-prices' batch price of the model at the batch's creation (its own calculator); Together: the
    price file's 0.88/0.88 USD per million, cached input at the input price, x 0.5 (the default batch factor)."""
    from genai_prices import Usage, calc_price

    inputs, cached, output = tokens
    if provider == "together":
        return (Decimal(inputs) * Decimal("0.88") + Decimal(output) * Decimal("0.88")) / 1_000_000 * Decimal("0.5")
    usage = Usage(input_tokens=inputs, cache_read_tokens=cached, output_tokens=output)
    at = datetime.fromtimestamp(created, UTC)
    price = calc_price(
        usage,
        MODELS[provider],
        provider_id="mistral",
        genai_request_timestamp=at,
        price_context={"processing": "batch"},
    )
    return price.total_price


def test_together_and_mistral_batches_are_priced_from_their_ledgers_tokens_to_the_cent(
    db: str, tmp_path: Path, others: SimulatedOrg
) -> None:
    """Their batches send no tokens (Together no counts either): once the ledger read a batch's files, `batch_jobs`
    takes its tokens (and Together's counts) from the ledger and prices them (Mistral: genai-prices' batch price;
    Together: the price file). A batch whose results are not read yet keeps its unpriced reason."""
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES_TOML)
    with SimulatorServer(others) as server:
        _load(db, server, "together", "mistral")
        read = {p: _ended(others, p) for p in ("together", "mistral")}
        timing = {"validating_seconds": 5, "processing_seconds": 60, "finalizing_seconds": 5}
        late = others.create_batch(
            project=PROJECTS["mistral"], outcome="completed", total_requests=3, model=MODELS["mistral"], **timing
        )
        others.advance(600)
        _load(db, server, "mistral", requests=False)  # listed, its results not read
        rows = batch_jobs_by_id(db, str(prices))
        for provider in ("together", "mistral"):
            for batch in read[provider]:
                row = rows[_shown(server, provider, batch["id"])]
                total, succeeded, failed, *tokens = _sums(others, batch["id"])
                assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == tuple(tokens)
                if provider == "together":  # no counts on the job: the ledger's
                    assert (row["requests_total"], row["requests_succeeded"], row["requests_failed"]) == (
                        total,
                        succeeded,
                        failed,
                    )
                expected = _expected_cost(provider, batch["created_at"], (tokens[0], tokens[1], tokens[2]))
                assert row["priced"] is True, (provider, row["unpriced_reason"])
                assert round(Decimal(str(row["cost_usd"])), 2) == round(expected, 2)
                assert row["cost_usd"] == pytest.approx(float(expected), rel=1e-9, abs=1e-12), provider
        unread = rows[_shown(server, "mistral", late)]
        assert unread["priced"] is False and unread["input_tokens"] is None
        assert unread["unpriced_reason"].startswith("no usage reported: Mistral sends no tokens")


def test_turning_the_ledger_on_for_a_mistral_project_lists_its_history_once_without_the_floor(
    db: str, others: SimulatedOrg
) -> None:
    """A project loaded with the ledger off pages from a `created_after` floor (the newest job less the lookback):
    the first run with the ledger on lists without it, so the jobs that ended meanwhile are read."""
    with SimulatorServer(others) as server:
        _load(db, server, "mistral", requests=False)
        _load(db, server, "mistral", requests=False)
        assert "created_after" in server.requests[-1].query  # incremental: from the floor
        server.reset_requests()
        _load(db, server, "mistral")
        listed = [r.query for r in server.requests if r.path == sim.PREFIXES["mistral"] + "/batch/jobs"]
        assert listed and all("created_after" not in q for q in listed)
        assert _got(db, "mistral") == _want(others, server, "mistral")
        server.reset_requests()
        _load(db, server, "mistral")
        assert [r.path for r in server.requests] == [sim.PREFIXES["mistral"] + "/batch/jobs"]
        assert "created_after" in server.requests[-1].query


def test_openrouter_results_are_read_page_after_page_by_their_cursor(
    db: str, others: SimulatedOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 2 rows: each batch's results are read page after page (`cursor` = the page before's `next_cursor`)
    until the last, every row once; a page that fails is retried alone (the run's retry policy)."""
    monkeypatch.setattr(client_others, "OPENROUTER_RESULTS_LIMIT", 2)
    with SimulatorServer(others) as server:
        done = next(b for b in _ended(others, "openrouter") if b["status"] == "completed")
        results = f"/openrouter/api/v1/batches/{done['id']}/results"
        server.inject(Fault("500", path_prefix=results))
        _load(db, server, "openrouter", requests=True)
        assert _got(db, "openrouter") == _want(others, server, "openrouter")
        pages = [r for r in server.requests if r.path == results]
        rows = len(_want(others, server, "openrouter")[done["id"]])
        assert [r.status for r in pages] == [500] + [200] * -(-rows // 2)
        assert [r.query.get("cursor") is None for r in pages] == [True, True] + [False] * (len(pages) - 2)
        assert all(r.query["limit"] == "2" for r in pages)


def test_openrouter_results_that_say_more_without_a_cursor_leave_the_batch_pending_never_read_short(
    db: str,
) -> None:
    """A results page with `has_more` true and no `next_cursor`: the rest cannot be asked for, and taking the page
    as the end would record the batch read with requests lost. Its batch waits for the next run instead."""
    now = time.time()
    batch = {
        "id": "batch_or_1",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": "openai/gpt-4o-mini",
        "status": "completed",
        "created_at": int(now - 3600),
        "finalized_at": int(now - 600),
        "request_counts": {"total": 2, "completed": 2, "failed": 0},
    }
    row = {"id": "r1", "custom_id": "a", "response": {"status_code": 200, "body": {"usage": {"prompt_tokens": 3}}}}

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path == "/api/v1/batches":
            return json_reply({"object": "list", "data": [batch], "has_more": False, "first_id": None, "last_id": None})
        return json_reply({"object": "list", "data": [row], "has_more": True, "next_cursor": None})

    with ScriptedApi(route, project=None) as api:
        base = api.base_url.removesuffix("/v1") + "/api/v1"
        config = ProjectConfig(name="or", api_key=KEYS["openrouter"], base_url=base, provider="openrouter")
        result = run_load(db, RunConfig(projects=(config,), requests=True))
        assert result.ok, [o.error for o in result.outcomes]
        assert ("/api/v1/batches/batch_or_1/results", {"limit": "1000"}) in api.requests
    assert table(db, "SELECT batch_id, kind, state FROM openai_batches.batch_files") == [
        ("batch_or_1", "results", "pending")
    ]
    exists = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'batch_requests'"
    if table(db, exists) == [(1,)]:  # nothing of the page read is kept
        assert table(db, "SELECT count(*) FROM openai_batches.batch_requests") == [(0,)]
