"""Reports that never mislead: a number shown is right, or it is absent and the report says
why; nothing crashes on data the API can send.

The database is built from a scripted organisation seeded with every odd value (`tests/support/analysis.py`),
served over loopback HTTP and loaded by the real loader. Reports run through the real CLI; the views
are also read the way a DuckDB CLI user reads them (a bare read-only session on the file).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from openai_batches.analysis import refresh_analysis
from openai_batches.analysis.prices import PricesError, load_overrides
from openai_batches.cli import main as cli
from openai_batches.load.runner import run_load

from .support.analysis import CLEAN_MODEL, FORMULA_METADATA, ODD_MODELS, load_batches, module_database, odd_batches
from .support.cli import cli_env, run_cli
from .support.fake_api import ScriptedApi
from .support.providers import World, over_worlds

# Batch price of gpt-4o-mini: half of 0.15 / 0.075 / 0.60 USD per million input / cached / output tokens.
MINI = (0.15, 0.075, 0.60)


@dataclass
class Odd:
    db: str
    batches: dict[str, dict[str, Any]]  # label -> the batch object the API sent

    def id(self, label: str) -> str:
        return str(self.batches[label]["id"])


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Odd]:
    batches = odd_batches()
    db = module_database(tmp_path_factory, "odd", list(batches.values()))
    refresh_analysis(db)  # what a load stores, for the tests that read the views as a DuckDB CLI user
    yield Odd(db, batches)


def sql(db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """A bare read-only DuckDB session on the file, as a user of the DuckDB CLI has."""
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_clear_error(capsys: pytest.CaptureFixture[str], code: int, *args: str) -> str:
    """`report ARGS` exits ``code`` with exactly one `error:` line on stderr (no traceback); returns it."""
    exit_code, out, err = report(capsys, *args)
    assert exit_code == code, (exit_code, out, err)
    assert "Traceback" not in out + err and "unexpected" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def report_json(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> dict[str, list[dict[str, Any]]]:
    code, out, err = report(capsys, "--db", db, "--format", "json", *args)
    assert code == 0, err
    doc: dict[str, list[dict[str, Any]]] = json.loads(out)
    return doc


def caveat(doc: dict[str, list[dict[str, Any]]], text: str) -> dict[str, Any]:
    rows = [r for r in doc.get("caveats", []) if text in r["caveat"]]
    assert len(rows) == 1, doc.get("caveats")
    return rows[0]


def batch_cost(price: tuple[float, float, float], inp: int, cached: int, out: int) -> float:
    return 0.5 * ((inp - cached) * price[0] + cached * price[1] + out * price[2]) / 1e6


# --- 1. a finished batch without an end time --------------------------------------------------------------
def test_a_finished_batch_without_an_end_time_is_in_no_hour_and_is_counted_apart(
    odd: Odd, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = report_json(capsys, odd.db)
    assert all(r["hour_utc"] for r in doc["throughput_hourly"]), "a row without an hour"
    assert all(r["day_utc"] for r in doc["throughput_daily"])
    # Left out: the batch without completed_at, and the one whose times are in milliseconds (year 58000).
    no_end = {odd.id("no_end_time"), odd.id("created_in_milliseconds")}
    (finished,) = sql(
        odd.db, "SELECT count(*) FROM openai_batches.batches WHERE status IN ('completed', 'failed', 'expired')"
    )
    assert sum(r["batches_finished"] for r in doc["throughput_hourly"]) == finished[0] - len(no_end)
    row = caveat(doc, "finished without a usable end time")
    assert row["batches"] == len(no_end) and row["example_id"] in no_end
    assert "throughput_hourly" in row["figures"]


# --- 2. impossible usage ----------------------------------------------------------------------------------
INCONSISTENT = ("cached_above_input", "negative_input", "negative_output", "reasoning_above_output")


def test_impossible_usage_is_unpriced_with_a_reason_and_never_negative(
    odd: Odd, capsys: pytest.CaptureFixture[str]
) -> None:
    for label in INCONSISTENT:
        (row,) = sql(
            odd.db,
            "SELECT priced, unpriced_reason, cost_usd, input_tokens, output_tokens "
            "FROM openai_batches.batch_costs WHERE id = ?",
            odd.id(label),
        )
        assert row == (False, "inconsistent usage", None, None, None), label
    (lowest,) = sql(
        odd.db, "SELECT min(cost_usd), min(input_tokens), min(output_tokens) FROM openai_batches.batch_costs"
    )
    assert all(v >= 0 for v in lowest)
    doc = report_json(capsys, odd.db)
    (priced_total,) = sql(odd.db, "SELECT sum(cost_usd) FROM openai_batches.batch_costs WHERE priced")
    assert doc["cost_summary"][0]["cost_usd"] == pytest.approx(priced_total[0], abs=1e-9)
    assert {"reason": "inconsistent usage", "batches": len(INCONSISTENT)}.items() <= next(
        r for r in doc["unpriced_usage"] if r["reason"] == "inconsistent usage"
    ).items()
    assert all(r["input_tokens"] is None or r["input_tokens"] >= 0 for r in doc["throughput_daily"])
    assert caveat(doc, "inconsistent usage")["batches"] == len(INCONSISTENT)


# --- 3. impossible durations ------------------------------------------------------------------------------
def test_an_end_before_the_start_is_no_duration_and_is_counted_apart(
    odd: Odd, capsys: pytest.CaptureFixture[str]
) -> None:
    (row,) = sql(
        odd.db,
        "SELECT turnaround_s, processing_s, within_window FROM openai_batches.batch_timings WHERE id = ?",
        odd.id("ends_before_it_starts"),
    )
    assert row == (None, None, None)
    (lowest,) = sql(
        odd.db,
        "SELECT min(queue_s), min(processing_s), min(finalizing_s), min(turnaround_s), min(open_for_s) "
        "FROM openai_batches.batch_timings",
    )
    assert all(v is None or v >= 0 for v in lowest), lowest
    doc = report_json(capsys, odd.db)
    # Every clean completed batch of this organisation took 120 s: the whole histogram row is "<10m".
    (mini,) = [r for r in doc["turnaround_histogram"] if r["model"] == CLEAN_MODEL]
    assert mini["<10m"] == 100.0
    untimed = {"ends_before_it_starts", "no_in_progress_time", "no_end_time", "created_in_milliseconds"}
    untimed |= {"no_created_at"}
    row = caveat(doc, "stage time is missing or out of order")
    assert row["batches"] == len(untimed) and row["example_id"] in {odd.id(x) for x in untimed}


# --- 4. counts next to statistics -------------------------------------------------------------------------
def test_every_count_next_to_a_statistic_is_the_count_it_used(odd: Odd, capsys: pytest.CaptureFixture[str]) -> None:
    (used,) = sql(
        odd.db,
        "SELECT count(*) FROM openai_batches.batch_timings WHERE status = 'completed' AND turnaround_s IS NOT NULL "
        "AND queue_s IS NOT NULL AND processing_s IS NOT NULL AND finalizing_s IS NOT NULL",
    )
    doc = report_json(capsys, odd.db)
    (total,) = [r for r in doc["turnaround_percentiles"] if r["model"] == "(all)"]
    assert total["batches"] == used[0]
    assert sum(r["batches"] for r in doc["turnaround_histogram"]) == used[0]
    buckets = [c for c in doc["turnaround_histogram"][0] if c not in ("provider", "model", "batches")]
    for r in doc["turnaround_histogram"]:
        assert sum(r[b] for b in buckets) == pytest.approx(100, abs=0.1 * len(buckets)), r


# --- 5. unknown tokens ------------------------------------------------------------------------------------
def test_the_page_never_shows_unknown_tokens_as_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batches = odd_batches()
    db = str(tmp_path / "pre_usage.duckdb")
    load_batches(db, [batches["clean_0"], batches["pre_usage"]])
    page = tmp_path / "page.html"
    code, _, err = report(capsys, "--db", db, "--html", str(page))
    assert code == 0, err
    text = page.read_text()
    assert "could not be priced" in text
    assert "0 input" not in text and "0 output" not in text
    assert "tokens are unknown" in text


# --- 6. zero batches in scope -----------------------------------------------------------------------------
def test_zero_batches_in_scope_cost_nothing_and_say_so(
    odd: Odd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = report_json(capsys, odd.db, "--since", "2099-01-01")["cost_summary"][0]
    assert summary["batches"] == 0
    assert (summary["cost_usd"], summary["sync_cost_usd"], summary["cache_savings_usd"]) == (0, 0, 0)
    page = tmp_path / "empty.html"
    code, _, err = report(capsys, "--db", odd.db, "--since", "2099-01-01", "--html", str(page))
    assert code == 0, err
    text = page.read_text()
    assert "No batches in scope" in text and "has a price" not in text
    assert "<b>unpriced</b>" not in text and "<b>$0.00</b>" in text
    code, out, _ = report(capsys, "--db", odd.db, "--since", "2099-01-01")
    assert code == 0 and "No batches in scope" in out


# --- 7. a project without batches -------------------------------------------------------------------------
def test_a_project_with_no_batches_gives_empty_reports_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "empty_project.duckdb")
    load_batches(db, [])
    for fmt in ("table", "csv", "json", "markdown"):
        code, out, err = report(capsys, "--db", db, "--format", fmt)
        assert code == 0, (fmt, err)
        assert "error" not in err
    doc = report_json(capsys, db)
    assert doc["cost_summary"][0]["batches"] == 0 and doc["cost_summary"][0]["cost_usd"] == 0
    assert all(not rows for name, rows in doc.items() if name != "cost_summary")
    code, _, err = report(capsys, "--db", db, "--html", str(tmp_path / "empty.html"))
    assert code == 0, err
    assert "No batches in scope" in (tmp_path / "empty.html").read_text()


# --- 8. custom prices -------------------------------------------------------------------------------------
def test_a_mistyped_price_file_in_the_environment_is_an_error(
    odd: Odd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_BATCHES_PRICES", str(tmp_path / "prices.tmol"))
    code, _, err = report(capsys, "--db", odd.db, "--only", "cost_summary")
    assert code == 2
    assert "prices.tmol does not exist" in err


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("input = inf", "finite number"),
        ("input = 1\noutput = nan", "finite number"),
        ("input = 1\ncached_input = -inf", "finite number"),
        ("input = 1\nbatch_factor = 7", "between 0 and 1"),
    ],
)
def test_infinite_prices_and_impossible_batch_factors_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(f"[[prices]]\nmodel = 'x'\n{entry}\n")
    with pytest.raises(PricesError) as info:
        load_overrides(path)
    assert message in str(info.value)


def test_a_price_period_can_start_at_a_time_of_day(
    odd: Odd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = odd.batches["clean_0"], odd.batches["clean_2"]
    switch = datetime.fromtimestamp(first["created_at"] + 60, UTC)  # between the two, the same UTC day
    assert switch.date() == datetime.fromtimestamp(last["created_at"], UTC).date()
    prices = tmp_path / "prices.toml"
    prices.write_text(
        f"""
[[prices]]
model = "{CLEAN_MODEL}"
valid_from = {switch.date().isoformat()}
input = 1.0
output = 1.0

[[prices]]
model = "{CLEAN_MODEL}"
valid_from = {switch.isoformat().replace("+00:00", "Z")}
input = 2.0
output = 2.0
"""
    )
    doc = report_json(capsys, odd.db, "--prices", str(prices), "--only", "top_expensive_batches")
    costs = {r["id"]: r["cost_usd"] for r in doc["top_expensive_batches"]}
    usage = first["usage"]
    tokens = (usage["input_tokens"], usage["input_tokens_details"]["cached_tokens"], usage["output_tokens"])
    assert costs[first["id"]] == pytest.approx(batch_cost((1.0, 1.0, 1.0), *tokens), abs=1e-9)
    assert costs[last["id"]] == pytest.approx(batch_cost((2.0, 2.0, 2.0), *tokens), abs=1e-9)


def test_a_one_off_price_file_changes_nothing_stored(
    odd: Odd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = sql(odd.db, "SELECT * FROM openai_batches.model_prices ORDER BY ALL")
    digest = hashlib.sha256(Path(odd.db).read_bytes()).hexdigest()
    prices = tmp_path / "one-off.toml"
    prices.write_text(f"[[prices]]\nmodel = '{CLEAN_MODEL}'\ninput = 100\noutput = 100\n")
    one_off = report_json(capsys, odd.db, "--prices", str(prices), "--only", "cost_summary")["cost_summary"][0]
    usual = report_json(capsys, odd.db, "--only", "cost_summary")["cost_summary"][0]
    assert one_off["cost_usd"] > 100 * usual["cost_usd"]
    assert sql(odd.db, "SELECT * FROM openai_batches.model_prices ORDER BY ALL") == stored
    assert hashlib.sha256(Path(odd.db).read_bytes()).hexdigest() == digest


# --- 9. one meaning of `since` ----------------------------------------------------------------------------
def test_since_is_one_instant_in_the_cli_and_in_sql(odd: Odd, capsys: pytest.CaptureFixture[str]) -> None:
    instant = datetime.fromtimestamp(odd.batches["clean_2"]["created_at"], UTC)
    local = instant.astimezone(ZoneInfo("Europe/Paris")).isoformat()  # the same instant, written +02:00
    expected = sum(
        1
        for b in odd.batches.values()
        if isinstance(b.get("created_at"), int) and instant.timestamp() <= b["created_at"] < 4_000_000_000
    )
    cli_count = report_json(capsys, odd.db, "--since", local, "--only", "cost_summary")["cost_summary"][0]["batches"]
    assert cli_count == expected
    settings = [
        ("UTC", f"'{local}'"),
        ("Asia/Tokyo", f"'{local}'"),
        ("Asia/Tokyo", f"TIMESTAMPTZ '{local}'"),
        ("America/Los_Angeles", f"TIMESTAMPTZ '{local}'"),
        ("America/Los_Angeles", f"'{instant.replace(tzinfo=None).isoformat()}'"),  # no offset: UTC
    ]
    with duckdb.connect(odd.db, read_only=True) as con:
        for zone, value in settings:
            con.execute(f"SET TimeZone = '{zone}'")
            con.execute(f"SET VARIABLE since = {value}")
            (count,) = con.execute("SELECT count(*) FROM openai_batches.batch_costs").fetchone() or (None,)
            assert count == expected, (zone, value)
        # A date is its UTC midnight, whatever the session's zone.
        day = instant.date().isoformat()
        con.execute("SET TimeZone = 'Pacific/Kiritimati'")
        con.execute(f"SET VARIABLE since = DATE '{day}'")
        by_date = con.execute("SELECT count(*) FROM openai_batches.batch_costs").fetchone()
    in_day = report_json(capsys, odd.db, "--since", day, "--only", "cost_summary")["cost_summary"][0]["batches"]
    assert by_date == (in_day,)


# --- 10. refused options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00"])
def test_a_since_out_of_range_is_a_usage_error(odd: Odd, since: str, capsys: pytest.CaptureFixture[str]) -> None:
    error = one_clear_error(capsys, 2, "--db", odd.db, "--since", since)
    assert "--since" in error and "out of range" in error


def test_html_with_another_format_is_refused_and_only_is_applied(
    odd: Odd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "page.html"
    error = one_clear_error(capsys, 2, "--db", odd.db, "--html", str(page), "--format", "csv")
    assert "--format csv" in error and "--html" in error
    assert not page.exists()
    code, _, err = report(capsys, "--db", odd.db, "--html", str(page), "--only", "cost_by_project")
    assert code == 0, err
    text = page.read_text()
    assert '<h2 id="cost_by_project">' in text
    assert '<h2 id="throughput_hourly">' not in text and text.count("<svg") == 0


# --- 11. spreadsheet formulas -----------------------------------------------------------------------------
def test_csv_neutralises_formulas_and_json_keeps_the_values(odd: Odd, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, "--db", odd.db, "--format", "csv", "--only", "cost_by_metadata")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    values = {r["metadata_key"]: r["metadata_value"] for r in rows}
    for key, value in FORMULA_METADATA.items():
        shown = values[key]
        assert shown == ("'" + value if value[0] in "=+-@" else value), key
    code, out, _ = report(capsys, "--db", odd.db, "--format", "csv")
    cells = [cell for row in csv.reader(io.StringIO(out)) for cell in row if not cell.startswith("# ")]
    assert not [c for c in cells if c[:1] in ("=", "+", "@") or re.match(r"^-[^0-9]", c)], "a live formula"
    models = {r["model"] for r in report_json(capsys, odd.db)["unpriced_usage"]}
    assert set(ODD_MODELS) - {"$x^$"} <= models | {"$x^$"}  # JSON carries the names as sent
    assert '=HYPERLINK("http://evil.example","x")' in models


# --- 12. small totals, tiered prices, odd names -----------------------------------------------------------
def test_a_small_priced_total_shows_its_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "tiny.duckdb")
    load_batches(db, [odd_batches()["tiny"]])  # 10 input and 1 output token: about a millionth of a dollar
    expected = batch_cost(MINI, 10, 0, 1)
    summary = report_json(capsys, db, "--only", "cost_summary")["cost_summary"][0]
    assert summary["cost_usd"] == pytest.approx(expected, rel=1e-6)
    code, out, _ = report(capsys, "--db", db, "--only", "cost_summary", "--format", "markdown")
    assert code == 0
    lines = out.strip().splitlines()
    header, row = [c.strip() for c in lines[-3].split("|")], [c.strip() for c in lines[-1].split("|")]
    shown = row[header.index("cost_usd")]
    assert float(shown) == pytest.approx(expected, rel=0.05), shown


def test_a_tiered_price_is_flagged_as_a_lower_bound(odd: Odd, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(capsys, odd.db)
    row = caveat(doc, "long-context")
    assert row["batches"] == 1 and row["example_id"] == odd.id("tiered")
    assert sql(odd.db, "SELECT price_tiered FROM openai_batches.batch_costs WHERE id = ?", odd.id("tiered")) == [
        (True,)
    ]


def test_odd_names_are_drawn_without_warnings_and_shown_as_sent(
    odd: Odd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "odd.html"
    with warnings.catch_warnings(record=True) as caught:  # what matplotlib would print on stderr
        warnings.simplefilter("always")
        code, _, err = report(capsys, "--db", odd.db, "--html", str(page))
    assert code == 0 and err == "", err
    assert not [str(w.message) for w in caught]
    assert page.read_text().count("<svg") == 4
    code, out, err = report(capsys, "--db", odd.db)
    assert code == 0, err
    assert "[/]" in out and "\x1b" not in out and "\\x1b[31mred" in out


# --- one definition of "open" ----------------------------------------------------------------------------
def test_a_batch_without_a_status_is_open_in_every_report(odd: Odd, capsys: pytest.CaptureFixture[str]) -> None:
    from openai_batches.cli.status import read_status

    doc = report_json(capsys, odd.db, "--only", "open_batches")
    ids = {r["id"] for r in doc["open_batches"]}
    assert odd.id("null_status") in ids
    status = read_status(odd.db)
    assert len(ids) == sum(p.open_now for p in status.projects)


# --- the whole report over every odd value ----------------------------------------------------------------
def test_every_format_runs_over_every_odd_value(odd: Odd, capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("table", "csv", "json", "markdown"):
        code, out, err = report(capsys, "--db", odd.db, "--format", fmt)
        assert code == 0 and err == "", (fmt, err)
        assert len(out) > 1000, fmt
    # And as cron runs it: the installed command in its own process.
    done = run_cli("report", "--db", odd.db, env=cli_env())
    assert done.returncode == 0 and done.stderr == "", done.stderr


# --- odd values in the list objects of every provider ---------------------------------------------------
# The column holds nothing and the value, as sent, is in `extra_fields`: kept, not guessed at.
KEPT_ASIDE = "kept aside"
_ODD_TIME = datetime(2026, 9, 20, 8, 30, tzinfo=UTC)
# (label, field path, the value sent, the column's value): each on a batch of its own.
ODD_LIST_VALUES: dict[str, list[tuple[str, str, Any, Any]]] = {
    "anthropic": [
        ("offset", "created_at", "2026-09-20T14:00:00+05:30", _ODD_TIME),
        ("lowercase", "ended_at", "2026-09-20t08:30:00.5z", _ODD_TIME.replace(microsecond=500_000)),
        ("space", "ended_at", "2026-09-20 08:30:00Z", _ODD_TIME),
        ("nanoseconds", "ended_at", "2026-09-20T08:30:00.123456789Z", _ODD_TIME.replace(microsecond=123_456)),
        ("no_offset", "ended_at", "2026-09-20T08:30:00", KEPT_ASIDE),
        ("offset_without_colon", "expires_at", "2026-09-20T14:00:00+0530", KEPT_ASIDE),
        ("year_zero", "expires_at", "0000-01-01T00:00:00Z", KEPT_ASIDE),
        ("hours_only_offset", "cancel_initiated_at", "2026-09-20T13:30:00+05", KEPT_ASIDE),
        ("empty", "cancel_initiated_at", "", KEPT_ASIDE),
        ("no_seconds", "archived_at", "2026-09-20T08:30Z", KEPT_ASIDE),
        ("leap_second", "archived_at", "2026-12-31T23:59:60Z", KEPT_ASIDE),
        ("epoch_number", "archived_at", 1_790_000_000, KEPT_ASIDE),
        ("null_count", "request_counts.succeeded", None, None),
        ("fraction_count", "request_counts.errored", 2.5, KEPT_ASIDE),
        ("huge_count", "request_counts.succeeded", 2**64, KEPT_ASIDE),
        ("unknown_status", "processing_status", "paused", "paused"),
        ("null_status", "processing_status", None, None),
        ("counts_not_an_object", "request_counts", "n/a", KEPT_ASIDE),
        ("huge_id", "id", "msgbatch_" + "x" * 10_000, "msgbatch_" + "x" * 10_000),
    ],
    "openai": [
        ("text_time", "completed_at", "2026-09-20T08:30:00Z", KEPT_ASIDE),
        ("null_count", "request_counts.completed", None, None),
        ("fraction_count", "request_counts.failed", 2.5, KEPT_ASIDE),
        ("unknown_status", "status", "paused", "paused"),
        ("null_status", "status", None, None),
        ("counts_not_an_object", "request_counts", "n/a", KEPT_ASIDE),
        ("huge_id", "id", "batch_" + "x" * 10_000, "batch_" + "x" * 10_000),
    ],
    # Azure's documentation shows ISO 8601 times and capitalised statuses: every OpenAI-shaped provider takes
    # them (sources/compatible/shape.py), to the second; a time without an offset says no instant.
    "compatible": [
        ("text_time", "completed_at", "2026-09-20T08:30:00Z", _ODD_TIME),
        ("offset", "in_progress_at", "2026-09-20T14:00:00.75+05:30", _ODD_TIME),
        ("no_offset", "expires_at", "2026-09-20T08:30:00", KEPT_ASIDE),
        ("null_count", "request_counts.completed", None, None),
        ("fraction_count", "request_counts.failed", 2.5, KEPT_ASIDE),
        ("unknown_status", "status", "Paused", "Paused"),
        ("null_status", "status", None, None),
        ("counts_not_an_object", "request_counts", "n/a", KEPT_ASIDE),
        ("huge_id", "id", "batch_" + "x" * 10_000, "batch_" + "x" * 10_000),
    ],
    # Together's times are RFC 3339, Mistral's and OpenRouter's epoch seconds: each time column takes both.
    "together": [
        ("offset", "created_at", "2026-09-20T14:00:00+05:30", _ODD_TIME),
        ("nanoseconds", "completed_at", "2026-09-20T08:30:00.123456789Z", _ODD_TIME.replace(microsecond=123_456)),
        ("epoch_number", "job_deadline", _ODD_TIME.timestamp(), _ODD_TIME),
        ("progress_integer", "progress", 40, 40.0),
        ("progress_text", "file_size_bytes", "2 KB", KEPT_ASIDE),
        ("error_object", "error", {"message": "boom"}, '{"message": "boom"}'),  # a text column: as JSON text
        ("unknown_status", "status", "PAUSED", "PAUSED"),
        ("null_status", "status", None, None),
        ("huge_id", "id", "t" * 10_000, "t" * 10_000),
    ],
    "mistral": [
        ("text_time", "completed_at", "2026-09-20T08:30:00Z", _ODD_TIME),
        ("no_offset", "started_at", "2026-09-20T08:30:00", KEPT_ASIDE),
        ("null_count", "succeeded_requests", None, None),
        ("fraction_count", "failed_requests", 2.5, KEPT_ASIDE),
        ("huge_count", "total_requests", 2**64, KEPT_ASIDE),
        ("unknown_status", "status", "PAUSED", "PAUSED"),
        ("null_status", "status", None, None),
        ("huge_id", "id", "m" * 10_000, "m" * 10_000),
    ],
    "openrouter": [
        ("text_time", "finalized_at", "2026-09-20T08:30:00Z", _ODD_TIME),
        ("null_count", "request_counts.completed", None, None),
        ("fraction_count", "request_counts.failed", 2.5, KEPT_ASIDE),
        ("text_cost", "usage.cost", "0.01", KEPT_ASIDE),
        ("unknown_status", "status", "paused", "paused"),
        ("null_status", "status", None, None),
        ("huge_id", "id", "batch_" + "x" * 10_000, "batch_" + "x" * 10_000),
    ],
}
ODD_LIST_VALUES |= dict.fromkeys(("azure", "groq", "openai-compatible"), ODD_LIST_VALUES["compatible"])


@over_worlds()
def test_odd_values_in_list_objects_load_without_loss_whatever_batches_they_come_with(
    tmp_path: Path, world: World
) -> None:
    """Each odd value the only odd one of its field in its run (a column is converted at once unless one of its
    values is odd) and all of them in one run (converted one by one) give the same rows: the value in its
    column, or NULL with the value as sent in `extra_fields`."""
    cases = ODD_LIST_VALUES[world.provider]
    clean = world.newest_first(3)
    # Runs of cases on distinct fields (a field's columns are converted together): each value alone in its own.
    field = {label: path.split(".")[0] for label, path, _, _ in cases}
    rounds: list[list[str]] = []
    for label in field:
        free = [r for r in rounds if field[label] not in {field[x] for x in r}]
        if free:
            free[0].append(label)
        else:
            rounds.append([label])
    # Each run's batches newer than the last run's (older ones would be late-visible, beyond the lookback).
    number = {label: n for n, label in enumerate((x for r in rounds for x in r), start=100)}
    odd: dict[str, dict[str, Any]] = {}
    for label, path, value, _ in cases:
        batch = world.make_batch(number[label])
        parent, _, name = path.rpartition(".")
        (batch[parent] if parent else batch)[name] = value
        odd[label] = batch
    alone, together = str(tmp_path / "alone.duckdb"), str(tmp_path / "together.duckdb")
    shown: list[str] = []
    with ScriptedApi(world.serve_all(clean)) as api:
        for labels in rounds:
            shown += labels
            served = [odd[x] for x in sorted(shown, key=number.__getitem__, reverse=True)] + clean  # newest first
            api.route = world.serve_all(served)
            result = run_load(alone, world.scripted_config(api))
            assert result.ok, result.outcomes[0].error
        result = run_load(together, world.scripted_config(api))
        assert result.ok, result.outcomes[0].error
    loaded = []
    for db in (alone, together):
        rows = world.rows(db)
        assert world.ids_and_duplicates(db) == (len(served), len(served))
        for label, path, value, column in cases:
            row = rows[odd[label]["id"]]
            extra = json.loads(row["extra_fields"] or "{}")
            name = path.replace(".", "__")
            if name not in row:  # an object flattened into columns: each of them NULL, the value aside
                assert {c: v for c, v in row.items() if c.startswith(f"{name}__") and v is not None} == {}, label
                assert extra.get(name) == value, (db, label, extra)
            elif column == KEPT_ASIDE:
                parent, _, leaf = path.rpartition(".")
                aside = extra.get(parent, {}).get(leaf) if parent else extra.get(path)
                assert (row[name], aside) == (None, value), (db, label, row[name], extra)
            else:
                assert row[name] == column, (db, label, row[name])
        state = world.project_state(db, "proj_scripted")
        # re-read until the API says it finished
        assert {odd["unknown_status"]["id"], odd["null_status"]["id"]} <= set(state["open"])
        loaded.append({k: {c: v for c, v in r.items() if not c.startswith("_dlt")} for k, r in rows.items()})
    assert loaded[0] == loaded[1]
