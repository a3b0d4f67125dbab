"""Constants of the cost and throughput analysis, each with the reason it has its value."""

from __future__ import annotations

from pathlib import Path

from ..settings import DATASET_NAME

# Everything the analysis creates lives next to the loaded tables, so `queries/*.sql` can name it as
# `openai_batches.<name>` from the DuckDB CLI without any setup.
SCHEMA = DATASET_NAME
PRICES_TABLE = "model_prices"

# OpenAI bills batch jobs at half the synchronous per-token price, cached input included
# (see the Pricing section of the API reference). Override entries can set their own factor.
BATCH_FACTOR = 0.5
# Anthropic has billed Message Batches at half the standard price, input, output and prompt-cache reads and
# writes alike, since the API opened (October 2024; "50% discount" in its pricing and batch-processing docs).
# genai-prices lists that batch price itself only from 2026-10-14, and for some models (claude-opus-4-1,
# claude-sonnet-4-0, claude-3-5-haiku) not at all: there the standard price times this factor is the price,
# and `model_prices.source` says so (prices.GENAI_PRICES_STANDARD).
ANTHROPIC_BATCH_FACTOR = 0.5
# The share of the standard price a batch pays on the other providers, where genai-prices lists no batch price of
# their own: Groq documents its Batch API at 50% of the standard price (genai-prices 0.2.3 lists a batch price
# only for two of its text models, from 2026-10-14); Azure's Global/Data Zone Batch deployments are 50% of
# Global Standard, priced as OpenAI's model (genai-prices has no Azure batch prices); an OpenAI-compatible
# endpoint is priced only from the price file, whose entries default to 50%, the discount of every batch API in
# the provider facts. A price file entry's `batch_factor` overrides it.
PROVIDER_BATCH_FACTORS = {"groq": 0.5, "azure": 0.5, "openai-compatible": 0.5}
# Mistral documents its batch API at 50% (genai-prices 0.2.3 lists a batch price for some of its models, from
# 2026-10-14); OpenRouter's batches are "typically 50% of the sync price" (genai-prices lists the batch price of
# many models itself, as `<model>:batch`); Together's are "up to 50%" off, per model and unlisted: it is priced
# only from the price file, whose entries default to 50%.
PROVIDER_BATCH_FACTORS |= {"mistral": 0.5, "openrouter": 0.5, "together": 0.5}
# A price file's `batch_factor` is the share of the standard price a batch pays: above 1 a batch would
# cost more than the same requests sent one by one, which no provider bills (a typo, such as 5 for 0.5).
BATCH_FACTOR_MAX = 1.0

# Largest price a price file may give, USD per million tokens: a dollar a token, thousands of times the
# dearest model listed. Above it an entry is a typo (a lost decimal point), and a float such as 1e308
# makes every total it enters infinite, which no report can show.
MAX_PRICE_USD_PER_MTOK = 1_000_000.0

# genai-prices knows models by provider: `batches` were billed by OpenAI (Anthropic's batches are priced
# under genai-prices' "anthropic", prices.ANTHROPIC).
PRICE_PROVIDER = "openai"

# The user's price file: it wins over genai-prices. Found next to dlt's own config (`.dlt/`), where the
# rest of this project's settings live; OPENAI_BATCHES_PRICES or `report --prices` name another file.
PRICES_FILE_NAME = "prices.toml"
PRICES_ENV = "OPENAI_BATCHES_PRICES"

# DuckDB variable the views read for `--since`: an instant. A date is its UTC midnight, a timestamp
# without an offset is UTC, one with an offset (or a TIMESTAMPTZ value) is that instant. Unset means
# "all time", so the views and queries run unchanged in a bare DuckDB CLI session.
SINCE_VARIABLE = "since"

# Timestamps outside this range cannot be real (the Batch API did not exist before 2024; a value days
# ahead of this machine's clock is a unit error such as milliseconds, not clock skew): the views treat
# them as unknown, and `caveats` counts the batches concerned. The lower bound is generous on purpose.
EARLIEST_PLAUSIBLE_TIME = "2020-01-01 00:00:00+00"
# Most tokens one batch (or one request) can report: 2**53, beyond which a count is not even exact as a
# double. No batch comes near (50,000 requests at most); a count above it is an encoding error, and
# priced it would put trillions of dollars into every total. Such usage is inconsistent (unpriced).
MAX_PLAUSIBLE_TOKENS = 2**53

# Clock skew between the API and this machine that is still believable.
FUTURE_TOLERANCE_S = 86_400

# One SQL file per question. The files live at the repository root (`queries/`), where users find and
# run them without Python; `sql` in this package is a link to that folder, so the same files are
# installed with the package (package data) and found the same way from a checkout or a wheel.
QUERIES_DIR = Path(__file__).resolve().parent / "sql"

# Rows a terminal table shows before "N more"; csv, json and markdown always carry every row.
TABLE_ROW_LIMIT = 15

# Longest model name (or other label) a chart draws; longer ones are cut with an ellipsis, so one odd
# name cannot squeeze a chart's axes to nothing.
CHART_LABEL_MAX = 40

# The request ledger's reports (`queries/19_...` to `23_...`, over `batch_requests` and `batch_files`).
# Empty until a load reads the ledger (`load --requests`): the terminal report then says so in one line
# instead of five empty tables, and the HTML page in one note.
LEDGER_REPORTS = ("request_outcomes", "missing_requests", "failure_reasons", "cost_by_custom_id_prefix", "ledger_check")
LEDGER_OFF_NOTE = (
    "No request read: the request ledger (what happened to every request of every finished batch) is read by "
    "`openai-batches load --requests` (or requests = true under [sources.openai_batches])."
)
