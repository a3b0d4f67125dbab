"""Anthropic's Message Batches loaded end to end, over real HTTP against the simulator's Anthropic workspace:
rows equal to the simulator's truth, the requests the server saw, what a cron run costs, open and deleted
batches, the lookback window, both providers in one load, the key rules, and the CLI's exit codes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.analysis import reading
from openai_batches.cli.status import read_status
from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import LoadOutcome, run_load
from openai_batches.simulator import Fault, SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator.anthropic import PREFIX

from .support.assertions import files_containing, table
from .support.cli import CLI, REPO, assert_one_clear_error, cli_env, run_cli, simulate_command
from .support.fake_api import Reply, ScriptedApi, json_reply
from .support.workload import KEY_A, NOW, PROJECT_A
from .test_operator import _FSIZE_WRAPPER

KEY = "sk-ant-api03-sim-load-Q7x2Vb9LrT4wK3mZ"
WS = "wrkspc_load"
LIST = "/v1/messages/batches"
TERMINAL = "ended"


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(projects={KEY_A: PROJECT_A}, clock=SimClock(start=NOW), seed=11, anthropic_workspaces={KEY: WS})


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org) as srv:
        yield srv


def claude(srv: SimulatorServer, name: str = "claude") -> ProjectConfig:
    return ProjectConfig(name=name, api_key=KEY, base_url=srv.anthropic_base_url, provider="anthropic")


def load(db: str, srv: SimulatorServer, *projects: ProjectConfig, **kw: Any) -> LoadOutcome:
    full_refresh = kw.pop("full_refresh", False)
    config = RunConfig(projects=projects or (claude(srv),), **kw)
    return run_load(db, config, full_refresh=full_refresh)


def small_batches(org: SimulatedOrg) -> None:
    """Batches of ~10 requests rather than the API's ~240: for tests of the list, whose results only need to
    exist (each ended batch's file is still downloaded into the ledger), not to be long."""
    org.anthropic.requests_lognormal = (2.0, 1.0)


def list_requests(srv: SimulatorServer) -> list[Any]:
    return [r for r in srv.requests if r.path == LIST]


def retrieved(srv: SimulatorServer) -> list[str]:
    """Ids of the batches asked for one by one (results downloads aside)."""
    return [r.path.rsplit("/", 1)[1] for r in srv.requests if r.path.startswith(LIST + "/") and r.path.count("/") == 4]


def batches_requests(srv: SimulatorServer) -> list[Any]:
    """Requests for batch objects (list and retrieve), results downloads aside."""
    return [r for r in srv.requests if r.path == LIST or (r.path.startswith(LIST + "/") and r.path.count("/") == 4)]


def rows(db: str) -> dict[str, dict[str, Any]]:
    with duckdb.connect(db, read_only=True) as con:
        cur = con.execute("SELECT * FROM openai_batches.anthropic_batches")
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def when(text: str | None) -> datetime | None:
    """The simulator's RFC 3339 text (`...T09:30:00.123456Z`), parsed independently of the loader's code."""
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def assert_matches_simulator(db: str, org: SimulatedOrg, srv: SimulatorServer, project: str = "claude") -> None:
    """Every batch the workspace lists is a row, every field equal to what the API sends now."""
    truth = {b["id"]: b for b in org.anthropic.batches(WS, srv.anthropic_base_url)}
    stored = {k: v for k, v in rows(db).items() if v["project"] == project}
    assert set(stored) == set(truth)
    for batch_id, batch in truth.items():
        row = stored[batch_id]
        for name, value in batch.items():
            if name == "request_counts":
                for count, number in value.items():
                    assert row[f"request_counts__{count}"] == number, (batch_id, count)
            elif name.endswith("_at"):
                assert row[name] == when(value), (batch_id, name)
            else:
                assert row[name] == value, (batch_id, name)
        assert row["extra_fields"] is None and row["redacted_fields"] is None


# --- the load ---------------------------------------------------------------------------------------------------


def test_backfill_equals_the_simulator_field_by_field(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    small_batches(org)
    org.anthropic.generate_history(2345, days=20)
    result = load(db, server)
    assert result.ok, result.outcomes
    assert_matches_simulator(db, org, server)
    # Pages of 1000 (the API's maximum), each after the previous page's last id: never a stored cursor.
    listed = list_requests(server)
    ordered = [b["id"] for b in org.anthropic.batches(WS)]
    assert len(listed) == math.ceil(2345 / 1000)
    assert [r.query.get("after_id") for r in listed] == [None, ordered[999], ordered[1999]]
    assert all(r.query["limit"] == "1000" for r in listed)
    # What the reference documents is sent: the key as x-api-key, version 2023-06-01.
    assert all(r.headers["x-api-key"] == KEY and r.headers["anthropic-version"] == "2023-06-01" for r in listed)
    outcome = result.outcomes[0]
    assert (outcome.name, outcome.provider, outcome.stats.counts.new) == ("claude", "anthropic", 2345)
    assert table(db, "SELECT project, provider, new FROM openai_batches._load_runs") == [("claude", "anthropic", 2345)]
    # The OpenAI table is not touched by an Anthropic project.
    assert table(db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'batches'") == [(0,)]


def test_a_run_with_nothing_new_costs_one_request(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    small_batches(org)
    org.anthropic.generate_history(1800, days=20)
    assert load(db, server).ok
    server.reset_requests()
    result = load(db, server)
    assert result.ok
    assert [(r.path, r.query) for r in server.requests] == [(LIST, {"limit": "1000"})]
    counts = result.outcomes[0].stats.counts
    still_open = sum(1 for b in org.anthropic.batches(WS) if b["processing_status"] != TERMINAL)
    assert still_open > 0  # on the head page: re-read with it, no request more
    assert (counts.new, counts.updated, counts.still_open) == (0, still_open, still_open)
    assert_matches_simulator(db, org, server)


def deep_open_batch(org: SimulatedOrg) -> str:
    """One batch still running under 2,500 newer ones that all ended: three pages down the list."""
    now = org.clock.now()
    old = org.anthropic.create_batch(created_at=now - 20_000, processing_seconds=80_000, total_requests=10)
    for i in range(2500):
        org.anthropic.create_batch(created_at=now - 19_000 + 7 * i, processing_seconds=60, total_requests=5)
    return old


def test_an_open_batch_is_brought_up_to_date_however_deep(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    old = deep_open_batch(org)
    org.advance(600)
    assert load(db, server).ok
    assert rows(db)[old]["processing_status"] == "in_progress"
    assert rows(db)[old]["request_counts__processing"] == 10

    org.advance(2 * 86_400)  # it ended (expired: 24 h)
    server.reset_requests()
    result = load(db, server)
    assert result.ok
    # The head page, then one GET: cheaper than paging three pages down to it.
    assert [r.path for r in batches_requests(server)] == [LIST, f"{LIST}/{old}"]
    assert result.outcomes[0].stats.counts.updated == 1
    row = rows(db)[old]
    assert row["processing_status"] == TERMINAL and row["request_counts__processing"] == 0
    assert_matches_simulator(db, org, server)


def test_a_deleted_batch_paged_past_is_kept_and_marked_gone(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.anthropic.generate_history(40, days=5)
    org.advance(3600)
    doomed = org.anthropic.create_batch(processing_seconds=1800)
    assert load(db, server).ok
    assert rows(db)[doomed]["processing_status"] == "in_progress"

    org.advance(7200)
    assert org.anthropic.delete(doomed) is None
    result = load(db, server)
    assert result.ok and result.outcomes[0].stats.counts.gone == 1
    # Its last row stays; the whole list went past where it must be: gone at the first 404.
    assert rows(db)[doomed]["processing_status"] == "in_progress"
    assert table(db, "SELECT id, project, reason FROM openai_batches.batches_gone") == [
        (doomed, "claude", "paged past")
    ]
    status = {p.project: p for p in read_status(db).projects}["claude"]
    open_now = sum(1 for b in org.anthropic.batches(WS) if b["processing_status"] != TERMINAL)  # `doomed` aside
    assert (status.provider, status.gone, status.open_now, status.batches) == ("anthropic", 1, open_now, 41)
    server.reset_requests()
    assert load(db, server).ok
    assert len(server.requests) == 1  # never asked for again


def test_a_deleted_batch_deep_in_the_list_is_gone_after_three_runs_of_404(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    old = deep_open_batch(org)
    org.advance(600)
    assert load(db, server).ok
    org.advance(2 * 86_400)
    assert org.anthropic.delete(old) is None
    for run in (1, 2, 3):
        server.reset_requests()
        result = load(db, server)
        assert result.ok
        assert retrieved(server) == [old]  # asked for by id on each run: one 404 is not enough
        assert result.outcomes[0].stats.counts.gone == (1 if run == 3 else 0)
    assert table(db, "SELECT id, reason FROM openai_batches.batches_gone") == [(old, "missing 3 runs in a row")]
    assert rows(db)[old]["processing_status"] == "in_progress"


def test_a_batch_deleted_after_it_ended_is_marked_gone_by_the_next_full_refresh(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """Anthropic deletes a batch only once it ended, and no incremental run looks at an ended batch again: a
    full refresh, which lists everything, marks what it no longer finds; the rows stay as last loaded."""
    org.anthropic.generate_history(60, days=5)
    org.advance(2 * 86_400)
    assert load(db, server).ok
    ended = sorted(rows(db), key=lambda i: rows(db)[i]["created_at"])
    newest, oldest = ended[-1], ended[0]
    assert org.anthropic.delete(newest) is None and org.anthropic.delete(oldest) is None
    incremental = load(db, server)  # nothing to notice
    assert incremental.ok and incremental.outcomes[0].stats.counts.gone == 0
    result = load(db, server, full_refresh=True)
    assert result.ok and result.outcomes[0].stats.counts.gone == 2
    assert sorted(table(db, "SELECT id, project, reason FROM openai_batches.batches_gone")) == sorted(
        [(newest, "claude", "not listed by a full refresh"), (oldest, "claude", "not listed by a full refresh")]
    )
    assert {newest, oldest} <= set(rows(db))  # kept, as last loaded
    again = load(db, server, full_refresh=True)  # already gone: not counted again
    assert again.ok and again.outcomes[0].stats.counts.gone == 0
    assert table(db, "SELECT count(*) FROM openai_batches.batches_gone") == [(2,)]
    with reading(db) as analysis:
        gone = analysis.con.execute(
            "SELECT batch_id FROM openai_batches.batch_jobs WHERE provider = 'anthropic' AND gone"
        ).fetchall()
    assert sorted(g for (g,) in gone) == sorted([newest, oldest])


def test_the_lookback_window_finds_late_batches_and_a_full_refresh_the_rest(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    small_batches(org)
    org.anthropic.generate_history(1500, days=20)
    assert load(db, server).ok
    newest = max(r["created_at"] for r in rows(db).values()).timestamp()
    # Two batches become visible after the run, created before the newest one it loaded.
    late = org.anthropic.create_batch(created_at=newest - 300, processing_seconds=60)  # inside the 15 minutes
    lost = org.anthropic.create_batch(created_at=newest - 5000, processing_seconds=60)  # below them
    server.reset_requests()
    result = load(db, server)
    # One page; and the results of the late batch, which ended (its requests go into the ledger).
    assert result.ok and [r.path for r in server.requests] == [PREFIX, f"{PREFIX}/{late}/results"]
    assert late in rows(db) and lost not in rows(db)
    assert load(db, server, full_refresh=True).ok
    assert lost in rows(db)
    assert_matches_simulator(db, org, server)


def test_lookback_seconds_is_the_window(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    small_batches(org)
    org.anthropic.generate_history(1500, days=20)
    assert load(db, server, lookback_seconds=6000).ok
    newest = max(r["created_at"] for r in rows(db).values()).timestamp()
    late = org.anthropic.create_batch(created_at=newest - 5000, processing_seconds=60)
    assert load(db, server, lookback_seconds=6000).ok
    assert late in rows(db)


# --- odd values and echoed keys (a scripted Anthropic API) ------------------------------------------------------


def anthropic_batch(n: int, created: str, **fields: Any) -> dict[str, Any]:
    batch: dict[str, Any] = {
        "id": f"msgbatch_{n:04d}",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 0},
        "created_at": created,
        "ended_at": created,
        "expires_at": created,
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": None,
    }
    batch.update(fields)
    return batch


def test_odd_values_are_kept_and_an_echoed_key_is_masked(db: str) -> None:
    other_key = "sk-proj-other-project-key-0123456789"
    batches = [
        anthropic_batch(3, "2026-10-31T23:00:00.5Z", results_url=f"https://x.invalid/{other_key}/results"),
        anthropic_batch(
            2,
            "2026-10-31T22:00:00",  # no offset: not RFC 3339
            processing_status="paused",  # unknown: open, re-read
            request_counts={"processing": 1.5, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0, "held": 3},
            workspace_id="wrkspc_x",  # a field this version does not declare
        ),
        anthropic_batch(1, "2026-10-31T21:00:00+02:00"),
    ]

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path == LIST:
            return json_reply(
                {"data": batches, "has_more": False, "first_id": batches[0]["id"], "last_id": batches[-1]["id"]}
            )
        return json_reply({"type": "error", "error": {"type": "not_found_error", "message": "no"}}, 404)

    with ScriptedApi(route, project=None, clock=lambda: NOW) as api:
        base = api.base_url.removesuffix("/v1")
        project = ProjectConfig(name="claude", api_key=KEY, base_url=base, provider="anthropic")
        openai = ProjectConfig(name="unused", api_key=other_key, base_url="http://127.0.0.1:9/v1")
        # The OpenAI key is configured (so it is masked wherever a server sends it back); its project fails.
        result = run_load(db, RunConfig(projects=(project, openai), max_attempts=1))
    assert result.outcomes[0].error is None and result.outcomes[1].error is not None
    got = rows(db)
    assert got["msgbatch_0003"]["results_url"] == "https://x.invalid/***/results"
    assert json.loads(got["msgbatch_0003"]["redacted_fields"]) == ["results_url"]
    assert got["msgbatch_0003"]["created_at"] == datetime(2026, 10, 31, 23, 0, 0, 500_000, tzinfo=UTC)
    assert got["msgbatch_0001"]["created_at"] == datetime(2026, 10, 31, 19, 0, tzinfo=UTC)
    odd = got["msgbatch_0002"]
    assert odd["created_at"] is None and odd["request_counts__processing"] is None
    assert json.loads(odd["extra_fields"]) == {
        **dict.fromkeys(("created_at", "ended_at", "expires_at"), "2026-10-31T22:00:00"),
        "request_counts": {"processing": 1.5, "held": 3},
        "workspace_id": "wrkspc_x",
    }
    assert odd["processing_status"] == "paused"
    assert not files_containing(Path(db).parent, other_key.encode())


# --- both providers in one load -----------------------------------------------------------------------------------


def both_env(server: SimulatorServer, **extra: str) -> dict[str, str]:
    return cli_env(
        OPENAI_API_KEY=KEY_A,
        OPENAI_BASE_URL=server.base_url,
        ANTHROPIC_API_KEY=KEY,
        ANTHROPIC_BASE_URL=server.anthropic_base_url,
        SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS="2",
        **extra,
    )


@pytest.mark.parametrize("failing", ["anthropic", "openai"])
def test_both_providers_load_in_one_run_and_one_failing_leaves_the_other_loaded(
    db: str, org: SimulatedOrg, server: SimulatorServer, failing: str
) -> None:
    org.generate_history(230, project=PROJECT_A, days=30)
    small_batches(org)
    org.anthropic.generate_history(1200, days=20)
    prefix = LIST if failing == "anthropic" else "/v1/batches"
    server.inject(Fault("500", count=1000, path_prefix=prefix))
    result = run_cli("load", "--db", db, env=both_env(server))
    line = assert_one_clear_error(result, 1, "HTTP 500")
    # An OpenAI key without a configured name is named by the API's header: "default" until it answers.
    name = {"anthropic": "anthropic", "openai": "default"}[failing]
    assert line.startswith(f"error: project {name}: GET "), line
    assert f"load [{name}] FAILED" in result.stdout and f"({failing})" in result.stdout
    loaded = "openai" if failing == "anthropic" else "anthropic"
    counts = {
        "openai": table(db, "SELECT count(*) FROM openai_batches.batches")[0][0] if failing != "openai" else 0,
        "anthropic": table(db, "SELECT count(*) FROM openai_batches.anthropic_batches")[0][0]
        if failing != "anthropic"
        else 0,
    }
    assert counts[loaded] == {"openai": 230, "anthropic": 1200}[loaded]
    assert KEY not in result.stdout + result.stderr and KEY_A not in result.stdout + result.stderr

    server.clear_faults()
    again = run_cli("load", "--db", db, env=both_env(server))
    assert again.returncode == 0, again.stderr
    assert f"load [{PROJECT_A}] ok:" in again.stdout and "load [anthropic] ok:" in again.stdout
    assert table(db, "SELECT count(*) FROM openai_batches.batches") == [(230,)]
    assert table(db, "SELECT count(*) FROM openai_batches.anthropic_batches") == [(1200,)]
    status = run_cli("status", "--db", db, env=both_env(server))
    assert status.returncode == 0, status.stderr
    lines = {line.split()[0]: line.split() for line in status.stdout.splitlines()[2:] if line.strip()}
    assert lines["anthropic"][-1] == "anthropic" and lines[PROJECT_A][-1] == "openai", status.stdout
    assert table(db, "SELECT DISTINCT project, provider FROM openai_batches._load_runs ORDER BY 1") == [
        ("anthropic", "anthropic"),
        (PROJECT_A, "openai"),
    ]


def test_load_with_the_simulate_command_and_the_sdk_variable_names(tmp_path: Path) -> None:
    db = str(tmp_path / "claude.duckdb")
    with simulate_command("--anthropic-batches", "700", "--batches", "0") as (_, lines):
        printed = dict(line.split("  #")[0].strip().split("=", 1) for line in lines if line.startswith("ANTHROPIC_"))
        env = cli_env(
            ANTHROPIC_API_KEY=printed["ANTHROPIC_API_KEY"] + "\r\n",
            ANTHROPIC_BASE_URL=printed["ANTHROPIC_BASE_URL"],
            SOURCES__OPENAI_BATCHES__REQUESTS="false",  # the listing only: `requests = false` turns the results off
        )
        first = run_cli("load", "--db", db, env=env)
        assert first.returncode == 0, first.stderr
        assert "load [anthropic] ok: 1 requests, 700 new" in first.stdout and "(anthropic)" in first.stdout
        again = run_cli("load", "--db", db, env=env)
    assert again.returncode == 0, again.stderr
    assert "load [anthropic] ok: 1 requests, 0 new" in again.stdout
    assert table(db, "SELECT count(*), count(DISTINCT project) FROM openai_batches.anthropic_batches") == [(700, 1)]


def test_the_workspace_of_anthropic_api_key_is_renamed_with_anthropic_project_name(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.anthropic.generate_history(20, days=3)
    env = cli_env(
        ANTHROPIC_API_KEY=KEY,
        ANTHROPIC_BASE_URL=server.anthropic_base_url,
        SOURCES__OPENAI_BATCHES__ANTHROPIC_PROJECT_NAME="research-claude",
    )
    result = run_cli("load", "--db", db, env=env)
    assert result.returncode == 0, result.stderr
    assert table(db, "SELECT DISTINCT project FROM openai_batches.anthropic_batches") == [("research-claude",)]


def test_named_projects_of_both_providers_from_secrets_toml(
    db: str, org: SimulatedOrg, server: SimulatorServer, isolated_env: Path
) -> None:
    org.generate_history(30, project=PROJECT_A, days=10)
    org.anthropic.generate_history(25, days=3)
    dlt_dir = isolated_env / "project" / ".dlt"
    dlt_dir.mkdir()
    (dlt_dir / "secrets.toml").write_text(
        f"""
[sources.openai_batches.projects.research]
api_key = "{KEY_A}"
base_url = "{server.base_url}"

[sources.openai_batches.projects.claude]
provider = "anthropic"
api_key = "{KEY}"
base_url = "{server.anthropic_base_url}"
"""
    )
    result = run_cli("load", "--db", db, env=cli_env(), cwd=isolated_env / "project")
    assert result.returncode == 0, result.stderr
    assert "load [research] ok: 1 requests, 30 new" in result.stdout and "(openai)" in result.stdout
    # 1 page and the results of the 25 batches that ended.
    assert "load [claude] ok: 26 requests, 25 new" in result.stdout and "(anthropic)" in result.stdout
    assert table(db, "SELECT DISTINCT project FROM openai_batches.anthropic_batches") == [("claude",)]
    assert table(db, "SELECT DISTINCT project FROM openai_batches.batches") == [("research",)]


# --- key rules ------------------------------------------------------------------------------------------------------

ANTHROPIC_ADMIN = "sk-ant-admin01-Zr8Yq3Lw0Pn5Kd2Hs7"
OPENAI_PROJECT_KEY = "sk-proj-Hk3Lm9Qw2Er7Ty5Ui1"


@pytest.mark.parametrize(
    ("env", "setting", "fragment"),
    [
        ({"OPENAI_API_KEY": KEY}, "OPENAI_API_KEY", "Anthropic key"),
        ({"OPENAI_API_KEY": ANTHROPIC_ADMIN}, "OPENAI_API_KEY", "Anthropic Admin API key"),
        ({"OPENAI_ADMIN_KEY": ANTHROPIC_ADMIN, "OPENAI_API_KEY": KEY_A}, "OPENAI_ADMIN_KEY", "Anthropic Admin API"),
        ({"ANTHROPIC_API_KEY": OPENAI_PROJECT_KEY}, "ANTHROPIC_API_KEY", "OpenAI key"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_ADMIN}, "ANTHROPIC_API_KEY", "Admin API key"),
        ({"ANTHROPIC_API_KEY": "sk-admin-Qw3Er5Ty7Ui9Op1"}, "ANTHROPIC_API_KEY", "OpenAI key"),
        ({"ANTHROPIC_API_KEY": KEY + " x"}, "ANTHROPIC_API_KEY", "cannot be sent"),
    ],
)
def test_a_key_of_the_wrong_kind_is_refused_in_one_line_naming_the_setting(
    db: str, env: dict[str, str], setting: str, fragment: str
) -> None:
    result = run_cli("load", "--db", db, env=cli_env(**env))
    line = assert_one_clear_error(result, 2, setting)
    assert fragment.lower() in line.lower(), line
    for key in env.values():
        assert key not in result.stdout + result.stderr
    assert not Path(db).exists()


def test_named_anthropic_project_rules(db: str, isolated_env: Path) -> None:
    dlt_dir = isolated_env / "project" / ".dlt"
    dlt_dir.mkdir()
    secrets = dlt_dir / "secrets.toml"
    cases = [
        (f'provider = "anthropic"\napi_key = "{OPENAI_PROJECT_KEY}"', "projects.claude.api_key", OPENAI_PROJECT_KEY),
        (f'provider = "openai"\napi_key = "{KEY}"', "projects.claude.api_key", KEY),
        (
            f'provider = "azure-ish"\napi_key = "{KEY}"',
            "projects.claude.provider must be one of openai, anthropic",
            KEY,
        ),
        (
            f'provider = "anthropic"\napi_key = "{KEY}"\norganization = "org-x"',
            "organization is an OpenAI setting",
            KEY,
        ),
    ]
    for body, fragment, key in cases:
        secrets.write_text(f"[sources.openai_batches.projects.claude]\n{body}\n")
        result = run_cli("load", "--db", db, env=cli_env(), cwd=isolated_env / "project")
        assert_one_clear_error(result, 2, fragment)
        assert key not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "toml", "fragments"),
    [
        (
            {"ANTHROPIC_BASE_URL": "https://api.anthropic.com/v1/"},
            "",
            ("ANTHROPIC_BASE_URL ends in /v1", "without /v1"),
        ),
        (
            {},
            '[sources.openai_batches.projects.claude]\nprovider = "anthropic"\napi_key = "KEY"\n'
            'base_url = "http://127.0.0.1:9/v1"\n',
            ("projects.claude.base_url ends in /v1",),
        ),
        (
            {},
            '[sources.openai_batches.projects.one]\nprovider = "anthropic"\napi_key = "KEY"\n'
            '[sources.openai_batches.projects.two]\nprovider = "anthropic"\napi_key = "KEY"\n',
            ("projects 'one' and 'two' have the same Anthropic API key",),
        ),
    ],
)
def test_an_anthropic_root_with_v1_or_a_workspace_key_twice_is_refused(
    db: str, isolated_env: Path, env: dict[str, str], toml: str, fragments: tuple[str, ...]
) -> None:
    dlt_dir = isolated_env / "project" / ".dlt"
    dlt_dir.mkdir()
    (dlt_dir / "secrets.toml").write_text(toml.replace("KEY", KEY))
    result = run_cli("load", "--db", db, env=cli_env(**{"ANTHROPIC_API_KEY": KEY, **env}), cwd=isolated_env / "project")
    assert_one_clear_error(result, 2, *fragments)
    assert KEY not in result.stdout + result.stderr


def test_two_projects_under_one_name_are_refused(db: str, isolated_env: Path) -> None:
    dlt_dir = isolated_env / "project" / ".dlt"
    dlt_dir.mkdir()
    (dlt_dir / "secrets.toml").write_text(f'[sources.openai_batches.projects.anthropic]\napi_key = "{KEY_A}"\n')
    result = run_cli("load", "--db", db, env=cli_env(ANTHROPIC_API_KEY=KEY), cwd=isolated_env / "project")
    assert_one_clear_error(result, 2, "two configured projects are named 'anthropic'", "anthropic_project_name")


# --- the run log of an earlier version, the demo ---------------------------------------------------------------------


def test_a_run_log_without_the_provider_column_gains_it(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.anthropic.generate_history(5, days=1)
    assert load(db, server).ok
    with duckdb.connect(db) as con:  # the run log as a version before providers left it
        con.execute("DROP TABLE openai_batches._load_runs")
        con.execute(
            """CREATE TABLE openai_batches._load_runs (project VARCHAR, started_at TIMESTAMPTZ,
               finished_at TIMESTAMPTZ, requests BIGINT, new BIGINT, updated BIGINT, still_open BIGINT, gone BIGINT,
               full_refresh BOOLEAN, load_id VARCHAR)"""
        )
        con.execute("INSERT INTO openai_batches._load_runs VALUES ('old', now(), now(), 1, 0, 0, 0, 0, false, 'x')")
    assert load(db, server).ok
    assert table(db, "SELECT project, provider FROM openai_batches._load_runs ORDER BY project") == [
        ("claude", "anthropic"),
        ("old", None),
    ]
    providers = {p.project: p.provider for p in read_status(db).projects}
    assert providers == {"claude": "anthropic", "old": "openai"}


def test_a_run_that_completes_a_failed_anthropic_load_counts_it_as_anthropic(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    db = str(tmp_path / "full.duckdb")
    with SimulatorServer(SimulatedOrg(clock=SimClock(start=NOW), seed=1, anthropic_workspaces={KEY: WS})) as empty:
        first = run_cli(
            "load", "--db", db, env=cli_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=empty.anthropic_base_url)
        )
        assert first.returncode == 0, first.stdout + first.stderr
    # Few enough that dlt's own files fit under the limit, while the database's write-ahead log does not.
    org.anthropic.generate_history(300, days=20)
    # Without results: with them, dlt's own extract files would pass the limit before the database's log does.
    env = cli_env(
        ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.anthropic_base_url, SOURCES__OPENAI_BATCHES__REQUESTS="false"
    )
    command = [sys.executable, "-c", _FSIZE_WRAPPER, str(64 * 1024), *CLI[1:], "load", "--db", db]
    failed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert failed.returncode == 1 and "File too large" in failed.stderr, failed.stdout + failed.stderr
    fixed = run_cli("load", "--db", db, env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "load [anthropic] finished the load a failed run left: 300 new, 0 updated (anthropic)" in fixed.stdout
    assert table(db, "SELECT project, provider, requests, new FROM openai_batches._load_runs ORDER BY finished_at")[
        1
    ] == ("anthropic", "anthropic", 0, 300)
    assert_matches_simulator(db, org, server, project="anthropic")


def test_the_demo_shows_an_anthropic_workspace_beside_the_openai_projects(tmp_path: Path) -> None:
    from openai_batches.cli import demo

    demo_db = tmp_path / "demo.duckdb"
    result = run_cli(
        "demo", "--db", str(demo_db), "--batches", "40", env=cli_env(DLT_PROJECT_DIR=str(tmp_path)), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "backfill [anthropic] ok:" in result.stdout and "(anthropic)" in result.stdout
    assert f"incremental [anthropic] ok: 1 requests, {demo.DEMO_ANTHROPIC_ARRIVALS} new" in result.stdout
    total = demo.DEMO_ANTHROPIC_BATCHES + demo.DEMO_ANTHROPIC_ARRIVALS
    assert table(str(demo_db), "SELECT project, count(*) FROM openai_batches.anthropic_batches GROUP BY 1") == [
        ("anthropic", total)
    ]
    assert table(str(demo_db), "SELECT count(DISTINCT project) FROM openai_batches.batches") == [(2,)]


# --- hardening: faults and kills on the Anthropic path (the OpenAI campaigns' helpers, not copies) ------------------


def test_random_faults_on_every_anthropic_request_still_load_exactly(db: str, org: SimulatedOrg) -> None:
    # Three pages (of at most 25 here), all within the 29 days results are kept (an archive after the load is
    # not re-read); small batches, as what is checked is that every request kind survives its faults.
    org.anthropic.page_max = 25
    small_batches(org)
    org.anthropic.generate_history(60, days=25)
    with SimulatorServer(org, fault_rate=0.3, fault_seed=2) as srv:
        # The random ones, and one of each kind a retry must get past, on the list and on a page after the head.
        srv.inject(*(Fault(kind, path_prefix=LIST) for kind in ("429", "500", "502-html", "503", "truncated-json")))
        result = load(db, srv, max_attempts=8)
        assert result.ok, result.outcomes
        faulted = [r for r in srv.requests if r.fault is not None]
        assert len(faulted) >= 5 and all(r.path.startswith(LIST) for r in srv.requests)
        # faults landed on the head page, on a page after it, and on results downloads
        assert any(r.path == LIST and "after_id" not in r.query for r in faulted)
        assert any(r.path == LIST and "after_id" in r.query for r in faulted)
        assert {r.fault for r in faulted if r.path.endswith("/results")} == {"429", "500", "502-html", "503"}
        assert len({r.query.get("after_id") for r in srv.requests if r.path == LIST}) == 3
        assert_matches_simulator(db, org, srv)
        assert result.api_calls == len(srv.requests)  # every retry counted
        org.advance(2 * 86_400)
        assert load(db, srv, max_attempts=8).ok
        assert_matches_simulator(db, org, srv)


def test_sigkill_at_every_stage_with_both_providers_then_a_clean_run_converges(tmp_path: Path) -> None:
    import random
    import signal

    from openai_batches.load.runner import working_dir

    from .support.assertions import assert_matches_simulator as assert_openai_matches
    from .support.cli import spawn_cli
    from .test_kill import TRIGGERS, assert_database_readable, kill_when

    rng = random.Random(20261207)
    org = SimulatedOrg(projects={KEY_A: PROJECT_A}, clock=SimClock(start=NOW), seed=5, anthropic_workspaces={KEY: WS})
    org.generate_history(300, project=PROJECT_A, days=60, open_fraction=0.05)
    # Several pages of each provider (Anthropic's of at most 100 here) and results to download in each run:
    # small batches, so each results file is a few lines rather than ~240 (the kill points are the stages).
    org.anthropic.page_max = 100
    small_batches(org)
    org.anthropic.generate_history(450, days=20)
    db = tmp_path / "killed.duckdb"
    wd = Path(working_dir(str(db))) / "openai_batches"
    with SimulatorServer(org, latency=0.003) as srv:
        env = both_env(srv)
        for name in TRIGGERS:
            org.advance(rng.uniform(0, 3 * 3600))
            for _ in range(rng.randint(0, 30)):
                org.anthropic.create_batch()
            srv.reset_requests()
            process = spawn_cli("load", "--db", str(db), "--wait", "30", env=env)
            killed, output = kill_when(process, wd, srv, TRIGGERS[name](rng))
            assert process.returncode == (-signal.SIGKILL if killed else 0), (name, output)
            assert_database_readable(db)
        org.advance(3600)
        clean = run_cli("load", "--db", str(db), env=env)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert_matches_simulator(str(db), org, srv, project="anthropic")
        assert_openai_matches(str(db), org, PROJECT_A)
        assert table(str(db), "SELECT count(*) = count(DISTINCT id) FROM openai_batches.anthropic_batches") == [(True,)]
        srv.reset_requests()
        again = run_cli("load", "--db", str(db), env=env)
        assert again.returncode == 0 and "load [anthropic] ok: 1 requests, 0 new" in again.stdout, again.stdout
        assert len(list_requests(srv)) == 1


def test_the_source_in_a_plain_dlt_pipeline_beside_openai_in_one_schema(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    import dlt

    from openai_batches import anthropic_batches, openai_batches

    org.generate_history(150, project=PROJECT_A, days=30)
    small_batches(org)
    org.anthropic.generate_history(1300, days=20)
    db = str(tmp_path / "anywhere.duckdb")
    pipeline = dlt.pipeline(
        pipeline_name="anywhere",
        destination=dlt.destinations.duckdb(db),
        dataset_name="openai_batches",
        pipelines_dir=str(tmp_path / "dlt"),
    )
    pipeline.run(anthropic_batches(api_key=KEY, base_url=server.anthropic_base_url, project_name="claude"))
    pipeline.run(openai_batches(api_key=KEY_A, base_url=server.base_url))
    assert set(pipeline.schema_names) == {"openai_batches"}
    assert_matches_simulator(db, org, server)
    server.reset_requests()
    pipeline.run(anthropic_batches(api_key=KEY, base_url=server.anthropic_base_url, project_name="claude"))
    assert [r.path for r in server.requests] == [LIST]  # its own resource state survived the OpenAI run
    assert table(db, "SELECT count(*) FROM openai_batches.batches") == [(150,)]
