"""Anthropic batches in the analysis: their prices, costs, `batch_jobs` rows and every report across providers.

The database holds OpenAI batches loaded through the real loader and Anthropic batches with their requests as
DESIGN18 specifies the Anthropic loader writes them (tests/support/anthropic_rows.py). Expected costs are an
independent computation: Decimal, from the result lines written here and genai-prices' own calculator, with
Anthropic's 50% where genai-prices has no batch price."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.analysis import refresh_analysis
from openai_batches.analysis.prices import GENAI_PRICES_BATCH, GENAI_PRICES_STANDARD, genai_price_rows
from openai_batches.analysis.settings import ANTHROPIC_BATCH_FACTOR, QUERIES_DIR
from openai_batches.analysis.views import JOB_COLUMNS
from openai_batches.cli import main as cli

from .support.analysis import dlt_dirs, load_batches
from .support.anthropic_rows import Batch, Request, Usage, write_anthropic
from .support.fake_api import make_batch

VARIANT_START = datetime(2026, 10, 14, tzinfo=UTC)  # genai-prices 0.2.3's Anthropic batch prices start here
HAIKU = "claude-haiku-4-5-20251001"  # batch price variant from 2026-10-14; not tiered
PRIVATE = "claude-private-7"  # no source knows it


def cached_usage(i: int) -> Usage:
    """Every kind of input: uncached, cache reads, 5-minute and 1-hour cache writes."""
    return Usage(
        input_tokens=1000 + 37 * i,
        output_tokens=400 + 11 * i,
        cache_read=5000 + i,
        cache_write_5m=2000,
        cache_write_1h=700,
    )


def requests(prefix: str, model: str, n: int = 3) -> list[Request]:
    return [Request(f"{prefix}-{i}", model=model, usage=cached_usage(i)) for i in range(n)]


BATCHES: dict[str, Batch] = {
    b.id: b
    for b in (
        # one second on either side of the variant start: standard x 0.5, then genai-prices' batch price
        Batch("msgbatch_before", VARIANT_START - timedelta(seconds=1), requests=requests("before", HAIKU)),
        Batch("msgbatch_after", VARIANT_START, requests=requests("after", HAIKU)),
        # models genai-prices lists without a batch price: standard x 0.5 whenever they ran
        Batch(
            "msgbatch_opus41", VARIANT_START + timedelta(days=20), requests=requests("opus", "claude-opus-4-1-20250805")
        ),
        Batch(
            "msgbatch_sonnet40", VARIANT_START + timedelta(days=21), requests=requests("sonnet", "claude-sonnet-4-0")
        ),
        Batch(
            "msgbatch_haiku35",
            VARIANT_START + timedelta(days=22),
            requests=requests("h35", "claude-3-5-haiku-20241022"),
        ),
        # two models in one batch; errored, expired and cancelled requests cost nothing
        Batch(
            "msgbatch_mixed",
            VARIANT_START + timedelta(days=23),
            requests=[
                *requests("mix-a", HAIKU, 2),
                Request("mix-b-0", model="claude-opus-4-1-20250805", usage=Usage(3000, 800, cache_read=100)),
                Request("mix-err", result="errored", error_type="overloaded_error"),
                Request("mix-exp", result="expired"),
            ],
        ),
        Batch(
            "msgbatch_cancelled",
            VARIANT_START + timedelta(days=24),
            cancel_initiated_at=VARIANT_START + timedelta(days=24, minutes=5),
            requests=[*requests("c", HAIKU, 1), Request("c-x", result="canceled")],
        ),
        Batch(
            "msgbatch_expired",
            VARIANT_START + timedelta(days=25),
            ended_after=timedelta(hours=24),
            requests=[*requests("e", HAIKU, 1), Request("e-x", result="expired")],
        ),
        # unpriced, each with its reason
        Batch("msgbatch_private", VARIANT_START + timedelta(days=26), requests=requests("p", PRIVATE, 2)),
        Batch(
            "msgbatch_running",
            datetime(2026, 12, 6, tzinfo=UTC),
            processing_status="in_progress",
            requests=requests("r", HAIKU, 2),
            results_read=False,
        ),
        Batch("msgbatch_unread", VARIANT_START + timedelta(days=27), requests=requests("u", HAIKU), results_read=False),
        Batch(
            "msgbatch_gone",
            datetime(2026, 9, 1, tzinfo=UTC),
            requests=requests("g", HAIKU),
            results_read=False,
            results_gone=True,
        ),
    )
}
PRICED = [k for k in BATCHES if k not in ("msgbatch_private", "msgbatch_running", "msgbatch_unread", "msgbatch_gone")]


def independent_cost(batch: Batch) -> Decimal:
    """What Anthropic bills for the batch: each succeeded request at genai-prices' batch price where it has
    one at the batch's creation, else its standard price x 0.5 (Anthropic's documented batch discount)."""
    from genai_prices import Usage as GenaiUsage
    from genai_prices import calc_price

    total = Decimal(0)
    for r in batch.requests:
        if r.usage is None:
            continue
        u = r.usage
        usage = GenaiUsage(
            input_tokens=u.input_tokens + u.cache_read + u.cache_write_5m + u.cache_write_1h,
            cache_read_tokens=u.cache_read,
            cache_write_tokens=u.cache_write_5m + u.cache_write_1h,
            cache_write_1h_tokens=u.cache_write_1h,
            output_tokens=u.output_tokens,
        )
        at = batch.created_at
        standard = calc_price(usage, r.model, provider_id="anthropic", genai_request_timestamp=at).total_price
        batch_price = calc_price(
            usage, r.model, provider_id="anthropic", genai_request_timestamp=at, price_context={"processing": "batch"}
        ).total_price
        total += batch_price if batch_price != standard else standard * Decimal("0.5")
    return total


@dataclass
class Db:
    path: str
    root: Path


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    root = tmp_path_factory.mktemp("anthropic_costs")
    db = str(root / "both.duckdb")
    with dlt_dirs(root):
        load_batches(db, [make_batch(n, created=1_792_000_000) for n in range(1, 4)], project="proj_openai")
        write_anthropic(db, list(BATCHES.values()))
        refresh_analysis(db)
        yield Db(db, root)


def rows(db: str, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with duckdb.connect(db, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def jobs(db: str) -> dict[str, dict[str, Any]]:
    return {r["batch_id"]: r for r in rows(db, "SELECT * FROM openai_batches.batch_jobs")}


# ------------------------------------------------------------------------------------------------ costs
def test_anthropic_costs_equal_an_independent_computation_to_the_cent(both: Db) -> None:
    found = jobs(both.path)
    for batch_id in PRICED:
        expected = independent_cost(BATCHES[batch_id])
        row = found[batch_id]
        assert row["provider"] == "anthropic" and row["priced"] is True, (batch_id, row["unpriced_reason"])
        assert round(Decimal(row["cost_usd"]), 2) == round(expected, 2), batch_id
        assert row["cost_usd"] == pytest.approx(float(expected), abs=1e-9), batch_id
    # The variant start is a price change: the same requests cost less one second later.
    before, after = found["msgbatch_before"]["cost_usd"], found["msgbatch_after"]["cost_usd"]
    assert before > 0 and after > 0


def test_a_hand_computation_from_anthropics_published_prices(both: Db) -> None:
    """claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 5-minute and $2 1-hour cache write, $5 output per
    million tokens; a batch pays half, before genai-prices' batch price (the same half) and after it."""
    for batch_id in ("msgbatch_before", "msgbatch_after"):
        by_hand = sum(
            (
                Decimal(r.usage.input_tokens) * Decimal("1")
                + Decimal(r.usage.cache_read) * Decimal("0.1")
                + Decimal(r.usage.cache_write_5m) * Decimal("1.25")
                + Decimal(r.usage.cache_write_1h) * Decimal("2")
                + Decimal(r.usage.output_tokens) * Decimal("5")
            )
            / Decimal(1_000_000)
            / 2
            for r in BATCHES[batch_id].requests
            if r.usage
        )
        assert jobs(both.path)[batch_id]["cost_usd"] == pytest.approx(float(by_hand), abs=1e-12)


def test_price_source_says_which_price_priced_each_batch(both: Db) -> None:
    found = jobs(both.path)
    assert found["msgbatch_before"]["price_source"] == GENAI_PRICES_STANDARD
    assert found["msgbatch_after"]["price_source"] == GENAI_PRICES_BATCH
    for batch_id in ("msgbatch_opus41", "msgbatch_sonnet40", "msgbatch_haiku35"):
        assert found[batch_id]["price_source"] == GENAI_PRICES_STANDARD, batch_id
    # two models, two prices
    assert found["msgbatch_mixed"]["price_source"] == f"{GENAI_PRICES_BATCH}, {GENAI_PRICES_STANDARD}"
    assert found["msgbatch_mixed"]["model"] == f"{HAIKU}, claude-opus-4-1-20250805"  # sorted
    assert GENAI_PRICES_STANDARD.endswith(f"x {ANTHROPIC_BATCH_FACTOR:g}")
    # The fallback is a caveat of each batch it priced; a batch price variant is not.
    caveats = rows(both.path, "SELECT id, caveat FROM openai_batches.caveats WHERE id LIKE 'msgbatch_%'")
    fallback = {r["id"] for r in caveats if "standard price x 0.5" in r["caveat"]}
    assert fallback == {"msgbatch_before", "msgbatch_opus41", "msgbatch_sonnet40", "msgbatch_haiku35", "msgbatch_mixed"}


def test_model_prices_has_the_anthropic_periods(both: Db) -> None:
    prices = rows(
        both.path,
        "SELECT * FROM openai_batches.model_prices WHERE provider = 'anthropic' AND model = ? "
        "ORDER BY processing NULLS FIRST, valid_from NULLS FIRST",
        [HAIKU],
    )
    assert [(p["processing"], p["valid_from"], p["batch_factor"], p["source"]) for p in prices] == [
        (None, None, 0.5, GENAI_PRICES_STANDARD),
        ("batch", VARIANT_START, 1.0, GENAI_PRICES_BATCH),
    ]
    standard, batch = prices
    assert (standard["cache_write_usd_per_mtok"], standard["cache_write_1h_usd_per_mtok"]) == (1.25, 2.0)
    assert (batch["input_usd_per_mtok"], batch["cache_write_usd_per_mtok"], batch["output_usd_per_mtok"]) == (
        0.5,
        0.625,
        2.5,
    )
    openai = rows(both.path, "SELECT DISTINCT provider, cache_write_usd_per_mtok FROM openai_batches.model_prices")
    assert {"provider": "openai", "cache_write_usd_per_mtok": None} in openai
    assert genai_price_rows(["claude-opus-4-1-20250805"], "anthropic")[0].processing is None  # no variant


def test_requests_that_did_not_succeed_cost_nothing(both: Db) -> None:
    costs = {
        r["custom_id"]: r
        for r in rows(
            both.path, "SELECT * FROM openai_batches.anthropic_request_costs WHERE batch_id = 'msgbatch_mixed'"
        )
    }
    for custom_id in ("mix-err", "mix-exp"):
        assert costs[custom_id]["cost_usd"] == 0 and costs[custom_id]["priced"] is True, custom_id
    job = jobs(both.path)["msgbatch_mixed"]
    assert (job["requests_total"], job["requests_succeeded"], job["requests_failed"], job["requests_expired"]) == (
        5,
        3,
        1,
        1,
    )
    assert job["status"] == "expired"


def test_unpriced_batches_have_no_cost_and_a_reason_the_caveats_name(both: Db) -> None:
    found = jobs(both.path)
    reasons = {
        "msgbatch_private": "no price for model",
        "msgbatch_running": "still running: no results yet",
        "msgbatch_unread": "results not read yet",
        "msgbatch_gone": "results gone before they were read",
    }
    for batch_id, reason in reasons.items():
        assert found[batch_id]["priced"] is False and found[batch_id]["cost_usd"] is None, batch_id
        assert found[batch_id]["unpriced_reason"] == reason, batch_id
    caveats = {(r["id"], r["caveat"]) for r in rows(both.path, "SELECT id, caveat FROM openai_batches.caveats")}
    for batch_id, reason in reasons.items():
        assert (batch_id, f"Anthropic batch unpriced: {reason}") in caveats


def test_status_of_anthropic_batches_in_openais_words(both: Db) -> None:
    found = jobs(both.path)
    assert {k: found[k]["status"] for k in ("msgbatch_after", "msgbatch_cancelled", "msgbatch_expired")} == {
        "msgbatch_after": "completed",
        "msgbatch_cancelled": "cancelled",
        "msgbatch_expired": "expired",
    }
    running = found["msgbatch_running"]
    assert running["status"] == "in_progress" and running["is_terminal"] is False and running["ended_at"] is None
    done = found["msgbatch_after"]
    assert done["is_terminal"] is True and done["turnaround_s"] == 1800.0
    assert done["cache_write_tokens"] == sum(
        r.usage.cache_write_5m + r.usage.cache_write_1h for r in BATCHES["msgbatch_after"].requests if r.usage
    )


def test_batch_jobs_has_the_designed_columns_and_every_batch_of_both_providers(both: Db) -> None:
    designed = [
        "provider",
        "project",
        "batch_id",
        "status",
        "created_at",
        "ended_at",
        "model",
        "requests_total",
        "requests_succeeded",
        "requests_failed",
        "requests_expired",
        "requests_cancelled",
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "cost_usd",
        "priced",
        "unpriced_reason",
        "price_source",
        "gone",
        "is_terminal",
        "turnaround_s",
    ]
    assert list(JOB_COLUMNS[: len(designed)]) == designed
    found = jobs(both.path)
    assert {r["provider"] for r in found.values()} == {"openai", "anthropic"}
    assert {k for k, r in found.items() if r["provider"] == "anthropic"} == set(BATCHES)
    openai = rows(both.path, "SELECT id, cost_usd FROM openai_batches.batch_costs")
    assert len(openai) == 3 and all(found[r["id"]]["cost_usd"] == r["cost_usd"] for r in openai)


# ------------------------------------------------------------------------------------------------ reports
def report_json(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> dict[str, list[dict[str, Any]]]:
    assert cli.main(["report", "--db", db, "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_reports_read_across_providers(both: Db, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(capsys, both.path)
    by_provider = {r["provider"]: r for r in doc["cost_by_provider"]}
    assert set(by_provider) == {"openai", "anthropic"}
    anthropic = by_provider["anthropic"]
    expected = sum(independent_cost(BATCHES[k]) for k in PRICED)
    assert round(Decimal(str(anthropic["cost_usd"])), 2) == round(expected, 2)
    assert anthropic["batches"] == len(BATCHES) and anthropic["unpriced_batches"] == 4
    summary = doc["cost_summary"][0]
    assert summary["batches"] == len(BATCHES) + 3
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in by_provider.values()), abs=1e-8)
    unpriced = {(r["reason"], r["model"]) for r in doc["unpriced_usage"]}
    assert ("no price for model", PRIVATE) in unpriced and ("results not read yet", "(not reported)") in unpriced
    turnaround = [r for r in doc["turnaround_percentiles"] if r["provider"] == "anthropic"]
    assert {(r["model"], r["endpoint"]) for r in turnaround} >= {(HAIKU, "/v1/messages")}
    assert {r["provider"] for r in doc["throughput_daily"]} == {"openai", "anthropic"}
    assert {r["provider"] for r in doc["turnaround_histogram"]} == {"openai", "anthropic"}
    assert [r["id"] for r in doc["open_batches"]] == ["msgbatch_running"]
    assert any(r["id"].startswith("msgbatch_") for r in doc["top_expensive_batches"])
    # The request ledger's reports hold Anthropic's requests too, priced by their own rule.
    outcomes = {(r["model"], r["endpoint"]): r for r in doc["request_outcomes"]}
    assert outcomes[(f"{HAIKU}, claude-opus-4-1-20250805", "/v1/messages")]["failed"] == 1
    prefixes = {r["custom_id_prefix"]: r for r in doc["cost_by_custom_id_prefix"]}
    expected_before = independent_cost(BATCHES["msgbatch_before"])
    assert prefixes["before"]["cost_usd"] == pytest.approx(float(expected_before), abs=1e-9)
    assert ("overloaded_error", "failed") in {(r["error_code"], r["outcome"]) for r in doc["failure_reasons"]}


def test_html_page_and_every_query_file_with_both_providers(
    both: Db, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "page.html"
    assert cli.main(["report", "--db", both.path, "--html", str(page)]) == 0, capsys.readouterr().err
    text = page.read_text()
    assert '<h2 id="cost_by_provider">' in text
    assert '<div class="card">anthropic (12 batches)<b>$' in text  # a cost card per provider
    with duckdb.connect(both.path, read_only=True) as con:  # the stored views, as in the DuckDB CLI
        for path in sorted(QUERIES_DIR.glob("*.sql")):
            con.execute(path.read_text()).fetchall()


def test_price_file_covers_anthropic_models(both: Db, tmp_path: Path) -> None:
    db = str(tmp_path / "override.duckdb")
    shutil.copy(both.path, db)
    prices = tmp_path / "prices.toml"
    prices.write_text('[[prices]]\nmodel = "claude-private-*"\ninput = 2.0\ncached_input = 0.2\noutput = 10.0\n')
    refresh_analysis(db, str(prices))
    # Without cache-write prices, a batch with cache writes stays unpriced, and says why.
    assert jobs(db)["msgbatch_private"]["unpriced_reason"] == "no cache write price for model"
    prices.write_text(
        '[[prices]]\nmodel = "claude-private-*"\ninput = 2.0\ncached_input = 0.2\noutput = 10.0\n'
        "cache_write = 2.5\ncache_write_1h = 4.0\n"
    )
    refresh_analysis(db, str(prices))
    row = jobs(db)["msgbatch_private"]
    expected = sum(
        (
            Decimal(u.input_tokens) * Decimal("2.0")
            + Decimal(u.cache_read) * Decimal("0.2")
            + Decimal(u.cache_write_5m) * Decimal("2.5")
            + Decimal(u.cache_write_1h) * Decimal("4.0")
            + Decimal(u.output_tokens) * Decimal("10.0")
        )
        / Decimal(1_000_000)
        * Decimal("0.5")  # the price file's prices are standard ones; Anthropic's discount by default
        for u in (r.usage for r in BATCHES["msgbatch_private"].requests)
        if u
    )
    assert row["priced"] is True and row["cost_usd"] == pytest.approx(float(expected), abs=1e-12)
    assert row["price_source"].startswith("override")


def test_an_openai_only_database_has_no_anthropic_rows(tmp_path: Path) -> None:
    db = str(tmp_path / "openai.duckdb")
    load_batches(db, [make_batch(n) for n in range(1, 4)])
    refresh_analysis(db)
    found = jobs(db)
    assert len(found) == 3 and {r["provider"] for r in found.values()} == {"openai"}
    assert rows(db, "SELECT count(*) AS n FROM openai_batches.anthropic_batch_costs") == [{"n": 0}]
    with duckdb.connect(db, read_only=True) as con:
        (by_provider,) = con.execute((QUERIES_DIR / "24_cost_by_provider.sql").read_text()).fetchall()
        summary = con.execute((QUERIES_DIR / "01_cost_summary.sql").read_text()).fetchone()
    assert by_provider[0] == "openai" and summary is not None and by_provider[8] == summary[3]


def test_without_anthropic_batches_the_views_are_empty_relations_of_the_same_columns(both: Db) -> None:
    """An OpenAI-only database binds the Anthropic views as typed empty relations (no cost in any report):
    their columns must be the views' own, in order."""
    from openai_batches.analysis.anthropic_views import BATCH_COST_COLUMNS, REQUEST_COST_COLUMNS

    for view, declared in (
        ("anthropic_request_costs", REQUEST_COST_COLUMNS),
        ("anthropic_batch_costs", BATCH_COST_COLUMNS),
    ):
        built = rows(both.path, f"DESCRIBE openai_batches.{view}")
        assert [r["column_name"] for r in built] == [name for name, _ in declared], view


def test_a_database_with_only_anthropic_batches_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No OpenAI batch at all: the report still covers the Anthropic ones (its session has empty OpenAI tables)."""
    db = str(tmp_path / "anthropic.duckdb")
    write_anthropic(db, [BATCHES["msgbatch_after"], BATCHES["msgbatch_private"]])
    doc = report_json(capsys, db)
    assert [(r["provider"], r["batches"]) for r in doc["cost_by_provider"]] == [("anthropic", 2)]
    assert doc["cost_summary"][0]["cost_usd"] == pytest.approx(float(independent_cost(BATCHES["msgbatch_after"])))
    assert doc["cost_summary"][0]["unpriced_batches"] == 1


def test_since_scopes_anthropic_batches(both: Db, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(capsys, both.path, "--since", "2026-11-08")  # from msgbatch_expired (day 25) on
    anthropic = {r["provider"]: r for r in doc["cost_by_provider"]}["anthropic"]
    later = [b for b in BATCHES.values() if b.created_at >= datetime(2026, 11, 8, tzinfo=UTC)]
    assert anthropic["batches"] == len(later) == 4


def test_the_stored_analysis_changes_with_the_anthropic_table() -> None:
    """The fingerprint of what is stored covers the Anthropic SQL: a database that gains `anthropic_batches`
    gets its views rebuilt (the empty stand-ins replaced)."""
    from openai_batches.analysis.views import fingerprint

    assert fingerprint([], False) != fingerprint([], False, provider_tables=frozenset({"anthropic_batches"}))


def test_odd_anthropic_values_are_unpriced_with_the_reason_never_guessed(tmp_path: Path) -> None:
    """Usage the API cannot have meant, or a batch without a usable creation time: no cost, the reason, and
    the request's tokens unknown (NULL), as on the OpenAI side."""
    db = str(tmp_path / "odd.duckdb")
    negative = Batch("msgbatch_negative", VARIANT_START, requests=[Request("n-0", model=HAIKU, usage=Usage(100, -5))])
    too_many_writes = Batch(
        "msgbatch_writes",
        VARIANT_START,
        requests=[Request("w-0", model=HAIKU, usage=Usage(100, 5, cache_write_5m=10, cache_write_1h=-20))],
    )
    timeless = Batch("msgbatch_timeless", datetime(1970, 1, 1, tzinfo=UTC), requests=requests("t", HAIKU, 1))
    load_batches(db, [make_batch(1)])
    # reads and writes of 2^62 each: their sum overflows BIGINT (all input as stored: 100)
    huge = Usage(-(2**63) + 100, 5, cache_read=2**62, cache_write_5m=2**62)
    overflowing = Batch("msgbatch_overflow", VARIANT_START, requests=[Request("o-0", model=HAIKU, usage=huge)])
    write_anthropic(db, [negative, too_many_writes, timeless, overflowing])
    refresh_analysis(db)
    found = jobs(db)
    odd = ("msgbatch_negative", "msgbatch_writes", "msgbatch_timeless", "msgbatch_overflow")
    assert {k: found[k]["unpriced_reason"] for k in odd} == {
        "msgbatch_negative": "inconsistent usage",
        "msgbatch_writes": "inconsistent usage",
        "msgbatch_timeless": "no usable creation time",
        "msgbatch_overflow": "inconsistent usage",
    }
    assert all(found[k]["cost_usd"] is None for k in odd)
    assert found["msgbatch_negative"]["output_tokens"] is None and found["msgbatch_timeless"]["created_at"] is None
    caveats = {(r["id"], r["caveat"]) for r in rows(db, "SELECT id, caveat FROM openai_batches.caveats")}
    assert ("msgbatch_timeless", "no usable creation time (missing, or impossible such as milliseconds)") in caveats
