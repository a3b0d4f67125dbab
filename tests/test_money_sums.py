"""Every amount a report adds up is the correctly rounded sum of its terms, whatever order DuckDB meets them in.

A plain `sum` of doubles drops what falls below the running total's precision, and over millions of rows on several
threads its last digits change from run to run (the cost per job over 50M requests differed at the 8th decimal between
two runs of the same query). The reports show amounts to 9 decimals, so they add with `fsum` (compensated)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from .support.analysis import load_batches
from .support.assertions import analysed
from .support.fake_api import make_batch

BIG, TINY = "big-llm", "tiny-llm"
PRICES = f"""
[[prices]]
model = "{BIG}"
input = 1000
output = 1000

[[prices]]
model = "{TINY}"
input = 0.0001
output = 0.0001
"""
TINY_BATCHES = 5000


def _usage(tokens: int) -> dict[str, object]:
    return {
        "input_tokens": tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens,
    }


@pytest.fixture(scope="module")
def money(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One batch of $1,000,000 (the newest, so loaded and scanned first), then 5,000 of $5e-11 each: each tiny
    amount is below half the precision of a double near a million, so a plain sum that meets the big one first keeps
    none of them (2.5e-7 lost, visible at 9 decimals)."""
    from .support.analysis import dlt_dirs

    root = tmp_path_factory.mktemp("money")
    prices = root / "prices.toml"
    prices.write_text(PRICES)
    batches = [make_batch(TINY_BATCHES + 1, model=BIG, usage=_usage(2_000_000_000))]
    batches += [make_batch(n, model=TINY, usage=_usage(1)) for n in range(TINY_BATCHES, 0, -1)]
    db = str(root / "money.duckdb")
    with dlt_dirs(root):
        load_batches(db, batches)
    return db, str(prices)


def _exact(values: list[float]) -> float:
    return round(math.fsum(values), 9)


def test_every_total_of_the_reports_keeps_the_smallest_amounts(money: tuple[str, str]) -> None:
    db, prices = money
    jobs = analysed(db, prices, "SELECT cost_usd, sync_cost_usd FROM openai_batches.batch_jobs")
    assert len(jobs) == TINY_BATCHES + 1
    costs = [j["cost_usd"] for j in jobs]
    assert max(costs) == 1_000_000.0 and min(costs) == pytest.approx(5e-11)
    want = _exact(costs)
    assert want == pytest.approx(1_000_000.00000025, abs=1e-9)
    root = Path(__file__).resolve().parents[1] / "queries"
    summary = analysed(db, prices, (root / "01_cost_summary.sql").read_text())[0]
    assert summary["cost_usd"] == want
    assert summary["sync_cost_usd"] == _exact([j["sync_cost_usd"] for j in jobs])
    assert summary["batch_savings_usd"] == _exact([j["sync_cost_usd"] - j["cost_usd"] for j in jobs])
    for name in ("04_cost_by_project.sql", "24_cost_by_provider.sql"):
        rows = analysed(db, prices, (root / name).read_text())
        assert [r["cost_usd"] for r in rows if r["cost_usd"] is not None] == [want], name
