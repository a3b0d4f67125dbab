"""`openai-batches demo`: the whole product on the built-in simulator, no API key needed.

Two simulated OpenAI projects, an Anthropic workspace, and the organisation's accounts at the other batch APIs
(an Azure OpenAI resource, Groq, Mistral, OpenRouter), each with a realistic history, are served on
loopback; the real `load` backfills them into a fresh demo database, then the simulated clock moves one hour and a
second `load` shows what a cron run costs on each.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from pathlib import Path

from .. import settings
from ..analysis import refresh_after_load
from ..config import AdminConfig, ProjectConfig, RunConfig
from ..load.runner import LoadOutcome, run_load, working_dir
from ..simulator import SimClock, SimulatedOrg, SimulatorServer
from ..simulator import others as sim_others
from .progress import make_progress
from .summary import print_summary

# Simulator keys: they only open the local simulator, so printing them is fine.
# Shaped like real keys (a random tail): a key that shared a word with the data (`sk-sim-research` and a
# batch's `metadata.team: research`) would be masked wherever a server sent that word back.
DEMO_PROJECTS = {"sk-sim-7Qx2Vb9LrT4w": "proj_research", "sk-sim-K3mZ8pYd1Fh6": "proj_production"}
# Enough history to show costs over months, small enough to backfill in seconds.
DEMO_BATCHES_PER_PROJECT = 1500
# Long enough to straddle 2025-09-07, before which the API reported no usage (unpriced rows).
DEMO_HISTORY_DAYS = 540.0
# Share of the history still running at load time, so the cron tick has open batches to bring up to date.
DEMO_OPEN_FRACTION = 0.01
# New batches per hour per project after the backfill, so the cron tick has something to pick up.
DEMO_ARRIVALS_PER_HOUR = 6.0
# The demo reads the request ledger too, within a small budget per project and run: the simulated month
# of files still kept is ~800 MB (embedding batches of hundreds of MB), minutes of parsing; 64 MB a run
# keeps each load to seconds and shows how the rest waits for later runs, files that expire first first.
DEMO_REQUESTS_MAX_MB = 64.0

# The Anthropic workspace beside them (Message Batches, read with its own key, as ANTHROPIC_API_KEY would):
# a history longer than the 29 days its results are kept, so the older batches show as archived.
DEMO_ANTHROPIC_KEY = "sk-ant-api03-sim-Wd4nR8cJ2tY6"
DEMO_ANTHROPIC_WORKSPACE = "wrkspc_sim_claude"
DEMO_ANTHROPIC_BATCHES = 600
DEMO_ANTHROPIC_DAYS = 60.0
# Message batches submitted during the simulated hour, so the cron tick has new ones to pick up.
DEMO_ANTHROPIC_ARRIVALS = 3

# The organisation's accounts at the other providers (Azure, Groq and Mistral, whose quirks the loader is most
# careful with, and OpenRouter, whose own reported cost is compared with ours; not Together, to keep the demo's run
# time: each provider is a load of its own, ~1 s a run), each read with its own key, as its SDK's environment name
# would give it (provider, project name, key shaped as that provider's keys are: the loader refuses a key of
# another provider's shape). A second simulated organisation serves them: none of them is a project of the OpenAI
# organisation, so OpenAI's Admin API must not list them (reconciliation would call them missing).
DEMO_OTHERS = (
    ("azure", "azure_eastus", "5d0c2a9e7b4f41d8a6e3c1b2f0a9d8e7"),
    ("groq", "groq", "gsk_sim_demo_Yt4Qm8Vx2Lr6Nc0Pw3Bz7Hd5Kf9Js1Ga"),
    ("mistral", "mistral", "MistralSimDemo7Hq2Wx9Lc4Rb6Tz0Vn"),
    ("openrouter", "openrouter", "sk-or-v1-sim-demo-Pe6Xj2Mu9Ra4Wd8Ln"),
)
# A twentieth of an OpenAI project's history each (75 batches by default): enough for every report to show the
# provider, and small enough that they add little to the demo's time (Groq's list pages 20 at a time);
# `demo --batches` scales them with the OpenAI projects'.
DEMO_OTHER_SHARE = 20
# Younger than the 30 days the simulator keeps a batch's files (OpenAI's rule): Mistral's retention is undocumented,
# so the ledger reads every file it names, and an expired one answers 404 for three runs before it is taken as gone
# (a warning per batch and run).
DEMO_OTHER_DAYS = 25.0
# New batches per hour at each, so the cron tick shows what a run with something new costs on each provider.
DEMO_OTHER_ARRIVALS_PER_HOUR = 2.0
# The models each provider runs, so their batches are priced as genai-prices prices them there (Mistral's and
# Together's from the tokens of their results, read into the request ledger).
DEMO_OTHER_MODELS = {
    # Azure: deployments named like the OpenAI models they run (priced as those, at OpenAI's batch price)
    "azure": ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"),
    "groq": ("openai/gpt-oss-120b", "openai/gpt-oss-20b", "llama-3.3-70b-versatile", "llama-3.1-8b-instant"),
    "mistral": ("mistral-small-latest", "mistral-large-latest", "mistral-medium-latest"),
    "openrouter": ("openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct", "google/gemini-2.0-flash-001"),
}
# Requests per batch at those providers (uniform in this range), of ~1 kB result lines: Groq's files are read into
# the request ledger like OpenAI's, and this keeps them to a few MB, not the demo's whole ledger budget each run.
DEMO_OTHER_REQUESTS = (5, 80)
DEMO_OTHER_LINE_BYTES = 1_000
# XORed into the demo's seed for the other providers' accounts (see _other_accounts): another seed, in range.
DEMO_OTHER_SEED_MASK = 0x5EED_0719
# Azure's documentation shows every one of these besides OpenAI's shape (simulator/flavors.py): the demo shows the
# loader takes them.
DEMO_AZURE_QUIRKS = frozenset({"capitalised", "iso-times", "uuid-ids"})

# The organisation's Admin API side (reconciliation): the simulator's admin key, a project nobody
# configured a key for (its batches are only visible in OpenAI's books: `missing`), and one month in
# which OpenAI's books count more batch tokens for a project than its batches report (`differs`).
DEMO_ADMIN_KEY = "sk-admin-sim"
DEMO_UNCONFIGURED = ("proj_batch_lab", "Batch lab")
DEMO_UNCONFIGURED_DAYS = 45.0
DEMO_DISCREPANCY_PROJECT = "proj_research"
DEMO_DISCREPANCY_FACTOR = 1.1
# Days before now in the month that differs: a finished month (OpenAI's buckets settled).
DEMO_DISCREPANCY_DAYS_AGO = 60


def _fresh(db_path: str) -> None:
    """The demo always starts from nothing: its simulated ids depend on today's date."""
    for path in (db_path, db_path + ".wal"):
        Path(path).unlink(missing_ok=True)
    shutil.rmtree(working_dir(db_path), ignore_errors=True)


def _other_base_url(server: SimulatorServer, provider: str) -> str:
    """Each provider's API root on the simulator, version path included, as its official SDK takes it."""
    root = server.base_url.removesuffix("/v1")
    if provider in ("azure", "groq"):
        return root + "/openai/v1"
    return root + sim_others.PREFIXES[provider]


def _load(db_path: str, server: SimulatorServer, others: SimulatorServer, label: str) -> LoadOutcome:
    openai = tuple(ProjectConfig(name=None, api_key=key, base_url=server.base_url) for key in DEMO_PROJECTS)
    claude = ProjectConfig(
        name=settings.ANTHROPIC_PROJECT_NAME,
        api_key=DEMO_ANTHROPIC_KEY,
        base_url=server.anthropic_base_url,
        provider="anthropic",
    )
    rest = tuple(
        ProjectConfig(name=name, api_key=key, base_url=_other_base_url(others, provider), provider=provider)
        for provider, name, key in DEMO_OTHERS
    )
    config = RunConfig(
        projects=(*openai, claude, *rest),
        admin=AdminConfig(admin_key=DEMO_ADMIN_KEY, base_url=server.base_url),
        requests=True,
        requests_max_mb_per_run=DEMO_REQUESTS_MAX_MB,
    )
    progress = make_progress()
    try:
        result = run_load(db_path, config, progress=progress)
    finally:
        getattr(progress, "close", lambda: None)()
    print_summary(result, label)
    return result


def _print_contents(db_path: str) -> None:
    from ..storage.duckdb_file import connect

    with connect(db_path, read_only=True) as con:
        rows = con.execute(
            f"""
            SELECT project, count(*) AS batches,
                   count(*) FILTER (WHERE {settings.is_open_sql()}) AS open,
                   sum(request_counts__total) AS requests,
                   sum(usage__total_tokens) AS tokens,
                   count(*) FILTER (WHERE usage__total_tokens IS NULL) AS without_usage
            FROM {settings.DATASET_NAME}.{settings.BATCHES_TABLE} GROUP BY 1 ORDER BY 1
            """
        ).fetchall()
    print(f"\n{'project':<18}{'batches':>9}{'open':>7}{'requests':>13}{'tokens':>16}{'no usage':>10}")
    for project, batches, open_, requests, tokens, without in rows:
        print(f"{project:<18}{batches:>9}{open_:>7}{requests or 0:>13,}{tokens or 0:>16,}{without:>10}")
    _print_anthropic(db_path)
    _print_other_providers(db_path)
    _print_ledger(db_path)


def _print_anthropic(db_path: str) -> None:
    """The Anthropic workspace's line: its batches carry request counts but no tokens (those are in the results)."""
    from ..storage.duckdb_file import connect, table_exists

    s, table = settings.DATASET_NAME, settings.ANTHROPIC_BATCHES_TABLE
    is_open = settings.is_open_sql("processing_status", terminal=settings.ANTHROPIC_TERMINAL_STATUSES)
    with connect(db_path, read_only=True) as con:
        if not table_exists(con, s, table):
            return
        rows = con.execute(
            f"""SELECT project, count(*), count(*) FILTER (WHERE {is_open}),
                       sum(request_counts__processing + request_counts__succeeded + request_counts__errored
                           + request_counts__canceled + request_counts__expired)
                FROM {s}.{table} GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    for project, batches, open_, requests in rows:
        print(f"{project:<18}{batches:>9}{open_:>7}{requests or 0:>13,}   Anthropic: tokens are in its results")


def _print_other_providers(db_path: str) -> None:
    """One line per project of the other providers, from `batch_jobs` (every provider's batches in OpenAI's words)."""
    from ..storage.duckdb_file import connect, table_exists

    s = settings.DATASET_NAME
    with connect(db_path, read_only=True) as con:
        if not table_exists(con, s, "batch_jobs"):
            return
        rows = con.execute(
            f"""SELECT project, provider, count(*), count(*) FILTER (WHERE NOT is_terminal), sum(requests_total),
                       sum(input_tokens + output_tokens)
                FROM {s}.batch_jobs WHERE provider NOT IN ('openai', 'anthropic') GROUP BY 1, 2 ORDER BY 2, 1"""
        ).fetchall()
    for project, provider, batches, open_, requests, tokens in rows:
        print(f"{project:<18}{batches:>9}{open_:>7}{requests or 0:>13,}{tokens or 0:>16,}   {provider}")


def _print_ledger(db_path: str) -> None:
    """What the request ledger holds now, and what waits for the next runs."""
    from ..storage.duckdb_file import connect, table_exists

    s = settings.DATASET_NAME
    with connect(db_path, read_only=True) as con:
        if not table_exists(con, s, settings.REQUESTS_TABLE):
            return
        outcomes = con.execute(
            f"SELECT outcome, count(*) FROM {s}.{settings.REQUESTS_TABLE} GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        row = con.execute(
            f"""SELECT count(DISTINCT batch_id) FILTER (WHERE state = 'read'),
                       count(DISTINCT batch_id) FILTER (WHERE state = 'pending'),
                       coalesce(sum(bytes) FILTER (WHERE state = 'pending'), 0)
                FROM {s}.{settings.FILES_TABLE}"""
        ).fetchone()
    read, pending, pending_bytes = row if row else (0, 0, 0)
    shown = ", ".join(f"{n:,} {outcome}" for outcome, n in outcomes)
    print(f"\nRequest ledger: {shown} (requests of {read:,} batches; openai_batches.batch_requests)")
    print(
        f"The demo reads at most {DEMO_REQUESTS_MAX_MB:g} MB of files per project and run (requests_max_mb_per_run, "
        f"2 GB by default): {pending:,} finished batches ({pending_bytes / 1e6:,.0f} MB) wait for the next runs, "
        "those whose files expire first first."
    )


def _shape_books(org: SimulatedOrg, per_project: int) -> str:
    """Add the unconfigured project and the month that differs; returns that month (YYYY-MM)."""
    project, name = DEMO_UNCONFIGURED
    org.add_project(project, name=name)
    org.generate_history(max(1, per_project // 10), project=project, days=DEMO_UNCONFIGURED_DAYS)
    month = time.strftime("%Y-%m", time.gmtime(org.clock.now() - DEMO_DISCREPANCY_DAYS_AGO * 86_400))
    org.set_usage_discrepancy(DEMO_DISCREPANCY_PROJECT, month, DEMO_DISCREPANCY_FACTOR)
    return month


def _other_accounts(seed: int, count: int) -> SimulatedOrg:
    """The organisation's accounts at the other providers (DEMO_OTHERS), a project each, on one clock with the
    OpenAI organisation's start."""
    # Another seed than the OpenAI organisation's: the same one would give the OpenAI-shaped providers the same batch
    # and file ids as the OpenAI projects (one simulator's id sequence), which no two real accounts share.
    accounts = SimulatedOrg(
        projects={key: f"proj_{name}" for _, name, key in DEMO_OTHERS},
        clock=SimClock(start=time.time()),
        seed=seed ^ DEMO_OTHER_SEED_MASK,
    )
    rng = random.Random(seed)
    now = accounts.clock.now()
    for provider, name, _ in DEMO_OTHERS:
        project = f"proj_{name}"
        models = DEMO_OTHER_MODELS[provider]
        for age in sorted((rng.uniform(0, DEMO_OTHER_DAYS * 86_400) for _ in range(count)), reverse=True):
            total = rng.randint(*DEMO_OTHER_REQUESTS)
            accounts.create_batch(
                project=project,
                created_at=now - age,
                model=rng.choice(models),
                endpoint="/v1/chat/completions",
                total_requests=total,
                output_bytes=total * DEMO_OTHER_LINE_BYTES,
            )
        accounts.set_arrival_rate(DEMO_OTHER_ARRIVALS_PER_HOUR, project=project)
    return accounts


def demo_db_path(db_path: str | None = None) -> str:
    """--db wins, then OPENAI_BATCHES_DEMO_DB, then ./openai_batches_demo.duckdb."""
    return db_path or os.environ.get("OPENAI_BATCHES_DEMO_DB") or settings.DEMO_DB_PATH


def run_demo(db_path: str | None = None, batches: int | None = None, seed: int = 0) -> int:
    db_path = demo_db_path(db_path)
    per_project = batches or DEMO_BATCHES_PER_PROJECT
    _fresh(db_path)
    org = SimulatedOrg(
        projects=dict(DEMO_PROJECTS),
        clock=SimClock(start=time.time()),
        seed=seed,
        anthropic_workspaces={DEMO_ANTHROPIC_KEY: DEMO_ANTHROPIC_WORKSPACE},
    )
    org.anthropic.generate_history(DEMO_ANTHROPIC_BATCHES, days=DEMO_ANTHROPIC_DAYS)
    for project in DEMO_PROJECTS.values():
        org.generate_history(per_project, project=project, days=DEMO_HISTORY_DAYS, open_fraction=DEMO_OPEN_FRACTION)
        org.set_arrival_rate(DEMO_ARRIVALS_PER_HOUR, project=project)
    month = _shape_books(org, per_project)
    other_batches = max(1, per_project // DEMO_OTHER_SHARE)
    accounts = _other_accounts(seed, other_batches)
    print(
        f"Simulated organisation: {len(DEMO_PROJECTS)} OpenAI projects, {per_project} batches each, an Anthropic "
        f"workspace ({DEMO_ANTHROPIC_WORKSPACE}) with {DEMO_ANTHROPIC_BATCHES} message batches, and "
        f"{other_batches} batches each at {', '.join(provider for provider, _, _ in DEMO_OTHERS)}, seed {seed}."
    )
    print(
        f"Its Admin API also shows project {DEMO_UNCONFIGURED[0]}, for which no key is configured, and counts "
        f"{DEMO_DISCREPANCY_FACTOR:.0%} of the batch tokens {DEMO_DISCREPANCY_PROJECT} reports for {month}."
    )
    with SimulatorServer(org) as server, SimulatorServer(accounts, azure_quirks=DEMO_AZURE_QUIRKS) as others:
        first = _load(db_path, server, others, "backfill")
        if not first.ok:
            return settings.EXIT_FAILED
        org.advance(3600)
        accounts.advance(3600)
        for _ in range(DEMO_ANTHROPIC_ARRIVALS):
            org.anthropic.create_batch()
        print("One simulated hour later (a cron tick):")
        second = _load(db_path, server, others, "incremental")
        if not second.ok:
            return settings.EXIT_FAILED
    # As `load` does after a load that changed data: prices and views stored for SQL run on the file.
    for warning in refresh_after_load(db_path):
        print(f"warning: {warning}", file=sys.stderr)
    _print_contents(db_path)
    print(f"\nDemo database: {db_path}  (duckdb {db_path} < queries/01_cost_summary.sql)")
    return settings.EXIT_OK
