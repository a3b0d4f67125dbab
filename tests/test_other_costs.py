"""Together, Mistral and OpenRouter batches in `batch_jobs` and the cost reports (issue 19): an organisation with an
OpenAI project and the three loaded through the real loader from the simulator, then SQL on the database. Each batch
is one row with its provider and its status in OpenAI's words (the provider's own value kept in its table); counts,
times and tokens are the provider's own where it sends them and NULL where it does not; costs equal an independent
Decimal computation from genai-prices' own calculator to the cent, OpenRouter's reported cost beside ours."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from openai_batches.analysis import refresh_analysis
from openai_batches.analysis.settings import QUERIES_DIR
from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator import others as sim
from openai_batches.tables.others import time_of

from .support.analysis import dlt_dirs
from .support.assertions import analysed, batch_jobs_by_id
from .support.workload import KEY_A, NOW, PROJECT_A

TOGETHER_KEY = "tgt-sim-0123456789abcdef0123456789abcdef"
MISTRAL_KEY = "MistralSimKey0123456789abcdefABCD"
OPENROUTER_KEY = "sk-or-v1-sim0123456789abcdef0123456789abcdef"
TOGETHER, MISTRAL, OPENROUTER = "together_team", "mistral_team", "openrouter_team"
PROJECTS = {"together": TOGETHER, "mistral": MISTRAL, "openrouter": OPENROUTER}
DAY = 86_400
# Section 17 of the provider facts, written out: each provider's word -> OpenAI's.
OPENAI_WORD = {
    "QUEUED": "validating",
    "VALIDATING": "validating",
    "RUNNING": "in_progress",
    "IN_PROGRESS": "in_progress",
    "SUCCESS": "completed",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "TIMEOUT_EXCEEDED": "expired",
    "EXPIRED": "expired",
    "CANCELLATION_REQUESTED": "cancelling",
    "CANCELING": "cancelling",
    "CANCELLED": "cancelled",
}
TERMINAL = {"completed", "failed", "expired", "cancelled"}
OPENROUTER_MODELS = {
    "or_listed_batch_price": ("openai/gpt-4o-mini", NOW - 2 * DAY),  # genai-prices' openrouter `...:batch`
    "or_bare_name": ("gpt-4o", NOW - 3 * DAY),  # the simulator names it `openai/gpt-4o`: `:batch` listed too
    "or_standard_only": ("meta-llama/llama-3.3-70b-instruct", NOW - 20 * DAY),  # no `:batch`: standard x 0.5
    "or_unknown": ("private-vendor/secret-model", NOW - 3 * DAY),  # unpriced
}
MISTRAL_MODELS = {
    "mi_batch_price": ("mistral-small-latest", NOW - 2 * DAY),  # genai-prices' batch variant (from 2026-10-14)
    "mi_before_variant": ("mistral-small-latest", NOW - 20 * DAY),  # before it: standard x 0.5
    "mi_no_variant": ("mistral-large-latest", NOW - 2 * DAY),  # no variant: standard x 0.5
}
TOGETHER_MODELS = {
    "tg_priced_by_file": ("meta-llama/Llama-3.3-70B-Instruct-Turbo", NOW - 2 * DAY),
    "tg_unpriced": ("Qwen/Qwen3.5-9B", NOW - 2 * DAY),
}
PRICES_TOML = """
[[prices]]
provider = "together"
model = "meta-llama/*"
input = 0.88
output = 0.88
"""


@dataclass
class Org:
    db: str
    prices: str
    shown: dict[str, dict[str, Any]]  # batch id as the provider shows it -> the object it serves
    providers: dict[str, str]  # batch id -> provider
    labels: dict[str, str]  # label -> batch id as the provider shows it


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    root = tmp_path_factory.mktemp("other_costs")
    org = SimulatedOrg(
        projects={KEY_A: PROJECT_A, TOGETHER_KEY: TOGETHER, MISTRAL_KEY: MISTRAL, OPENROUTER_KEY: OPENROUTER},
        clock=SimClock(start=NOW),
        seed=29,
    )
    labels: dict[str, str] = {}
    for project, models in ((OPENROUTER, OPENROUTER_MODELS), (MISTRAL, MISTRAL_MODELS), (TOGETHER, TOGETHER_MODELS)):
        for label, (model, created) in models.items():
            labels[label] = org.create_batch(project=project, created_at=created, model=model, outcome="completed")
    for provider, project in PROJECTS.items():
        for outcome in ("expired", "cancelled", "failed"):
            labels[f"{provider}_{outcome}"] = org.create_batch(
                project=project, created_at=NOW - 4 * DAY, outcome=outcome
            )
        labels[f"{provider}_open"] = org.create_batch(project=project)  # validating now
    org.create_batch(project=PROJECT_A, created_at=NOW - 2 * DAY, model="gpt-4o-mini", outcome="completed")
    prices = root / "prices.toml"
    prices.write_text(PRICES_TOML)
    db = str(root / "org.duckdb")
    server = SimulatorServer(org).start()
    try:
        root_url = server.base_url.removesuffix("/v1")
        keys = {"together": TOGETHER_KEY, "mistral": MISTRAL_KEY, "openrouter": OPENROUTER_KEY}
        projects = (
            ProjectConfig(name=PROJECT_A, api_key=KEY_A, base_url=server.base_url),
            *(
                ProjectConfig(name=name, api_key=keys[p], base_url=root_url + sim.PREFIXES[p], provider=p)
                for p, name in PROJECTS.items()
            ),
        )
        with dlt_dirs(root):
            # The request ledger off: the batches as listed, their results unread (read and priced from the
            # ledger's tokens: test_other_ledger.py).
            result = run_load(str(db), RunConfig(projects=projects, requests=False))
            assert result.ok, [o.error for o in result.outcomes]
            assert refresh_analysis(db, str(prices))
        ids = server._other_ids  # the server's own id map: the ids Together and Mistral show
        render = {
            "together": lambda b: sim.together_batch(b, ids),
            "mistral": lambda b: sim.mistral_job(b, ids),
            "openrouter": sim.openrouter_batch,
        }
        shown: dict[str, dict[str, Any]] = {}
        providers: dict[str, str] = {}
        original: dict[str, str] = {}
        for provider, project in PROJECTS.items():
            for batch in org.batches(project):
                obj = render[provider](batch)
                shown[obj["id"]], providers[obj["id"]], original[batch["id"]] = obj, provider, obj["id"]
        yield Org(db, str(prices), shown, providers, {k: original[v] for k, v in labels.items()})
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def query(org: Org, sql: str) -> list[dict[str, Any]]:
    return analysed(org.db, org.prices, sql)


def jobs(org: Org) -> dict[str, dict[str, Any]]:
    return batch_jobs_by_id(org.db, org.prices)


def openrouter_cost(obj: dict[str, Any]) -> Decimal | None:
    """OpenRouter's batch at genai-prices' openrouter `<model>:batch` price where it lists one, else its standard
    price x 0.5 (OpenRouter's typical batch discount); None where genai-prices knows no price."""
    from genai_prices import Usage, calc_price

    u = obj["usage"]
    usage = Usage(
        input_tokens=u["prompt_tokens"],
        cache_read_tokens=u["prompt_tokens_details"]["cached_tokens"],
        output_tokens=u["completion_tokens"],
    )
    at = datetime.fromtimestamp(obj["created_at"], UTC)
    try:
        standard = calc_price(usage, obj["model"], provider_id="openrouter", genai_request_timestamp=at)
    except LookupError:
        return None
    try:
        listed = calc_price(usage, standard.model.id + ":batch", provider_id="openrouter", genai_request_timestamp=at)
    except LookupError:
        return standard.total_price * Decimal("0.5")
    assert listed.model.id == standard.model.id + ":batch"
    return listed.total_price


# ------------------------------------------------------------------------------------------------ batch_jobs
def test_each_batch_is_one_row_with_its_provider_status_counts_times_and_tokens(loaded: Org) -> None:
    counted = query(loaded, "SELECT provider, batch_id, count(*) AS n FROM openai_batches.batch_jobs GROUP BY ALL")
    assert all(r["n"] == 1 for r in counted)
    found = {r["batch_id"]: r["provider"] for r in counted}
    assert {i: p for i, p in found.items() if p != "openai"} == loaded.providers
    assert sum(p == "openai" for p in found.values()) == 1
    rows = jobs(loaded)
    for batch_id, obj in loaded.shown.items():
        provider, row = loaded.providers[batch_id], rows[batch_id]
        assert row["project"] == PROJECTS[provider]
        word = obj["status"] if provider == "openrouter" else OPENAI_WORD[obj["status"]]
        assert row["status"] == word, batch_id
        assert row["is_terminal"] is (word in TERMINAL), batch_id
        assert row["created_at"] == time_of(obj["created_at"]), batch_id
        end = obj.get("finalized_at" if provider == "openrouter" else "completed_at")
        assert row["ended_at"] == (time_of(end) if word in TERMINAL else None), batch_id
        assert row["model"] == obj.get("model_id" if provider == "together" else "model"), batch_id
        if provider == "together":  # Together sends no request counts
            counts: tuple[Any, ...] = (None, None, None)
        elif provider == "mistral":  # its `completed_requests` is succeeded and failed: OpenAI's is succeeded
            counts = (obj["total_requests"], obj["succeeded_requests"], obj["failed_requests"])
        else:
            counts = tuple(obj["request_counts"][k] for k in ("total", "completed", "failed"))
        assert (row["requests_total"], row["requests_succeeded"], row["requests_failed"]) == counts, batch_id
        if provider == "openrouter":
            u = obj["usage"]
            assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
                u["prompt_tokens"],
                u["prompt_tokens_details"]["cached_tokens"],
                u["completion_tokens"],
            ), batch_id
            assert row["reported_cost_usd"] == u["cost"], batch_id
        else:  # no tokens on a Together batch or a Mistral job: unknown, never 0
            assert (row["input_tokens"], row["output_tokens"], row["reported_cost_usd"]) == (None, None, None)
    assert all(r["reported_cost_usd"] is None for r in rows.values() if r["provider"] == "openai")


def test_the_providers_own_statuses_stay_in_their_tables_and_open_batches_are_open(loaded: Org) -> None:
    own = {p: {r["status"] for r in query(loaded, f"SELECT status FROM openai_batches.{p}_batches")} for p in PROJECTS}
    assert own["mistral"] >= {"SUCCESS", "TIMEOUT_EXCEEDED", "CANCELLED", "FAILED", "QUEUED"}
    assert own["together"] >= {"COMPLETED", "EXPIRED", "CANCELLED", "FAILED", "VALIDATING"}
    assert own["openrouter"] >= {"completed", "expired", "cancelled", "failed", "validating"}
    words = {r["status"] for r in query(loaded, "SELECT status FROM openai_batches.batch_jobs")}
    assert words <= TERMINAL | {"validating", "in_progress", "finalizing", "cancelling"}
    opened = {r["id"]: r["provider"] for r in query(loaded, "SELECT id, provider FROM openai_batches.open_batches")}
    assert opened == {loaded.labels[f"{p}_open"]: p for p in PROJECTS}


def test_turnaround_counts_the_completed_batches_of_the_three_providers(loaded: Org) -> None:
    """No finalizing stage on these APIs: a completed batch's timeline is its creation and end, as Anthropic's."""
    rows = query(
        loaded,
        "SELECT provider, sum(batches) AS n FROM openai_batches.turnaround_percentiles "
        "WHERE provider <> '(all)' GROUP BY provider",
    )
    completed = {p: 0 for p in PROJECTS}
    for row in jobs(loaded).values():
        if row["provider"] in completed and row["status"] == "completed":
            completed[row["provider"]] += 1
    assert {r["provider"]: r["n"] for r in rows if r["provider"] in PROJECTS} == completed


# ------------------------------------------------------------------------------------------------ costs
def test_openrouter_costs_equal_an_independent_computation_to_the_cent_beside_its_reported_cost(loaded: Org) -> None:
    rows = jobs(loaded)
    priced = set()
    for batch_id, obj in loaded.shown.items():
        if loaded.providers[batch_id] != "openrouter":
            continue
        row, expected = rows[batch_id], openrouter_cost(obj)
        if expected is None:
            assert row["priced"] is False and row["cost_usd"] is None, batch_id
            assert row["unpriced_reason"] == "no price for model", batch_id
            assert row["reported_cost_usd"] == obj["usage"]["cost"]  # theirs is kept when ours is unknown
            continue
        priced.add(batch_id)
        assert row["priced"] is True, (batch_id, row["unpriced_reason"])
        assert round(Decimal(row["cost_usd"]), 2) == round(expected, 2), batch_id
        assert row["cost_usd"] == pytest.approx(float(expected), abs=1e-9), batch_id
    assert {loaded.labels[k] for k in ("or_listed_batch_price", "or_bare_name", "or_standard_only")} <= priced
    assert rows[loaded.labels["or_unknown"]]["priced"] is False
    listed, standard = rows[loaded.labels["or_listed_batch_price"]], rows[loaded.labels["or_standard_only"]]
    assert listed["price_source"] == "genai-prices batch price"
    assert standard["price_source"] == "genai-prices standard price x 0.5"
    assert listed["sync_cost_usd"] == pytest.approx(2 * listed["cost_usd"])  # `:batch` is half the listed price


def test_mistral_jobs_take_genai_prices_batch_price_and_are_unpriced_without_tokens(loaded: Org) -> None:
    """A Mistral job reports no tokens: unpriced with the reason; the price it is matched to is genai-prices'
    batch price where it lists one at the job's creation, else its standard price x 0.5 (as Groq's)."""
    from genai_prices import Usage, calc_price

    costs = {
        r["id"]: r
        for r in query(
            loaded,
            "SELECT id, input_usd_per_mtok, output_usd_per_mtok, batch_factor, price_source, unpriced_reason "
            "FROM openai_batches.other_batch_costs WHERE provider = 'mistral'",
        )
    }
    rows = jobs(loaded)
    million = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    for label, (model, created) in MISTRAL_MODELS.items():
        batch_id = loaded.labels[label]
        at = datetime.fromtimestamp(created, UTC)
        standard = calc_price(million, model, provider_id="mistral", genai_request_timestamp=at).total_price
        batch = calc_price(
            million, model, provider_id="mistral", genai_request_timestamp=at, price_context={"processing": "batch"}
        ).total_price
        expected = batch if batch != standard else standard * Decimal("0.5")
        c = costs[batch_id]
        ours = (Decimal(str(c["input_usd_per_mtok"])) + Decimal(str(c["output_usd_per_mtok"]))) * Decimal(
            str(c["batch_factor"])
        )
        assert ours == expected, label
        source = "genai-prices batch price" if batch != standard else "genai-prices standard price x 0.5"
        assert c["price_source"] == source, label
        assert rows[batch_id]["priced"] is False and rows[batch_id]["cost_usd"] is None
        assert rows[batch_id]["unpriced_reason"].startswith("no usage reported: Mistral sends no tokens")


def test_together_is_priced_only_from_the_price_file_and_unpriced_without_tokens(loaded: Org) -> None:
    prices = query(
        loaded, "SELECT model, source, batch_factor FROM openai_batches.model_prices WHERE provider = 'together'"
    )
    assert [(r["model"], r["batch_factor"]) for r in prices] == [("meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.5)]
    assert prices[0]["source"].startswith("override (")
    rows = jobs(loaded)
    for label in TOGETHER_MODELS:
        row = rows[loaded.labels[label]]
        assert row["priced"] is False and row["cost_usd"] is None
        assert row["unpriced_reason"].startswith("no usage reported: Together sends no tokens")
    caveats = {(r["id"], r["caveat"]) for r in query(loaded, "SELECT id, caveat FROM openai_batches.caveats")}
    assert any(i == loaded.labels["tg_unpriced"] and c.startswith("together batch unpriced: ") for i, c in caveats)
    assert (loaded.labels["or_unknown"], "openrouter batch unpriced: no price for model") in caveats


def test_cost_by_provider_sums_each_provider_with_openrouters_reported_cost_beside_ours(loaded: Org) -> None:
    by_provider = {r["provider"]: r for r in query(loaded, (QUERIES_DIR / "24_cost_by_provider.sql").read_text())}
    assert set(by_provider) == {"openai", *PROJECTS}
    for provider in PROJECTS:
        objs = [o for i, o in loaded.shown.items() if loaded.providers[i] == provider]
        row = by_provider[provider]
        assert row["batches"] == len(objs), provider
        if provider != "openrouter":
            assert row["unpriced_batches"] == len(objs) and row["cost_usd"] is None, provider
            assert row["reported_cost_usd"] is None and row["reported_minus_ours_usd"] is None, provider
            continue
        costs = {o["id"]: openrouter_cost(o) for o in objs}
        assert row["unpriced_batches"] == sum(c is None for c in costs.values())
        assert round(Decimal(row["cost_usd"]), 2) == round(sum(c for c in costs.values() if c is not None), 2)
        reported = sum(Decimal(str(o["usage"]["cost"])) for o in objs)
        assert round(Decimal(str(row["reported_cost_usd"])), 6) == round(reported, 6)
        both = sum(Decimal(str(o["usage"]["cost"])) - costs[o["id"]] for o in objs if costs[o["id"]] is not None)  # type: ignore[operator]
        assert round(Decimal(str(row["reported_minus_ours_usd"])), 6) == round(both, 6)
    assert by_provider["openai"]["reported_cost_usd"] is None


def test_the_report_and_its_html_page_name_the_three_providers(loaded: Org, tmp_path: Path) -> None:
    from openai_batches.cli import main as cli

    page = tmp_path / "report.html"
    assert cli.main(["report", "--db", loaded.db, "--prices", loaded.prices, "--html", str(page)]) == 0
    html = page.read_text()
    assert all(f"{name} (" in html for name in PROJECTS)  # a cost card each


def test_the_views_stored_in_the_file_read_the_three_tables(loaded: Org) -> None:
    import duckdb

    sql = (QUERIES_DIR / "24_cost_by_provider.sql").read_text()
    with duckdb.connect(loaded.db, read_only=True) as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        stored = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert stored == query(loaded, sql)


# ------------------------------------------------------------------------------------------------ status
def test_status_has_a_line_per_provider_counting_its_batches_and_open_ones(loaded: Org) -> None:
    from openai_batches.cli.status import read_status

    lines = {p.provider: p for p in read_status(loaded.db).projects}
    assert set(lines) == {"openai", *PROJECTS}
    for provider, line in lines.items():
        if provider == "openai":
            continue
        objs = [o for i, o in loaded.shown.items() if loaded.providers[i] == provider]
        still_open = [o for o in objs if OPENAI_WORD.get(o["status"], o["status"]) not in TERMINAL]
        assert (line.project, line.batches, line.open_now) == (PROJECTS[provider], len(objs), len(still_open))
        assert line.open_now == 1, provider


def test_simulate_serves_together_mistral_and_openrouter_that_load_from_the_sdks_variable_names(tmp_path: Path) -> None:
    """`simulate --together-batches N --mistral-batches M --openrouter-batches K` prints each SDK's variables (the
    API root with its version path, a key of the provider's shape); `load` with them alone reads all three."""
    import json

    from .support.cli import cli_env, run_cli, simulate_command

    db = str(tmp_path / "others.duckdb")
    counts = {"together": 25, "mistral": 35, "openrouter": 45}
    args = [f"--{p}-batches={n}" for p, n in counts.items()]
    with simulate_command("--batches", "0", "--anthropic-batches", "0", *args, "--days", "10") as (_, lines):
        printed = dict(
            line.split("  #")[0].strip().split("=", 1)
            for line in lines
            if line.startswith(("TOGETHER_", "MISTRAL_", "OPENROUTER_"))
        )
        assert set(printed) == {f"{p.upper()}_{v}" for p in counts for v in ("API_KEY", "BASE_URL")}
        result = run_cli("load", "--db", db, env=cli_env(**printed))
        assert result.returncode == 0, result.stderr
    report = run_cli("report", "--db", db, "--format", "json", "--only", "cost_by_provider", env=cli_env())
    assert report.returncode == 0, report.stderr
    assert {r["provider"]: r["batches"] for r in json.loads(report.stdout)["cost_by_provider"]} == counts
