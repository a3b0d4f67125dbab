"""Prices, cost and timing views, and every file in queries/, on a database loaded through the real
pipeline from the simulator. Expected costs are computed here by hand from OpenAI's published prices."""

from __future__ import annotations

import math
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.analysis import refresh_analysis
from openai_batches.analysis.prices import PricesError, genai_price_rows, load_overrides, resolve_prices
from openai_batches.analysis.queries import load_queries, run_queries, set_since
from openai_batches.analysis.session import NoBatchesError
from openai_batches.analysis.settings import QUERIES_DIR
from openai_batches.analysis.views import VIEW_NAMES
from openai_batches.load.runner import run_load
from openai_batches.simulator import USAGE_CUTOFF, SimClock, SimulatedOrg, SimulatorServer

from .support.workload import KEY_A, KEY_B, NOW, PROJECT_A, PROJECT_B, config_for

DAY = 86_400

# OpenAI's standard (synchronous) prices, USD per 1M tokens: input, cached input, output.
KNOWN_PRICES: dict[str, tuple[float, float | None, float | None]] = {
    "gpt-4o-mini-2024-07-18": (0.15, 0.075, 0.60),
    "gpt-4o-2024-08-06": (2.50, 1.25, 10.00),
    "gpt-4.1-2025-04-14": (2.00, 0.50, 8.00),
    "gpt-4.1-mini-2025-04-14": (0.40, 0.10, 1.60),
    "gpt-5-mini-2025-08-07": (0.25, 0.025, 2.00),
    "o4-mini-2025-04-16": (1.10, 0.275, 4.40),
    "text-embedding-3-small": (0.02, None, None),
}
# A model no price source knows (a private deployment): unpriced until the price file names it.
PRIVATE = "acme-llm-7b-2026-01-01"


def by_hand(batch: dict[str, Any], prices: tuple[float, float | None, float | None], factor: float = 0.5) -> float:
    """Batch cost: half the standard price; cached input at the cached rate; reasoning is part of output."""
    usage = batch["usage"]
    inp, out = usage["input_tokens"], usage["output_tokens"]
    cached = usage["input_tokens_details"]["cached_tokens"]
    p_in, p_cached, p_out = prices
    sync = ((inp - cached) * p_in + cached * (p_in if p_cached is None else p_cached) + out * (p_out or 0.0)) / 1e6
    return factor * sync


@dataclass
class Loaded:
    db: str
    root: Path
    batches: dict[str, dict[str, Any]]  # every batch as the simulator serves it, by id
    made: dict[str, str]  # label -> id of the batches created for these tests


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """One load for the whole module: history on both sides of the usage cutoff, plus known batches."""
    root = tmp_path_factory.mktemp("analysis")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_BATCHES_DB", "OPENAI_BATCHES_PRICES"):
            mp.delenv(name, raising=False)
        mp.setenv("DLT_DATA_DIR", str(root / "dlt"))
        mp.setenv("DLT_PROJECT_DIR", str(root / "project"))
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        (root / "project").mkdir()
        org = SimulatedOrg(projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B}, clock=SimClock(start=NOW), seed=11)
        org.generate_history(300, days=500)
        three_days_ago = NOW - 3 * DAY
        quick = {"validating_seconds": 5, "processing_seconds": 600, "finalizing_seconds": 30}
        made: dict[str, str] = {}
        for i in range(4):  # several, so that prompt caching shows up in at least one
            made[f"mini_{i}"] = org.create_batch(
                project=PROJECT_A, created_at=three_days_ago + i, outcome="completed", model="gpt-4o-mini-2024-07-18"
            )
        for model in ("gpt-4o-2024-08-06", "gpt-5-mini-2025-08-07", "o4-mini-2025-04-16", "text-embedding-3-small"):
            made[model] = org.create_batch(
                project=PROJECT_A, created_at=three_days_ago, outcome="completed", model=model, **quick
            )
        made["timed"] = org.create_batch(
            project=PROJECT_B, created_at=three_days_ago, outcome="completed", model="gpt-4.1-2025-04-14", **quick
        )
        made["failed"] = org.create_batch(
            project=PROJECT_B, created_at=three_days_ago, outcome="failed", model="gpt-4.1-mini-2025-04-14"
        )
        made["expired"] = org.create_batch(
            project=PROJECT_B, created_at=three_days_ago, outcome="expired", model="gpt-4.1-2025-04-14"
        )
        made["all_failed"] = org.create_batch(
            project=PROJECT_B, created_at=three_days_ago, outcome="all_failed", model="gpt-4o-mini-2024-07-18"
        )
        made["pre_usage"] = org.create_batch(
            project=PROJECT_A, created_at=USAGE_CUTOFF - 10 * DAY, outcome="completed", model="gpt-4o-2024-08-06"
        )
        made["moderation"] = org.create_batch(
            project=PROJECT_A, created_at=three_days_ago, outcome="completed", model="omni-moderation-latest"
        )
        made["private"] = org.create_batch(
            project=PROJECT_A, created_at=three_days_ago, outcome="completed", model=PRIVATE, **quick
        )
        made["private_late"] = org.create_batch(
            project=PROJECT_A, created_at=NOW - 2 * DAY, outcome="completed", model=PRIVATE, **quick
        )
        made["open"] = org.create_batch(
            project=PROJECT_A, created_at=NOW - 3600, model="gpt-4o-mini-2024-07-18", processing_seconds=20_000
        )
        db = str(root / "analysis.duckdb")
        with SimulatorServer(org) as server:
            # With the request ledger, so that queries 19-23 have rows to show.
            result = run_load(db, config_for(server.base_url, KEY_A, KEY_B, requests=True))
        assert result.ok, result.error or [o.error for o in result.outcomes]
        refresh_analysis(db)
        batches = {b["id"]: b for p in (PROJECT_A, PROJECT_B) for b in org.batches(p)}
        yield Loaded(db=db, root=root, batches=batches, made=made)


def costs(db: str) -> dict[str, dict[str, Any]]:
    with duckdb.connect(db, read_only=True) as con:
        cur = con.execute("SELECT * FROM openai_batches.batch_costs")
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def copy_db(loaded: Loaded, name: str) -> str:
    target = str(loaded.root / f"{name}.duckdb")
    shutil.copy(loaded.db, target)
    return target


# ------------------------------------------------------------------------------------------------ costs
def test_cost_per_batch_matches_the_hand_computation_to_the_cent(loaded: Loaded) -> None:
    rows = costs(loaded.db)
    checked = 0
    for label in ("mini_0", "mini_1", "mini_2", "mini_3", "gpt-4o-2024-08-06", "gpt-5-mini-2025-08-07"):
        batch = loaded.batches[loaded.made[label]]
        expected = by_hand(batch, KNOWN_PRICES[batch["model"]])
        row = rows[batch["id"]]
        assert row["priced"] is True and row["unpriced_reason"] is None
        assert round(row["cost_usd"], 2) == round(expected, 2), label
        assert row["cost_usd"] == pytest.approx(expected, abs=1e-9), label
        assert row["sync_cost_usd"] == pytest.approx(2 * expected, abs=1e-9)
        checked += 1
    assert checked == 6
    # The hand-made set exercises prompt caching and reasoning tokens.
    made = [loaded.batches[loaded.made[k]] for k in ("mini_0", "mini_1", "mini_2", "mini_3")]
    assert any(b["usage"]["input_tokens_details"]["cached_tokens"] > 0 for b in made)
    for model in ("gpt-5-mini-2025-08-07", "o4-mini-2025-04-16"):
        batch = loaded.batches[loaded.made[model]]
        assert batch["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
        assert rows[batch["id"]]["cost_usd"] == pytest.approx(by_hand(batch, KNOWN_PRICES[model]), abs=1e-9)


def test_cached_input_and_savings(loaded: Loaded) -> None:
    rows = costs(loaded.db)
    batch = next(
        loaded.batches[loaded.made[f"mini_{i}"]]
        for i in range(4)
        if loaded.batches[loaded.made[f"mini_{i}"]]["usage"]["input_tokens_details"]["cached_tokens"] > 0
    )
    row = rows[batch["id"]]
    cached = batch["usage"]["input_tokens_details"]["cached_tokens"]
    # Caching saved (input - cached price) on the cached tokens, at the batch discount.
    assert row["cache_savings_usd"] == pytest.approx(cached * (0.15 - 0.075) / 1e6 * 0.5, abs=1e-12)
    assert row["batch_savings_usd"] == pytest.approx(row["sync_cost_usd"] - row["cost_usd"], abs=1e-12)
    assert row["cached_input_tokens"] == cached
    assert row["uncached_input_tokens"] == batch["usage"]["input_tokens"] - cached


def test_embeddings_failed_and_expired_batches(loaded: Loaded) -> None:
    rows = costs(loaded.db)
    embedding = loaded.batches[loaded.made["text-embedding-3-small"]]
    assert embedding["usage"]["output_tokens"] == 0
    assert rows[embedding["id"]]["cost_usd"] == pytest.approx(embedding["usage"]["input_tokens"] * 0.02 / 1e6 / 2)
    # A batch that failed validation is billed nothing: a known $0, not an unknown.
    failed = loaded.batches[loaded.made["failed"]]
    assert failed["status"] == "failed" and failed["usage"]["input_tokens"] == 0
    assert rows[failed["id"]]["priced"] is True and rows[failed["id"]]["cost_usd"] == 0
    # An expired batch is billed for the work it did.
    expired = loaded.batches[loaded.made["expired"]]
    assert expired["status"] == "expired"
    assert rows[expired["id"]]["cost_usd"] == pytest.approx(by_hand(expired, KNOWN_PRICES["gpt-4.1-2025-04-14"]))


def test_unpriced_batches_have_null_cost_and_a_reason(loaded: Loaded) -> None:
    rows = costs(loaded.db)
    expectations = {
        "pre_usage": "no usage reported",
        "moderation": "no price for model",
        "private": "no price for model",
    }
    for label, reason in expectations.items():
        row = rows[loaded.made[label]]
        assert row["priced"] is False, label
        assert row["cost_usd"] is None and row["sync_cost_usd"] is None, label
        assert row["unpriced_reason"] == reason
    assert "usage" not in loaded.batches[loaded.made["pre_usage"]]
    # Never dropped: every batch has a row, and no unpriced row carries a number.
    with duckdb.connect(loaded.db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM openai_batches.batch_costs").fetchone() == (len(loaded.batches),)
        assert con.execute(
            "SELECT count(*) FROM openai_batches.batch_costs WHERE priced = (cost_usd IS NULL)"
        ).fetchone() == (0,)


def test_every_priced_batch_agrees_with_genai_prices_own_calculation(loaded: Loaded) -> None:
    """An independent path: genai-prices' calculator, halved, for every priced batch in the history."""
    from genai_prices import Usage, calc_price

    rows = [r for r in costs(loaded.db).values() if r["priced"]]
    assert len(rows) > 100
    for row in rows:
        price = calc_price(
            Usage(
                input_tokens=row["input_tokens"],
                cache_read_tokens=row["cached_input_tokens"],
                output_tokens=row["output_tokens"],
            ),
            row["model"],
            provider_id="openai",
            genai_request_timestamp=row["created_at"],
        )
        assert row["cost_usd"] == pytest.approx(float(price.total_price) / 2, abs=1e-9), row["id"]


# ------------------------------------------------------------------------------------------------ prices
def test_model_prices_holds_the_matched_rows_for_the_models_present(loaded: Loaded) -> None:
    with duckdb.connect(loaded.db, read_only=True) as con:
        rows = con.execute(
            "SELECT model, input_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok, batch_factor, "
            "source, source_version, matched_model FROM openai_batches.model_prices"
        ).fetchall()
        present = {r[0] for r in con.execute("SELECT DISTINCT model FROM openai_batches.batches").fetchall()}
    by_model = {r[0]: r for r in rows}
    assert set(by_model) <= present
    for model, (p_in, p_cached, p_out) in KNOWN_PRICES.items():
        assert by_model[model][1:5] == (p_in, p_cached, p_out, 0.5), model
        assert by_model[model][5] == "genai-prices" and by_model[model][6]
    assert by_model["gpt-4o-mini-2024-07-18"][7] == "gpt-4o-mini"  # a snapshot matched to its model
    assert PRIVATE not in by_model and "omni-moderation-latest" not in by_model


def test_price_history_periods_from_genai_prices() -> None:
    # o3's price fell on 2025-06-10; the periods must switch exactly there.
    rows = genai_price_rows(["o3-2025-04-16"])
    switch = datetime(2025, 6, 10, tzinfo=UTC)
    assert [(r.valid_from, r.valid_to, r.input_usd_per_mtok, r.output_usd_per_mtok) for r in rows] == [
        (None, switch, 10.0, 40.0),
        (switch, None, 2.0, 8.0),
    ]
    assert genai_price_rows(["no-such-model-xyz"]) == []


def test_prices_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access while resolving prices")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    rows = resolve_prices(["gpt-4o-2024-08-06", "gpt-5-mini-2025-08-07"])
    assert {r.model for r in rows} == {"gpt-4o-2024-08-06", "gpt-5-mini-2025-08-07"}


def test_override_file_wins_and_keeps_a_price_history(loaded: Loaded, tmp_path: Path) -> None:
    db = copy_db(loaded, "override")
    prices = tmp_path / "prices.toml"
    prices.write_text(
        """
[[prices]]
model = "acme-llm-*"
input = 0.30
cached_input = 0.15
output = 1.20

[[prices]]
model = "acme-llm-*"
valid_from = 2026-10-30
input = 0.60
output = 2.40

[[prices]]
model = "gpt-4o-2024-08-06"
input = 5.0
output = 20.0
batch_factor = 1.0
note = "private deployment"

[[prices]]
model = "omni-moderation-*"
input = 0
output = 0
"""
    )
    refresh_analysis(db, str(prices))
    rows = costs(db)
    early, late = loaded.batches[loaded.made["private"]], loaded.batches[loaded.made["private_late"]]
    assert rows[early["id"]]["cost_usd"] == pytest.approx(by_hand(early, (0.30, 0.15, 1.20)), abs=1e-12)
    # The second period lists no cached price: cached input pays the input price.
    assert rows[late["id"]]["cost_usd"] == pytest.approx(by_hand(late, (0.60, None, 2.40)), abs=1e-12)
    assert rows[late["id"]]["price_source"].startswith("override")
    gpt4o = loaded.batches[loaded.made["gpt-4o-2024-08-06"]]
    assert rows[gpt4o["id"]]["cost_usd"] == pytest.approx(by_hand(gpt4o, (5.0, None, 20.0), factor=1.0))
    moderation = rows[loaded.made["moderation"]]
    assert moderation["priced"] is True and moderation["cost_usd"] == 0
    # The pre-usage batch stays unpriced whatever the prices say.
    assert rows[loaded.made["pre_usage"]]["priced"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[prices]]\nmodel = 'x'\n", "`input` is required"),
        ("[[prices]]\nmodel = 'x'\ninput = 1\ncached = 0.5\n", "unknown key(s) cached"),
        ("[[prices]]\nmodel = 'x'\ninput = -1\n", "must be a finite number >= 0"),
        ("[[prices]]\nmodel = 'x'\ninput = 1\nvalid_from = 'soon'\n", "valid_from"),
        ("[[prices]]\nmodel = 'x'\ninput = 1\n[[prices]]\nmodel = 'x'\ninput = 2\n", "a second price"),
        ("[prices\n", "not valid TOML"),
        ("[models]\n", "unknown top-level"),
    ],
)
def test_bad_price_files_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(PricesError) as info:
        load_overrides(path)
    assert message in str(info.value)


def test_the_example_price_file_is_valid_once_uncommented(tmp_path: Path) -> None:
    import re

    example = Path(__file__).resolve().parents[1] / ".dlt" / "prices.toml.example"
    assert load_overrides(example).entries == ()  # everything in it is commented out
    lines = [
        line[2:] if re.match(r"^# (\[\[prices\]\]|\[azure\.deployments\]|[a-z_][a-z0-9_-]* = .*)$", line) else line
        for line in example.read_text().splitlines()
    ]
    uncommented = tmp_path / "prices.toml"
    uncommented.write_text("\n".join(lines))
    overrides = load_overrides(uncommented)
    assert len(overrides.entries) == 7
    assert overrides.azure_deployments == (("my-gpt4o", "gpt-4o"), ("chat-prod", "gpt-4.1-mini"))


# ------------------------------------------------------------------------------------------------ timings
def test_timings_of_a_batch_with_a_known_schedule(loaded: Loaded) -> None:
    batch = loaded.batches[loaded.made["timed"]]
    with duckdb.connect(loaded.db, read_only=True) as con:
        row = con.execute(
            "SELECT queue_s, processing_s, finalizing_s, turnaround_s, within_window, is_terminal "
            "FROM openai_batches.batch_timings WHERE id = ?",
            [batch["id"]],
        ).fetchone()
    assert row == (5.0, 600.0, 30.0, 635.0, True, True)
    assert batch["completed_at"] - batch["created_at"] == 635


def test_failure_rates_and_open_batches(loaded: Loaded) -> None:
    with duckdb.connect(loaded.db, read_only=True) as con:
        counts = con.execute(
            """SELECT count(*) FILTER (WHERE status IN ('completed','failed','expired','cancelled')),
                      count(*) FILTER (WHERE status = 'expired'), count(*) FILTER (WHERE status = 'failed')
               FROM openai_batches.batches"""
        ).fetchone()
        total = con.execute(
            "SELECT batches_finished, expired, failed_validation, expiry_rate, completed_all_requests_failed "
            "FROM openai_batches.failure_rates WHERE model = '(all)'"
        ).fetchone()
        all_failed = con.execute(
            "SELECT all_requests_failed FROM openai_batches.batch_timings WHERE id = ?", [loaded.made["all_failed"]]
        ).fetchone()
        open_row = con.execute(
            "SELECT status, open_for_s FROM openai_batches.open_batches WHERE id = ?", [loaded.made["open"]]
        ).fetchone()
    assert counts is not None and total is not None
    assert total[:3] == counts
    assert total[3] == pytest.approx(counts[1] / counts[0])
    assert total[4] >= 1 and all_failed == (True,)
    assert open_row is not None and open_row[0] == "in_progress" and open_row[1] >= 3600


# ------------------------------------------------------------------------------------------------ queries/
def test_every_query_file_has_a_header_and_runs_unchanged(loaded: Loaded) -> None:
    files = sorted(QUERIES_DIR.glob("*.sql"))
    assert len(files) >= 9
    with duckdb.connect(loaded.db, read_only=True) as con:  # a bare session, as in the DuckDB CLI
        for path in files:
            text = path.read_text()
            assert text.startswith("-- ") and len(text.splitlines()[0]) > 10, path.name
            cursor = con.execute(text)
            assert cursor.description, path.name
            cursor.fetchall()


def test_since_scopes_every_report(loaded: Loaded) -> None:
    since = datetime.fromtimestamp(NOW - 30 * DAY, UTC)
    expected = sum(1 for b in loaded.batches.values() if b["created_at"] >= since.timestamp())
    with duckdb.connect(loaded.db, read_only=True) as con:
        everything = {r.name: r for r in run_queries(con, load_queries())}
        scoped = {r.name: r for r in run_queries(con, load_queries(), since=since.date().isoformat())}
        # The variable a DuckDB CLI user would set does the same.
        con.execute(f"SET VARIABLE since = '{since.date().isoformat()}'")
        cli = con.execute((QUERIES_DIR / "01_cost_summary.sql").read_text()).fetchone()
        set_since(con, None)
        unscoped = con.execute("SELECT count(*) FROM openai_batches.batch_costs").fetchone()
    assert scoped["cost_summary"].records()[0]["batches"] == expected
    assert cli is not None and cli[0] == expected
    assert everything["cost_summary"].records()[0]["batches"] == len(loaded.batches) == (unscoped or (0,))[0]
    assert all(d >= since.date() for d in scoped["cost_by_day_model"].column("day"))


def test_views_survive_the_next_load(loaded: Loaded) -> None:
    """The views live in the dlt dataset: a later load (merge, schema sync) must neither fail nor break them."""
    db = copy_db(loaded, "reload")
    org = SimulatedOrg(projects={KEY_A: PROJECT_A}, clock=SimClock(start=NOW), seed=11)
    org.generate_history(20, days=5)
    with SimulatorServer(org) as server:
        assert run_load(db, config_for(server.base_url, KEY_A)).ok
    refresh_analysis(db)
    with duckdb.connect(db, read_only=True) as con:
        for name in VIEW_NAMES:
            con.execute(f"SELECT count(*) FROM openai_batches.{name}").fetchone()


def _stored(db: str) -> tuple[str, int, str | None]:
    """The stored fingerprint, the rows of `model_prices`, and a comment set on `batch_costs` (gone when the views are
    created again)."""
    with duckdb.connect(db, read_only=True) as con:
        mark = con.execute("SELECT fingerprint FROM openai_batches._analysis_version").fetchone()
        rows = _count(con, "SELECT count(*) FROM openai_batches.model_prices")
        comment = con.execute(
            "SELECT comment FROM duckdb_views() WHERE schema_name = 'openai_batches' AND view_name = 'batch_costs'"
        ).fetchone()
    assert mark is not None and comment is not None
    return str(mark[0]), rows, comment[0]


def test_stored_views_are_rebuilt_only_when_what_they_are_made_of_changed(loaded: Loaded, tmp_path: Path) -> None:
    """Issue 20 (item 5): a refresh whose fingerprint (the views' SQL over the tables present, the price rows) is what
    is stored, with the views as they were stored, does not create the views again (0.1-0.2 s of every load that
    changed something). The prices are written every time (rows deleted by hand come back); a view dropped, or a price
    that changed, has the views built again."""
    db = copy_db(loaded, "current")
    mark, prices, _ = _stored(db)
    with duckdb.connect(db) as con:
        con.execute("COMMENT ON VIEW openai_batches.batch_costs IS 'kept while current'")
        con.execute("DELETE FROM openai_batches.model_prices")
    refresh_analysis(db)
    assert _stored(db) == (mark, prices, "kept while current")

    with duckdb.connect(db) as con:
        con.execute("DROP VIEW openai_batches.throughput_daily")
    refresh_analysis(db)
    with duckdb.connect(db, read_only=True) as con:
        assert _count(con, "SELECT count(*) FROM openai_batches.throughput_daily") > 0
    assert _stored(db) == (mark, prices, None)  # all built again

    prices_file = tmp_path / "prices.toml"
    prices_file.write_text('[[prices]]\nmodel = "acme-llm-*"\ninput = 0.30\noutput = 1.20\n')
    refresh_analysis(db, str(prices_file))
    assert _stored(db)[0] != mark


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_a_database_without_batches_is_reported_as_such(tmp_path: Path) -> None:
    db = str(tmp_path / "empty.duckdb")
    duckdb.connect(db).close()
    with pytest.raises(NoBatchesError):
        refresh_analysis(db)
    with pytest.raises(FileNotFoundError):
        refresh_analysis(str(tmp_path / "missing.duckdb"))


def test_costs_are_finite_numbers(loaded: Loaded) -> None:
    for row in costs(loaded.db).values():
        for key in ("cost_usd", "sync_cost_usd", "batch_savings_usd", "cache_savings_usd"):
            assert row[key] is None or (math.isfinite(row[key]) and row[key] >= 0), (row["id"], key)
