"""The analysis views, persisted in the database file so `queries/*.sql` run as-is in the DuckDB CLI.

Plain SQL only (no Python UDFs): DuckDB stores a view as its text and binds it when queried, so the
views keep working in any DuckDB session and survive dlt adding columns to `batches`.

Every view reads `batches_in_scope`, the one place `--since` applies: batches created at or after
the DuckDB variable `since` (a UTC date or timestamp), all batches when it is unset.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ..db import connect
from ..settings import BATCHES_TABLE, TERMINAL_STATUSES
from . import settings
from .prices import Overrides, load_overrides, prices_path, resolve_prices, write_model_prices

S = settings.SCHEMA
_TERMINAL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))

# Batches from before September 2025 carry no model; grouping them under a visible label keeps them
# in every per-model total instead of a NULL row readers overlook.
NO_MODEL = "(not reported)"

SINCE_MACRO = f"""
CREATE OR REPLACE MACRO {S}.report_since() AS
    coalesce(CAST(getvariable('{settings.SINCE_VARIABLE}') AS TIMESTAMP) AT TIME ZONE 'UTC', TIMESTAMPTZ '-infinity')
"""

BATCHES_IN_SCOPE = f"""
CREATE OR REPLACE VIEW {S}.batches_in_scope AS
SELECT *, coalesce(model, '{NO_MODEL}') AS model_label
FROM {S}.{BATCHES_TABLE}
WHERE created_at >= {S}.report_since()
"""

# UTC wall time of a TIMESTAMPTZ is written `make_timestamp(epoch_us(ts))` throughout: the same value as
# `timezone('UTC', ts)`, without going through ICU, which made it 5-15x slower over a million batches.

# Batch price: `batch_factor` (0.5) of the standard price of the period in force at created_at.
# Uncached input at the input price, cached input at the cached-input price (the input price where
# none is listed), output (reasoning included) at the output price. No usage or no price: NULL, not 0.
BATCH_COSTS = f"""
CREATE OR REPLACE VIEW {S}.batch_costs AS
WITH joined AS (
    SELECT
        b.id, b.project, b.model, b.model_label, b.endpoint, b.status, b.created_at,
        CAST(make_timestamp(epoch_us(b.created_at)) AS DATE) AS created_day,
        b.metadata,
        b.usage__input_tokens AS input_tokens,
        b.usage__input_tokens_details__cached_tokens AS cached_input_tokens,
        b.usage__output_tokens AS output_tokens,
        b.usage__output_tokens_details__reasoning_tokens AS reasoning_tokens,
        p.matched_model AS price_model,
        p.source AS price_source,
        p.valid_from AS price_valid_from,
        p.input_usd_per_mtok,
        coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok) AS cached_input_usd_per_mtok,
        p.output_usd_per_mtok,
        p.batch_factor,
        CASE
            WHEN b.usage__input_tokens IS NULL THEN 'no usage reported'
            WHEN b.model IS NULL THEN 'no model reported'
            WHEN p.model IS NULL THEN 'no price for model'
            WHEN p.output_usd_per_mtok IS NULL AND coalesce(b.usage__output_tokens, 0) > 0
                THEN 'no output price for model'
        END AS unpriced_reason
    FROM {S}.batches_in_scope AS b
    LEFT JOIN {S}.{settings.PRICES_TABLE} AS p
        ON p.model = b.model
        AND b.created_at >= coalesce(p.valid_from, TIMESTAMPTZ '-infinity')
        AND b.created_at < coalesce(p.valid_to, TIMESTAMPTZ 'infinity')
),
priced AS (
    SELECT
        *,
        unpriced_reason IS NULL AS priced,
        CASE WHEN unpriced_reason IS NULL THEN (
            (input_tokens - coalesce(cached_input_tokens, 0)) * input_usd_per_mtok
            + coalesce(cached_input_tokens, 0) * cached_input_usd_per_mtok
            + coalesce(output_tokens, 0) * coalesce(output_usd_per_mtok, 0)
        ) / 1e6 END AS sync_cost_usd
    FROM joined
)
SELECT
    id, project, model, model_label, endpoint, status, created_at, created_day, metadata,
    input_tokens,
    cached_input_tokens,
    input_tokens - coalesce(cached_input_tokens, 0) AS uncached_input_tokens,
    output_tokens,
    reasoning_tokens,
    priced,
    unpriced_reason,
    sync_cost_usd * batch_factor AS cost_usd,
    sync_cost_usd,
    sync_cost_usd * (1 - batch_factor) AS batch_savings_usd,
    CASE WHEN priced THEN
        coalesce(cached_input_tokens, 0) * (input_usd_per_mtok - cached_input_usd_per_mtok) / 1e6 * batch_factor
    END AS cache_savings_usd,
    price_model, price_source, price_valid_from,
    input_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok, batch_factor
FROM priced
"""

# Durations in seconds. Turnaround is creation to the terminal status, whatever it is; `within_window`
# is only defined for batches that completed or expired (the two ways a window can be met or missed).
# `epoch(a) - epoch(b)`, not `epoch(a - b)`: subtracting two TIMESTAMPTZ goes through ICU's calendar,
# ~18x slower (1.4 s of the report over a million batches), and is elapsed time only where no DST
# change falls in between; the difference of epochs is exact elapsed seconds in every time zone.
BATCH_TIMINGS = f"""
CREATE OR REPLACE VIEW {S}.batch_timings AS
SELECT
    id, project, model, model_label, endpoint, status, created_at, expires_at,
    status IN ({_TERMINAL}) AS is_terminal,
    CASE WHEN status IN ({_TERMINAL}) THEN coalesce(completed_at, failed_at, expired_at, cancelled_at) END AS ended_at,
    epoch(in_progress_at) - epoch(created_at) AS queue_s,
    epoch(finalizing_at) - epoch(in_progress_at) AS processing_s,
    epoch(completed_at) - epoch(finalizing_at) AS finalizing_s,
    CASE WHEN status IN ({_TERMINAL})
        THEN epoch(coalesce(completed_at, failed_at, expired_at, cancelled_at)) - epoch(created_at) END AS turnaround_s,
    CASE WHEN status NOT IN ({_TERMINAL}) THEN epoch(now()) - epoch(created_at) END AS open_for_s,
    request_counts__total AS requests_total,
    request_counts__completed AS requests_completed,
    request_counts__failed AS requests_failed,
    status = 'completed' AND request_counts__total > 0 AND request_counts__failed >= request_counts__total
        AS all_requests_failed,
    CASE WHEN status = 'completed' THEN completed_at <= expires_at WHEN status = 'expired' THEN false END
        AS within_window,
    usage__input_tokens AS input_tokens,
    usage__output_tokens AS output_tokens
FROM {S}.batches_in_scope
"""

# Work is counted in the period the batch ended: results become available all at once, at the end.
_THROUGHPUT = """
CREATE OR REPLACE VIEW {schema}.{name} AS
SELECT
    {bucket} AS {column},
    model_label AS model,
    count(*) AS batches_finished,
    count(*) FILTER (WHERE status = 'completed') AS batches_completed,
    sum(requests_completed) AS requests_completed,
    sum(requests_failed) AS requests_failed,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens
FROM {schema}.batch_timings
WHERE is_terminal
GROUP BY ALL
"""
THROUGHPUT_HOURLY = _THROUGHPUT.format(
    schema=S,
    name="throughput_hourly",
    bucket="date_trunc('hour', make_timestamp(epoch_us(ended_at)))",
    column="hour_utc",
)
THROUGHPUT_DAILY = _THROUGHPUT.format(
    schema=S, name="throughput_daily", bucket="CAST(make_timestamp(epoch_us(ended_at)) AS DATE)", column="day_utc"
)

# Completed batches only: a failed validation takes seconds and an expiry the whole window, which
# would hide how long real work takes. The grand-total row has model and endpoint '(all)'.
TURNAROUND_PERCENTILES = f"""
CREATE OR REPLACE VIEW {S}.turnaround_percentiles AS
SELECT
    CASE WHEN grouping(model_label) = 1 THEN '(all)' ELSE model_label END AS model,
    CASE WHEN grouping(endpoint) = 1 THEN '(all)' ELSE endpoint END AS endpoint,
    count(*) AS batches,
    quantile_cont(turnaround_s, 0.5) AS turnaround_p50_s,
    quantile_cont(turnaround_s, 0.9) AS turnaround_p90_s,
    quantile_cont(turnaround_s, 0.99) AS turnaround_p99_s,
    quantile_cont(queue_s, 0.5) AS queue_p50_s,
    quantile_cont(processing_s, 0.5) AS processing_p50_s,
    quantile_cont(finalizing_s, 0.5) AS finalizing_p50_s
FROM {S}.batch_timings
WHERE status = 'completed'
GROUP BY GROUPING SETS ((model_label, endpoint), ())
"""

# Rates over finished batches (an open batch has not failed or expired yet). Request failure rate is
# failed requests over all requests of finished batches; the window share is completed-in-time over
# completed plus expired. The grand-total row has model '(all)'.
FAILURE_RATES = f"""
CREATE OR REPLACE VIEW {S}.failure_rates AS
SELECT
    CASE WHEN grouping(model_label) = 1 THEN '(all)' ELSE model_label END AS model,
    count(*) AS batches_finished,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed_validation,
    count(*) FILTER (WHERE status = 'expired') AS expired,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE all_requests_failed) AS completed_all_requests_failed,
    sum(requests_failed) / nullif(sum(requests_total), 0) AS request_failure_rate,
    count(*) FILTER (WHERE status = 'failed') / count(*) AS validation_failure_rate,
    count(*) FILTER (WHERE status = 'expired') / count(*) AS expiry_rate,
    count(*) FILTER (WHERE status = 'cancelled') / count(*) AS cancellation_rate,
    avg(CAST(within_window AS INTEGER)) AS within_window_share
FROM {S}.batch_timings
WHERE is_terminal
GROUP BY GROUPING SETS ((model_label), ())
"""

OPEN_BATCHES = f"""
CREATE OR REPLACE VIEW {S}.open_batches AS
SELECT
    id, project, model, model_label, endpoint, status, created_at, expires_at,
    open_for_s,
    epoch(expires_at) - epoch(now()) AS expires_in_s,
    requests_total, requests_completed, requests_failed
FROM {S}.batch_timings
WHERE NOT is_terminal
"""

VIEWS: tuple[tuple[str, str], ...] = (
    ("batches_in_scope", BATCHES_IN_SCOPE),
    ("batch_costs", BATCH_COSTS),
    ("batch_timings", BATCH_TIMINGS),
    ("throughput_hourly", THROUGHPUT_HOURLY),
    ("throughput_daily", THROUGHPUT_DAILY),
    ("turnaround_percentiles", TURNAROUND_PERCENTILES),
    ("failure_rates", FAILURE_RATES),
    ("open_batches", OPEN_BATCHES),
)
VIEW_NAMES = tuple(name for name, _ in VIEWS)


class NoBatchesError(Exception):
    """The database has no `batches` table yet: nothing was ever loaded into it."""


def has_batches(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [S, BATCHES_TABLE],
    ).fetchone()
    return bool(row and row[0])


def ensure_views(con: duckdb.DuckDBPyConnection) -> None:
    """Create (or replace) the `since` macro and every view; `model_prices` is created empty if missing.

    Cheap and idempotent. Raises NoBatchesError when nothing was loaded yet, since views over a
    missing table cannot be created."""
    if not has_batches(con):
        raise NoBatchesError(f"no {S}.{BATCHES_TABLE} table: nothing has been loaded into this database yet")
    con.execute(SINCE_MACRO)
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [S, settings.PRICES_TABLE],
    ).fetchone()
    if not (exists and exists[0]):
        write_model_prices(con, [])
    for _, sql in VIEWS:
        con.execute(sql)


def refresh_prices(con: duckdb.DuckDBPyConnection, overrides: Overrides) -> int:
    """Rebuild `model_prices` for the models present in `batches`; returns the number of price rows."""
    models = [
        r[0] for r in con.execute(f"SELECT DISTINCT model FROM {S}.{BATCHES_TABLE} WHERE model IS NOT NULL").fetchall()
    ]
    rows = resolve_prices(models, overrides)
    write_model_prices(con, rows)
    return len(rows)


def refresh_analysis(db_path: str, prices_file: str | None = None) -> None:
    """Rebuild `model_prices` (genai-prices plus the user's price file) and (re)create every view.

    Call after each load and before reading the views: new models get prices and an edited price
    file takes effect. One transaction, so a reader never sees views without prices. Raises
    NoBatchesError for a database nothing was loaded into and PricesError for a bad price file."""
    if not Path(db_path).exists():
        raise FileNotFoundError(f"no database at {db_path}")
    overrides = load_overrides(prices_path(prices_file), required=prices_file is not None)
    with connect(db_path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            if not has_batches(con):
                raise NoBatchesError(f"no {S}.{BATCHES_TABLE} table in {db_path}: nothing has been loaded into it yet")
            refresh_prices(con, overrides)
            ensure_views(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


__all__ = ["NO_MODEL", "VIEW_NAMES", "NoBatchesError", "ensure_views", "refresh_analysis"]
