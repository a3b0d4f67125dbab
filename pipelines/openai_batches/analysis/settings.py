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

# genai-prices knows models by provider; every batch here was billed by OpenAI.
PRICE_PROVIDER = "openai"

# The user's price file: it wins over genai-prices. Found next to dlt's own config (`.dlt/`), where the
# rest of this project's settings live; OPENAI_BATCHES_PRICES or `report --prices` name another file.
PRICES_FILE_NAME = "prices.toml"
PRICES_ENV = "OPENAI_BATCHES_PRICES"

# DuckDB variable the views read for `--since`: a date (UTC midnight) or timestamp. Unset means "all time",
# so the views and queries run unchanged in a bare DuckDB CLI session.
SINCE_VARIABLE = "since"

# One SQL file per question, at the repository root so users find and run them without Python.
QUERIES_DIR = Path(__file__).resolve().parents[3] / "queries"

# Rows a terminal table shows before "N more"; csv, json and markdown always carry every row.
TABLE_ROW_LIMIT = 15
