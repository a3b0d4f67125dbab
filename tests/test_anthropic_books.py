"""Anthropic's books (issue 18) over real HTTP against the simulator: the workspaces, the usage and cost
reports loaded with an Admin API key equal what the simulator's batches and results say, days are read as
OpenAI's are (an empty day is zero usage, a day read again replaces, a bucket served twice counts once),
cents are converted exactly, each configured project's key is mapped to its workspace through the key
hints, keys of the wrong kind are refused naming the setting, and a failure of the books leaves the batches
loaded with exit 1. The reconciliation's Anthropic rows compare the request ledger with the usage report.

The Anthropic loader (anthropic_batches and its ledger rows) is built on other branches of issue 18: until
they are merged, `ledger_from_results` writes those rows (DESIGN18's columns) from what the simulator serves
over HTTP, read with the project's AnthropicClient.
"""

from __future__ import annotations

import calendar
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import duckdb
import httpx
import pytest

from openai_batches.analysis import reading
from openai_batches.cli import main as cli
from openai_batches.client.anthropic_admin import AnthropicAdminClient
from openai_batches.client.errors import ApiError
from openai_batches.client.retry import RetryPolicy
from openai_batches.config import AnthropicAdminConfig, ConfigError, ProjectConfig, RunConfig, run_config
from openai_batches.load.anthropic_admin_run import run_anthropic_admin, summary_lines
from openai_batches.load.runner import make_pipeline, run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator.anthropic_books import TOKEN_TYPES, key_hint, request_tokens
from openai_batches.tables.anthropic_admin import cents_to_units

from .support.cli import cli_env

OPENAI_KEY = "sk-test-alpha-0123456789"
ALPHA = "proj_alpha"
KEY_A = "sk-ant-api03-R2Dalpha-0123456789igAA"
KEY_B = "sk-ant-api03-Q7xbravo-0123456789Zk9w"
WS_A, WS_B = "wrkspc_alpha", "wrkspc_bravo"
ADMIN = "sk-ant-admin01-sim"
DAY = 86_400


def utc(*ymd: int) -> int:
    return calendar.timegm((*ymd, *(0,) * (6 - len(ymd))))


# 2026-01-20T15:00Z, as the OpenAI reconciliation tests: November and December 2025 are settled months.
T = utc(2026, 1, 20, 15)


def organisation(batches: int = 120, days: float = 25) -> SimulatedOrg:
    org = SimulatedOrg(
        projects={OPENAI_KEY: ALPHA}, clock=SimClock(T), seed=7, anthropic_workspaces={KEY_A: WS_A, KEY_B: WS_B}
    )
    org.generate_history(20, project=ALPHA, days=days)
    org.anthropic.generate_history(batches, workspace=WS_A, days=days)
    org.anthropic.generate_history(batches // 4, workspace=WS_B, days=days)
    org.anthropic_books.name_workspace(WS_A, "Claude jobs")
    return org


def config(server: SimulatorServer, *anthropic_projects: tuple[str, str]) -> RunConfig:
    projects = [ProjectConfig(name=None, api_key=OPENAI_KEY, base_url=server.base_url)]
    projects += [
        ProjectConfig(name=n, api_key=k, base_url=server.anthropic_base_url, provider="anthropic")
        for n, k in anthropic_projects
    ]
    return RunConfig(
        projects=tuple(projects),
        anthropic_admin=AnthropicAdminConfig(admin_key=ADMIN, base_url=server.anthropic_base_url),
    )


def openai_only(cfg: RunConfig) -> RunConfig:
    """The configuration `run_load` can run on this branch (its projects loop knows OpenAI's only)."""
    return RunConfig(projects=cfg.projects[:1], anthropic_admin=cfg.anthropic_admin)


def stored(db: str, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql).fetchall()


def rows(db: str, sql: str) -> list[dict[str, Any]]:
    with reading(db) as analysis:
        cursor = analysis.con.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def truth(org: SimulatedOrg) -> Counter[tuple[Any, ...]]:
    """Batch-tier tokens per (end day, workspace, model, token type), added up from every succeeded results
    line of every ended batch: what the usage report must say."""
    out: Counter[tuple[Any, ...]] = Counter()
    for workspace in (WS_A, WS_B):
        for batch, ended in org.anthropic.ended(workspace, org.clock.now()):
            day = datetime.fromtimestamp(ended, UTC).date()
            for _, result in org.anthropic.results(batch):
                if result["type"] == "succeeded":
                    message = result["message"]
                    for kind, n in zip(TOKEN_TYPES, request_tokens(message["usage"]), strict=True):
                        out[(day, workspace, message["model"], kind)] += n
    return +out


def usage_by_type(db: str, tier: str = "batch") -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    found = stored(
        db,
        f"""SELECT day, workspace_id, model, uncached_input_tokens, cache_read_input_tokens,
                   cache_creation_5m_input_tokens, cache_creation_1h_input_tokens, output_tokens
            FROM openai_batches.anthropic_usage_daily WHERE service_tier = '{tier}'""",
    )
    for day, workspace, model, *counts in found:
        for kind, n in zip(TOKEN_TYPES, counts, strict=True):
            out[(day, workspace, model, kind)] += n
    return +out


def served(server: SimulatorServer, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every bucket a report serves now, following next_page."""
    out: list[dict[str, Any]] = []
    headers = {"x-api-key": ADMIN, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=server.anthropic_base_url, headers=headers) as client:
        while True:
            page = client.get(path, params=params).json()
            out += page["data"]
            if not page["has_more"]:
                return out
            params = {**params, "page": page["next_page"]}


def ledger_from_results(db: str, server: SimulatorServer, projects: dict[str, str]) -> None:
    """`anthropic_batches` and the request ledger of each project (name -> key), loaded by the loader from the
    batch list and every ended batch's results served over HTTP."""
    config = RunConfig(
        projects=tuple(
            ProjectConfig(name=name, api_key=key, base_url=server.anthropic_base_url, provider="anthropic")
            for name, key in projects.items()
        ),
        max_attempts=1,
    )
    result = run_load(db, config)
    assert result.ok, [o.error for o in result.outcomes]


@pytest.fixture
def books(tmp_path: Path) -> Iterator[tuple[SimulatedOrg, SimulatorServer, str]]:
    org = organisation()
    with SimulatorServer(org) as server:
        yield org, server, str(tmp_path / "books.duckdb")


@pytest.fixture(scope="module")
def bare() -> Iterator[SimulatorServer]:
    """A simulator with Anthropic workspaces and no history."""
    org = SimulatedOrg(projects={OPENAI_KEY: ALPHA}, clock=SimClock(T), anthropic_workspaces={KEY_A: WS_A})
    with SimulatorServer(org) as server:
        yield server


# ------------------------------------------------------------------------------------------------ the tables
def test_the_books_tables_equal_the_simulators_books_and_the_batches_results(
    books: tuple[SimulatedOrg, SimulatorServer, str],
) -> None:
    org, server, db = books
    result = run_load(db, openai_only(config(server)))
    assert result.ok, result
    assert result.anthropic_admin is not None and result.anthropic_admin.error is None
    # The batch tier is, to the token, the sum of the results lines of the batches that ended.
    assert usage_by_type(db) == truth(org) and truth(org)
    assert usage_by_type(db, "standard")  # the other tiers are loaded too, apart
    # Every usage and cost row is what the reports serve, from the first day read.
    first = result.anthropic_admin.stats.usage_from
    assert first is not None
    start = f"{first.isoformat()}T00:00:00Z"
    usage = served(
        server,
        "/v1/organizations/usage_report/messages",
        {"starting_at": start, "group_by[]": ["workspace_id", "model", "service_tier"], "limit": 31},
    )
    assert stored(db, "SELECT count(*) FROM openai_batches.anthropic_usage_daily")[0][0] == sum(
        len(b["results"]) for b in usage
    )
    costs = served(
        server, "/v1/organizations/cost_report", {"starting_at": start, "group_by[]": ["workspace_id", "description"]}
    )
    sent = Counter(
        (date.fromisoformat(b["starting_at"][:10]), r["workspace_id"], r["description"], r["amount"])
        for b in costs
        for r in b["results"]
    )
    loaded = Counter(
        stored(db, "SELECT day, workspace_id, description, amount_raw FROM openai_batches.anthropic_costs_daily")
    )
    assert loaded == sent and sent
    # Each amount is its cents exactly, in USD.
    for raw, usd in stored(db, "SELECT amount_raw, amount_usd FROM openai_batches.anthropic_costs_daily"):
        assert usd == float(Decimal(raw) / 100)
    assert stored(db, "SELECT id, name FROM openai_batches.anthropic_workspaces ORDER BY id") == [
        (WS_A, "Claude jobs"),
        (WS_B, "Bravo"),
    ]
    # Every day from the first to the API's today was read, each once per report.
    days = (datetime.fromtimestamp(T, UTC).date() - first).days + 1
    assert stored(
        db,
        """SELECT endpoint, count(*) FROM openai_batches.admin_days_read WHERE endpoint LIKE 'anthropic/%'
           GROUP BY ALL ORDER BY 1""",
    ) == [("anthropic/cost_report", days), ("anthropic/usage_report/messages", days)]


def test_an_empty_day_is_zero_usage_and_a_day_read_again_replaces_its_rows(
    books: tuple[SimulatedOrg, SimulatorServer, str],
) -> None:
    org, server, db = books
    cfg = openai_only(config(server))
    assert run_load(db, cfg).ok
    today = datetime.fromtimestamp(T, UTC).date()
    before = stored(db, "SELECT day, count(*) FROM openai_batches.anthropic_usage_daily GROUP BY ALL ORDER BY 1")
    assert before[-1][0] == today
    org.anthropic_books.empty_usage = True  # the report now counts nothing
    org.clock.advance(DAY)
    again = run_load(db, cfg)
    assert again.ok and again.anthropic_admin is not None
    assert again.anthropic_admin.stats.usage_from == date.fromordinal(today.toordinal() - 2)  # three days re-read
    after = stored(db, "SELECT day, count(*) FROM openai_batches.anthropic_usage_daily GROUP BY ALL ORDER BY 1")
    re_read = {date.fromordinal(today.toordinal() - n) for n in range(3)}
    assert after == [r for r in before if r[0] not in re_read]  # the days read again, empty, have no rows
    read = dict(
        stored(
            db,
            """SELECT day, results FROM openai_batches.admin_days_read
               WHERE endpoint = 'anthropic/usage_report/messages'""",
        )
    )
    assert all(read[d] == 0 for d in [*re_read, date.fromordinal(today.toordinal() + 1)])
    # An empty day read is zero usage, not a day nobody read: its month is still compared.
    assert stored(db, "SELECT count(*) FROM openai_batches.anthropic_usage_daily WHERE _empty_day IS NOT NULL") == [
        (0,)
    ]


def test_a_bucket_served_twice_counts_once(books: tuple[SimulatedOrg, SimulatorServer, str]) -> None:
    org, server, db = books
    org.anthropic_books.repeat_buckets(2)  # every page after the first starts with the two buckets before it
    result = run_load(db, openai_only(config(server)))
    assert result.ok
    pages = [r for r in server.requests if r.path == "/v1/organizations/usage_report/messages"]
    assert len(pages) >= 3  # pages that overlap were served
    assert usage_by_type(db) == truth(org)
    assert stored(
        db,
        """SELECT count(*) FROM (SELECT day, workspace_id, model, service_tier, count(*) AS n
           FROM openai_batches.anthropic_usage_daily GROUP BY ALL HAVING n > 1)""",
    ) == [(0,)]


def test_cents_are_converted_exactly_and_odd_amounts_are_kept_apart(
    books: tuple[SimulatedOrg, SimulatorServer, str],
) -> None:
    org, server, db = books
    day = (T - 5 * DAY) // DAY * DAY
    base = {"cost_type": "tokens", "description": "test", "workspace_id": WS_A}
    for amount, currency in (("123.45", "USD"), ("0.07", "USD"), ("n/a", "USD"), ("250", "EUR")):
        org.anthropic_books.add_cost_result(day, {**base, "amount": amount, "currency": currency})
    assert run_load(db, openai_only(config(server))).ok
    found = stored(
        db,
        """SELECT amount_raw, amount, amount_usd, currency FROM openai_batches.anthropic_costs_daily
           WHERE description = 'test' ORDER BY amount_raw""",
    )
    assert found == [
        ("0.07", 0.0007, 0.0007, "USD"),  # float("0.07") / 100 is 0.0007000000000000001
        ("123.45", 1.2345, 1.2345, "USD"),
        ("250", 2.5, None, "EUR"),
        ("n/a", None, None, "USD"),
    ]
    assert cents_to_units("0.07") == 0.0007 != float("0.07") / 100
    month = rows(
        db,
        f"""SELECT * FROM openai_batches.cost_reconciliation
            WHERE provider = 'anthropic' AND project_id = '{WS_A}' AND month = DATE '2026-01-01'""",
    )
    assert len(month) == 1
    assert month[0]["costs_not_numbers"] == 1 and month[0]["other_currency_costs"] == "2.5 EUR"
    jan = stored(
        db,
        f"""SELECT sum(amount_usd) FROM openai_batches.anthropic_costs_daily
            WHERE workspace_id = '{WS_A}' AND day >= DATE '2026-01-01'""",
    )[0][0]
    assert month[0]["costs_usd"] == pytest.approx(jan, abs=1e-9)
    caveats = rows(db, "SELECT * FROM openai_batches.caveats WHERE id LIKE 'anthropic_costs_daily %'")
    day_text = datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%d")
    assert {r["id"] for r in caveats} == {
        f"anthropic_costs_daily {day_text} {WS_A}: test = n/a",
        f"anthropic_costs_daily {day_text} {WS_A}: test (EUR)",
    }


# ------------------------------------------------------------------------------------------------ keys
def test_each_projects_key_is_mapped_to_its_workspace_through_the_key_hints_and_never_stored(
    books: tuple[SimulatedOrg, SimulatorServer, str],
) -> None:
    org, server, db = books
    other = "sk-ant-api03-someone-elses-key-000000"
    cfg = config(server, ("claude", KEY_A), ("stray", other))
    assert run_load(db, openai_only(cfg)).ok  # the batches (and the books once)
    ledger_from_results(db, server, {"claude": KEY_A})
    outcome = run_anthropic_admin(make_pipeline(db), db, cfg, retry=RetryPolicy(), full_refresh=False)
    assert outcome.error is None
    assert stored(db, "SELECT * FROM openai_batches.anthropic_project_workspaces ORDER BY project") == [
        ("claude", WS_A, "Claude jobs", "matched"),
        ("stray", None, None, "no key matches"),
    ]
    coverage = {
        (r["project_id"], r["name"]): r["verdict"]
        for r in rows(db, "SELECT * FROM openai_batches.project_coverage WHERE provider = 'anthropic'")
    }
    assert coverage == {
        (WS_A, "Claude jobs"): "covered",
        (WS_B, "Bravo"): "missing",  # batch usage, no configured key of it
        (None, "stray"): "key not in the Admin API",
    }
    lines = summary_lines(outcome)
    assert any("no workspace found for project(s) stray" in line for line in lines)
    assert outcome.findings is not None and outcome.findings.anthropic is not None
    assert outcome.findings.anthropic.missing == ((WS_B, "Bravo"),)
    # No key and no hint anywhere in the database.
    with duckdb.connect(db, read_only=True) as con:
        texts = con.execute(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = 'openai_batches' AND data_type = 'VARCHAR'"""
        ).fetchall()
        for table, column in texts:
            for secret in (KEY_A, key_hint(KEY_A), other, ADMIN, key_hint(KEY_A)[:16]):
                hits = con.execute(
                    f'SELECT count(*) FROM openai_batches."{table}" WHERE contains("{column}", ?)', [secret]
                ).fetchone()
                assert hits == (0,), (table, column)


def test_a_hint_shared_by_keys_of_two_workspaces_maps_to_none(books: tuple[SimulatedOrg, SimulatorServer, str]) -> None:
    org, server, db = books
    org.anthropic_books.add_api_key(key_hint(KEY_A), WS_B, status="archived")  # another key, the same hint
    outcome = run_anthropic_admin(
        make_pipeline(db), db, config(server, ("claude", KEY_A)), retry=RetryPolicy(), full_refresh=False
    )
    assert outcome.error is None
    assert stored(db, "SELECT * FROM openai_batches.anthropic_project_workspaces") == [
        ("claude", None, None, "several workspaces match")
    ]


@pytest.mark.parametrize(
    ("value", "named"),
    [(KEY_A, "workspace API key"), ("sk-proj-abcdefghijklmnop", "OpenAI key")],
)
def test_a_wrong_kind_of_admin_key_is_refused_in_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, named: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", value)
    with pytest.raises(ConfigError) as refused:
        run_config(projects=())
    message = str(refused.value)
    assert "ANTHROPIC_ADMIN_KEY" in message and named in message and value not in message and "\n" not in message
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN)  # and the other way round
    with pytest.raises(ConfigError, match="OPENAI_ADMIN_KEY is an Anthropic Admin API key"):
        run_config(projects=())


def test_every_key_includes_the_anthropic_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", f"  {ADMIN}\r\n")
    cfg = run_config(projects=())
    assert cfg.anthropic_admin is not None and cfg.anthropic_admin.admin_key == ADMIN
    assert ADMIN in cfg.every_key() and ADMIN not in repr(cfg)


def test_the_admin_key_and_root_come_from_secrets_toml_too(isolated_env: Path) -> None:
    dlt_dir = isolated_env / "project" / ".dlt"
    dlt_dir.mkdir()
    (dlt_dir / "secrets.toml").write_text(f'[sources.openai_batches]\nanthropic_admin_key = "{ADMIN}"\n')
    (dlt_dir / "config.toml").write_text('[sources.openai_batches]\nanthropic_base_url = "http://127.0.0.1:9"\n')
    # In a process of its own: dlt reads a project's .dlt files once per process.
    code = (
        "from openai_batches.config import run_config; b = run_config(projects=()).anthropic_admin; "
        f"print(b.admin_key == {ADMIN!r}, b.base_url)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(DLT_PROJECT_DIR=str(isolated_env / "project")),
        timeout=60,
    )
    assert found.stdout.split() == ["True", "http://127.0.0.1:9"], found.stderr


def test_the_admin_api_refuses_a_workspace_key_in_anthropics_envelope(
    books: tuple[SimulatedOrg, SimulatorServer, str],
) -> None:
    _, server, _ = books
    headers = {"x-api-key": KEY_A, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=server.anthropic_base_url, headers=headers) as client:
        answer = client.get("/v1/organizations/workspaces")
    assert answer.status_code == 403
    body = answer.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error" and body["request_id"]
    # A key the client cannot judge by its prefix is refused by the API, with the hint, never shown.
    odd = "gw-0123456789abcdefghij"
    with (
        pytest.raises(ApiError) as refused,
        AnthropicAdminClient(admin_key=odd, base_url=server.anthropic_base_url) as c,
    ):
        list(c.workspaces())
    assert refused.value.status == 401 and "ANTHROPIC_ADMIN_KEY" in str(refused.value) and odd not in str(refused.value)


def test_a_failure_of_the_books_leaves_the_batches_loaded_and_exits_1(
    books: tuple[SimulatedOrg, SimulatorServer, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    org, server, db = books
    wrong = "sk-ant-admin01-not-this-organisations"
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", wrong)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    assert cli.main(["load", "--db", db]) == 1
    out, err = capsys.readouterr()
    assert stored(db, "SELECT count(*) FROM openai_batches.batches") == [(20,)]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: anthropic organization (Admin API):"), err
    assert "401" in errors[0] and wrong not in out + err
    assert "[anthropic organization] FAILED" in out


# ------------------------------------------------------------------------------------------------ reconciliation
def test_the_ledger_matches_the_usage_report_and_a_month_that_does_not_differs(
    books: tuple[SimulatedOrg, SimulatorServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    org, server, db = books
    cfg = config(server, ("claude", KEY_A), ("claude-b", KEY_B))
    assert run_load(db, openai_only(cfg)).ok
    ledger_from_results(db, server, {"claude": KEY_A, "claude-b": KEY_B})
    outcome = run_anthropic_admin(make_pipeline(db), db, cfg, retry=RetryPolicy(), full_refresh=False)
    assert outcome.error is None
    found = rows(db, "SELECT * FROM openai_batches.usage_reconciliation WHERE provider = 'anthropic'")
    assert {r["project_id"] for r in found} == {WS_A, WS_B}
    assert {r["month"] for r in found} == {date(2025, 12, 1), date(2026, 1, 1)}
    assert {r["verdict"] for r in found} == {"match"}, found
    assert all(r["batches_input_tokens"] == r["usage_input_tokens"] for r in found)
    # Our cost estimate per workspace and month: what batch_jobs prices its batches at, by the month they ended.
    ours = {
        (r["month"], r["ws"]): r["usd"]
        for r in rows(
            db,
            """SELECT CAST(date_trunc('month', j.ended_at AT TIME ZONE 'UTC') AS DATE) AS month,
                      CASE j.project WHEN 'claude' THEN 'wrkspc_alpha' ELSE 'wrkspc_bravo' END AS ws,
                      sum(j.cost_usd) AS usd
               FROM openai_batches.batch_jobs AS j WHERE j.provider = 'anthropic' AND j.priced GROUP BY ALL""",
        )
    }
    estimates = rows(db, "SELECT * FROM openai_batches.cost_reconciliation WHERE provider = 'anthropic'")
    estimated = {(r["month"], r["project_id"]): r["batches_estimate_usd"] for r in estimates}
    assert ours and {k: v for k, v in estimated.items() if v is not None} == pytest.approx(ours)
    # OpenAI's rows are there too, with their provider.
    assert {r["provider"] for r in rows(db, "SELECT provider FROM openai_batches.usage_reconciliation")} <= {
        "openai",
        "anthropic",
    }
    # Our side counts more input in December: that month differs, the others still match.
    with duckdb.connect(db) as con:
        con.execute(
            """UPDATE openai_batches.batch_requests SET input_tokens = input_tokens * 2
               WHERE batch_id IN (SELECT id FROM openai_batches.anthropic_batches
                                  WHERE project = 'claude' AND ended_at >= '2025-12-01' AND ended_at < '2026-01-01')"""
        )
    verdicts = {
        (r["month"], r["project_id"]): r["verdict"]
        for r in rows(db, "SELECT * FROM openai_batches.usage_reconciliation WHERE provider = 'anthropic'")
    }
    assert {k for k, v in verdicts.items() if v == "differs"} == {(date(2025, 12, 1), WS_A)}
    assert cli.main(["status", "--db", db]) == 0
    out = capsys.readouterr().out
    assert f"differs: 2025-12 {WS_A}" in out and "reconciliation with Anthropic's Admin API (2 workspaces" in out


def test_batches_whose_results_are_not_read_leave_their_month_unknown(
    books: tuple[SimulatedOrg, SimulatorServer, str],
) -> None:
    org, server, db = books
    cfg = config(server, ("claude", KEY_A))
    assert run_load(db, openai_only(cfg)).ok
    ledger_from_results(db, server, {"claude": KEY_A})
    with duckdb.connect(db) as con:  # one December batch's results not read (yet)
        con.execute(
            """DELETE FROM openai_batches.batch_requests WHERE batch_id = (
               SELECT min(id) FROM openai_batches.anthropic_batches
               WHERE request_counts__succeeded > 0 AND ended_at >= '2025-12-01' AND ended_at < '2026-01-01')"""
        )
    assert run_anthropic_admin(make_pipeline(db), db, cfg, retry=RetryPolicy(), full_refresh=False).error is None
    verdicts = {
        r["month"]: r["verdict"]
        for r in rows(db, f"SELECT * FROM openai_batches.usage_reconciliation WHERE project_id = '{WS_A}'")
    }
    assert verdicts[date(2025, 12, 1)] == "no batch usage" and verdicts[date(2026, 1, 1)] == "match"


# ------------------------------------------------------------------------------------------------ the SDK
def test_the_official_sdk_pages_the_workspaces_and_the_keys(books: tuple[SimulatedOrg, SimulatorServer, str]) -> None:
    org, server, _ = books
    for n in range(3):
        org.anthropic_books.add_api_key(f"sk-ant-api03-x{n}...abcd", WS_B)
    sdk = anthropic.Anthropic(api_key=ADMIN, base_url=server.anthropic_base_url, max_retries=0)
    server.reset_requests()
    workspaces = list(sdk.organization.workspaces.list(limit=1))
    keys = list(sdk.organization.api_keys.list(limit=2))
    assert [w.id for w in workspaces] == [WS_A, WS_B]
    assert len(keys) == 5 and {k.scope.workspace_id for k in keys} == {WS_A, WS_B}
    assert keys[0].partial_key_hint == key_hint(KEY_A) == "sk-ant-api03-R2D...igAA"
    paged = [r for r in server.requests if r.path == "/v1/organizations/api_keys"]
    assert len(paged) == 3 and all(r.status == 200 for r in paged)


def test_the_readme_documents_every_column_of_anthropics_books() -> None:
    from openai_batches.tables.anthropic_admin import (
        COST_COLUMNS,
        PROJECT_WORKSPACE_COLUMNS,
        USAGE_COLUMNS,
        WORKSPACE_COLUMNS,
    )

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### `openai_batches.anthropic_workspaces`")[1].split("\n### ")[0]
    for table, columns in (
        ("anthropic_workspaces", WORKSPACE_COLUMNS),
        ("anthropic_project_workspaces", PROJECT_WORKSPACE_COLUMNS),
        ("anthropic_usage_daily", USAGE_COLUMNS),
        ("anthropic_costs_daily", COST_COLUMNS),
    ):
        part = section.split(f"`openai_batches.{table}`:")[1].split("`openai_batches.")[0]
        listed = [line.split("`")[1] for line in part.splitlines() if line.startswith("| `")]
        assert listed == [c.name for c in columns], table
        assert all(f"| {c.description} |" in part for c in columns), table


@pytest.mark.parametrize(
    ("hint", "matches"),
    [
        ("sk-ant-api03-R2D...igAA", True),
        ("sk-ant-api03-R2D...igAB", False),  # another key's end
        ("sk-ant-api03-Q7x...igAA", False),  # another key's start
        ("sk-...A", False),  # shows too little to tell keys apart
        ("...igAA", False),
        (KEY_A, False),  # no hint at all: never compared whole
        ("sk-ant-api03-R2D...ig...AA", False),
        (None, False),
    ],
)
def test_a_key_hint_matches_only_the_key_it_shows(hint: Any, matches: bool) -> None:
    from openai_batches.sources.anthropic_admin.source import hint_matches

    assert hint_matches(hint, KEY_A) is matches


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/v1/organizations/usage_report/messages", {}, "starting_at"),
        ("/v1/organizations/usage_report/messages", {"starting_at": "2026-01-01"}, "starting_at"),
        ("/v1/organizations/usage_report/messages", {"starting_at": "2026-01-01T00:00:00Z", "limit": 32}, "limit"),
        ("/v1/organizations/usage_report/messages", {"starting_at": "2026-01-01T00:00:00Z", "group_by[]": "x"}, "x"),
        ("/v1/organizations/cost_report", {"starting_at": "2026-01-01T00:00:00Z", "bucket_width": "1h"}, "1h"),
        ("/v1/organizations/cost_report", {"starting_at": "2026-01-01T00:00:00Z", "page": "nope"}, "page"),
    ],
)
def test_the_reports_refuse_bad_parameters_in_anthropics_envelope(
    bare: SimulatorServer, path: str, params: dict[str, Any], says: str
) -> None:
    server = bare
    headers = {"x-api-key": ADMIN, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=server.anthropic_base_url, headers=headers) as client:
        answer = client.get(path, params=params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert says in body["error"]["message"]
