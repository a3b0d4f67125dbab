"""Together, Mistral and OpenRouter (issue 19): each loads exactly over real HTTP against the simulator's rendering of
it (simulator/others.py), into a table of its own with the provider's own columns; what a no-change run costs is
measured; open batches are brought up to date however old; odd values are kept; keys are never shown and keys of
another provider are refused in one line naming the setting."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator import others as sim
from openai_batches.tables.others import TABLES, time_of

from .support.cli import assert_one_clear_error, cli_env, run_cli
from .support.fake_api import ScriptedApi, json_reply
from .support.workload import NOW

TOGETHER_KEY = "tgt-sim-0123456789abcdef0123456789abcdef"
MISTRAL_KEY = "MistralSimKey0123456789abcdefABCD"
OPENROUTER_KEY = "sk-or-v1-sim0123456789abcdef0123456789abcdef"
TOGETHER, MISTRAL, OPENROUTER = "together_team", "mistral_team", "openrouter_team"
TERMINAL = ("completed", "failed", "expired", "cancelled")


@pytest.fixture
def other_org() -> SimulatedOrg:
    org = SimulatedOrg(
        projects={TOGETHER_KEY: TOGETHER, MISTRAL_KEY: MISTRAL, OPENROUTER_KEY: OPENROUTER},
        clock=SimClock(start=NOW),
        seed=23,
    )
    for project in (TOGETHER, MISTRAL, OPENROUTER):
        org.generate_history(130, project=project, days=4, open_fraction=0.1)
    return org


def serve(org: SimulatedOrg, **options: Any) -> SimulatorServer:
    return SimulatorServer(org, **options).start()


def base(server: SimulatorServer, provider: str) -> str:
    return server.base_url.removesuffix("/v1") + sim.PREFIXES[provider]


def project(server: SimulatorServer, provider: str) -> ProjectConfig:
    name, key = {"together": (TOGETHER, TOGETHER_KEY), "mistral": (MISTRAL, MISTRAL_KEY)}.get(
        provider, (OPENROUTER, OPENROUTER_KEY)
    )
    return ProjectConfig(name=name, api_key=key, base_url=base(server, provider), provider=provider)


def truth(org: SimulatedOrg, server: SimulatorServer, provider: str) -> dict[str, dict[str, Any]]:
    """The provider's objects as the simulator serves them now."""
    ids = server._other_ids  # the server's own id map: what it answers with
    render = {
        "together": lambda b: sim.together_batch(b, ids),
        "mistral": lambda b: sim.mistral_job(b, ids),
        "openrouter": sim.openrouter_batch,
    }[provider]
    name = {"together": TOGETHER, "mistral": MISTRAL, "openrouter": OPENROUTER}[provider]
    return {(r := render(b))["id"]: r for b in org.batches(name)}


def rows(db: str, table: str) -> dict[str, dict[str, Any]]:
    with duckdb.connect(db, read_only=True) as con:
        cur = con.execute(f"SELECT * FROM openai_batches.{table}")
        names = [d[0] for d in cur.description]
        return {r[names.index("id")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def expected(provider: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What each declared column of the provider's table holds for `obj` (as the API sent it)."""
    out: dict[str, Any] = {}
    for column in TABLES[provider].columns:
        value: Any = obj
        for key in column.path:
            value = value.get(key) if isinstance(value, dict) else None
        if column.dlt_type == "timestamp":
            value = time_of(value)
        out[column.name] = value
    return out


def assert_rows_are(db: str, provider: str, want: dict[str, dict[str, Any]]) -> None:
    got = rows(db, f"{provider}_batches")
    assert set(got) == set(want)
    json_columns = {c.name for c in TABLES[provider].columns if c.dlt_type == "json"}
    for batch_id, obj in want.items():
        for name, value in expected(provider, obj).items():
            have = got[batch_id][name]
            if name in json_columns and have is not None:
                have = json.loads(have)
            if isinstance(have, datetime) and isinstance(value, datetime):
                assert have == value, (batch_id, name, have, value)
            else:
                assert have == value, (batch_id, name, have, value)
        assert got[batch_id]["extra_fields"] is None, (batch_id, got[batch_id]["extra_fields"])


def requests_to(server: SimulatorServer, provider: str) -> list[Any]:
    return [r for r in server.requests if r.path.startswith(sim.PREFIXES[provider])]


def load(db: str, *projects: ProjectConfig, lookback: int = 900) -> Any:
    # The listing alone (what these tests count): the request ledger, on by default for Together and Mistral, reads
    # their files (test_other_ledger.py).
    result = run_load(db, RunConfig(projects=projects, lookback_seconds=lookback, requests=False))
    assert result.ok, [o.error for o in result.outcomes]
    return result


# --- Together -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["newest", "shuffled"])
def test_together_loads_every_field_in_one_request_a_run_and_updates_open_batches(
    db: str, other_org: SimulatedOrg, order: str
) -> None:
    server = serve(other_org, together_order=order)
    try:
        together = project(server, "together")
        load(db, together)
        want = truth(other_org, server, "together")
        assert_rows_are(db, "together", want)
        assert len(requests_to(server, "together")) == 1  # a bare array of everything: one request
        open_before = {i for i, b in want.items() if b["status"] not in ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED")}
        assert open_before

        server.reset_requests()  # a run with nothing new: one request, nothing written
        result = load(db, together)
        assert len(requests_to(server, "together")) == 1
        assert result.outcomes[0].stats.counts.new == 0

        server.reset_requests()  # days later: every open batch ended; the one request brings them up to date
        other_org.advance(3 * 86_400)
        new = other_org.create_batch(project=TOGETHER)
        result = load(db, together)
        assert len(requests_to(server, "together")) == 1
        want = truth(other_org, server, "together")
        assert_rows_are(db, "together", want)
        assert server._other_ids.out(new) in want
        assert result.outcomes[0].stats.counts.updated == len(open_before)
        headers = requests_to(server, "together")[0].headers
        assert headers.get("authorization") == f"Bearer {TOGETHER_KEY}"
    finally:
        server.stop()


def _together(n: int, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "user_id": "user_1",
        "status": status,
        "progress": 0.0,
        "created_at": f"2026-10-14T09:{n:02d}:00.5Z",
        **fields,
    }


def test_together_open_batch_missing_from_the_list_is_kept_and_marked_gone_after_three_runs(db: str) -> None:
    """The list is complete, yet an open batch it no longer holds is read by id, and only the third 404 in a row
    records it gone (its last row kept): one glitch cannot freeze it."""
    vanishing = _together(1, "IN_PROGRESS", progress=40.0)
    state = {"listed": [vanishing, _together(2, "COMPLETED")]}

    def route(path: str, query: dict[str, str], n: int) -> Any:
        if path == "/v1/batches":
            return json_reply(state["listed"])
        return json_reply({"error": {"message": "not found"}}, status=404)

    with ScriptedApi(route) as api:
        p = ProjectConfig(name="t", api_key="tgt-key-1", base_url=api.base_url, provider="together")
        load(db, p)
        state["listed"] = [_together(2, "COMPLETED")]
        for run in range(3):
            api.requests.clear()
            load(db, p)
            assert [path for path, _ in api.requests] == ["/v1/batches", f"/v1/batches/{vanishing['id']}"]
            with duckdb.connect(db, read_only=True) as con:
                gone = con.execute(
                    "SELECT count(*) FROM duckdb_tables() "
                    "WHERE table_name = 'batches_gone' AND schema_name = 'openai_batches'"
                ).fetchone()
                marked = (
                    con.execute("SELECT reason FROM openai_batches.batches_gone").fetchall() if gone == (1,) else []
                )
            assert marked == ([] if run < 2 else [("missing 3 runs in a row",)])
        api.requests.clear()
        load(db, p)
        assert [path for path, _ in api.requests] == ["/v1/batches"]  # gone: no longer asked for
    kept = rows(db, "together_batches")[vanishing["id"]]
    assert kept["status"] == "IN_PROGRESS" and kept["progress"] == 40.0


def test_together_odd_values_are_kept(db: str) -> None:
    odd = _together(
        3,
        "completed",
        created_at="yesterday",
        progress="n/a",
        file_size_bytes=1.5,
        brand_new_field={"x": 1},
        completed_at=1_790_000_000,
    )
    with ScriptedApi(lambda path, query, n: json_reply([odd, _together(4, "CANCELLED")])) as api:
        load(db, ProjectConfig(name="t", api_key="tgt-key-1", base_url=api.base_url, provider="together"))
    row = rows(db, "together_batches")[odd["id"]]
    assert row["created_at"] is None and row["progress"] is None and row["file_size_bytes"] is None
    assert row["status"] == "completed"  # as sent
    assert row["completed_at"] == time_of(1_790_000_000)  # epoch seconds taken too
    assert json.loads(row["extra_fields"]) == {
        "created_at": "yesterday",
        "progress": "n/a",
        "file_size_bytes": 1.5,
        "brand_new_field": {"x": 1},
    }


def test_together_refuses_an_openai_envelope_in_one_line_and_openai_refuses_togethers_array(tmp_path: Path) -> None:
    """Pointed at an OpenAI-shaped list, Together's client refuses the envelope at once (not retried), and an
    OpenAI-shaped provider pointed at Together's array refuses it: one line each, the key never shown."""
    org = SimulatedOrg(projects={TOGETHER_KEY: TOGETHER}, clock=SimClock(start=NOW), seed=1)
    org.generate_history(5, project=TOGETHER, days=1)
    server = serve(org)
    try:
        env = cli_env(TOGETHER_API_KEY=TOGETHER_KEY, TOGETHER_BASE_URL=server.base_url)
        result = run_cli("load", "--db", str(tmp_path / "a.duckdb"), env=env)
        assert_one_clear_error(result, 1, f"GET {server.base_url}/batches", "not a bare array", "not retried")
        assert TOGETHER_KEY not in result.stdout + result.stderr
        assert sum(1 for r in server.requests if r.path == "/v1/batches") == 1
        gateway = ProjectConfig(
            name="gw", api_key=TOGETHER_KEY, base_url=base(server, "together"), provider="openai-compatible"
        )
        failed = run_load(str(tmp_path / "b.duckdb"), RunConfig(projects=(gateway,)))
        assert not failed.ok and "a bare JSON array of 5 items" in str(failed.outcomes[0].error)
    finally:
        server.stop()


# --- Mistral --------------------------------------------------------------------------------------------------------
def naive_newest_first(url: str, key: str) -> list[str]:
    """What a client paging Mistral's default order by page number reads (as the SDK's `list` pages)."""
    seen: list[str] = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as client:
        for page in range(100):
            data = client.get(url + "/batch/jobs", params={"page": page, "page_size": 50}).json()["data"]
            if not data:
                return seen
            seen.extend(b["id"] for b in data)
    return seen


def test_mistral_pages_oldest_first_from_its_watermark_so_jobs_arriving_mid_scan_are_neither_skipped_nor_doubled(
    db: str, other_org: SimulatedOrg
) -> None:
    server = serve(other_org, mistral_arrivals=3)  # three new jobs after every page served
    try:
        # Newest first by page number (the API's default order): every arrival pushes a job back onto the next page.
        before = len(truth(other_org, server, "mistral"))
        seen = naive_newest_first(base(server, "mistral"), MISTRAL_KEY)
        assert len(seen) != len(set(seen))  # the same job twice ...
        assert len(set(seen)) < before + 3 * 3  # ... and the arrivals of the pages read are not all there

        mistral = project(server, "mistral")
        server.reset_requests()
        result = load(db, mistral)
        pages = [r for r in requests_to(server, "mistral") if r.path.endswith("/batch/jobs")]
        assert all(r.query.get("order_by") == "created" and "created_after" not in r.query for r in pages)
        got = rows(db, "mistral_batches")
        assert result.outcomes[0].stats.counts.new == len(got)  # nothing read twice
        server.mistral_arrivals = 0
        load(db, mistral)  # the arrivals of the first run's pages: from the watermark, nothing skipped
        assert_rows_are(db, "mistral", truth(other_org, server, "mistral"))
        assert all("created_after" in r.query for r in requests_to(server, "mistral")[len(pages) :])

        server.reset_requests()  # nothing new: one request
        result = load(db, mistral)
        assert len(requests_to(server, "mistral")) == 1 and result.outcomes[0].stats.counts.new == 0
    finally:
        server.stop()


def test_mistral_open_jobs_are_read_by_id_however_old(db: str, other_org: SimulatedOrg) -> None:
    """Jobs open at a run, created more than the lookback window (a minute here) below the newest job: below the next
    run's `created_after`, so read by id, days later."""
    server = serve(other_org)
    try:
        mistral = project(server, "mistral")
        load(db, mistral, lookback=60)
        want = truth(other_org, server, "mistral")
        assert_rows_are(db, "mistral", want)
        assert len(requests_to(server, "mistral")) == 2  # 130 jobs, 100 a page
        still_open = {i for i, b in want.items() if b["status"] in ("QUEUED", "RUNNING", "CANCELLATION_REQUESTED")}
        assert still_open

        newest = max(b["created_at"] for b in want.values())
        below = {i for i in still_open if want[i]["created_at"] < newest - 61}
        assert below

        server.reset_requests()
        other_org.advance(5 * 86_400)
        load(db, mistral, lookback=60)
        assert_rows_are(db, "mistral", truth(other_org, server, "mistral"))
        by_id = {r.path.rsplit("/", 1)[1] for r in requests_to(server, "mistral") if not r.path.endswith("/jobs")}
        assert by_id == below
        assert len(requests_to(server, "mistral")) == 1 + len(below)
    finally:
        server.stop()


# --- OpenRouter -----------------------------------------------------------------------------------------------------
def test_openrouter_loads_its_batch_object_with_its_reported_cost_and_never_the_results(
    db: str, other_org: SimulatedOrg
) -> None:
    server = serve(other_org)
    try:
        openrouter = project(server, "openrouter")
        load(db, openrouter)
        want = truth(other_org, server, "openrouter")
        for obj in want.values():
            obj.pop("results")
        assert_rows_are(db, "openrouter", want)
        assert len(requests_to(server, "openrouter")) == 2  # 130 batches, 100 a page
        got = rows(db, "openrouter_batches")
        assert all(got[i]["usage__cost"] == b["usage"]["cost"] for i, b in want.items())
        assert any(got[i]["usage__cost"] > 0 for i in want)
        still_open = {i for i, b in want.items() if b["status"] not in TERMINAL}
        assert still_open

        server.reset_requests()  # nothing new: one request
        assert load(db, openrouter).outcomes[0].stats.counts.new == 0
        assert len(requests_to(server, "openrouter")) == 1

        server.reset_requests()  # days later: the open ones brought up to date (paging on or by id: the cheaper)
        other_org.advance(5 * 86_400)
        load(db, openrouter)
        assert len(requests_to(server, "openrouter")) <= 1 + len(still_open)
        want = truth(other_org, server, "openrouter")
        for obj in want.values():
            obj.pop("results")
        assert_rows_are(db, "openrouter", want)
    finally:
        server.stop()


def test_openrouter_results_read_with_a_batch_by_id_are_never_stored(db: str, other_org: SimulatedOrg) -> None:
    """A batch read by id carries its results inline (content): the row is loaded, the results nowhere."""
    b = other_org.batches(OPENROUTER)[-1]
    opened = {**sim.openrouter_batch(b), "status": "in_progress", "finalized_at": None}
    done = sim.openrouter_batch({**b, "status": "completed"}, results=True)
    newer = {**sim.openrouter_batch(other_org.batches(OPENROUTER)[0]), "id": "batch_newer"}
    state = {"data": [opened]}

    def route(path: str, query: dict[str, str], n: int) -> Any:
        if path == "/v1/batches":
            return json_reply({"object": "list", "data": state["data"], "has_more": False})
        return json_reply(done)

    with ScriptedApi(route) as api:
        p = ProjectConfig(name="or", api_key=OPENROUTER_KEY, base_url=api.base_url, provider="openrouter")
        load(db, p)
        state["data"] = [newer]
        load(db, p)
        assert [path for path, _ in api.requests][-2:] == ["/v1/batches", f"/v1/batches/{b['id']}"]
    assert rows(db, "openrouter_batches")[b["id"]]["status"] == "completed"
    assert done["results"] and sim.RESULT_TEXT.encode() not in Path(db).read_bytes()


# --- keys -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"OPENROUTER_API_KEY": "sk-proj-abcdef0123456789abcdef"}, "OPENROUTER_API_KEY is an OpenAI key (sk-...)"),
        ({"MISTRAL_API_KEY": OPENROUTER_KEY}, "MISTRAL_API_KEY is an OpenRouter key (sk-or-...)"),
        ({"TOGETHER_API_KEY": "gsk_abcdef0123456789abcdef0123"}, "TOGETHER_API_KEY is a Groq key (gsk_...)"),
        ({"TOGETHER_API_KEY": "sk-ant-api03-abcdef0123456789"}, "TOGETHER_API_KEY is an Anthropic key (sk-ant-...)"),
    ],
    ids=["openai-as-openrouter", "openrouter-as-mistral", "groq-as-together", "anthropic-as-together"],
)
def test_a_key_of_another_provider_is_refused_in_one_line_naming_the_setting(
    tmp_path: Path, env: dict[str, str], fragment: str
) -> None:
    result = run_cli("load", "--db", str(tmp_path / "x.duckdb"), env=cli_env(**env))
    assert_one_clear_error(result, 2, fragment)
    for key in env.values():
        assert key not in result.stdout + result.stderr


def test_all_three_load_from_the_sdks_environment_names_with_whitespace_around_the_keys(
    tmp_path: Path, other_org: SimulatedOrg
) -> None:
    server = serve(other_org)
    try:
        env = cli_env(
            TOGETHER_API_KEY=f" {TOGETHER_KEY}\n",
            TOGETHER_BASE_URL=base(server, "together"),
            MISTRAL_API_KEY=f"{MISTRAL_KEY} ",
            MISTRAL_BASE_URL=base(server, "mistral"),
            OPENROUTER_API_KEY=f"\t{OPENROUTER_KEY}",
            OPENROUTER_BASE_URL=base(server, "openrouter"),
        )
        db = tmp_path / "env.duckdb"
        result = run_cli("load", "--db", str(db), env=env)
        assert result.returncode == 0, result.stderr
        for key in (TOGETHER_KEY, MISTRAL_KEY, OPENROUTER_KEY):
            assert key not in result.stdout + result.stderr
        for provider in ("together", "mistral", "openrouter"):
            got = rows(str(db), f"{provider}_batches")
            assert len(got) == 130 and {r["project"] for r in got.values()} == {provider}
        status = run_cli("status", "--db", str(db), env=env)  # each provider's table counted (was a KeyError)
        assert status.returncode == 0, status.stdout + status.stderr
        assert all(name in status.stdout for name in ("together", "mistral", "openrouter")), status.stdout
    finally:
        server.stop()


def test_together_base_url_as_the_together_sdk_takes_it_the_root_without_v1_loads(
    tmp_path: Path, other_org: SimulatedOrg
) -> None:
    """together 3.x reads TOGETHER_BASE_URL as the API's root and adds /v1 itself: a value set for the SDK works
    for the loader too (it answered 404 for every request)."""
    server = serve(other_org)
    try:
        root = base(server, "together").removesuffix("/v1")
        env = cli_env(TOGETHER_API_KEY=TOGETHER_KEY, TOGETHER_BASE_URL=root + "/")
        db = tmp_path / "sdk-root.duckdb"
        result = run_cli("load", "--db", str(db), env=env)
        assert result.returncode == 0, result.stderr
        assert len(rows(str(db), "together_batches")) == 130
    finally:
        server.stop()
