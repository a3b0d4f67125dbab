"""The demo shows the same figures for clean data as before the reports learnt to refuse odd values.

`fixtures/demo_report_before.json.gz` is `report --format json` over the demo's workload (its projects,
sizes, seed 0, one backfill and a cron tick an hour later) on a pinned clock, written by the report
code as it was before its rounding was reworked. This test builds the same workload through the real loader and
compares every figure: the same rows (order may differ only among rows the old rounding made equal),
amounts equal at the precision the old report printed, everything else exactly.

If the simulator's workload changes on purpose, regenerate the fixture from a checked report:
OPENAI_BATCHES_REGENERATE_DEMO_FIGURES=1 pytest tests/test_demo_figures.py
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches import settings
from openai_batches.analysis.settings import LEDGER_REPORTS
from openai_batches.cli import demo
from openai_batches.cli import main as cli
from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.workload import NOW

pytestmark = pytest.mark.slow  # the whole demo workload

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo_report_before.json.gz"
# Depend on the real clock (how long a batch has been open), not on the data; and an example picked by
# `any_value` before (arbitrary: the engine's choice), the first in order now (the same on every engine).
CLOCK_COLUMNS = {"open_for_h", "expires_in_h", "example_message"}


def demo_database(db: str) -> None:
    """What `run_demo` loads, with the simulated clock pinned instead of starting at the real now."""
    org = SimulatedOrg(projects=dict(demo.DEMO_PROJECTS), clock=SimClock(start=NOW), seed=0)
    for project in demo.DEMO_PROJECTS.values():
        org.generate_history(
            demo.DEMO_BATCHES_PER_PROJECT,
            project=project,
            days=demo.DEMO_HISTORY_DAYS,
            open_fraction=demo.DEMO_OPEN_FRACTION,
        )
        org.set_arrival_rate(demo.DEMO_ARRIVALS_PER_HOUR, project=project)
    with SimulatorServer(org) as server:
        config = RunConfig(
            projects=tuple(ProjectConfig(name=None, api_key=k, base_url=server.base_url) for k in demo.DEMO_PROJECTS)
        )
        assert run_load(db, config).ok
        org.advance(3600)
        assert run_load(db, config).ok


def decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 9


def same_row(before: dict[str, Any], after: dict[str, Any]) -> bool:
    for column, old in before.items():
        if column in CLOCK_COLUMNS:
            continue
        new = after[column]
        if column.endswith("_usd") and isinstance(old, float) and isinstance(new, float):
            # The old report rounded amounts (to cents, or 4 decimals); the new one keeps 9 decimals.
            if abs(old - new) > 0.5 * 10 ** -decimals(old) + 1e-9:
                return False
        elif old != new:
            return False
    return True


def key(row: dict[str, Any]) -> str:
    identity = {k: v for k, v in row.items() if not k.endswith("_usd") and k not in CLOCK_COLUMNS}
    return json.dumps(identity, sort_keys=True)


def test_the_demo_shows_the_same_figures_for_clean_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "demo.duckdb")
    demo_database(db)
    assert cli.main(["report", "--db", db, "--format", "json"]) == 0
    after: dict[str, list[dict[str, Any]]] = json.loads(capsys.readouterr().out)
    if os.environ.get("OPENAI_BATCHES_REGENERATE_DEMO_FIGURES"):
        FIXTURE.write_bytes(gzip.compress(json.dumps(after, sort_keys=True).encode(), 9, mtime=0))
    before: dict[str, list[dict[str, Any]]] = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    assert after.pop("caveats") == []  # clean data: every figure covers every batch
    # Reconciliation needs an admin key, and the request ledger `requests`, which this load has not: those
    # reports are there, and empty.
    for name in ("usage_reconciliation", "project_coverage", "cost_reconciliation", *LEDGER_REPORTS):
        assert after.pop(name) == [], name
    # Issue 18 added a provider dimension: one provider here, every other figure as before.
    (provider,) = after.pop("cost_by_provider")
    assert provider["provider"] == "openai" and provider["batches"] == after["cost_summary"][0]["batches"]
    assert provider["cost_usd"] == after["cost_summary"][0]["cost_usd"]
    for name in ("throughput_daily", "turnaround_percentiles", "turnaround_histogram", "validation_errors"):
        for row in after[name]:
            assert row.pop("provider") in ("openai", "(all)"), name
    assert set(after) == set(before)
    for name, old_rows in before.items():
        new_rows = after[name]
        assert len(new_rows) == len(old_rows), name
        assert [set(r) for r in new_rows] == [set(r) for r in old_rows], name
        old_sorted, new_sorted = sorted(old_rows, key=key), sorted(new_rows, key=key)
        differ = [(o, n) for o, n in zip(old_sorted, new_sorted, strict=True) if not same_row(o, n)]
        assert not differ, (name, differ[:3])
    assert before["cost_summary"][0]["batches"] == 3010  # the figures the demo has shown


def test_the_demo_loads_every_provider_of_its_organisation_and_every_report_shows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: the demo's organisation has OpenAI projects, an Anthropic workspace, an Azure resource and accounts
    at Groq, Mistral and OpenRouter; every one's batches land in its table and in `batch_jobs`, the backfill
    and the cron tick load each, and `cost_by_provider` and the HTML page show each."""
    db = str(tmp_path / "demo.duckdb")
    per_project = 100
    assert demo.run_demo(db_path=db, batches=per_project, seed=4) == 0
    out = capsys.readouterr().out
    others = {provider: name for provider, name, _ in demo.DEMO_OTHERS}
    assert {"groq", "mistral", "azure"} <= set(others)
    con = duckdb.connect(db, read_only=True)
    try:
        jobs = dict(con.execute("SELECT provider, count(*) FROM openai_batches.batch_jobs GROUP BY 1").fetchall())
        tables = {
            provider: con.execute(f"SELECT count(*) FROM openai_batches.{settings.BATCH_TABLES[provider]}").fetchone()
            for provider in ("openai", "anthropic", *others)
        }
        projects = dict(
            con.execute("SELECT provider, list(DISTINCT project) FROM openai_batches.batch_jobs GROUP BY 1").fetchall()
        )
    finally:
        con.close()
    assert set(jobs) == {"openai", "anthropic", *others}
    other_batches = per_project // demo.DEMO_OTHER_SHARE
    for provider, name in others.items():
        # the history, and whatever arrived in the simulated hour before the cron tick
        assert other_batches <= jobs[provider] <= other_batches + 10, (provider, jobs[provider])
        assert tables[provider] == (jobs[provider],), provider
        assert projects[provider] == [name], provider
        assert f"backfill [{name}] ok:" in out and f"incremental [{name}] ok:" in out, provider
        assert f"({provider})" in out
    assert jobs["openai"] >= 2 * per_project and jobs["anthropic"] >= demo.DEMO_ANTHROPIC_BATCHES
    # A cron tick re-reads only what changed: fewer requests than the backfill on every provider (the list's one
    # request with nothing new is test_other_providers' and the bench's; here the ledger reads what ended). Not
    # Groq's: its list, 20 a page without has_more, is read back to the lookback window on every run.
    for provider, name in others.items():
        if provider == "groq":  # read back to the window on every run: about the backfill's pages
            continue
        backfill = int(re.search(rf"backfill \[{name}\] ok: (\d+) requests", out)[1])  # type: ignore[index]
        tick = int(re.search(rf"incremental \[{name}\] ok: (\d+) requests", out)[1])  # type: ignore[index]
        assert tick < backfill, (provider, tick, backfill)

    assert cli.main(["report", "--db", db, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_provider = {row["provider"]: row for row in report["cost_by_provider"]}
    assert {p: r["batches"] for p, r in by_provider.items()} == jobs
    # Priced where genai-prices (or OpenAI's price of an Azure deployment's model) prices them; OpenRouter's own cost
    # beside ours.
    for provider in ("openai", "anthropic", "azure", "groq", "openrouter"):
        assert by_provider[provider]["cost_usd"] > 0, provider
    assert by_provider["openrouter"]["reported_cost_usd"] > 0

    page = tmp_path / "report.html"
    assert cli.main(["report", "--db", db, "--html", str(page)]) == 0
    section = page.read_text().split('id="cost_by_provider"')[1]
    for provider in jobs:
        assert f"<td>{provider}</td>" in section, provider
