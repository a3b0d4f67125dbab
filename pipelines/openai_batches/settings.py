"""Constants of the OpenAI batches source, each with the reason it has its value."""

from __future__ import annotations

import signal

# --- Exit codes (every command; README "Exit codes") ------------------------------------------------------------
# 0 success. 1 a load failed (API, database), `status` found the data stale, or a report could not read the database.
# 2 bad usage or configuration: retrying will not help. 75 (sysexits EX_TEMPFAIL) another process holds the
# database: cron and systemd treat it as "try again later". A run stopped by a signal: 128 + the signal number, as
# shells report it.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_BUSY = 75
EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143

# The official SDKs' default; OPENAI_BASE_URL or config overrides it (simulator, proxies, Azure-style gateways).
DEFAULT_BASE_URL = "https://api.openai.com/v1"

# The API's maximum page size: fewer requests per backfill (ceil(N/100)) and per cron run.
PAGE_LIMIT = 100

# Terminal statuses never change again, so a batch in one of them is never re-read.
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})

# Every status the reference lists; anything else is loaded as-is but treated as still open (safe side).
KNOWN_STATUSES = TERMINAL_STATUSES | frozenset({"validating", "in_progress", "finalizing", "cancelling"})


def is_open(status: object, terminal: frozenset[str] = TERMINAL_STATUSES) -> bool:
    """The one definition of "open": not in a terminal status (OpenAI's, or another provider's `terminal`).
    An unknown status, or none at all, is open, because a batch the code cannot place must be re-read
    until the API says it is final."""
    return status not in terminal


def is_open_sql(
    column: str = "status",
    *,
    id_column: str = "id",
    gone_table: str | None = None,
    terminal: frozenset[str] = TERMINAL_STATUSES,
) -> str:
    """`is_open` in SQL, for every view, report and status line that counts open batches. NULL is open:
    `status NOT IN (...)` alone is NULL for a NULL status and would silently drop the batch. A batch the
    API stopped returning while it was open (in `gone_table`, when that table exists) is not open: its
    last row can never change again."""
    terminal_sql = ", ".join(f"'{s}'" for s in sorted(terminal))
    sql = f"({column} IS NULL OR {column} NOT IN ({terminal_sql}))"
    if gone_table:
        sql = f"({sql} AND {id_column} NOT IN (SELECT id FROM {gone_table}))"
    return sql


# --- Providers (issue 18) ------------------------------------------------------------------------------------------
# Whose batch API a configured project reads (`provider = "..."` in its .dlt table); OpenAI when not said, so
# every configuration written before there was a choice means what it meant.
PROVIDERS = ("openai", "anthropic", "azure", "groq", "openai-compatible", "together", "mistral", "openrouter")
DEFAULT_PROVIDER = "openai"
# Providers whose batch API is OpenAI's (its batch object, `GET {base_url}/batches`, `after` = the last id), each
# with its own quirks (sources/compatible/): their rows keep OpenAI's column list, in a table per provider.
OPENAI_LIKE_PROVIDERS = ("azure", "groq", "openai-compatible")
# Groq's API root as the issue names it (the official groq SDK takes `https://api.groq.com` and adds the path).
GROQ_DEFAULT_BASE_URL = "https://api.groq.com/openai/v1"
# Other providers' words for OpenAI's statuses, after trimming and lower-casing (section 17 of the provider facts:
# Azure's documentation shows `Validating`/`Completed`, Mistral and Together send `QUEUED`, `RUNNING`, `SUCCESS`,
# `TIMEOUT_EXCEEDED`, `CANCELLATION_REQUESTED`, `CANCELING`): what `batch_jobs.status` shows and the loader's "open"
# reads; the provider's own value stays in its table. A value in neither stays as it is (open, as any unknown one).
STATUS_SYNONYMS = {
    "queued": "validating",
    "running": "in_progress",
    "success": "completed",
    "timeout_exceeded": "expired",
    "cancellation_requested": "cancelling",
    "canceling": "cancelling",
    "canceled": "cancelled",
}


def openai_status(status: object) -> object:
    """A provider's status in OpenAI's words (`STATUS_SYNONYMS`, any casing); anything but text as it is."""
    if not isinstance(status, str):
        return status
    word = status.strip().lower()
    return STATUS_SYNONYMS.get(word, word)


def openai_status_sql(column: str) -> str:
    """`openai_status` in SQL (NULL stays NULL)."""
    word = f"lower(trim({column}))"
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in STATUS_SYNONYMS.items())
    return f"CASE {word} {cases} ELSE {word} END"


# The project names of the single-key forms (GROQ_API_KEY; AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT): a
# key names no project, and rows need a name at once. One Azure resource is one project.
GROQ_PROJECT_NAME = "groq"
AZURE_PROJECT_NAME = "azure"
# Batch APIs of their own shape (sources/others/): Together's bare array, Mistral's page numbers, OpenRouter's
# batch object. Each has a table of its own with its own column list (tables/others.py).
OTHER_PROVIDERS = ("together", "mistral", "openrouter")
# Their API roots as their official SDKs take them (version path included), and the project names of their
# single-key forms (TOGETHER_API_KEY, MISTRAL_API_KEY, OPENROUTER_API_KEY): a key names no project.
OTHER_DEFAULT_BASE_URLS = {
    "together": "https://api.together.xyz/v1",
    "mistral": "https://api.mistral.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
}
# Status values that never change again, as each sends them (any casing is compared upper-cased for Together and
# Mistral); anything else, an unknown value or none, is open and re-read by id, as for OpenAI.
TOGETHER_TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "EXPIRED", "CANCELLED"})
MISTRAL_TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})
# Anthropic's API root as its official SDK takes it (ANTHROPIC_BASE_URL): without `/v1`.
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
# The project name of the one workspace ANTHROPIC_API_KEY reads (`anthropic_project_name` renames it): a key
# does not say which workspace it belongs to (only the Admin API does), and rows need a name at once.
ANTHROPIC_PROJECT_NAME = "anthropic"
# One row per Anthropic message batch, every field it sends (tables/anthropic.py).
ANTHROPIC_BATCHES_TABLE = "anthropic_batches"
# `processing_status` values: `ended` never changes again; anything else (in_progress, canceling, a value
# this version does not know, none) is open and re-read, by the same rule as OpenAI's statuses.
ANTHROPIC_TERMINAL_STATUSES = frozenset({"ended"})
ANTHROPIC_KNOWN_STATUSES = ANTHROPIC_TERMINAL_STATUSES | frozenset({"in_progress", "canceling"})

# dlt names: the DuckDB schema, the main table and the table that holds `errors.data`.
DATASET_NAME = "openai_batches"
PIPELINE_NAME = "openai_batches"
BATCHES_TABLE = "batches"
ERRORS_TABLE = "batches__errors__data"
# Each provider's table of batches (one row per batch, every field it sends).
# OpenAI-shaped providers have a table each (`azure_batches`, ...: OpenAI's columns), never `batches`: a gateway in
# front of OpenAI serves OpenAI's own batch ids, which would overwrite (merge into) the OpenAI project's rows.
BATCH_TABLES = {
    "openai": BATCHES_TABLE,
    "anthropic": ANTHROPIC_BATCHES_TABLE,
    "azure": "azure_batches",
    "groq": "groq_batches",
    "openai-compatible": "openai_compatible_batches",
    "together": "together_batches",
    "mistral": "mistral_batches",
    "openrouter": "openrouter_batches",
}
# Open batches the API stopped returning (confirmed gone): their last row stays in `batches`.
GONE_TABLE = "batches_gone"

# Where `load` writes when neither --db nor config names a file: the working directory, next to `.dlt/`.
# Not `openai_batches.duckdb`: its catalog would be named like the schema (the story: storage/duckdb_file.py).
DEFAULT_DB_PATH = "openai-batches.duckdb"
# Name of the DuckLake (`destination.ducklake.credentials.ducklake_name`): its ATTACH alias in dlt's
# connections and, in a PostgreSQL catalog, the schema of its metadata. Not `openai_batches`: the alias would
# shadow the schema (as a file's catalog would: storage/duckdb_file.py).
LAKE_NAME = "openai_batches_lake"

# Destinations `load --destination` accepts: a DuckDB file (default), a DuckLake, MotherDuck.
DESTINATIONS = ("duckdb", "ducklake", "motherduck")
DEFAULT_DESTINATION = "duckdb"

# The demo gets its own file so it never mixes simulated rows into a real database.
DEMO_DB_PATH = "openai_batches_demo.duckdb"

# How far below the newest batch loaded (the watermark) each run looks again for batches it has not
# seen: the list is not strictly in created_at order (ids carry a creation stamp up to a second off,
# and a batch can become visible after later ones). Configurable as `lookback_seconds`.
DEFAULT_LOOKBACK_S = 15 * 60

# A created_at before this (2023-01-01) cannot be a real batch's (the Batch API opened in April 2024):
# 0, a small number or a negative one is a broken value, not a time, and must not steer paging.
MIN_CREATED_AT = 1_672_531_200
# How far a created_at may be ahead of the API's own clock (its `Date` header) and still be believed:
# the API stamps both; a larger lead is clock skew or milliseconds. Well below the lookback window.
CREATED_AT_TOLERANCE_S = 120

# An open batch the API answers 404 for is asked for again on later runs; after this many runs in a
# row (or once paging went past where it must be) it is recorded as gone.
GONE_AFTER_MISSES = 3
# State keeps at most this many ids of batches without a usable created_at, and of confirmed-gone
# batches: enough for any real history, bounded against an API that sends only odd values.
MAX_ODD_IDS = 10_000
MAX_GONE_IDS = 10_000

# Rows per arrow table handed to dlt: large tables extract 2-3x faster than one per page. 5k rather
# than 10k: the pending batch objects and their conversion dominate the extract's memory (peak RSS of
# a backfill ~50 MB lower, measured), and extraction is no slower.
ARROW_CHUNK_ROWS = 5_000

# DuckDB memory of the loading connection; beyond it the staging copy and the merge spill to
# `<database>.tmp`. With it (and without dlt's deduplication window, see storage/destination.py) a
# million-batch backfill loads in one package at a peak RSS of ~350 MB in all (sampled per step: 80 MB
# 346, 100 MB 377, 120 MB 399; no slower), and without a limit DuckDB kept ~750 MB of blocks cached.
DUCKDB_LOAD_MEMORY_LIMIT = "80MB"

# DuckDB threads of the loading connection: each thread holds its own buffers (one thread instead of
# two is ~65 MB less at peak, and on a 32-core machine it would be far more); merges are no slower.
DUCKDB_LOAD_THREADS = 1

# dlt load jobs run at once (dlt's default is 20 threads): one, so the staging and merge of the two
# tables never overlap in DuckDB (see runner.run_load).
LOAD_WORKERS = 1

# Per-request timeouts: listing 100 batches is fast; a long read timeout only delays retrying a stuck call.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# The longest `request_timeout` accepted: a day is more than any request needs, and a socket cannot wait
# for much longer ones (1e308 seconds ended the run in an OverflowError after its first request).
REQUEST_TIMEOUT_MAX_S = 86_400.0

# Retry policy, as the official SDK does it: exponential from 0.5 s, doubling, capped at 8 s, with jitter.
RETRY_INITIAL_S = 0.5
RETRY_MAX_BACKOFF_S = 8.0
# A server hint (retry-after) is honoured up to this; a longer one means "come back later", so fail instead.
RETRY_MAX_HINT_S = 60.0
# Attempts of one request before giving up on it (the SDK uses 2 retries; cron can afford more).
RETRY_MAX_ATTEMPTS = 8
# Whole-run budget so a flapping API cannot keep a cron job alive for hours.
RETRY_BUDGET_RETRIES = 200
RETRY_BUDGET_SLEEP_S = 600.0

# HTTP statuses worth retrying (the SDK's list): timeouts, lock conflicts, rate limits and server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# Error codes that a retry cannot fix even though the status (429) usually can.
NON_RETRYABLE_CODES = frozenset({"insufficient_quota"})

# `load` holds `<database>.lock` for the whole run (see storage/lock.py).
LOCK_SUFFIX = ".lock"
# How long a `load` waits for a running one before exiting 75: long enough to ride out a run that is
# just finishing or a `status` read, short enough that a hung run is reported on the next cron tick.
DEFAULT_LOCK_WAIT_S = 30.0
# `status` is often run by a monitor while a load runs; it waits briefly, then says the database is busy.
DEFAULT_STATUS_WAIT_S = 10.0
LOCK_POLL_S = 0.2

# Table of successful project runs, written by the runner after each one (see cli/status.py).
RUN_LOG_TABLE = "_load_runs"

# --- The request ledger (`load --requests`, sources/ledger/reader.py) -------------------------------------------------
# Tables of the ledger: one row per request of a finished batch, one row per file of such a batch.
REQUESTS_TABLE = "batch_requests"
FILES_TABLE = "batch_files"
# Off by default: it downloads every finished batch's output and error files (gigabytes for big users).
DEFAULT_REQUESTS = False
# MB (of 1,048,576 bytes) of files one run starts downloading at most: 2 GB. What is left is read by the
# next runs, files that expire first before the others (a file can expire an hour after it is written).
DEFAULT_REQUESTS_MAX_MB = 2048.0
# Files downloading at once: one stream rarely fills the link, and parsing (one GIL) is the bound anyway.
DOWNLOADS_AT_ONCE = 4
# ... and requests of the batches read at once, at most (a batch always goes): each request read holds
# ~300 bytes until its batch is written, so four batches of 50,000 at once took ~100 MB more at peak.
LEDGER_REQUESTS_AT_ONCE = 100_000
# Output and error files are kept 30 days at most after a batch ends (the API reference: 30 days by
# default, 1 hour to 30 days with `output_expires_after`). Batches that ended longer ago than that plus a
# day of clock skew are not asked for: every file request would be a 404 (a backfill of years of history
# would otherwise cost a request per file of every batch ever run).
FILES_KEPT_AT_MOST_S = 30 * 86_400 + 86_400
# A download may take `request_timeout` plus the bytes it received at this rate: large files must not hit
# the limit meant for a server that trickles bytes (a 1 GB file gets ~17 minutes more). Bytes received,
# not the size announced: a content-length of terabytes would otherwise let a trickle run for months.
DOWNLOAD_MIN_BYTES_PER_S = 1_000_000
# Longest line of a batch file read: beyond it the line is dropped as it streams (counted as a line that
# could not be read), never held. A real line stays far below: the biggest is an embeddings response of
# 2,048 inputs of 3,072 floats (~130 MB as text); a line without end from a hostile server must not hold
# gigabytes.
LEDGER_MAX_LINE_BYTES = 256 * 1_048_576
# Most lines an Anthropic batch's results are read to: one per request is what the API sends; twice its
# requests (a server repeating every line) plus this slack is still read, and a stream without end (a hostile
# server's: fast, so the download's pace bound never ends it) is cut there instead of holding the run forever.
RESULTS_EXTRA_LINES = 1000
# Longest error message kept per request (error files carry the API's message; never content).
ERROR_MESSAGE_MAX_CHARS = 500
# Longest identifier (custom_id, request_id, ...) kept as sent; a longer one is cut (and cleaned).
IDENTIFIER_MAX_CHARS = 512
# Request rows per arrow table handed to dlt, as for `batches` (ARROW_CHUNK_ROWS): a 50,000-request batch
# handed over in one table took ~15 MB more at peak (dlt's extract and DuckDB's staging copy of it).
LEDGER_ARROW_ROWS = 5_000
