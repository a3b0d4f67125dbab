"""Reconciliation with OpenAI's Admin API, over real HTTP against the simulator: the organisation's
tables load with an admin key, incrementally; the views find the project nobody configured and the
month OpenAI counts differently; `status` and the load summary name them; wrong key kinds get one
clear line; the admin key is written nowhere."""

from __future__ import annotations

import calendar
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.analysis import reading
from openai_batches.cli import main as cli
from openai_batches.config import AdminConfig, ProjectConfig, RunConfig
from openai_batches.load.runner import LoadOutcome, run_load
from openai_batches.simulator import USAGE_CUTOFF, Fault, SimClock, SimulatedOrg, SimulatorServer

from .support.analysis import dlt_dirs
from .support.assertions import files_containing
from .support.cli import cli_env, error_lines, run_cli

KEY_A, KEY_B = "sk-test-alpha-0123456789", "sk-test-bravo-9876543210"
ALPHA, BRAVO, HIDDEN, OLD = "proj_alpha", "proj_bravo", "proj_hidden", "proj_old"
ADMIN = "sk-admin-sim"
DAY = 86_400
# The month and project whose batch tokens OpenAI's books count 5% higher in the injected organisation.
INJECTED = ("2025-11", ALPHA)


def utc(*ymd_hms: int) -> int:
    return calendar.timegm((*ymd_hms, *(0,) * (6 - len(ymd_hms))))


# 2026-01-20T15:00Z: long before this machine's clock, so every month of the history is over.
T = utc(2026, 1, 20, 15)


def organisation(seed: int = 21) -> SimulatedOrg:
    """Two configured projects with 170 days of history (across the 2025-09-07 usage cutoff, with open
    batches), one project nobody configured that runs batches, and one archived long ago."""
    org = SimulatedOrg(projects={KEY_A: ALPHA, KEY_B: BRAVO}, clock=SimClock(T), seed=seed)
    org.generate_history(700, project=ALPHA, days=170, open_fraction=0.02)
    org.generate_history(300, project=BRAVO, days=170, open_fraction=0.02)
    org.add_project(HIDDEN, name="Hidden")
    org.generate_history(60, project=HIDDEN, days=20)
    org.add_project(OLD, name="Old", created_at=T - 400 * DAY)
    org.archive_project(OLD, at=T - 200 * DAY)
    return org


def config(server: SimulatorServer, *keys: str, admin: str | None = ADMIN) -> RunConfig:
    return RunConfig(
        projects=tuple(ProjectConfig(name=None, api_key=k, base_url=server.base_url) for k in keys or (KEY_A, KEY_B)),
        admin=AdminConfig(admin_key=admin, base_url=server.base_url) if admin else None,
    )


def admin_requests(server: SimulatorServer) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/organization")]


@dataclass(frozen=True)
class Books:
    consistent: str  # OpenAI's books agree with the batches
    injected: str  # the same organisation, with INJECTED counted 5% higher
    first_load: LoadOutcome
    first_admin_requests: list[Any]


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    root = tmp_path_factory.mktemp("reconciliation")
    with dlt_dirs(root):
        org = organisation()
        consistent, injected = str(root / "consistent.duckdb"), str(root / "injected.duckdb")
        with SimulatorServer(org) as server:
            first = run_load(consistent, config(server))
            assert first.ok, first
            first_admin = admin_requests(server)
            org.set_usage_discrepancy(INJECTED[1], INJECTED[0], 1.05)
            assert run_load(injected, config(server)).ok
        yield Books(consistent, injected, first, first_admin)


def rows(db: str, sql: str) -> list[dict[str, Any]]:
    """A query over the views, in the read-only session `report` uses (nothing stored needed)."""
    with reading(db) as analysis:
        cursor = analysis.con.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def reconciliation(db: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    found = rows(db, "SELECT * FROM openai_batches.usage_reconciliation")
    return {(r["month"].strftime("%Y-%m"), r["project_id"], r["model"]): r for r in found}


# ------------------------------------------------------------------------------------------------ verdicts
def test_a_consistent_organisation_is_all_match(books: Books) -> None:
    found = reconciliation(books.consistent)
    verdicts = {r["verdict"] for r in found.values()}
    assert verdicts == {"match", "no batch usage"}, verdicts
    cutoff_month = datetime.fromtimestamp(USAGE_CUTOFF, UTC).strftime("%Y-%m")
    compared = {k: r for k, r in found.items() if k[0] > cutoff_month}
    assert {k[0] for k in compared} == {"2025-10", "2025-11", "2025-12", "2026-01"}
    assert {k[1] for k in compared} == {ALPHA, BRAVO}  # the unconfigured project is not compared here
    assert all(r["verdict"] == "match" for r in compared.values())
    # Where no batch ran across a month boundary the simulated books agree to the token.
    exact = [r for r in compared.values() if r["boundary_batches"] == 0]
    assert len(exact) >= 20
    for r in exact:
        assert (r["batches_input_tokens"], r["batches_output_tokens"]) == (
            r["usage_input_tokens"],
            r["usage_output_tokens"],
        )
        assert r["input_diff_pct"] == r["output_diff_pct"] == 0
    # Batches still open (counted by OpenAI as far as they got, here in no month yet) do not make a month differ.
    assert rows(books.consistent, "SELECT count(*) AS n FROM openai_batches.open_batches")[0]["n"] > 0
    assert any(r["boundary_batches"] > 0 for r in compared.values())


def test_an_azure_resource_beside_the_openai_projects_leaves_the_usage_reconciliation_as_it_is(tmp_path: Path) -> None:
    """Azure's batches are priced at the OpenAI model's price, stored as `model_prices` rows of provider `azure`:
    the Usage API's rows (OpenAI's) were joined to every provider's price of their model, so each counted twice and
    every compared month of an organisation with an Azure resource 'differs' (the demo showed 166 of 167)."""
    org = SimulatedOrg(projects={KEY_A: ALPHA}, clock=SimClock(T), seed=21)
    org.generate_history(300, project=ALPHA, days=120)
    resource = SimulatedOrg(projects={"5d0c2a9e7b4f41d8a6e3c1b2f0a9d8e7": "proj_azure"}, clock=SimClock(T), seed=5)
    resource.generate_history(60, project="proj_azure", days=120)
    with dlt_dirs(tmp_path), SimulatorServer(org) as server, SimulatorServer(resource) as azure:
        db = str(tmp_path / "with-azure.duckdb")
        base = azure.base_url.removesuffix("/v1") + "/openai/v1"
        az = ProjectConfig("azure", "5d0c2a9e7b4f41d8a6e3c1b2f0a9d8e7", base_url=base, provider="azure")
        run = config(server, KEY_A)
        assert run_load(db, RunConfig(projects=(*run.projects, az), admin=run.admin)).ok
    assert rows(db, "SELECT count(*) AS n FROM openai_batches.batch_jobs WHERE provider = 'azure'")[0]["n"] == 60
    compared = {k: r for k, r in reconciliation(db).items() if r["verdict"] != "no batch usage"}
    assert len(compared) >= 10
    assert {r["verdict"] for r in compared.values()} == {"match"}, [
        (k, r["batches_input_tokens"], r["usage_input_tokens"]) for k, r in compared.items()
    ][:3]


def test_an_injected_discrepancy_differs_exactly_where_injected(books: Books) -> None:
    before, after = reconciliation(books.consistent), reconciliation(books.injected)
    assert set(before) == set(after)
    differing = {k for k, r in after.items() if r["verdict"] == "differs"}
    injected = {k for k in after if k[:2] == INJECTED and after[k]["batches_input_tokens"]}
    assert len(injected) >= 3 and differing == injected  # every model of that month and project, nothing else
    for key in set(after) - differing:
        assert after[key]["verdict"] == before[key]["verdict"], key
    for key in differing:
        if after[key]["boundary_batches"] == 0:
            assert after[key]["input_diff_pct"] == pytest.approx(5.0, abs=0.02)
            assert after[key]["output_diff_pct"] == pytest.approx(5.0, abs=0.02)


def test_pre_usage_months_show_the_usage_api_estimate(books: Books) -> None:
    found = reconciliation(books.consistent)
    early = {k: r for k, r in found.items() if k[0] <= "2025-09"}
    assert {k[0] for k in early} == {"2025-08", "2025-09"}
    assert {r["verdict"] for r in early.values()} == {"no batch usage"}
    with reading(books.consistent) as analysis:
        con = analysis.con
        usage = con.execute(
            """SELECT day, project_id, model, input_tokens, input_cached_tokens, output_tokens
               FROM openai_batches.usage_daily WHERE batch AND day < DATE '2025-10-01'"""
        ).fetchall()
        periods = con.execute(
            """SELECT model, valid_from, valid_to, input_usd_per_mtok,
                      coalesce(cached_input_usd_per_mtok, input_usd_per_mtok), output_usd_per_mtok, batch_factor
               FROM openai_batches.model_prices"""
        ).fetchall()
        unpriced = con.execute(
            """SELECT count(*) FROM openai_batches.batch_costs
               WHERE created_at < TIMESTAMPTZ '2025-09-01 00:00:00+00' AND unpriced_reason = 'no usage reported'"""
        ).fetchone()
        costs = con.execute(
            "SELECT * FROM openai_batches.cost_reconciliation WHERE month = DATE '2025-08-01' ORDER BY project_id"
        ).fetchall()
    # An independent pricing of the Usage API's batch rows: the model's batch price in force at the day's start.
    expected: dict[tuple[str, str, str], float] = {}
    for day, project, model, inp, cached, out in usage:
        start = datetime.combine(day, datetime.min.time(), UTC)
        (price,) = [
            p for p in periods if p[0] == model and (p[1] is None or p[1] <= start) and (p[2] is None or start < p[2])
        ]
        _, _, _, p_in, p_cached, p_out, factor = price
        key = (day.strftime("%Y-%m"), project, model)
        expected[key] = (
            expected.get(key, 0.0) + ((inp - cached) * p_in + cached * p_cached + out * p_out) / 1e6 * factor
        )
    estimated = {k: r["usage_estimate_usd"] for k, r in early.items() if r["usage_input_tokens"]}
    assert estimated and set(estimated) == set(expected)
    for key, value in estimated.items():
        assert value == pytest.approx(expected[key], rel=1e-9) and value > 0
    assert unpriced is not None and unpriced[0] > 50  # our own batches cannot be priced then
    by_project = {row[1]: row for row in costs}
    for project in (ALPHA, BRAVO):
        _, _, _, billed, estimate, source, share, _ = by_project[project][:8]
        assert source == "usage api" and billed > 0 and 0 < share <= 100
        month_total = sum(v for k, v in expected.items() if k[:2] == ("2025-08", project))
        assert estimate == pytest.approx(month_total, rel=1e-9)


def test_project_coverage_finds_the_unconfigured_project(books: Books) -> None:
    coverage = {r["project_id"]: r for r in rows(books.consistent, "SELECT * FROM openai_batches.project_coverage")}
    assert {p: r["verdict"] for p, r in coverage.items()} == {
        ALPHA: "covered",
        BRAVO: "covered",
        HIDDEN: "missing",
        OLD: "idle",
    }
    assert coverage[HIDDEN]["name"] == "Hidden" and not coverage[HIDDEN]["loaded"]
    assert coverage[OLD]["status"] == "archived" and coverage[OLD]["batch_input_tokens"] == 0
    assert coverage[ALPHA]["loaded"] and coverage[ALPHA]["batches_loaded"] > 600
    hidden_tokens = rows(
        books.consistent,
        f"""SELECT sum(input_tokens) AS n FROM openai_batches.usage_daily
            WHERE batch AND project_id = '{HIDDEN}' AND day > DATE '{date(2026, 1, 20).isoformat()}' - 30""",
    )[0]["n"]
    assert coverage[HIDDEN]["batch_input_tokens"] == hidden_tokens > 0


def test_status_and_the_load_summary_name_missing_projects_and_differing_months(
    books: Books, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--db", books.injected]) == 0
    out = capsys.readouterr().out
    assert "missing: project proj_hidden (Hidden) has batch usage in the last 30 days" in out
    (differs,) = [line for line in out.splitlines() if "differs:" in line]
    assert differs.startswith("  differs: 2025-11 proj_alpha: the Usage API counts other batch tokens")
    assert cli.main(["status", "--db", books.consistent]) == 0
    out = capsys.readouterr().out
    assert "missing: project proj_hidden" in out and "differs:" not in out
    findings = books.first_load.admin.findings if books.first_load.admin else None
    assert findings is not None
    assert findings.summary() == "reconciliation: missing project(s) proj_hidden (Hidden)"


def test_the_reports_show_the_reconciliation_in_every_format(
    books: Books, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", "--db", books.injected, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["verdict"] for r in doc["usage_reconciliation"]} == {"match", "no batch usage", "differs"}
    assert doc["project_coverage"][0]["project_id"] == HIDDEN  # missing first
    assert {r["estimate_source"] for r in doc["cost_reconciliation"]} == {"batches", "usage api"}
    assert cli.main(["report", "--db", books.injected, "--format", "markdown", "--only", "project_coverage"]) == 0
    assert "| proj_hidden | Hidden | active | missing |" in capsys.readouterr().out
    page = tmp_path / "report.html"
    assert cli.main(["report", "--db", books.injected, "--html", str(page), "--only", "cost_summary"]) == 0
    html = page.read_text()
    assert "Reconciliation with OpenAI's Admin API" in html
    assert "project <b>proj_hidden</b> (Hidden)" in html and "2025-11, project <b>proj_alpha</b>" in html


# ------------------------------------------------------------------------------------------------ loading
def test_the_first_run_starts_at_the_first_batch_and_a_no_change_run_costs_three_requests(
    books: Books, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The module's first load: from the first batch's UTC day, one usage page per 31 days, one costs page.
    first_day = rows(books.consistent, "SELECT min(created_at) AS t FROM openai_batches.batches")[0]["t"]
    start = int(datetime.combine(first_day.astimezone(UTC).date(), datetime.min.time(), UTC).timestamp())
    usage = [r for r in books.first_admin_requests if r.path.endswith("/usage/completions")]
    assert int(usage[0].query["start_time"]) == start and len(usage) == -(-((T - start) // DAY + 1) // 31)
    assert len(books.first_admin_requests) == 1 + len(usage) + 1

    org = SimulatedOrg(projects={KEY_A: ALPHA}, clock=SimClock(T), seed=4)
    org.generate_history(200, project=ALPHA, days=40, open_fraction=0.03)
    org.add_project(HIDDEN, name="Hidden")
    org.generate_history(30, project=HIDDEN, days=10)
    db = str(tmp_path / "cron.duckdb")
    with SimulatorServer(org) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY_A)
        monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)

        def load() -> tuple[list[Any], str]:
            server.reset_requests()
            assert cli.main(["load", "--db", db]) == 0
            return admin_requests(server), capsys.readouterr().out

        def usage_rows() -> tuple[int, int]:
            with duckdb.connect(db, read_only=True) as con:
                row = con.execute(
                    """SELECT count(*), count(DISTINCT (day, project_id, model, batch))
                       FROM openai_batches.usage_daily"""
                ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        first, out = load()
        assert len(first) == 4  # projects, two pages of 31 daily usage buckets, one of costs
        assert "reconciliation: missing project(s) proj_hidden (Hidden)" in out
        counts = usage_rows()
        second, out = load()
        assert [r.path for r in second] == [
            "/v1/organization/projects",
            "/v1/organization/usage/completions",
            "/v1/organization/costs",
        ]
        today = T // DAY * DAY
        assert {int(r.query["start_time"]) for r in second[1:]} == {today - 2 * DAY}  # the last 3 days only
        assert "load [organization] ok: 3 requests" in out and "reconciliation: missing project(s)" in out
        assert usage_rows() == counts and counts[0] == counts[1]  # re-read days replaced, nothing doubled
        # Five days without a run: the days in between are read, still from two days before the last run.
        org.advance(5 * DAY)
        third, _ = load()
        assert len(third) == 3 and {int(r.query["start_time"]) for r in third[1:]} == {today - 2 * DAY}
        assert usage_rows()[0] > counts[0]
        with duckdb.connect(db, read_only=True) as con:
            days = con.execute("SELECT max(day) - min(day) + 1, count(DISTINCT day) FROM openai_batches.usage_daily")
            span, distinct = days.fetchone() or (0, 0)
        assert span == distinct  # no day skipped


def test_the_first_run_never_reads_before_april_2024(tmp_path: Path) -> None:
    org = SimulatedOrg(projects={KEY_A: ALPHA}, clock=SimClock(utc(2024, 4, 20)), seed=2)
    org.generate_history(60, project=ALPHA, days=60)
    with SimulatorServer(org) as server:
        assert run_load(str(tmp_path / "early.duckdb"), config(server, KEY_A)).ok
        usage = [r for r in admin_requests(server) if r.path.endswith("/usage/completions")]
    assert min(b["created_at"] for b in org.batches(ALPHA)) < utc(2024, 4, 1)
    assert int(usage[0].query["start_time"]) == utc(2024, 4, 1)


def test_a_failing_admin_api_leaves_the_batches_loaded_and_vice_versa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    org = SimulatedOrg(projects={KEY_A: ALPHA, KEY_B: BRAVO}, clock=SimClock(T), seed=6)
    org.generate_history(120, days=20)
    db = str(tmp_path / "partial.duckdb")
    with SimulatorServer(org) as server:
        monkeypatch.setenv("SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS", "2")
        monkeypatch.setenv("OPENAI_API_KEY", KEY_A)
        monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        server.inject(Fault("500", count=2, path_prefix="/v1/organization/projects"))
        assert cli.main(["load", "--db", db]) == 1
        out, err = capsys.readouterr()
        (line,) = error_lines(err)
        assert line.startswith("error: organization (Admin API): GET ") and "HTTP 500" in line
        assert "load [organization] FAILED" in out and "load [proj_alpha] ok" in out
        with duckdb.connect(db, read_only=True) as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            batches = con.execute("SELECT count(*) FROM openai_batches.batches").fetchone()
        assert batches is not None and batches[0] == len(org.batches(ALPHA))
        assert "projects" not in tables and "usage_daily" not in tables
        # The batches failing does not stop the organisation's tables.
        server.inject(Fault("401", count=1, path_prefix="/v1/batches"))
        assert cli.main(["load", "--db", db]) == 1
        out, err = capsys.readouterr()
        (line,) = error_lines(err)
        assert line.startswith("error: project default: GET ") and "HTTP 401" in line
        assert "load [organization] ok" in out
    assert {r["project_id"] for r in rows(db, "SELECT * FROM openai_batches.project_coverage")} == {ALPHA, BRAVO}


# ------------------------------------------------------------------------------------------------ keys
def one_clear_error(capsys: pytest.CaptureFixture[str], code: int, got: int, *fragments: str) -> str:
    """Exit `code`, no traceback, exactly one `error:` line on stderr containing `fragments`."""
    out, err = capsys.readouterr()
    assert got == code, out + err
    assert "Traceback" not in out + err
    (line,) = error_lines(err)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return out + err


def test_wrong_key_kinds_get_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "keys.duckdb")

    def load(code: int, *fragments: str, **env: str) -> str:
        for name in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return one_clear_error(capsys, code, cli.main(["load", "--db", db]), *fragments)

    # An admin key given as the API key, a project key given as the admin key: refused before any request.
    shown = load(2, "OPENAI_API_KEY is an admin key", "OPENAI_ADMIN_KEY", OPENAI_API_KEY="sk-admin-Wrong-Place-0123")
    assert "Wrong-Place" not in shown
    project_key = "sk-proj-AlphaProjectKey-5kQ2nV8xR1"
    shown = load(
        2, "OPENAI_ADMIN_KEY is not an admin key", "sk-proj-", OPENAI_API_KEY=KEY_A, OPENAI_ADMIN_KEY=project_key
    )
    assert project_key[8:] not in shown
    # Whitespace around the admin key is stripped; characters that cannot be sent are refused unshown.
    shown = load(
        2,
        "OPENAI_ADMIN_KEY",
        "cannot be sent in an HTTP header",
        OPENAI_API_KEY=KEY_A,
        OPENAI_ADMIN_KEY="sk-admin-a b\n",
    )
    assert "sk-admin-a b" not in shown
    # An admin key alone loads nothing, and says why.
    load(2, "no API key configured", "cannot list batches", OPENAI_ADMIN_KEY=ADMIN)
    assert not Path(db).exists()
    # A key the documented prefixes say nothing about (a gateway's): the Admin API's refusal, with the hint,
    # and the batches load all the same.
    gateway_key = "gateway-key-0123456789abcdef"
    org = SimulatedOrg(projects={KEY_A: ALPHA, gateway_key: BRAVO}, clock=SimClock(T), seed=8)
    org.generate_history(30, project=ALPHA, days=5)
    with SimulatorServer(org) as server:
        env = {"OPENAI_API_KEY": KEY_A, "OPENAI_ADMIN_KEY": f" {gateway_key}\r\n", "OPENAI_BASE_URL": server.base_url}
        shown = load(1, "organization (Admin API)", "HTTP 401", "the admin key was refused", **env)
        refused = [r for r in server.requests if r.path.startswith("/v1/organization")]
        assert refused and {r.status for r in refused} == {401}
        assert refused[0].headers["authorization"] == f"Bearer {gateway_key}"  # sent stripped
    assert "0123456789abcdef" not in shown
    assert rows(db, "SELECT count(*) AS n FROM openai_batches.batches")[0]["n"] == 30


CANARY = "sk-admin-CanaryAdminLeak-4Xq8ZpL2vN7rT5yK9w"
NEEDLES = (CANARY.encode(), CANARY[:20].encode(), CANARY[9:-4].encode(), CANARY[15:35].encode())


def test_the_admin_key_appears_nowhere_the_pipeline_writes(tmp_path: Path) -> None:
    org = SimulatedOrg(projects={KEY_A: ALPHA}, clock=SimClock(T), seed=3, admin_keys=(CANARY,))
    org.generate_history(150, project=ALPHA, days=15, open_fraction=0.05)
    org.add_project(HIDDEN)
    org.generate_history(20, project=HIDDEN, days=5)
    db = tmp_path / "secret.duckdb"
    results: list[subprocess.CompletedProcess[str]] = []
    with SimulatorServer(org) as server:
        env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_ADMIN_KEY=CANARY, OPENAI_BASE_URL=server.base_url)

        def run(*args: str, code: int, **extra: str) -> None:
            result = run_cli("-v", *args, env={**env, **extra})
            assert result.returncode == code, result.stdout + result.stderr
            results.append(result)

        run("load", "--db", str(db), code=0)
        # Failing, verbose: a retried 500 (the warning logged), then given up on.
        server.inject(Fault("500", count=4, path_prefix="/v1/organization"))
        run("load", "--db", str(db), code=1, SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS="2")
        run("status", "--db", str(db), code=0)
        assert any(r.headers.get("authorization") == f"Bearer {CANARY}" for r in server.requests)  # it was sent
    assert "missing: project proj_hidden" in results[-1].stdout  # the runs did what they should
    for result in results:
        for needle in NEEDLES:
            assert needle not in (result.stdout + result.stderr).encode(), result.args
    for needle in NEEDLES:
        assert files_containing(tmp_path, needle) == []


# ------------------------------------------------------------------------------------------------ hostile pages
def bucket(day: date, *results: dict[str, Any]) -> dict[str, Any]:
    start = utc(day.year, day.month, day.day)
    return {"object": "bucket", "start_time": start, "end_time": start + DAY, "results": list(results)}


def usage_result(**fields: Any) -> dict[str, Any]:
    base = {"input_tokens": 10, "input_cached_tokens": 0, "output_tokens": 5, "num_model_requests": 1}
    return {"object": "organization.usage.completions.result", "project_id": ALPHA, "model": "m", "batch": True} | (
        base | fields
    )


def test_the_source_in_a_plain_pipeline_refuses_pages_that_cannot_be_right(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`openai_organization` in a pipeline of one's own; odd values become NULL with a warning, a cursor the
    API repeats or a page that says "more" without a cursor fail the run with one clear message."""
    import dlt
    from dlt.pipeline.exceptions import PipelineStepFailed

    from openai_batches import openai_organization
    from openai_batches.client.retry import RetryPolicy

    from .support.fake_api import ScriptedApi, json_reply

    mode = {"usage": "odd"}
    day = date(2025, 10, 1)
    projects = {"object": "list", "data": [{"id": ALPHA, "name": "a", "created_at": 1, "status": "active"}]}

    def page(data: list[dict[str, Any]], next_page: str | None) -> dict[str, Any]:
        return {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page}

    def route(path: str, query: dict[str, str], number: int) -> Any:
        if path.endswith("/projects"):
            return json_reply(projects | {"has_more": False})
        if path.endswith("/costs"):
            return json_reply(page([bucket(day)], None))
        if mode["usage"] == "odd":
            odd = usage_result(input_tokens="n/a", output_tokens=12.0, batch="yes")
            return json_reply(page([bucket(day, odd, usage_result(model=None))], None))
        if mode["usage"] == "repeat":  # the same cursor on every page
            return json_reply(page([bucket(day, usage_result())], "page_same"))
        return json_reply({"object": "page", "data": [bucket(day)], "has_more": True, "next_page": None})

    pipeline = dlt.pipeline(
        "own_pipeline",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "own.duckdb")),
        dataset_name="books",
    )
    with ScriptedApi(route, project=None) as api:

        def source() -> Any:
            retry = RetryPolicy(max_attempts=2, sleep=lambda seconds: None)
            return openai_organization(admin_key=ADMIN, base_url=api.base_url, first_day=day, retry=retry)

        pipeline.run(source())
        assert "input_tokens='n/a' does not fit the column" in caplog.text
        with duckdb.connect(str(tmp_path / "own.duckdb"), read_only=True) as con:
            stored = con.execute(
                "SELECT model, batch, input_tokens, output_tokens FROM books.usage_daily ORDER BY model NULLS LAST"
            ).fetchall()
        assert stored == [("m", None, None, 12), (None, True, 10, 5)]
        assert api.headers[0]["authorization"] == f"Bearer {ADMIN}"
        sent = {path.rsplit("/", 1)[1]: query for path, query in api.requests}
        # Arrays as the SDK sends them (`group_by[]=...` repeated; the last one is what a dict keeps).
        assert sent["completions"]["group_by[]"] == "batch" and sent["costs"]["group_by[]"] == "line_item"
        assert sent["completions"]["bucket_width"] == sent["costs"]["bucket_width"] == "1d"
        assert sent["projects"] == {"limit": "100", "include_archived": "true"}

        mode["usage"] = "repeat"
        with pytest.raises(PipelineStepFailed) as failed:
            pipeline.run(source())
        assert "the API returned the same cursor twice" in str(failed.value)
        mode["usage"] = "no cursor"
        with pytest.raises(PipelineStepFailed) as failed:
            pipeline.run(source())
        assert "has_more is true but next_page is missing (gave up after 2 attempts)" in str(failed.value)


def test_a_load_with_an_admin_key_logs_no_dlt_warning_about_our_own_column_hints(tmp_path: Path) -> None:
    """Our hints override arrow types on purpose (JSON as text, the empty-day marker): dlt's warning about
    it is kept out of every source's extraction, the Admin API's too (cron mails whatever a load prints)."""
    import logging

    class Seen(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    seen = Seen()
    dlt_logger = logging.getLogger("dlt")  # dlt's own logger does not propagate to the root
    org = SimulatedOrg(projects={KEY_A: ALPHA}, clock=SimClock(T), seed=5)
    org.generate_history(60, project=ALPHA, days=20)
    dlt_logger.addHandler(seen)
    try:
        with SimulatorServer(org) as server:
            result = run_load(str(tmp_path / "quiet.duckdb"), config(server, KEY_A))
    finally:
        dlt_logger.removeHandler(seen)
    assert result.ok and result.admin is not None
    assert [m for m in seen.messages if "when merging arrow schema" in m] == []
