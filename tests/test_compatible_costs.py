"""Azure OpenAI, Groq and openai-compatible batches in `batch_jobs` and the cost reports (issue 19): an organisation
with all four OpenAI-shaped providers loaded through the real loader from the simulator's flavours, then SQL on the
database. Each batch is one row with its provider and its status in OpenAI's words; costs equal an independent
Decimal computation (genai-prices' own calculator, the price file's numbers) to the cent."""

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
from openai_batches.analysis.prices import PricesError, load_overrides
from openai_batches.analysis.settings import QUERIES_DIR
from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.analysis import dlt_dirs
from .support.assertions import analysed, batch_jobs_by_id
from .support.workload import KEY_A, KEY_B, NOW, PROJECT_A

GROQ_KEY = "gsk_simgroqkey0000000000000000000000000000000000000000"
AZURE_KEY = "0123456789abcdef0123456789abcdef"
GROQ, AZURE, GATEWAY = "groq_main", "azure_eastus", "gateway"
DAY = 86_400
# genai-prices 0.2.3 lists Groq batch prices for gpt-oss from 2026-10-14; NOW is 2026-10-31.
GROQ_MODELS = {
    "variant": ("openai/gpt-oss-120b", NOW - 2 * DAY),  # genai-prices' batch price
    "before_variant": ("openai/gpt-oss-20b", NOW - 20 * DAY),  # before it: standard x 0.5
    "no_variant": ("llama-3.3-70b-versatile", NOW - 3 * DAY),  # no batch price listed: standard x 0.5
    "unknown": ("groq-private-model", NOW - 3 * DAY),  # unpriced
}
AZURE_MODELS = {
    "named_like_a_model": ("gpt-4o-mini", NOW - 2 * DAY),  # a deployment named like the model runs it
    "mapped": ("my-gpt4o", NOW - 2 * DAY),  # [azure.deployments] my-gpt4o = "gpt-4o"
    "azure_price": ("eu-gpt4o", NOW - 3 * DAY),  # [[prices]] provider = "azure"
    "unmapped": ("prod-chat", NOW - 3 * DAY),  # unpriced, with how to price it
}
GATEWAY_MODELS = {
    "known_openai_name": ("gpt-4o-mini", NOW - 2 * DAY),  # unpriced: the endpoint can be anything
    "priced_by_file": ("vllm-llama-70b", NOW - 2 * DAY),  # [[prices]] provider = "openai-compatible"
}
PRICES_TOML = """
[azure.deployments]
my-gpt4o = "gpt-4o"

[[prices]]
provider = "azure"
model = "eu-*"
input = 2.75
cached_input = 1.375
output = 11.0

[[prices]]
provider = "openai-compatible"
model = "vllm-*"
input = 0.6
output = 0.8
batch_factor = 0.4
"""
FILE_PRICES = {"eu-gpt4o": (Decimal("2.75"), Decimal("1.375"), Decimal("11.0"), Decimal("0.5"))}
FILE_PRICES["vllm-llama-70b"] = (Decimal("0.6"), Decimal("0.6"), Decimal("0.8"), Decimal("0.4"))


@dataclass
class Org:
    db: str
    prices: str
    truth: dict[str, dict[str, Any]]  # batch id as the provider shows it -> (provider, batch)
    providers: dict[str, str]  # batch id -> provider
    labels: dict[str, str]  # label -> batch id


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    root = tmp_path_factory.mktemp("compatible_costs")
    org = SimulatedOrg(
        projects={KEY_A: PROJECT_A, KEY_B: GATEWAY, GROQ_KEY: GROQ, AZURE_KEY: AZURE},
        clock=SimClock(start=NOW),
        seed=19,
    )
    labels: dict[str, str] = {}
    for project, models in ((GROQ, GROQ_MODELS), (AZURE, AZURE_MODELS), (GATEWAY, GATEWAY_MODELS)):
        for label, (model, created) in models.items():
            labels[label] = org.create_batch(project=project, created_at=created, model=model, outcome="completed")
    labels["azure_expired"] = org.create_batch(project=AZURE, created_at=NOW - 4 * DAY, outcome="expired")
    labels["azure_cancelled"] = org.create_batch(project=AZURE, created_at=NOW - 4 * DAY, outcome="cancelled")
    labels["azure_open"] = org.create_batch(project=AZURE)  # validating now: `Validating` on Azure
    labels["groq_open"] = org.create_batch(project=GROQ)
    for project in (AZURE, GROQ, PROJECT_A):  # failed validation: their `errors.data` in batch_validation_errors
        labels[f"{project}_failed"] = org.create_batch(project=project, created_at=NOW - 5 * DAY, outcome="failed")
    org.create_batch(project=PROJECT_A, created_at=NOW - 2 * DAY, model="gpt-4o-mini", outcome="completed")
    prices = root / "prices.toml"
    prices.write_text(PRICES_TOML)
    db = str(root / "org.duckdb")
    server = SimulatorServer(org, azure_quirks=frozenset({"capitalised", "iso-times", "uuid-ids"})).start()
    try:
        base = server.base_url.removesuffix("/v1")
        projects = (
            ProjectConfig(name=PROJECT_A, api_key=KEY_A, base_url=server.base_url),
            ProjectConfig(name=GROQ, api_key=GROQ_KEY, base_url=base + "/openai/v1", provider="groq"),
            ProjectConfig(name=AZURE, api_key=AZURE_KEY, base_url=base + "/openai/v1", provider="azure"),
            ProjectConfig(name=GATEWAY, api_key=KEY_B, base_url=server.base_url, provider="openai-compatible"),
        )
        with dlt_dirs(root):
            result = run_load(db, RunConfig(projects=projects))
            assert result.ok, [o.error for o in result.outcomes]
            assert refresh_analysis(db, str(prices))  # what `load` stores for SQL run directly on the file
        azure_id = server._azure_ids.azure  # the ids Azure's API shows (uuids)
        truth: dict[str, dict[str, Any]] = {}
        providers: dict[str, str] = {}
        for project, provider in (
            (PROJECT_A, "openai"),
            (GROQ, "groq"),
            (AZURE, "azure"),
            (GATEWAY, "openai-compatible"),
        ):
            for batch in org.batches(project):
                shown = azure_id(batch["id"]) if provider == "azure" else batch["id"]
                truth[shown], providers[shown] = batch, provider
        labels = {
            k: azure_id(v) if k in AZURE_MODELS or k.startswith(("azure_", f"{AZURE}_")) else v
            for k, v in labels.items()
        }
        yield Org(db, str(prices), truth, providers, labels)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def query(org: Org, sql: str) -> list[dict[str, Any]]:
    return analysed(org.db, org.prices, sql)


def jobs(org: Org) -> dict[str, dict[str, Any]]:
    return batch_jobs_by_id(org.db, org.prices)


def independent_cost(provider: str, batch: dict[str, Any]) -> Decimal | None:
    """What the batch costs: Groq at genai-prices' batch price where it lists one at the batch's creation, else
    its standard price x 0.5; an Azure deployment at OpenAI's price of the model it runs x 0.5; the price file's
    numbers where it prices the model; None where nothing does."""
    from genai_prices import Usage, calc_price

    u = batch["usage"]
    inp, cached, out = u["input_tokens"], u["input_tokens_details"]["cached_tokens"], u["output_tokens"]
    model = batch["model"]
    if model in FILE_PRICES:
        i, c, o, factor = FILE_PRICES[model]
        return ((inp - cached) * i + cached * c + out * o) / Decimal(1_000_000) * factor
    usage = Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out)
    at = datetime.fromtimestamp(batch["created_at"], UTC)
    if provider == "groq":
        try:
            standard = calc_price(usage, model, provider_id="groq", genai_request_timestamp=at).total_price
        except LookupError:
            return None
        variant = calc_price(
            usage, model, provider_id="groq", genai_request_timestamp=at, price_context={"processing": "batch"}
        ).total_price
        return variant if variant != standard else standard * Decimal("0.5")
    if provider == "azure":
        runs = {"my-gpt4o": "gpt-4o"}.get(model, model)  # [azure.deployments], else the deployment's own name
        try:
            standard = calc_price(usage, runs, provider_id="openai", genai_request_timestamp=at).total_price
        except LookupError:
            return None
        return standard * Decimal("0.5")
    return None


# ------------------------------------------------------------------------------------------------ batch_jobs
def test_batch_jobs_has_every_batch_of_every_provider_once(loaded: Org) -> None:
    counted = query(loaded, "SELECT provider, batch_id, count(*) AS n FROM openai_batches.batch_jobs GROUP BY ALL")
    assert all(r["n"] == 1 for r in counted)
    assert {r["batch_id"]: r["provider"] for r in counted} == loaded.providers
    found = jobs(loaded)
    for batch_id, batch in loaded.truth.items():
        row = found[batch_id]
        counts = batch["request_counts"]
        assert (row["requests_total"], row["requests_succeeded"], row["requests_failed"]) == (
            counts["total"],
            counts["completed"],
            counts["failed"],
        ), batch_id
        assert int(row["created_at"].timestamp()) == batch["created_at"], batch_id
        ended = batch.get(f"{batch['status']}_at") if batch["status"] != "validating" else None
        assert (None if row["ended_at"] is None else int(row["ended_at"].timestamp())) == ended, batch_id
        usage = batch.get("usage")
        if usage:
            assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
                usage["input_tokens"],
                usage["input_tokens_details"]["cached_tokens"],
                usage["output_tokens"],
            ), batch_id
    assert {r["project"] for r in found.values() if r["provider"] == "azure"} == {AZURE}


def test_statuses_in_openais_words_and_the_providers_own_value_in_its_table(loaded: Org) -> None:
    found = jobs(loaded)
    assert {found[i]["status"] for i in loaded.truth} >= {"completed", "expired", "cancelled", "validating"}
    for batch_id, batch in loaded.truth.items():
        assert found[batch_id]["status"] == batch["status"], batch_id
        assert found[batch_id]["is_terminal"] is (batch["status"] != "validating"), batch_id
    azure = query(loaded, "SELECT id, status FROM openai_batches.azure_batches")
    assert {r["status"] for r in azure} >= {"Completed", "Expired", "Cancelled", "Validating"}
    opened = query(loaded, "SELECT id, provider FROM openai_batches.open_batches")
    assert {r["id"] for r in opened} == {loaded.labels["azure_open"], loaded.labels["groq_open"]}


# ------------------------------------------------------------------------------------------------ costs
def test_costs_equal_an_independent_computation_to_the_cent(loaded: Org) -> None:
    found = jobs(loaded)
    priced = set()
    for batch_id, batch in loaded.truth.items():
        provider, row = loaded.providers[batch_id], found[batch_id]
        if provider == "openai" or not batch.get("usage"):
            continue
        expected = independent_cost(provider, batch)
        if expected is None:
            assert row["priced"] is False and row["cost_usd"] is None and row["unpriced_reason"], batch_id
            continue
        priced.add(batch_id)
        assert row["priced"] is True, (batch_id, row["unpriced_reason"])
        assert round(Decimal(row["cost_usd"]), 2) == round(expected, 2), batch_id
        assert row["cost_usd"] == pytest.approx(float(expected), abs=1e-9), batch_id
    labelled = ("variant", "before_variant", "no_variant", "named_like_a_model", "mapped", "azure_price")
    assert {loaded.labels[k] for k in (*labelled, "priced_by_file")} <= priced


def test_price_sources_and_unpriced_reasons_say_which_rule_applied(loaded: Org) -> None:
    found = jobs(loaded)

    def of(label: str) -> dict[str, Any]:
        return found[loaded.labels[label]]

    assert of("variant")["price_source"] == "genai-prices batch price"
    assert (
        of("before_variant")["price_source"] == of("no_variant")["price_source"] == "genai-prices standard price x 0.5"
    )
    assert of("unknown")["unpriced_reason"] == "no price for model"
    assert of("named_like_a_model")["price_source"] == of("mapped")["price_source"] == "genai-prices"
    assert of("azure_price")["price_source"].startswith("override (")
    assert "[azure.deployments]" in of("unmapped")["unpriced_reason"]
    assert 'provider = "openai-compatible"' in of("known_openai_name")["unpriced_reason"]
    assert of("priced_by_file")["priced"] is True
    # the batch price is paid in full; the standard price is what the same tokens cost without the Batch API
    variant = of("variant")
    assert variant["sync_cost_usd"] > variant["cost_usd"] > 0
    notes = query(loaded, "SELECT model, matched_model, note FROM openai_batches.model_prices WHERE provider = 'azure'")
    assert {(r["model"], r["matched_model"]) for r in notes} >= {("my-gpt4o", "gpt-4o"), ("gpt-4o-mini", "gpt-4o-mini")}


def test_caveats_name_the_unpriced_batches_of_the_new_providers(loaded: Org) -> None:
    caveats = {(r["id"], r["caveat"]) for r in query(loaded, "SELECT id, caveat FROM openai_batches.caveats")}
    assert (loaded.labels["unknown"], "groq batch unpriced: no price for model") in caveats
    assert any(i == loaded.labels["unmapped"] and c.startswith("azure batch unpriced: ") for i, c in caveats)
    priced = {loaded.labels[k] for k in ("variant", "mapped", "priced_by_file")}
    assert not {i for i, c in caveats if "unpriced" in c} & priced


def test_cost_by_provider_sums_each_provider(loaded: Org) -> None:
    by_provider = {r["provider"]: r for r in query(loaded, (QUERIES_DIR / "24_cost_by_provider.sql").read_text())}
    assert set(by_provider) == {"openai", "groq", "azure", "openai-compatible"}
    for provider in ("groq", "azure", "openai-compatible"):
        batches = [b for i, b in loaded.truth.items() if loaded.providers[i] == provider]
        costs = [independent_cost(provider, b) for b in batches if b.get("usage")]
        row = by_provider[provider]
        assert row["batches"] == len(batches)
        assert row["unpriced_batches"] == len(batches) - sum(c is not None for c in costs)
        assert round(Decimal(row["cost_usd"]), 2) == round(sum(c for c in costs if c is not None), 2), provider


def test_the_report_and_its_html_page_name_every_provider(loaded: Org, tmp_path: Path) -> None:
    from openai_batches.cli import main as cli

    page = tmp_path / "report.html"
    code = cli.main(["report", "--db", loaded.db, "--prices", loaded.prices, "--html", str(page)])
    assert code == 0
    html = page.read_text()
    assert all(name in html for name in ("groq", "azure", "openai-compatible"))


# ------------------------------------------------------------------------------------------------ price file
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[azure]\nregions = "x"\n', "only a table `deployments`"),
        ("[azure.deployments]\nmy-dep = 5\n", "'my-dep' must name an OpenAI model"),
        ('[[prices]]\nprovider = "mistrall"\nmodel = "x"\ninput = 1\n', "`provider` must be one of"),
    ],
)
def test_a_bad_azure_or_provider_entry_is_refused_with_the_entry_at_fault(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(PricesError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_overrides(path)


def test_the_views_stored_in_the_file_hold_every_provider(loaded: Org) -> None:
    """The views stored in the file for SQL run directly on it read the new tables, at the same prices."""
    import duckdb

    sql = (QUERIES_DIR / "24_cost_by_provider.sql").read_text()
    with duckdb.connect(loaded.db, read_only=True) as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        stored = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert stored == query(loaded, sql)
    assert {r["provider"]: r["batches"] for r in stored} == {
        p: sum(1 for i in loaded.truth if loaded.providers[i] == p)
        for p in ("openai", "groq", "azure", "openai-compatible")
    }


# ------------------------------------------------------------------------------------------------ statuses
@pytest.mark.parametrize(
    ("sent", "word"),
    [
        ("VALIDATING", "validating"),
        ("Validating", "validating"),
        ("In_progress", "in_progress"),
        (" Completed ", "completed"),
        ("QUEUED", "validating"),
        ("RUNNING", "in_progress"),
        ("SUCCESS", "completed"),
        ("TIMEOUT_EXCEEDED", "expired"),
        ("CANCELLATION_REQUESTED", "cancelling"),
        ("CANCELING", "cancelling"),
        ("Canceled", "cancelled"),
        ("something_new", "something_new"),
        (None, None),
    ],
)
def test_a_status_in_any_casing_is_the_same_word_for_the_loader_and_the_views(sent: str | None, word: str) -> None:
    """Section 17's map: `batch_jobs.status` and the loader's "open" read one definition."""
    import duckdb

    from openai_batches.settings import is_open, openai_status, openai_status_sql
    from openai_batches.sources.compatible.shape import is_open as loader_open

    assert openai_status(sent) == word
    assert duckdb.sql(f"SELECT {openai_status_sql('s')} FROM (SELECT ?::VARCHAR AS s)", params=[sent]).fetchone() == (
        word,
    )
    assert loader_open({"status": sent}) is is_open(word)


# ------------------------------------------------------------------------------------------------ simulate
def test_simulate_serves_groq_and_azure_that_load_from_the_sdks_variable_names(tmp_path: Path) -> None:
    """`simulate --groq-batches N --azure-batches M` prints the SDKs' variables; `load` with them alone reads both,
    and the report prices and counts them by provider."""
    import json

    from .support.cli import cli_env, run_cli, simulate_command

    db = str(tmp_path / "flavors.duckdb")
    args = ("--batches", "0", "--anthropic-batches", "0", "--groq-batches", "40", "--groq-paging", "ignores")
    with simulate_command(*args, "--azure-batches", "30", "--days", "10") as (_, lines):
        printed = dict(
            line.split("  #")[0].strip().split("=", 1) for line in lines if line.startswith(("GROQ_", "AZURE_"))
        )
        assert set(printed) == {"GROQ_API_KEY", "GROQ_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"}
        result = run_cli("load", "--db", db, env=cli_env(**printed))
        assert result.returncode == 0, result.stderr
    report = run_cli("report", "--db", db, "--format", "json", "--only", "cost_by_provider", env=cli_env())
    assert report.returncode == 0, report.stderr
    by_provider = {r["provider"]: r for r in json.loads(report.stdout)["cost_by_provider"]}
    assert {p: r["batches"] for p, r in by_provider.items()} == {"groq": 40, "azure": 30}
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM openai_batches.azure_batches").fetchall()]
        statuses = {r[0] for r in con.execute("SELECT status FROM openai_batches.azure_batches").fetchall()}
    assert len(ids) == 30 and all(len(i) == 42 for i in ids)  # batch_<uuid>: Azure's quirks by default
    assert any(s[:1].isupper() for s in statuses)


def test_status_counts_each_providers_batches_and_open_ones_in_any_casing(loaded: Org) -> None:
    from openai_batches.cli.status import read_status
    from openai_batches.settings import TERMINAL_STATUSES, openai_status

    report = read_status(loaded.db)  # failed with KeyError once an Azure, Groq or compatible table existed
    lines = {p.provider: p for p in report.projects}
    assert set(lines) == {"openai", "groq", "azure", "openai-compatible"}
    for provider, line in lines.items():
        batches = [b for i, b in loaded.truth.items() if loaded.providers[i] == provider]
        still_open = [b for b in batches if openai_status(b["status"]) not in TERMINAL_STATUSES]
        assert (line.batches, line.open_now) == (len(batches), len(still_open)), provider
    assert lines["azure"].open_now >= 1 and lines["groq"].open_now >= 1  # `Validating` on Azure: open


# ------------------------------------------------------------------------------------------------ validation errors
def test_the_validation_errors_of_every_openai_shaped_provider_are_reported_with_their_provider(loaded: Org) -> None:
    """Azure's and Groq's `errors.data` (tables of their own) beside OpenAI's, each error once with its provider:
    `batch_validation_errors` and the report that reads it (queries/13_validation_errors.sql)."""
    expected = [
        (loaded.providers[batch_id], batch_id, e["code"], e["message"])
        for batch_id, batch in loaded.truth.items()
        for e in (batch.get("errors") or {}).get("data", [])
    ]
    assert {p for p, *_ in expected} == {"openai", "azure", "groq"}
    rows = query(loaded, "SELECT provider, batch_id, code, message FROM openai_batches.batch_validation_errors")
    assert sorted((r["provider"], r["batch_id"], r["code"], r["message"]) for r in rows) == sorted(expected)
    report = query(loaded, (QUERIES_DIR / "13_validation_errors.sql").read_text())
    errors_by_provider: dict[str, int] = {}
    for provider, *_ in expected:
        errors_by_provider[provider] = errors_by_provider.get(provider, 0) + 1
    reported: dict[str, int] = {}
    for r in report:  # a row per provider and code
        reported[r["provider"]] = reported.get(r["provider"], 0) + r["errors"]
    assert reported == errors_by_provider
