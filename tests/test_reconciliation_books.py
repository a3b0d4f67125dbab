"""OpenAI's books when its Admin API misbehaves, over real HTTP against the
simulator: a usage bucket served twice counts once, an empty day read is a day with no usage, and
line items without a project, in another currency or with an amount that is not a number are shown,
never lost nor added into a USD figure."""

from __future__ import annotations

import calendar
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from openai_batches.analysis import reading
from openai_batches.cli import main as cli
from openai_batches.config import AdminConfig, ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.fake_api import ScriptedApi, json_reply

KEY = "sk-test-alpha-0123456789"
ALPHA = "proj_alpha"
ADMIN = "sk-admin-sim"
DAY = 86_400
# The name of cost_reconciliation's row of line items billed to no project (README).
NO_PROJECT = "(no project: organisation-level)"


def utc(*ymd: int) -> int:
    return calendar.timegm((*ymd, *(0,) * (6 - len(ymd))))


# 2026-01-20T15:00Z: December 2025 is over (and settled), January is not.
T = utc(2026, 1, 20, 15)


def organisation(batches: int = 160, days: float = 75, seed: int = 5) -> SimulatedOrg:
    org = SimulatedOrg(projects={KEY: ALPHA}, clock=SimClock(T), seed=seed)
    org.generate_history(batches, project=ALPHA, days=days, open_fraction=0.02)
    return org


def config(server: SimulatorServer) -> RunConfig:
    return RunConfig(
        projects=(ProjectConfig(name=None, api_key=KEY, base_url=server.base_url),),
        admin=AdminConfig(admin_key=ADMIN, base_url=server.base_url),
    )


def rows(db: str, sql: str) -> list[dict[str, Any]]:
    with reading(db) as analysis:
        cursor = analysis.con.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def stored(db: str, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql).fetchall()


def served_usage(org: SimulatedOrg, server: SimulatorServer, start: int) -> Counter[tuple[Any, ...]]:
    """Every usage row the Admin API serves now from ``start``, each bucket once (the simulator's paging
    without repeats), as `usage_daily` keeps it: one row per (day, project, model, batch)."""
    repeats = org.books.repeated_usage_buckets
    org.books.repeat_usage_buckets(0)
    try:
        return _served_usage(server, start)
    finally:
        org.books.repeat_usage_buckets(repeats)


def _served_usage(server: SimulatorServer, start: int) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    params: dict[str, Any] = {
        "start_time": start,
        "bucket_width": "1d",
        "limit": 31,
        "group_by[]": ["project_id", "model", "batch"],
    }
    seen: set[int] = set()
    keys: set[tuple[Any, ...]] = set()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        while True:
            page = client.get("/organization/usage/completions", params=params).json()
            for bucket in page["data"]:
                assert bucket["start_time"] not in seen
                seen.add(bucket["start_time"])
                day = datetime.fromtimestamp(bucket["start_time"], UTC).date()
                for r in bucket["results"]:
                    key = (day, r["project_id"], r["model"], r["batch"])
                    counts = (r["input_tokens"], r["input_cached_tokens"], r["output_tokens"], r["num_model_requests"])
                    assert key not in keys  # the simulator sends one result per key
                    keys.add(key)
                    out[(*key, *counts)] += 1
            if not page["has_more"]:
                return out
            params["page"] = page["next_page"]


def usage_daily(db: str) -> Counter[tuple[Any, ...]]:
    return Counter(
        stored(
            db,
            """SELECT day, project_id, model, batch, input_tokens, input_cached_tokens, output_tokens,
                      num_model_requests FROM openai_batches.usage_daily""",
        )
    )


# ------------------------------------------------------------------------------------------------ defect 2
def test_usage_daily_equals_the_distinct_buckets_served_when_pages_repeat_buckets_across_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invariant: whatever buckets the Usage API repeats, on two pages of a run or on a later run,
    `usage_daily` holds each bucket once, as last served, and the months still match."""
    org = organisation()
    org.books.repeat_usage_buckets(2)  # every page after the first starts with the two buckets before it
    db = str(tmp_path / "repeat.duckdb")
    with SimulatorServer(org) as server:
        first = run_load(db, config(server))
        assert first.ok, first
        usage = [r for r in server.requests if r.path.endswith("/usage/completions")]
        assert len(usage) >= 3  # pages that overlap: the repeats were served
        start = int(usage[0].query["start_time"])
        assert usage_daily(db) == served_usage(org, server, start)
        # Later runs re-read the last days (and the repeats again), with the books moved on meanwhile.
        for hours in (30, 53):
            org.advance(hours * 3600)
            assert run_load(db, config(server)).ok
            assert usage_daily(db) == served_usage(org, server, start)
    verdicts = {r["verdict"] for r in rows(db, "SELECT * FROM openai_batches.usage_reconciliation")}
    assert "differs" not in verdicts and "match" in verdicts
    assert cli.main(["status", "--db", db]) == 0
    assert "differs:" not in capsys.readouterr().out


def scripted_pipeline(tmp_path: Path, name: str) -> tuple[Any, str]:
    import dlt

    db = str(tmp_path / f"{name}.duckdb")
    pipeline = dlt.pipeline(
        name,
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(db),
        dataset_name="books",
    )
    return pipeline, db


def bucket(day: date, *results: dict[str, Any]) -> dict[str, Any]:
    start = utc(day.year, day.month, day.day)
    return {"object": "bucket", "start_time": start, "end_time": start + DAY, "results": list(results)}


def usage_result(tokens: int, model: str = "m") -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result",
        "project_id": ALPHA,
        "model": model,
        "batch": True,
        "input_tokens": tokens,
        "input_cached_tokens": 0,
        "output_tokens": tokens // 10,
        "num_model_requests": 1,
    }


def cost_result(value: Any, line_item: str = "m, input_tokens", currency: str = "usd") -> dict[str, Any]:
    return {
        "object": "organization.costs.result",
        "amount": {"value": value, "currency": currency},
        "line_item": line_item,
        "project_id": ALPHA,
    }


def test_a_bucket_served_again_replaces_the_copy_before_and_same_key_results_are_added_up(tmp_path: Path) -> None:
    """The README's rule: a bucket (a UTC day) served twice counts once, the copy read last; two results
    of one bucket with the same key are parts of one figure (split by dimensions not grouped by) and
    are added up. Costs alike."""
    from openai_batches import openai_organization
    from openai_batches.client.retry import RetryPolicy

    d1, d2, d3 = date(2025, 10, 1), date(2025, 10, 2), date(2025, 10, 3)

    def page(data: list[dict[str, Any]], next_page: str | None) -> dict[str, Any]:
        return {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page}

    def route(path: str, query: dict[str, str], number: int) -> Any:
        if path.endswith("/projects"):
            return json_reply({"object": "list", "data": [{"id": ALPHA, "name": "a"}], "has_more": False})
        if path.endswith("/costs"):
            if query.get("page") is None:
                return json_reply(page([bucket(d1, cost_result(1.5), cost_result(2.25))], "page_2"))
            return json_reply(page([bucket(d1, cost_result(1.5), cost_result(2.25)), bucket(d2)], None))
        if query.get("page") is None:
            return json_reply(
                page([bucket(d1, usage_result(100), usage_result(40)), bucket(d2, usage_result(7))], "p2")
            )
        # The next page starts with d2 again, now with more tokens (the API filled it meanwhile).
        return json_reply(page([bucket(d2, usage_result(9)), bucket(d3, usage_result(1000, "other"))], None))

    pipeline, db = scripted_pipeline(tmp_path, "same_key")
    with ScriptedApi(route, project=None) as api:
        retry = RetryPolicy(max_attempts=2, sleep=lambda seconds: None)
        pipeline.run(openai_organization(admin_key=ADMIN, base_url=api.base_url, first_day=d1, retry=retry))
    assert stored(db, "SELECT day, model, input_tokens, output_tokens FROM books.usage_daily ORDER BY day") == [
        (d1, "m", 140, 14),  # 100 + 40, 10 + 4
        (d2, "m", 9, 0),  # the copy read last, not 7 + 9
        (d3, "other", 1000, 100),
    ]
    assert stored(db, "SELECT day, amount_usd, amount FROM books.costs_daily ORDER BY day") == [(d1, 3.75, 3.75)]
    read = stored(db, "SELECT endpoint, day, results FROM books.admin_days_read ORDER BY ALL")
    assert read == [
        ("costs", d1, 2),
        ("costs", d2, 0),
        ("usage/completions", d1, 2),
        ("usage/completions", d2, 1),
        ("usage/completions", d3, 1),
    ]


# ------------------------------------------------------------------------------------------------ defect 3
def test_days_read_with_no_usage_make_the_month_differ_and_status_and_the_summary_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    org = organisation(batches=80, days=45)
    org.books.serve_empty_usage()  # OpenAI counts no batch tokens at all
    db = str(tmp_path / "empty.duckdb")
    with SimulatorServer(org) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert cli.main(["load", "--db", db]) == 0
        out = capsys.readouterr().out
    assert "reconciliation: usage differs in 2025-12 (proj_alpha)" in out
    assert "every finished month matches" not in out
    assert stored(db, "SELECT count(*) FROM openai_batches.usage_daily") == [(0,)]
    empty_days = stored(
        db, "SELECT count(*), max(results) FROM openai_batches.admin_days_read WHERE endpoint = 'usage/completions'"
    )
    assert empty_days[0][0] >= 40 and empty_days[0][1] == 0  # recorded: read, and empty
    december = [
        r
        for r in rows(db, "SELECT * FROM openai_batches.usage_reconciliation")
        if r["month"] == date(2025, 12, 1) and r["batches_input_tokens"]
    ]
    assert december and {r["verdict"] for r in december} == {"differs"}
    assert {r["input_diff_pct"] for r in december} == {-100}
    assert cli.main(["status", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "  differs: 2025-12 proj_alpha: the Usage API counts other batch tokens" in out
    assert "every finished month matches" not in out and "usage through 2026-01-20" in out


# ------------------------------------------------------------------------------------------------ defect 4
@pytest.fixture(scope="module")
def odd_costs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from .support.analysis import dlt_dirs

    root = tmp_path_factory.mktemp("odd_costs")
    with dlt_dirs(root):
        org = organisation(batches=80, days=45)
        day = utc(2025, 12, 10)
        org.books.add_cost_result(day, project_id=None, line_item="web search tool calls", value=4.0)
        org.books.add_cost_result(day, project_id=ALPHA, line_item="fine-tuning", value=3.0, currency="eur")
        org.books.add_cost_result(day, project_id=ALPHA, line_item="storage", value="2.25")
        org.books.add_cost_result(day, project_id=ALPHA, line_item="credits", value="n/a")
        org.books.add_cost_result(day, project_id=ALPHA, line_item="refund", value="NaN")
        db = str(root / "odd_costs.duckdb")
        with SimulatorServer(org) as server:
            assert run_load(db, config(server)).ok
        yield db


ADDED = ("web search tool calls", "fine-tuning", "storage", "credits", "refund")


def test_costs_without_a_project_are_a_row_of_their_own_per_month(odd_costs: str) -> None:
    found = rows(odd_costs, "SELECT * FROM openai_batches.cost_reconciliation WHERE project_id IS NULL")
    assert [(r["month"], r["name"], r["costs_usd"]) for r in found] == [(date(2025, 12, 1), NO_PROJECT, 4.0)]
    assert found[0]["batches_estimate_usd"] == 0 and found[0]["estimate_source"] == "usage api"


def test_a_numeric_string_amount_is_a_number_and_other_currencies_and_non_numbers_stay_out_of_usd(
    odd_costs: str,
) -> None:
    names = ", ".join(f"'{n}'" for n in ADDED)
    (base,) = stored(
        odd_costs,
        f"""SELECT sum(amount_usd) FROM openai_batches.costs_daily
            WHERE project_id = '{ALPHA}' AND day BETWEEN DATE '2025-12-01' AND DATE '2025-12-31'
            AND line_item NOT IN ({names})""",
    )[0]
    (alpha,) = rows(
        odd_costs,
        f"SELECT * FROM openai_batches.cost_reconciliation WHERE project_id = '{ALPHA}' AND month = DATE '2025-12-01'",
    )
    assert base > 0 and alpha["costs_usd"] == pytest.approx(base + 2.25, abs=1e-9)  # not 3.0 EUR, not "n/a"
    assert alpha["other_currency_costs"] == "3.0 EUR" and alpha["costs_not_numbers"] == 2
    kept = stored(
        odd_costs,
        f"""SELECT line_item, amount_usd, currency, amount, amount_raw FROM openai_batches.costs_daily
            WHERE line_item IN ({names}) ORDER BY line_item""",
    )
    assert kept == [
        ("credits", None, "usd", None, '"n/a"'),
        ("fine-tuning", None, "eur", 3.0, None),
        ("refund", None, "usd", None, '"NaN"'),
        ("storage", 2.25, "usd", 2.25, None),
        ("web search tool calls", 4.0, "usd", 4.0, None),
    ]
    caveats = {r["id"]: r["caveat"] for r in rows(odd_costs, "SELECT * FROM openai_batches.caveats")}
    assert "another currency" in caveats["costs_daily 2025-12-10 proj_alpha: fine-tuning (EUR)"]
    assert "not a number" in caveats['costs_daily 2025-12-10 proj_alpha: credits = "n/a"']
    assert "not a number" in caveats['costs_daily 2025-12-10 proj_alpha: refund = "NaN"']


def test_every_report_format_shows_the_organisation_level_row_and_the_cost_caveats(
    odd_costs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", "--db", odd_costs, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (org_row,) = [r for r in doc["cost_reconciliation"] if r["project_id"] is None]
    assert org_row["name"] == NO_PROJECT and org_row["costs_usd"] == 4.0
    assert {r["caveat"][:19] for r in doc["caveats"]} >= {"Costs API line item"}
    for fmt in ("markdown", "csv", "table"):
        assert cli.main(["report", "--db", odd_costs, "--format", fmt, "--only", "cost_reconciliation"]) == 0
        out = capsys.readouterr().out
        assert NO_PROJECT in out and "3.0 EUR" in out, fmt
    page = tmp_path / "report.html"
    assert cli.main(["report", "--db", odd_costs, "--html", str(page)]) == 0
    html = page.read_text()
    assert NO_PROJECT in html and "3.0 EUR" in html
    assert "line items: Costs API line item whose amount is not a number" in html


# ------------------------------------------------------------------------------------------------ simulator
def test_the_simulator_repeats_usage_buckets_serves_empty_usage_and_added_cost_results() -> None:
    org = organisation(batches=40, days=40)
    start = utc(2025, 12, 1)
    with (
        SimulatorServer(org) as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {ADMIN}"}) as client,
    ):

        def pages(path: str, **params: Any) -> list[list[dict[str, Any]]]:
            out, query = [], {"start_time": start, "limit": 7, **params}
            while True:
                page = client.get(path, params=query).json()
                out.append(page["data"])
                if not page["has_more"]:
                    return out
                query["page"] = page["next_page"]

        plain = pages("/organization/usage/completions")
        org.books.repeat_usage_buckets(2)
        repeated = pages("/organization/usage/completions")
        assert len(repeated) == len(plain) > 2
        for before, page in zip(repeated, repeated[1:], strict=False):
            assert page[:2] == before[-2:]  # the same buckets, results and all
        assert [b for p in repeated for b in p if b not in [x for q in plain for x in q]] == []
        org.books.repeat_usage_buckets(0)
        org.books.serve_empty_usage()
        empty = pages("/organization/usage/completions")
        assert [b["start_time"] for p in empty for b in p] == [b["start_time"] for p in plain for b in p]
        assert all(b["results"] == [] for p in empty for b in p)
        org.books.add_cost_result(start + DAY, project_id=None, line_item="x", value="2.25", currency="eur")
        costs = [b for p in pages("/organization/costs") for b in p if b["start_time"] == start + DAY]
        assert costs[0]["results"][-1] == {
            "object": "organization.costs.result",
            "amount": {"value": "2.25", "currency": "eur"},
            "line_item": "x",
            "project_id": None,
        }
        filtered = pages("/organization/costs", project_ids=ALPHA, **{"group_by[]": "project_id"})
        assert all(r["project_id"] == ALPHA for p in filtered for b in p for r in b["results"])


# -------------------------------------------------------------------------- found by the state machine
def test_a_day_read_again_with_no_results_replaces_the_copy_before(tmp_path: Path) -> None:
    """README, "Buckets are days, counted once": the copy read last replaces the one before, also when it
    is empty (a day read with no results is a day with no usage, no costs)."""
    from openai_batches import openai_organization
    from openai_batches.client.retry import RetryPolicy

    d1 = date(2025, 10, 1)
    served = {"results": True}

    def route(path: str, query: dict[str, str], number: int) -> Any:
        if path.endswith("/projects"):
            return json_reply({"object": "list", "data": [{"id": ALPHA, "name": "a"}], "has_more": False})
        result = usage_result(100) if path.endswith("/completions") else cost_result(1.5)
        day = bucket(d1, *([result] if served["results"] else []))
        return json_reply({"object": "page", "data": [day], "has_more": False, "next_page": None})

    pipeline, db = scripted_pipeline(tmp_path, "emptied")
    with ScriptedApi(route, project=None) as api:
        retry = RetryPolicy(max_attempts=2, sleep=lambda seconds: None)
        pipeline.run(openai_organization(admin_key=ADMIN, base_url=api.base_url, first_day=d1, retry=retry))
        assert stored(db, "SELECT count(*) FROM books.usage_daily") == [(1,)]
        served["results"] = False
        pipeline.run(openai_organization(admin_key=ADMIN, base_url=api.base_url, first_day=d1, retry=retry))
    read = stored(db, "SELECT endpoint, day, results FROM books.admin_days_read ORDER BY ALL")
    assert read == [("costs", d1, 0), ("usage/completions", d1, 0)]  # read again, and empty
    assert stored(db, "SELECT count(*) FROM books.usage_daily") == [(0,)]
    assert stored(db, "SELECT count(*) FROM books.costs_daily") == [(0,)]


def test_a_day_with_results_then_empty_then_results_again_ends_with_the_copy_read_last(tmp_path: Path) -> None:
    """README, "Buckets are days, counted once", over four runs of the dlt source on its own: d1 has
    results, comes back empty (also when a page of the same run served it with results first), then
    has other results; d2, always with results, is never touched. The marker of an empty day is never
    stored, and a run counts only the rows it stores."""
    from openai_batches import openai_organization
    from openai_batches.client.retry import RetryPolicy
    from openai_batches.sources.admin.source import AdminCounts

    d1, d2 = date(2025, 10, 1), date(2025, 10, 2)
    # Per run: the d1 buckets served, in page order (usage tokens; None: the bucket is empty).
    runs: list[list[int | None]] = [[100], [None], [50, None], [300]]
    served: list[int | None] = []

    def route(path: str, query: dict[str, str], number: int) -> Any:
        if path.endswith("/projects"):
            return json_reply({"object": "list", "data": [{"id": ALPHA, "name": "a"}], "has_more": False})
        usage = path.endswith("/completions")
        copies = [
            bucket(d1, *([] if t is None else [usage_result(t) if usage else cost_result(t / 100)])) for t in served
        ]
        d2_bucket = bucket(d2, usage_result(7) if usage else cost_result(0.07))
        pages = [*([c] for c in copies[:-1]), [copies[-1], d2_bucket]]
        n = int(query.get("page") or 0)
        more = n + 1 < len(pages)
        return json_reply(
            {"object": "page", "data": pages[n], "has_more": more, "next_page": str(n + 1) if more else None}
        )

    pipeline, db = scripted_pipeline(tmp_path, "back_again")
    seen: list[tuple[Any, ...]] = []
    with ScriptedApi(route, project=None) as api:
        retry = RetryPolicy(max_attempts=2, sleep=lambda seconds: None)
        for copies in runs:
            served[:] = copies
            stats = AdminCounts()
            source = openai_organization(admin_key=ADMIN, base_url=api.base_url, first_day=d1, retry=retry, stats=stats)
            pipeline.run(source)
            usage = stored(db, "SELECT day, input_tokens FROM books.usage_daily ORDER BY day")
            costs = stored(db, "SELECT day, amount_usd FROM books.costs_daily ORDER BY day")
            seen.append((usage, costs, stats.usage_rows, stats.cost_rows))
    assert seen == [
        ([(d1, 100), (d2, 7)], [(d1, 1.0), (d2, 0.07)], 2, 2),
        ([(d2, 7)], [(d2, 0.07)], 1, 1),  # d1 read again, empty: its rows are gone
        ([(d2, 7)], [(d2, 0.07)], 1, 1),  # served with results, then empty: the copy read last
        ([(d1, 300), (d2, 7)], [(d1, 3.0), (d2, 0.07)], 2, 2),  # and back with other results
    ]
    read = stored(db, "SELECT endpoint, day, results FROM books.admin_days_read ORDER BY ALL")
    assert read == [("costs", d1, 1), ("costs", d2, 1), ("usage/completions", d1, 1), ("usage/completions", d2, 1)]
    for table in ("usage_daily", "costs_daily"):
        assert stored(db, f"SELECT count(*) FROM books.{table} WHERE _empty_day IS NOT NULL") == [(0,)]
