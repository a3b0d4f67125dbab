"""Azure OpenAI, Groq and any OpenAI-compatible endpoint (issue 19): each loads exactly over real HTTP against the
simulator's flavour of it (simulator/flavors.py), in a table of its own; a server that does not follow OpenAI's
envelope fails in one line, never a loop and never a silent empty load; the official `openai` SDK pages the same
endpoints (Azure's), and loops on Groq's list where the loader stops."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.assertions import expected_row
from .support.cli import assert_one_clear_error, cli_env, run_cli
from .support.fake_api import ScriptedApi, envelope, json_reply, make_batch, newest_first
from .support.workload import KEY_A, NOW, PROJECT_A

GROQ_KEY = "gsk_simgroqkey0000000000000000000000000000000000000000"
AZURE_KEY = "0123456789abcdef0123456789abcdef"
GROQ, AZURE = "groq_main", "azure_eastus"
QUIRKS = frozenset({"capitalised", "iso-times", "uuid-ids"})


@pytest.fixture
def flavored_org() -> SimulatedOrg:
    org = SimulatedOrg(
        projects={KEY_A: PROJECT_A, GROQ_KEY: GROQ, AZURE_KEY: AZURE}, clock=SimClock(start=NOW), seed=19
    )
    org.generate_history(130, project=GROQ, days=4, open_fraction=0.1)
    org.generate_history(120, project=AZURE, days=4, open_fraction=0.1)
    return org


def serve(org: SimulatedOrg, **options: Any) -> SimulatorServer:
    return SimulatorServer(org, **options).start()


def root(server: SimulatorServer | ScriptedApi) -> str:
    return server.base_url.removesuffix("/v1")


def rows(db: str, table: str) -> dict[str, dict[str, Any]]:
    with duckdb.connect(db, read_only=True) as con:
        cur = con.execute(f"SELECT * FROM openai_batches.{table}")
        names = [d[0] for d in cur.description]
        return {r[names.index("id")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def listed(server: SimulatorServer, path: str) -> int:
    return sum(1 for r in server.requests if r.path == path)


def assert_rows_are(db: str, table: str, batches: list[dict[str, Any]]) -> None:
    """Every field of every batch, as OpenAI's objects become rows (tests/support/assertions.expected_row)."""
    got = rows(db, table)
    assert set(got) == {b["id"] for b in batches}
    for batch in batches:
        for name, value in expected_row(batch).items():
            have = got[batch["id"]][name]
            if name == "metadata" and have is not None:
                have = json.loads(have)
            assert have == value, (batch["id"], name, have, value)


# --- Groq ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("paging", ["honours", "ignores"])
def test_groq_loads_exactly_whether_its_list_honours_limit_and_after_or_not(
    db: str, flavored_org: SimulatedOrg, paging: str
) -> None:
    """Groq's list has no has_more: paged while pages bring new batches. Ignoring `after` repeats the head page:
    the end, one request more than the pages, never a loop."""
    server = serve(flavored_org, groq_paging=paging)
    try:
        groq = ProjectConfig(name=GROQ, api_key=GROQ_KEY, base_url=root(server) + "/openai/v1", provider="groq")
        result = run_load(db, RunConfig(projects=(groq,)))
        assert result.ok, [o.error for o in result.outcomes]
        assert_rows_are(db, "groq_batches", flavored_org.batches(GROQ))
        requests = listed(server, "/openai/v1/batches")
        # honours: 20 a page (no limit sent, as Groq's SDK), then the empty page after the last; ignores: all, then
        # the same again (nothing new: the end)
        assert requests == (7 + 1 if paging == "honours" else 2)
        assert all("limit" not in r.query for r in server.requests)
        assert all(r.headers.get("authorization") == f"Bearer {GROQ_KEY}" for r in server.requests)

        server.reset_requests()
        flavored_org.advance(3 * 86_400)  # every open batch ends meanwhile
        new = flavored_org.create_batch(project=GROQ)
        result = run_load(db, RunConfig(projects=(groq,)))
        assert result.ok, [o.error for o in result.outcomes]
        assert_rows_are(db, "groq_batches", flavored_org.batches(GROQ))
        assert new in rows(db, "groq_batches")
        with duckdb.connect(db, read_only=True) as con:
            assert con.execute(
                "SELECT count(*) FROM openai_batches.groq_batches WHERE project <> ?", [GROQ]
            ).fetchone() == (0,)
            assert con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'batches' AND schema_name='openai_batches'"
            ).fetchone() == (0,)
    finally:
        server.stop()


def test_the_openai_sdk_loops_on_groqs_list_while_the_loader_stops(db: str, flavored_org: SimulatedOrg) -> None:
    """Groq's list without has_more, `after` ignored: the official SDK pages forever (bounded here at three times
    the batches there are); the loader makes two requests and loads each batch once."""
    openai = pytest.importorskip("openai")
    server = serve(flavored_org, groq_paging="ignores")
    try:
        client = openai.OpenAI(api_key=GROQ_KEY, base_url=root(server) + "/openai/v1", max_retries=0, timeout=10)
        there = len(flavored_org.batches(GROQ))
        seen = [b.id for b in itertools.islice(client.batches.list(), 3 * there)]
        assert len(seen) == 3 * there and len(set(seen)) == there  # the same batches again and again: a loop
        sdk_requests = listed(server, "/openai/v1/batches")
        assert sdk_requests >= 3

        server.reset_requests()
        groq = ProjectConfig(name=GROQ, api_key=GROQ_KEY, base_url=root(server) + "/openai/v1", provider="groq")
        assert run_load(db, RunConfig(projects=(groq,))).ok
        assert listed(server, "/openai/v1/batches") == 2
        assert len(rows(db, "groq_batches")) == there
    finally:
        server.stop()


# --- Azure OpenAI -------------------------------------------------------------------------------------------------
def azure_truth(org: SimulatedOrg, server: SimulatorServer) -> dict[str, dict[str, Any]]:
    """The Azure project's batches as Azure's API shows them (uuid ids, ISO times, capitalised statuses)."""
    page = server._azure_ids  # the server's own id map: what it answers with
    return {page.azure(b["id"]): b for b in org.batches(AZURE)}


def epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


@pytest.mark.parametrize("api", ["v1", "classic"])
def test_azure_loads_every_batch_with_uuid_ids_iso_times_and_capitalised_statuses(
    db: str, flavored_org: SimulatedOrg, api: str
) -> None:
    server = serve(flavored_org, azure_quirks=QUIRKS)
    try:
        base, version = (root(server) + "/openai/v1", None) if api == "v1" else (root(server) + "/openai", "2024-10-21")
        azure = ProjectConfig(name=AZURE, api_key=AZURE_KEY, base_url=base, provider="azure", api_version=version)
        result = run_load(db, RunConfig(projects=(azure,)))
        assert result.ok, [o.error for o in result.outcomes]
        truth = azure_truth(flavored_org, server)
        got = rows(db, "azure_batches")
        assert set(got) == set(truth) and all(i.startswith("batch_") and len(i) == 42 for i in got)
        for batch_id, batch in truth.items():
            row = got[batch_id]
            assert row["status"] == batch["status"][:1].upper() + batch["status"][1:]  # Azure's value, as sent
            for name in ("created_at", "completed_at", "expires_at", "in_progress_at"):
                assert epoch(row[name]) == batch.get(name), (batch_id, name)
            assert row["request_counts__total"] == batch["request_counts"]["total"]
            assert row["project"] == AZURE
        requests = [r for r in server.requests if r.path.startswith("/openai/")]
        assert all(r.headers.get("api-key") == AZURE_KEY and "authorization" not in r.headers for r in requests)
        if version:
            assert all(r.query.get("api-version") == version for r in requests)
        still_open = {i for i, b in truth.items() if b["status"] not in ("completed", "failed", "expired", "cancelled")}
        assert still_open

        # Days later (Azure batches need not end within 24 h), every batch that was open is read again by id.
        server.reset_requests()
        flavored_org.advance(5 * 86_400)
        result = run_load(db, RunConfig(projects=(azure,)))
        assert result.ok, [o.error for o in result.outcomes]
        truth = azure_truth(flavored_org, server)
        got = rows(db, "azure_batches")
        assert {i: got[i]["status"].lower() for i in still_open} == {i: truth[i]["status"] for i in still_open}
        assert result.outcomes[0].stats.api_calls <= 1 + len(still_open)
    finally:
        server.stop()


def test_the_openai_sdk_pages_the_simulators_azure_endpoints(flavored_org: SimulatedOrg) -> None:
    """What the simulator serves as Azure is what Azure's clients read: `AzureOpenAI` (classic, api-version) and
    `OpenAI(base_url=.../openai/v1)` with the `api-key` header both page every batch, with Azure's ids."""
    openai = pytest.importorskip("openai")
    server = serve(flavored_org, azure_quirks=frozenset({"uuid-ids"}))
    try:
        want = set(azure_truth(flavored_org, server))
        classic = openai.AzureOpenAI(
            azure_endpoint=root(server), api_key=AZURE_KEY, api_version="2024-10-21", max_retries=0
        )
        assert {b.id for b in classic.batches.list(limit=50)} == want
        v1 = openai.OpenAI(
            base_url=root(server) + "/openai/v1", api_key=AZURE_KEY, default_headers={"api-key": AZURE_KEY}
        )
        assert {b.id for b in v1.batches.list(limit=50)} == want
        assert listed(server, "/openai/batches") == 3 and listed(server, "/openai/v1/batches") == 3
    finally:
        server.stop()


# --- any OpenAI-compatible endpoint ---------------------------------------------------------------------------------
def test_an_openai_compatible_endpoint_loads_exactly_like_openai_into_its_own_table(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """A gateway in front of OpenAI lists OpenAI's own batch ids: in a table of its own, neither overwrites the
    other (both projects' rows complete, each under its name)."""
    org.generate_history(140, project=PROJECT_A, days=4, open_fraction=0.1)
    openai_project = ProjectConfig(name=PROJECT_A, api_key=KEY_A, base_url=server.base_url)
    gateway = ProjectConfig(name="gateway", api_key=KEY_A, base_url=server.base_url, provider="openai-compatible")
    result = run_load(db, RunConfig(projects=(openai_project, gateway)))
    assert result.ok, [o.error for o in result.outcomes]
    truth = org.batches(PROJECT_A)
    assert_rows_are(db, "openai_compatible_batches", truth)
    assert_rows_are(db, "batches", truth)
    assert {r["project"] for r in rows(db, "batches").values()} == {PROJECT_A}
    assert {r["project"] for r in rows(db, "openai_compatible_batches").values()} == {"gateway"}
    assert [o.stats.api_calls for o in result.outcomes] == [2, 2]


@pytest.mark.parametrize(
    "name, answer, requests, message",
    [
        ("bare-array", lambda q: json_reply(newest_first(3)), 1, "a bare JSON array of 3 items"),
        ("batches-key", lambda q: json_reply({"batches": newest_first(3)}), 1, "object without `data` (keys: batches)"),
        (
            "has-more-same-page",  # `after` ignored, has_more true: the same page again
            lambda q: json_reply(envelope(newest_first(3), True)),
            2,
            "the API returned the same cursor twice (paging does not advance)",
        ),
        (
            "has-more-nothing-new",  # has_more true, the next page the same batches in another order
            lambda q: json_reply(envelope(newest_first(3)[:: -1 if q.get("after") else 1], True)),
            2,
            "has_more is true but the page repeats batches already listed (paging does not advance)",
        ),
    ],
)
def test_an_endpoint_off_openais_envelope_fails_in_one_line_never_a_loop(
    tmp_path: Path, name: str, answer: Any, requests: int, message: str
) -> None:
    db = tmp_path / "x.duckdb"
    with ScriptedApi(lambda path, query, n: answer(query)) as api:
        secrets = tmp_path / "project" / ".dlt"
        secrets.mkdir(parents=True)
        (secrets / "secrets.toml").write_text(
            f'[sources.openai_batches.projects.gw]\napi_key = "  gw-key-123  "\nbase_url = "{api.base_url}"\n'
            'provider = "openai-compatible"\n'
        )
        result = run_cli("load", "--db", str(db), env=cli_env())
        seen = len(api.requests)
    line = assert_one_clear_error(result, 1, f"GET {api.base_url}/batches", message)
    assert "gw-key-123" not in result.stdout + result.stderr
    assert seen == requests
    assert all(headers.get("authorization") == "Bearer gw-key-123" for headers in api.headers), api.headers
    assert "\n" not in line


def test_an_endpoint_without_has_more_that_ignores_after_loads_everything_once(db: str) -> None:
    """No has_more and `after` ignored (as Groq's may be): every batch once, two requests, then it stops."""
    batches = newest_first(150)
    page = {"object": "list", "data": batches}
    with ScriptedApi(lambda path, query, n: json_reply(page)) as api:
        gw = ProjectConfig(name="gw", api_key="gw-key", base_url=api.base_url, provider="openai-compatible")
        result = run_load(db, RunConfig(projects=(gw,)))
        assert result.ok, [o.error for o in result.outcomes]
        assert len(api.requests) == 2
    assert set(rows(db, "openai_compatible_batches")) == {b["id"] for b in batches}


# --- keys -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"GROQ_API_KEY": "sk-proj-abcdefabcdef0123456789"}, "GROQ_API_KEY is an OpenAI key (sk-...)"),
        (
            {"AZURE_OPENAI_API_KEY": GROQ_KEY, "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com"},
            "AZURE_OPENAI_API_KEY is a Groq key (gsk_...)",
        ),
        ({"OPENAI_API_KEY": GROQ_KEY}, "OPENAI_API_KEY is a Groq key (gsk_...)"),
        ({"AZURE_OPENAI_API_KEY": AZURE_KEY}, "AZURE_OPENAI_ENDPOINT is not"),
    ],
    ids=["openai-key-as-groq", "groq-key-as-azure", "groq-key-as-openai", "azure-without-endpoint"],
)
def test_a_key_of_the_wrong_kind_is_refused_in_one_line_naming_the_setting(
    tmp_path: Path, env: dict[str, str], fragment: str
) -> None:
    result = run_cli("load", "--db", str(tmp_path / "x.duckdb"), env=cli_env(**env))
    assert_one_clear_error(result, 2, fragment)
    for key in env.values():
        if "://" not in key:
            assert key not in result.stdout + result.stderr


def test_groq_and_azure_load_from_the_sdks_environment_names(tmp_path: Path, flavored_org: SimulatedOrg) -> None:
    """GROQ_API_KEY (GROQ_BASE_URL: the groq SDK's root), AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT (the
    resource root) and OPENAI_API_VERSION (the classic API): keys with whitespace around them, as pasted."""
    server = serve(flavored_org, azure_quirks=QUIRKS)
    try:
        env = cli_env(
            GROQ_API_KEY=f" {GROQ_KEY}\n",
            GROQ_BASE_URL=root(server),
            AZURE_OPENAI_API_KEY=f"{AZURE_KEY} ",
            AZURE_OPENAI_ENDPOINT=root(server) + "/",
            OPENAI_API_VERSION="2025-04-01-preview",
        )
        db = tmp_path / "env.duckdb"
        result = run_cli("load", "--db", str(db), env=env)
        assert result.returncode == 0, result.stderr
        assert GROQ_KEY not in result.stdout + result.stderr and AZURE_KEY not in result.stdout + result.stderr
        assert len(rows(str(db), "groq_batches")) == len(flavored_org.batches(GROQ))
        assert len(rows(str(db), "azure_batches")) == len(flavored_org.batches(AZURE))
        assert {r["project"] for r in rows(str(db), "azure_batches").values()} == {"azure"}
        assert any(r.query.get("api-version") == "2025-04-01-preview" for r in server.requests)
    finally:
        server.stop()


def test_iso_created_at_is_read_as_a_time_by_the_plan() -> None:
    """The plan reads Azure's ISO `created_at` as the same second as its epoch form (not an odd value)."""
    from openai_batches.sources.compatible.shape import COMPATIBLE_SHAPE, is_open

    stamp = 1_790_000_000
    iso = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert COMPATIBLE_SHAPE.created({"created_at": iso}, stamp + 10) == stamp
    assert COMPATIBLE_SHAPE.created({"created_at": stamp}, stamp + 10) == stamp
    assert not is_open({"status": "Completed"}) and is_open({"status": "In_progress"}) and is_open({})
    assert make_batch(1)["id"].startswith("batch_")


def test_an_azure_base_url_of_the_classic_api_without_its_version_is_refused_in_one_line(tmp_path: Path) -> None:
    """`base_url = ".../openai"` without api_version would send every request to /openai/batches without an
    `api-version`, which Azure answers 404: refused before any request, naming both ways out."""
    secrets = tmp_path / "project" / ".dlt"
    secrets.mkdir(parents=True)
    (secrets / "secrets.toml").write_text(
        f'[sources.openai_batches.projects.west]\napi_key = "{AZURE_KEY}"\n'
        'base_url = "https://res.openai.azure.com/openai/"\nprovider = "azure"\n'
    )
    result = run_cli("load", "--db", str(tmp_path / "x.duckdb"), env=cli_env())
    line = assert_one_clear_error(result, 2, "base_url ends in /openai")
    assert "api_version" in line and "/openai/v1" in line
    assert AZURE_KEY not in result.stdout + result.stderr


def test_azures_capitalised_statuses_and_iso_times_reach_the_request_ledger(
    db: str, flavored_org: SimulatedOrg
) -> None:
    """A `Completed` batch with ISO times is a finished batch to the ledger too: its files are read (it read none:
    the ledger matched OpenAI's lower-case statuses and epoch times only)."""
    server = serve(flavored_org, azure_quirks=QUIRKS)
    try:
        azure = ProjectConfig(name=AZURE, api_key=AZURE_KEY, base_url=root(server) + "/openai/v1", provider="azure")
        for _ in range(2):  # the files of a batch that just ended are described a little later: the next run
            result = run_load(db, RunConfig(projects=(azure,), requests=True))
            assert result.ok, [o.error for o in result.outcomes]
            flavored_org.advance(3600)
        truth = azure_truth(flavored_org, server)
        ended = {i: b for i, b in truth.items() if b["status"] in ("completed", "expired", "cancelled")}
        with duckdb.connect(db, read_only=True) as con:
            counted = dict(
                con.execute(
                    "SELECT batch_id, count(*) FROM openai_batches.batch_requests WHERE project = ? GROUP BY 1", [AZURE]
                ).fetchall()
            )
            pending = con.execute("SELECT count(*) FROM openai_batches.batch_files WHERE state = 'pending'").fetchone()
        read = {i: b["request_counts"]["total"] for i, b in ended.items() if i in counted}
        assert len(read) >= 90 and counted == read
        assert pending == (len([i for i, b in ended.items() if i not in counted and b["request_counts"]["total"]]),)
    finally:
        server.stop()
