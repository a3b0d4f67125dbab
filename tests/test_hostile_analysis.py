"""A hostile tester's holes in the analysis side, each kept closed: values the API can send (loaded by the
real loader from a scripted loopback API), or that the Admin API and the request ledger can hold, that
once crashed a report, showed an impossible number, or reached a terminal, a page or a notebook as markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.analysis.prices import PricesError, load_overrides
from openai_batches.cli import main as cli

from .support.analysis import module_database, usage
from .support.fake_api import make_batch

# Markup a metadata value or model name can carry into a rendered report: raw HTML (runs in a notebook's
# trusted output or any Markdown renderer that passes HTML through), and a `javascript:` link.
# Bidirectional controls reorder what a terminal or a page shows after them ("Trojan Source"): a name
# `usd\u202e1.0$` displays as something else than it is.
BIDI_METADATA = {"bidi": "proj\u202eevil\u2066x\u200f"}
HTML_METADATA = {"img": "<img src=x onerror=alert(1)>", "link": "[click](javascript:alert(1))", "amp": "a &lt; b"}


@dataclass
class Hostile:
    db: str
    ids: dict[str, str]  # label -> batch id


def hostile_batches() -> dict[str, dict[str, Any]]:
    made: dict[str, dict[str, Any]] = {}
    for n, (label, fields) in enumerate(
        (
            ("clean", {}),
            ("html_metadata", {"metadata": HTML_METADATA}),
            ("bidi_metadata", {"metadata": BIDI_METADATA}),
            # Request counts the API cannot have meant: more failed than in the batch, negative counts, and
            # counts whose differences do not fit in 64 bits.
            ("failed_above_total", {"request_counts": {"total": 10, "completed": 0, "failed": 1_000_000}}),
            ("negative_counts", {"request_counts": {"total": 10, "completed": -3, "failed": -50}}),
            # 2**62 tokens fit in the loader's 64-bit column: no batch comes near (50,000 requests at most).
            # (In a month of its own: a month with a batch of unusable usage is not compared with the Usage API.)
            ("tokens_beyond_any_batch", {"usage": usage(2**62, 0, 2**62), "created": 1_785_000_000}),
            ("counts_beyond_int64", {"request_counts": {"total": 2**62, "completed": -(2**62), "failed": -(2**62)}}),
        ),
        1,
    ):
        made[label] = make_batch(n, **fields)
    return made


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    batches = hostile_batches()
    db = module_database(tmp_path_factory, "hostile", list(batches.values()))
    yield Hostile(db, {label: str(b["id"]) for label, b in batches.items()})


# Tables as loads leave them: name -> columns. The tests build them by hand on purpose (a schema drift fails loudly).
TableRows = dict[str, tuple[str, list[tuple[Any, ...]]]]


def copy_with_tables(db: str, target: Path, tables: TableRows) -> str:
    """A copy of ``db`` at ``target`` with ``tables`` (name -> (columns, rows)) created and filled."""
    target.write_bytes(Path(db).read_bytes())
    with duckdb.connect(str(target)) as con:
        for table, (columns, rows) in tables.items():
            con.execute(f"CREATE TABLE openai_batches.{table} ({columns})")
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                con.executemany(f"INSERT INTO openai_batches.{table} VALUES ({marks})", rows)
    return str(target)


def with_admin_tables(
    db: str,
    target: Path,
    projects: list[tuple[Any, ...]],
    usage_rows: list[tuple[Any, ...]],
    costs: list[tuple[Any, ...]],
) -> str:
    """A copy of ``db`` with the Admin API's tables as a load with an admin key leaves them, holding these rows."""
    return copy_with_tables(
        db,
        target,
        {
            "projects": (
                "id VARCHAR NOT NULL, name VARCHAR, status VARCHAR, created_at TIMESTAMPTZ, archived_at TIMESTAMPTZ",
                projects,
            ),
            "usage_daily": (
                "day DATE NOT NULL, project_id VARCHAR, model VARCHAR, batch BOOLEAN, input_tokens BIGINT, "
                "input_cached_tokens BIGINT, output_tokens BIGINT, num_model_requests BIGINT",
                usage_rows,
            ),
            "costs_daily": (
                "day DATE NOT NULL, project_id VARCHAR, line_item VARCHAR, amount_usd DOUBLE, currency VARCHAR",
                costs,
            ),
        },
    )


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def report_json(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> dict[str, list[dict[str, Any]]]:
    code, out, err = report(capsys, "--db", db, "--format", "json", *args)
    assert code == 0, err
    doc: dict[str, list[dict[str, Any]]] = json.loads(out)
    return doc


# --- Markdown is rendered (the notebook shows it as HTML): a value from the API is text, never markup -----
def test_markdown_cells_are_text_never_html_or_links(hostile: Hostile, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, "--db", hostile.db, "--only", "cost_by_metadata", "--format", "markdown")
    assert code == 0, err
    assert "<img" not in out and "](javascript:" not in out, out
    # Rendered, each value reads as sent: the entities stand for the characters themselves.
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "&#91;click&#93;(javascript:alert(1))" in out
    assert "a &amp;lt; b" in out
    # JSON keeps the values exactly as sent.
    values = {
        r["metadata_value"] for r in report_json(capsys, hostile.db, "--only", "cost_by_metadata")["cost_by_metadata"]
    }
    assert set(HTML_METADATA.values()) <= values


def test_bidirectional_controls_are_shown_escaped_never_raw(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = ("\u202e", "\u2066", "\u200f")
    for fmt in ("table", "markdown"):
        code, out, err = report(capsys, "--db", hostile.db, "--only", "cost_by_metadata", "--format", fmt)
        assert code == 0, err
        assert not [c for c in raw if c in out], fmt
        assert "proj\\u202eevil\\u2066x\\u200f" in out, fmt
    page = tmp_path / "bidi.html"
    code, _, err = report(capsys, "--db", hostile.db, "--only", "cost_by_metadata", "--html", str(page))
    assert code == 0, err
    assert not [c for c in raw if c in page.read_text()]
    values = {
        r["metadata_value"] for r in report_json(capsys, hostile.db, "--only", "cost_by_metadata")["cost_by_metadata"]
    }
    assert BIDI_METADATA["bidi"] in values  # JSON as sent


def test_status_and_the_load_summary_show_names_from_the_admin_api_as_text(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openai_batches.analysis.findings import read_findings

    day = datetime.now(UTC).date() - timedelta(days=2)
    name = "Lab\x1b[2J\x1b[31mRED\u202e"  # clears the screen, recolours, reorders
    model = "gpt-4o\x1b]8;;http://evil.example\x07x"  # a terminal hyperlink
    db = with_admin_tables(
        hostile.db,
        tmp_path / "admin.duckdb",
        projects=[("proj_lab", name, "active", None, None)],
        # The month of the loaded batches (2026-09): tokens of a model none of them ran, so it differs.
        usage_rows=[
            (day, "proj_lab", "gpt-4o", True, 1000, 0, 10, 1),
            (date(2026, 9, 21), "proj_odd", model, True, 5, 0, 1, 1),
        ],
        costs=[],
    )
    findings = read_findings(db)
    assert findings is not None and findings.missing == (("proj_lab", name),)  # the data as sent
    shown = "\n".join([findings.summary(), *findings.lines()])
    assert [(month, project) for month, project, _ in findings.differing] == [("2026-09", "proj_odd")]
    assert model in findings.differing[0][2]
    assert "proj_lab (Lab\\x1b[2J\\x1b[31mRED\\u202e)" in shown and "gpt-4o\\x1b]8;;http" in shown
    assert "\x1b" not in shown and "\u202e" not in shown
    assert cli.main(["status", "--db", db]) in (0, 1)
    out = capsys.readouterr()
    printed = out.out + out.err
    assert "proj_lab" in printed and "\x1b" not in printed and "\u202e" not in printed, printed


# --- the price file: a value TOML allows that no total can use is refused with the entry at fault --------
def one_clear_error(capsys: pytest.CaptureFixture[str], code: int, *args: str) -> str:
    exit_code, out, err = report(capsys, *args)
    assert exit_code == code, (exit_code, out, err)
    assert "Traceback" not in err and "unexpected" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize("valid_from", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00"])
def test_a_price_period_starting_outside_the_calendar_is_refused(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str], valid_from: str
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(f'[[prices]]\nmodel = "gpt-4o-mini*"\ninput = 1\nvalid_from = {valid_from}\n')
    with pytest.raises(PricesError, match="entry 1: `valid_from`"):
        load_overrides(prices)
    line = one_clear_error(capsys, 2, "--db", hostile.db, "--prices", str(prices))
    assert str(prices) in line and "valid_from" in line


@pytest.mark.parametrize("key", ["input", "cached_input", "output"])
def test_a_price_so_large_that_totals_are_infinite_is_refused(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    # 1e308 is a finite TOML float: times a few thousand tokens it is infinity, which every format shows
    # as an empty cost of a batch counted as priced.
    prices = tmp_path / "prices.toml"
    entry = {"input": 1.0, key: 1e308}
    prices.write_text('[[prices]]\nmodel = "gpt-4o-mini*"\n' + "".join(f"{k} = {v!r}\n" for k, v in entry.items()))
    with pytest.raises(PricesError, match=f"entry 1: `{key}`"):
        load_overrides(prices)
    assert "1e+308" in one_clear_error(capsys, 2, "--db", hostile.db, "--prices", str(prices))


# --- request counts the API cannot have meant -------------------------------------------------------------
IMPOSSIBLE_COUNTS = ("failed_above_total", "negative_counts", "counts_beyond_int64")


def with_ledger(db: str, target: Path, batch_id: str) -> str:
    """A copy of ``db`` whose request ledger has read one file of ``batch_id``, holding one request."""
    return copy_with_tables(
        db,
        target,
        {
            "batch_files": (
                "batch_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, file_id VARCHAR NOT NULL, state VARCHAR NOT NULL, "
                "bytes BIGINT, lines BIGINT, read_at TIMESTAMPTZ",
                [(batch_id, "output", "file-out", "read", 100, 1, datetime.now(UTC))],
            ),
            "batch_requests": (
                "batch_id VARCHAR NOT NULL, custom_id VARCHAR NOT NULL, project VARCHAR, outcome VARCHAR, "
                "status_code BIGINT, request_id VARCHAR, response_id VARCHAR, model VARCHAR, input_tokens BIGINT, "
                "cached_tokens BIGINT, output_tokens BIGINT, reasoning_tokens BIGINT, error_code VARCHAR, "
                "error_message VARCHAR",
                [
                    (batch_id, "job-1", "proj_odd", "succeeded", 200, "req_1", "resp_1", "gpt-4o-mini")
                    + (10, 0, 1, 0, None, None)
                ],
            ),
        },
    )


def test_impossible_request_counts_are_in_no_rate_and_counted_apart(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = report_json(capsys, hostile.db)
    for row in doc["failures_expiries"]:
        assert 0 <= row["request_failure_pct"] <= 100, row
    for row in doc["throughput_hourly"]:
        assert row["requests_completed"] >= 0 and row["requests_failed"] >= 0, row
    # The clean batches' requests are all counted: 10 each, none failed.
    clean = len(hostile.ids) - len(IMPOSSIBLE_COUNTS)  # (the huge-token batch's counts are fine)
    assert sum(r["requests_completed"] for r in doc["throughput_hourly"]) == 10 * clean
    (row,) = [r for r in doc["caveats"] if "request counts" in r["caveat"]]
    assert row["batches"] == len(IMPOSSIBLE_COUNTS) and row["example_id"] in {hostile.ids[k] for k in IMPOSSIBLE_COUNTS}
    # The request ledger compares its requests with the batch's counts: impossible ones never agree, and
    # their differences (64-bit overflow) crash nothing.
    db = with_ledger(hostile.db, tmp_path / "ledger.duckdb", hostile.ids["counts_beyond_int64"])
    for fmt in ("json", "csv", "table"):
        code, out, err = report(capsys, "--db", db, "--format", fmt)
        assert code == 0 and err == "", (fmt, err)
    (check,) = report_json(capsys, db, "--only", "ledger_check")["ledger_check"]
    assert check["batch_id"] == hostile.ids["counts_beyond_int64"]


# --- token counts no batch can have ----------------------------------------------------------------------
def test_token_counts_beyond_any_batch_are_inconsistent_usage_not_trillions_of_dollars(
    hostile: Hostile, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = report_json(capsys, hostile.db)
    summary = doc["cost_summary"][0]
    assert 0 < summary["cost_usd"] < 1, summary  # a handful of ordinary batches
    reasons = {(r["reason"], r["batches"]) for r in doc["unpriced_usage"]}
    assert ("inconsistent usage", 1) in reasons, doc["unpriced_usage"]
    assert all(r["input_tokens"] < 2**53 for r in doc["throughput_daily"] if r["input_tokens"] is not None)


def test_usage_api_token_counts_near_64_bits_crash_no_report(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The Usage API's numbers are OpenAI's, shown as sent; their sum must not overflow a 64-bit integer.
    huge = 2**62
    db = with_admin_tables(
        hostile.db,
        tmp_path / "usage.duckdb",
        projects=[("proj_odd", "Odd", "active", None, None)],
        usage_rows=[(date(2026, 9, 21), "proj_odd", "gpt-4o-mini-2024-07-18", True, huge, 0, huge, 1)],
        costs=[(date(2026, 9, 21), "proj_odd", "batch", 1.5, "usd")],
    )
    doc = report_json(capsys, db)
    (row,) = [r for r in doc["cost_reconciliation"] if r["month"] == "2026-09"]
    assert row["batch_token_share_pct"] == 100.0 and row["costs_usd"] == 1.5


def test_a_month_without_costs_says_no_costs_reported_not_unpriced(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "unpriced" means we could not price batches; a month the Costs API has no row for is another fact.
    db = with_admin_tables(
        hostile.db,
        tmp_path / "nocosts.duckdb",
        projects=[("proj_odd", "Odd", "active", None, None)],
        usage_rows=[(date(2026, 9, 21), "proj_odd", "gpt-4o-mini-2024-07-18", True, 1000, 0, 500, 1)],
        costs=[],
    )
    doc = report_json(capsys, db)
    (row,) = [r for r in doc["cost_reconciliation"] if r["month"] == "2026-09"]
    assert row["costs_usd"] is None
    code, out, err = report(capsys, "--db", db, "--only", "cost_reconciliation")
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.strip().startswith("2026-09")]
    assert "no costs reported" in line and "unpriced" not in line
    page = tmp_path / "page.html"
    code, _, err = report(capsys, "--db", db, "--html", str(page))
    assert code == 0, err
    assert "no costs reported" in page.read_text()


def test_a_month_with_impossible_batch_usage_says_so_and_other_months_are_still_judged(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # July holds the batch with 2**62 tokens: our side of that month is unknown, which is not the same as
    # "no batch usage" (batches from before usage was reported). September, ordinary, still differs.
    model = "gpt-4o-mini-2024-07-18"
    db = with_admin_tables(
        hostile.db,
        tmp_path / "inconsistent.duckdb",
        projects=[("proj_odd", "Odd", "active", None, None)],
        usage_rows=[
            (date(2026, 7, 1), "proj_odd", model, True, 5, 0, 5, 1),
            (date(2026, 7, 25), "proj_odd", model, True, 1000, 0, 500, 1),
            (date(2026, 9, 21), "proj_odd", model, True, 999_999, 0, 500, 1),
            (date(2026, 9, 30), "proj_odd", model, True, 1, 0, 1, 1),
        ],
        costs=[],
    )
    doc = report_json(capsys, db, "--only", "usage_reconciliation")
    verdicts = {r["month"]: r["verdict"] for r in doc["usage_reconciliation"]}
    assert verdicts == {"2026-07": "inconsistent usage", "2026-09": "differs"}, verdicts
