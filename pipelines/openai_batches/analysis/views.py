"""The analysis views: plain SQL over `batches` and `model_prices`, so `queries/*.sql` run as-is.

Plain SQL only (no Python UDFs): DuckDB stores a view as its text and binds it when queried, so the
views keep working in any DuckDB session and survive dlt adding columns to `batches`. The same
definitions are created in two places (see `session.py`): in the database file after a load, for SQL
run directly on it, and in a report's own in-memory session, which never writes to the file.

Every view reads `batches_in_scope`, the one place `since` applies; `_usable` is the one test of a
timestamp and `_USAGE_CONSISTENT` the one test of usage. The rule throughout: a figure is right, or
it is absent (NULL) and `caveats` (query 15) counts the batches it leaves out and why; never a guess,
never a negative duration or cost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb

from ..settings import BATCHES_TABLE, GONE_TABLE, is_open_sql
from . import settings
from .anthropic_views import ENDPOINT as ANTHROPIC_ENDPOINT
from .anthropic_views import PROVIDER as ANTHROPIC
from .anthropic_views import PROVIDER_TABLES as ANTHROPIC_TABLES
from .anthropic_views import anthropic_views
from .compatible_views import COMPATIBLE_BATCH_TABLES, COMPATIBLE_TABLES, validation_errors_sql
from .compatible_views import costs as compatible_costs
from .compatible_views import in_scope as compatible_in_scope
from .ledger_views import ledger_views, request_redactions
from .other_views import CARRY as OTHER_CARRY
from .other_views import OTHER_TABLES, TIMELINE, no_price_reasons, no_usage_reasons
from .other_views import in_scope as other_in_scope
from .prices import GENAI_PRICES_STANDARD, PriceRow
from .reconciliation import BatchTerms, cost_caveats, reconciliation_views
from .sql_rules import NO_MODEL, sync_cost, usage_consistent

S = settings.SCHEMA

# `since` as an instant, whatever the session's time zone: the variable's text (a TIMESTAMPTZ renders
# with its offset) is read as that instant when it carries an offset, and as UTC when it does not
# (a date is its UTC midnight). `CAST(text AS TIMESTAMP)` alone would drop an offset, and
# `CAST(text AS TIMESTAMPTZ)` alone would read a bare date in the session's zone. It folds to a
# constant, so a million-row scan compares against one value.
_SINCE_TEXT = f"CAST(getvariable('{settings.SINCE_VARIABLE}') AS VARCHAR)"
_OFFSET = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2}){0,2})$"
SINCE_MACRO = f"""
CREATE OR REPLACE MACRO {S}.report_since() AS coalesce(
    CASE WHEN regexp_matches({_SINCE_TEXT}, '{_OFFSET}')
        THEN CAST({_SINCE_TEXT} AS TIMESTAMPTZ)
        ELSE to_timestamp(epoch(CAST({_SINCE_TEXT} AS TIMESTAMP)))
    END,
    TIMESTAMPTZ '-infinity'
)
"""

# `to_timestamp(epoch(now()) + s)`, not `now() + INTERVAL`: interval arithmetic on TIMESTAMPTZ goes
# through ICU's calendar; this is the same instant without it (and folds to a constant either way).
_LATEST = f"to_timestamp(epoch(now()) + {settings.FUTURE_TOLERANCE_S})"
_EARLIEST = f"TIMESTAMPTZ '{settings.EARLIEST_PLAUSIBLE_TIME}'"


def _usable(column: str) -> str:
    """The one test of a timestamp the API sent: the value when it can be a real time, else NULL, so no
    view buckets a batch in the year 58000 (milliseconds sent as seconds) or times one from 1970."""
    return f"CASE WHEN {column} BETWEEN {_EARLIEST} AND {_LATEST} THEN {column} END"


# Usage the API cannot have meant: cached input above input, reasoning above output, a negative count, a
# count no batch can reach.
# genai-prices refuses such usage; pricing it would subtract money from every total.
_USAGE_CONSISTENT = usage_consistent(
    "usage__input_tokens",
    "usage__input_tokens_details__cached_tokens",
    "usage__output_tokens",
    "usage__output_tokens_details__reasoning_tokens",
)

# Request counts the API cannot have meant: a negative count, or more completed and failed requests than
# the batch holds. Such counts are in no request figure (a failure rate above 100%, negative throughput);
# NULL without a total. Added as HUGEINT: no count the API sends can overflow the test of it.
_REQUEST_COUNTS_CONSISTENT = """CASE WHEN request_counts__total IS NOT NULL THEN
        coalesce(request_counts__completed, 0) >= 0
        AND coalesce(request_counts__failed, 0) >= 0
        AND CAST(coalesce(request_counts__completed, 0) AS HUGEINT) + coalesce(request_counts__failed, 0)
            <= request_counts__total
    END"""


# The batches as loaded (timestamps as sent; the views below test them with `_usable`), in scope: all
# of them when `since` is unset (the condition then folds to true and costs nothing), else those with
# a usable `created_at` at or after it (one without cannot be said to be after any instant).
# `gone`: the API stopped returning the batch while it was open (`batches_gone`, once a load created
# it): its last row can never change, so it is neither open nor finished in any figure.
_BATCHES_IN_SCOPE = f"""
CREATE OR REPLACE VIEW {S}.batches_in_scope AS
SELECT
    *,
    coalesce(model, '{NO_MODEL}') AS model_label,
    {_USAGE_CONSISTENT} AS usage_consistent,
    {_REQUEST_COUNTS_CONSISTENT} AS request_counts_consistent,
    {{gone}} AS gone
FROM {S}.{BATCHES_TABLE}
WHERE {S}.report_since() = TIMESTAMPTZ '-infinity' OR {_usable("created_at")} >= {S}.report_since()
"""


def batches_in_scope(has_gone_table: bool) -> str:
    gone = f"id IN (SELECT id FROM {S}.{GONE_TABLE})" if has_gone_table else "false"
    return _BATCHES_IN_SCOPE.format(gone=gone)


# UTC wall time of a TIMESTAMPTZ is written `make_timestamp(epoch_us(ts))` throughout: the same value as
# `timezone('UTC', ts)`, without going through ICU, which made it 5-15x slower over a million batches.


# The timestamps the durations read; the end of a batch is tested once it is chosen (`ended_at`: the
# timestamp of its terminal status, NULL while it is open).
_COUNTS = ("request_counts__total", "request_counts__completed", "request_counts__failed")
_TIMES = ("created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at")
_ENDED_AT = _usable(
    "CASE status WHEN 'completed' THEN completed_at WHEN 'failed' THEN failed_at "
    "WHEN 'expired' THEN expired_at WHEN 'cancelled' THEN cancelled_at END"
)


def _elapsed(later: str, earlier: str) -> str:
    """Seconds from ``earlier`` to ``later``; NULL when either is unknown or ``later`` comes first, which
    no real batch does (an interval that would be negative is not counted as a fast one)."""
    return f"CASE WHEN {later} >= {earlier} THEN (epoch_us({later}) - epoch_us({earlier})) / 1e6 END"


# Durations in seconds. Turnaround is creation to the terminal status's own timestamp (completed_at for
# completed, ...); `within_window` is only defined for batches that completed or expired (the two ways
# a window can be met or missed). A batch counts in turnaround figures when its whole timeline is
# known and in order (`timeline_complete`); `caveats` counts the completed ones that are not.
# `epoch_us(a) - epoch_us(b)`, not `epoch(a - b)`: subtracting two TIMESTAMPTZ goes through ICU's
# calendar, ~18x slower (1.4 s of the report over a million batches), and is elapsed time only where no
# DST change falls in between; the difference of epochs is exact elapsed time in every time zone. And
# `epoch_us`, not `epoch`: the integer microseconds are ~4x cheaper to get than `epoch`'s double.
# Every stage of a completed batch known and in order, so all four durations are known; comparisons, cheaper than
# testing the durations.
_STAGES_IN_ORDER = (
    "coalesce(created_at <= in_progress_at AND in_progress_at <= finalizing_at AND finalizing_at <= completed_at, "
    "false)"
)


def batch_timings_sql(
    view: str = "batch_timings", source: str = "batches_in_scope", carry: str = "", timeline: str = _STAGES_IN_ORDER
) -> str:
    """`batch_timings` over ``source`` (`batches_in_scope`, or another relation of OpenAI's columns), with the
    columns ``carry`` (`"provider, provider_status, "`) passed through first; ``timeline``: when a batch's
    timeline is complete (a provider without stage times: creation and end known and in order)."""
    return f"""
CREATE OR REPLACE VIEW {S}.{view} AS
WITH ends AS (
    SELECT
        {carry}id, project, model, model_label, endpoint, status, usage_consistent, request_counts_consistent, gone,
        metadata, usage__input_tokens, usage__output_tokens,
        usage__input_tokens_details__cached_tokens, usage__output_tokens_details__reasoning_tokens,
        created_at AS created_at_as_sent,  -- `batch_costs` joins prices on it: DuckDB knows its bounds
        {", ".join(f"CASE WHEN request_counts_consistent IS NOT false THEN {c} END AS {c}" for c in _COUNTS)},
        {", ".join(f"{_usable(c)} AS {c}" for c in _TIMES)},
        NOT {is_open_sql()} AND NOT gone AS is_terminal,
        {_ENDED_AT} AS ended_at
    FROM {S}.{source}
),
intervals AS (
    SELECT
        *,
        {_elapsed("in_progress_at", "created_at")} AS queue_s,
        {_elapsed("finalizing_at", "in_progress_at")} AS processing_s,
        {_elapsed("completed_at", "finalizing_at")} AS finalizing_s,
        {_elapsed("ended_at", "created_at")} AS turnaround_s,
        CASE WHEN NOT is_terminal AND NOT gone THEN {_elapsed("now()", "created_at")} END AS open_for_s
    FROM ends
)
SELECT
    {carry}id, project, model, model_label, endpoint, status, created_at, expires_at,
    is_terminal,
    gone,
    ended_at,
    queue_s, processing_s, finalizing_s, turnaround_s, open_for_s,
    {timeline} AS timeline_complete,
    request_counts__total AS requests_total,
    request_counts__completed AS requests_completed,
    request_counts__failed AS requests_failed,
    status = 'completed' AND request_counts__total > 0 AND request_counts__failed >= request_counts__total
        AS all_requests_failed,
    CASE
        WHEN status = 'completed' AND completed_at >= created_at THEN completed_at <= expires_at
        WHEN status = 'expired' THEN false
    END AS within_window,
    CASE WHEN usage_consistent THEN usage__input_tokens END AS input_tokens,
    CASE WHEN usage_consistent THEN usage__output_tokens END AS output_tokens,
    -- What `batch_costs` reads (it is built on this view: one scan of the batches for both).
    usage_consistent,
    request_counts_consistent,
    metadata,
    created_at_as_sent,
    CASE WHEN usage_consistent THEN usage__input_tokens_details__cached_tokens END AS cached_input_tokens,
    CASE WHEN usage_consistent THEN usage__output_tokens_details__reasoning_tokens END AS reasoning_tokens
FROM intervals
"""


BATCH_TIMINGS = batch_timings_sql()

# Batch price: `batch_factor` (0.5) of the standard price of the period in force at created_at.
# Uncached input at the input price, cached input at the cached-input price (the input price where
# none is listed), output (reasoning included) at the output price. No usable usage, creation time or
# price: NULL, not 0, with the reason; the tokens of inconsistent usage are NULL too (none is known).
# Built on `batch_timings` (its usage columns are already NULL where usage is not consistent), and it
# carries the timing columns on: `batch_jobs` reads both from this one view, one scan of the batches.
_TIMING_COLUMNS = (
    "gone",
    "is_terminal",
    "ended_at",
    "expires_at",
    "queue_s",
    "processing_s",
    "finalizing_s",
    "turnaround_s",
    "open_for_s",
    "timeline_complete",
    "requests_total",
    "requests_completed",
    "requests_failed",
    "all_requests_failed",
    "within_window",
    # the consistency flags, for `caveats` (one scan of `batch_costs` for every reason it counts)
    "usage_consistent",
    "request_counts_consistent",
)
BATCH_COSTS = f"""
CREATE OR REPLACE VIEW {S}.batch_costs AS
WITH joined AS (
    SELECT
        b.id, b.project, b.model, b.model_label, b.endpoint, b.status, b.created_at,
        CAST(make_timestamp(epoch_us(b.created_at)) AS DATE) AS created_day,
        b.metadata,
        b.input_tokens, b.cached_input_tokens, b.output_tokens, b.reasoning_tokens,
        {", ".join(f"b.{c}" for c in _TIMING_COLUMNS)},
        p.matched_model AS price_model,
        p.source AS price_source,
        p.valid_from AS price_valid_from,
        p.tiered AS price_tiered,
        p.input_usd_per_mtok,
        coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok) AS cached_input_usd_per_mtok,
        p.output_usd_per_mtok,
        p.batch_factor,
        CASE
            WHEN b.usage_consistent IS NULL THEN 'no usage reported'
            WHEN NOT b.usage_consistent THEN 'inconsistent usage'
            WHEN b.model IS NULL THEN 'no model reported'
            WHEN b.created_at IS NULL THEN 'no usable creation time'
            WHEN p.model IS NULL THEN 'no price for model'
            WHEN p.output_usd_per_mtok IS NULL AND coalesce(b.output_tokens, 0) > 0
                THEN 'no output price for model'
        END AS unpriced_reason
    FROM {S}.batch_timings AS b
    LEFT JOIN {S}.{settings.PRICES_TABLE} AS p
        ON p.provider = 'openai' AND p.model = b.model
        AND b.created_at_as_sent >= coalesce(p.valid_from, TIMESTAMPTZ '-infinity')
        AND b.created_at_as_sent < coalesce(p.valid_to, TIMESTAMPTZ 'infinity')
),
priced AS (
    SELECT
        *,
        unpriced_reason IS NULL AS priced,
        CASE WHEN unpriced_reason IS NULL THEN {sync_cost("input_tokens", "cached_input_tokens", "output_tokens")}
        END AS sync_cost_usd
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
    price_model, price_source, price_valid_from, coalesce(priced AND price_tiered, false) AS price_tiered,
    input_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok, batch_factor,
    {", ".join(_TIMING_COLUMNS)}
FROM priced
"""

# One row per batch of any provider: what every cross-provider report reads. The columns of the issue
# first, then what the reports need besides (README, "One table of every batch job"). OpenAI's figures are
# `batch_costs`' and `batch_timings`' own; OpenAI counts no expired or cancelled requests, so those are the
# requests of an expired (cancelled) batch that never ran, and 0 for other finished batches; OpenAI bills no
# cache writes (0). Anthropic's come from `anthropic_batch_costs` (anthropic_views.py).
_EXPIRED_OR_CANCELLED = (
    "CASE WHEN is_terminal THEN CASE WHEN status = '{status}' "
    "THEN requests_total - requests_completed - requests_failed ELSE 0 END END"
)
_JOB_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (column, from an OpenAI-shaped costs view: batch_costs, compatible_batch_costs; from anthropic_batch_costs)
    ("provider", "'openai'", f"'{ANTHROPIC}'"),
    ("project", "project", "project"),
    ("batch_id", "id", "id"),
    ("status", "status", "status"),
    ("created_at", "created_at", "created_at"),
    ("ended_at", "ended_at", "ended_at"),
    ("model", "model", "model"),
    ("requests_total", "requests_total", "requests_total"),
    ("requests_succeeded", "requests_completed", "succeeded"),
    ("requests_failed", "requests_failed", "errored"),
    ("requests_expired", _EXPIRED_OR_CANCELLED.format(status="expired"), "expired"),
    ("requests_cancelled", _EXPIRED_OR_CANCELLED.format(status="cancelled"), "canceled"),
    ("input_tokens", "input_tokens", "input_tokens"),
    ("cached_input_tokens", "cached_input_tokens", "cached_tokens"),
    ("cache_write_tokens", "CASE WHEN input_tokens IS NOT NULL THEN 0 END", "cache_write_tokens"),
    ("output_tokens", "output_tokens", "output_tokens"),
    ("cost_usd", "cost_usd", "cost_usd"),
    ("priced", "priced", "priced"),
    ("unpriced_reason", "unpriced_reason", "unpriced_reason"),
    ("price_source", "price_source", "price_source"),
    ("gone", "gone", "gone"),
    ("is_terminal", "is_terminal", "is_terminal"),
    ("turnaround_s", "turnaround_s", "turnaround_s"),
    # what the reports need besides
    ("model_label", "model_label", f"coalesce(model, '{NO_MODEL}')"),
    ("endpoint", "endpoint", f"'{ANTHROPIC_ENDPOINT}'"),
    ("created_day", "created_day", "CAST(make_timestamp(epoch_us(created_at)) AS DATE)"),
    ("expires_at", "expires_at", "expires_at"),
    ("reasoning_tokens", "reasoning_tokens", "reasoning_tokens"),
    ("sync_cost_usd", "sync_cost_usd", "sync_cost_usd"),
    ("batch_savings_usd", "batch_savings_usd", "sync_cost_usd - cost_usd"),
    ("cache_savings_usd", "cache_savings_usd", "cache_savings_usd"),
    ("price_tiered", "price_tiered", "price_tiered"),
    ("queue_s", "queue_s", "CAST(NULL AS DOUBLE)"),
    ("processing_s", "processing_s", "CAST(NULL AS DOUBLE)"),
    ("finalizing_s", "finalizing_s", "CAST(NULL AS DOUBLE)"),
    ("open_for_s", "open_for_s", "open_for_s"),
    ("timeline_complete", "timeline_complete", "timeline_complete"),
    ("within_window", "within_window", "within_window"),
    ("all_requests_failed", "all_requests_failed", "all_requests_failed"),
    # the provider's own reported cost of the batch (USD), beside `cost_usd`: OpenRouter's only (other_views.py)
    ("reported_cost_usd", "CAST(NULL AS DOUBLE)", "CAST(NULL AS DOUBLE)"),
)
JOB_COLUMNS = tuple(name for name, _, _ in _JOB_COLUMNS)
_OPENAI_SHAPED_JOB = {name: expr for name, expr, _ in _JOB_COLUMNS}


@dataclass(frozen=True)
class JobSide:
    """One provider family's rows of `batch_jobs`: its costs view, its timings view (`batch_job_timings`, which
    needs no price), and each column of `batch_jobs` as an expression over them. Another provider is one more
    entry of `_JOB_SIDES` (and its views)."""

    costs: str
    timings: str
    columns: Mapping[str, str]
    # the tables whose presence brings the side in (empty: always; its views are then empty relations)
    tables: tuple[str, ...] = ()


_JOB_SIDES: tuple[JobSide, ...] = (
    JobSide("batch_costs", "batch_timings", {**_OPENAI_SHAPED_JOB, "provider": "'openai'"}),
    JobSide("anthropic_batch_costs", "anthropic_batch_costs", {name: expr for name, _, expr in _JOB_COLUMNS}),
    # Azure, Groq, openai-compatible: OpenAI's figures, `provider` from the row (compatible_views.py)
    JobSide(
        "compatible_batch_costs",
        "compatible_batch_timings",
        {**_OPENAI_SHAPED_JOB, "provider": "provider"},
        COMPATIBLE_BATCH_TABLES,
    ),
    # Together, Mistral, OpenRouter: mapped onto OpenAI's columns (other_views.py), with OpenRouter's reported cost
    JobSide(
        "other_batch_costs",
        "other_batch_timings",
        {**_OPENAI_SHAPED_JOB, "provider": "provider", "reported_cost_usd": "reported_cost_usd"},
        OTHER_TABLES,
    ),
)


def _side(source: str, columns: Mapping[str, str], names: Sequence[str]) -> str:
    return "SELECT\n    " + ",\n    ".join(f"{columns[n]} AS {n}" for n in names) + f"\nFROM {S}.{source}"


def _sides(present: frozenset[str]) -> tuple[JobSide, ...]:
    return tuple(side for side in _JOB_SIDES if not side.tables or present & set(side.tables))


def batch_jobs_sql(present: frozenset[str] = frozenset()) -> str:
    union = "\nUNION ALL\n".join(_side(side.costs, side.columns, JOB_COLUMNS) for side in _sides(present))
    return f"""
CREATE OR REPLACE VIEW {S}.batch_jobs AS
{union}
"""


# `batch_jobs` without its cost columns, the OpenAI side read from `batch_timings`: the same rows and values,
# without the price lookup, which the throughput and turnaround figures do not need (a third of their time
# over a million batches).
_COST_COLUMNS = frozenset(
    {
        "cost_usd",
        "priced",
        "unpriced_reason",
        "price_source",
        "created_day",
        "sync_cost_usd",
        "batch_savings_usd",
        "cache_savings_usd",
        "price_tiered",
        "reported_cost_usd",
    }
)
_JOB_TIMING_COLUMNS = tuple(c for c in JOB_COLUMNS if c not in _COST_COLUMNS)


def batch_job_timings_sql(present: frozenset[str] = frozenset()) -> str:
    union = "\nUNION ALL\n".join(_side(side.timings, side.columns, _JOB_TIMING_COLUMNS) for side in _sides(present))
    return f"""
CREATE OR REPLACE VIEW {S}.batch_job_timings AS
{union}
"""


# Work is counted in the period the batch ended: results become available all at once, at the end.
# A finished batch without a usable end time is in no period (`caveats` counts it). Per provider and model.
_THROUGHPUT = """
CREATE OR REPLACE VIEW {schema}.{name} AS
SELECT
    {bucket} AS {column},
    provider,
    model_label AS model,
    count(*) AS batches_finished,
    count(*) FILTER (WHERE status = 'completed') AS batches_completed,
    sum(requests_succeeded) AS requests_completed,
    sum(requests_failed) AS requests_failed,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens
FROM {schema}.batch_job_timings
WHERE is_terminal AND ended_at IS NOT NULL
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

# Completed batches with a complete timeline only: a failed validation takes seconds and an expiry the
# whole window, which would hide how long real work takes; and `batches` is exactly the batches every
# percentile here is computed over. Per provider, model and endpoint (Anthropic's batches have no stage
# times: their stage percentiles are empty). The grand-total row has provider, model and endpoint '(all)'
# (no row without such a batch: a count of 0 next to empty percentiles says nothing).
# The three turnaround percentiles come from one aggregate (one sort per group instead of three: 25%
# faster over a million batches, the same values).
TURNAROUND_PERCENTILES = f"""
CREATE OR REPLACE VIEW {S}.turnaround_percentiles AS
WITH percentiles AS (
    SELECT
        CASE WHEN grouping(provider) = 1 THEN '(all)' ELSE provider END AS provider,
        CASE WHEN grouping(model_label) = 1 THEN '(all)' ELSE model_label END AS model,
        CASE WHEN grouping(endpoint) = 1 THEN '(all)' ELSE endpoint END AS endpoint,
        count(*) AS batches,
        quantile_cont(turnaround_s, [0.5, 0.9, 0.99]) AS turnaround,
        quantile_cont(queue_s, 0.5) AS queue_p50_s,
        quantile_cont(processing_s, 0.5) AS processing_p50_s,
        quantile_cont(finalizing_s, 0.5) AS finalizing_p50_s
    FROM {S}.batch_job_timings
    WHERE status = 'completed' AND timeline_complete
    GROUP BY GROUPING SETS ((provider, model_label, endpoint), ())
    HAVING count(*) > 0
)
SELECT
    provider,
    model,
    endpoint,
    batches,
    turnaround[1] AS turnaround_p50_s,
    turnaround[2] AS turnaround_p90_s,
    turnaround[3] AS turnaround_p99_s,
    queue_p50_s,
    processing_p50_s,
    finalizing_p50_s
FROM percentiles
"""

# Rates over finished batches (an open batch has not failed or expired yet). Request failure rate is
# failed requests over all requests of finished batches; the window share is completed-in-time over
# completed plus expired. The grand-total row has model '(all)'; with no finished batch there is no row.
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
FROM {S}.batch_job_timings
WHERE is_terminal
GROUP BY GROUPING SETS ((model_label), ())
HAVING count(*) > 0
"""

# "Open" is `settings.is_open_sql()`, the definition `status` and the loader use: a NULL or unknown
# status is open (re-read until the API says it is final), never silently dropped.
OPEN_BATCHES = f"""
CREATE OR REPLACE VIEW {S}.open_batches AS
SELECT
    batch_id AS id, provider, project, model, model_label, endpoint, status, created_at, expires_at,
    open_for_s,
    (epoch_us(expires_at) - epoch_us(now())) / 1e6 AS expires_in_s,
    requests_total, requests_succeeded AS requests_completed, requests_failed
FROM {S}.batch_job_timings
WHERE NOT is_terminal AND NOT gone
"""

# One row per batch and reason a figure leaves it out or only approximates it; `queries/15_caveats.sql`
# counts them. Every figure that drops or bounds a batch has its reason here, so a report can say why.
# The timing, usage, request-count and tiered-price reasons come from one scan of `batch_costs` (a bit each),
# not one scan per reason: three scans of the batches (their ids read each time) were 40% of query 15.
_CAVEATS = (
    ("is_terminal AND ended_at IS NULL", "finished without a usable end time", "throughput_hourly, throughput_daily"),
    (
        "status = 'completed' AND NOT timeline_complete",
        "completed, but a stage time is missing or out of order",
        "turnaround_percentiles, turnaround_histogram",
    ),
    ("status IS NULL", "no status reported: counted as still open", "open_batches"),
    ("gone", "the API stopped returning it while it was open (batches_gone)", "open_batches; every finished figure"),
    (
        "created_at IS NULL",
        "no usable creation time (missing, or impossible such as milliseconds)",
        "every cost figure: unpriced; per-day figures; durations",
    ),
)
_INCONSISTENT = (
    "inconsistent usage (cached above input, reasoning above output, a negative count, or beyond 2^53)",
    "every cost and token figure: unpriced, tokens unknown",
)
_COUNTS_IMPOSSIBLE = (
    "impossible request counts (negative, or more completed and failed than in the batch)",
    "every request figure: throughput, failure rates, open batches",
)
# A configured key the server sent back, masked in the stored value (echoed.py): one row per batch and field.
_REDACTED = "a configured API key the server sent back was masked (***) in"
_REDACTED_FIGURES = "that field as stored: not the value the API sent"
_TIERED = ("priced at the base rate of a long-context (tiered) price", "every cost figure: a lower bound")
# Anthropic batches: no tokens until their results are read, and a price from genai-prices' standard price
# where it lists no batch price (anthropic_views.py).
_ANTHROPIC_UNPRICED = "Anthropic batch unpriced:"
_ANTHROPIC_UNPRICED_FIGURES = "every cost figure (batch_jobs.unpriced_reason)"
_ANTHROPIC_FALLBACK = (
    f"Anthropic batch priced at genai-prices'' standard price x {settings.ANTHROPIC_BATCH_FACTOR:g} (Anthropic''s "
    "documented batch discount): genai-prices lists no batch price for its model at its creation time"
)
_ANTHROPIC_FALLBACK_FIGURES = "every cost figure: Anthropic''s discount, not a listed batch price"


# Azure, Groq and openai-compatible batches (compatible_views.py), once a load wrote one of their tables: unpriced
# ones with the reason, and the timing reasons of the OpenAI side.
_COMPATIBLE_UNPRICED_FIGURES = "every cost figure (batch_jobs.unpriced_reason)"


def _compatible_caveats(
    provider_tables: frozenset[str],
    tables: tuple[str, ...] = COMPATIBLE_BATCH_TABLES,
    costs: str = "compatible_batch_costs",
    timings: str = "compatible_batch_timings",
) -> str:
    """The caveats of the OpenAI-shaped providers' batches (or, over ``costs`` and ``timings``, of other providers
    mapped onto OpenAI's columns: Together, Mistral, OpenRouter), once a load wrote one of ``tables``."""
    if not provider_tables & set(tables):
        return ""
    timing = (_CAVEATS[0], _CAVEATS[1], _CAVEATS[3], _CAVEATS[4])
    return f"""
UNION ALL
SELECT id, provider || ' batch unpriced: ' || unpriced_reason, '{_COMPATIBLE_UNPRICED_FIGURES}'
FROM {S}.{costs}
WHERE NOT priced
UNION ALL
SELECT id, '{_TIERED[0]}', '{_TIERED[1]}'
FROM {S}.{costs}
WHERE price_tiered""" + "".join(
        f"""
UNION ALL
SELECT id, '{caveat}', '{figures}'
FROM {S}.{timings}
WHERE {condition}"""
        for condition, caveat, figures in timing
    )


def _other_caveats(provider_tables: frozenset[str]) -> str:
    return _compatible_caveats(provider_tables, OTHER_TABLES, "other_batch_costs", "other_batch_timings")


def _caveats_sql(
    organization_tables: frozenset[str] = frozenset(),
    ledger_tables: frozenset[str] = frozenset(),
    provider_tables: frozenset[str] = frozenset(),
) -> str:
    kinds = [(condition, caveat, figures) for condition, caveat, figures in _CAVEATS]
    flags = "\n        + ".join(f"CASE WHEN {cond} THEN {1 << i} ELSE 0 END" for i, (cond, _, _) in enumerate(kinds))
    rows = [(1 << i, caveat, figures) for i, (_, caveat, figures) in enumerate(kinds)]
    inconsistent, tiered, counts = (1 << (len(kinds) + i) for i in range(3))
    rows += [(inconsistent, *_INCONSISTENT), (tiered, *_TIERED), (counts, *_COUNTS_IMPOSSIBLE)]
    flags += (
        f"\n        + CASE WHEN NOT usage_consistent THEN {inconsistent} ELSE 0 END"
        f"\n        + CASE WHEN NOT request_counts_consistent THEN {counts} ELSE 0 END"
        f"\n        + CASE WHEN price_tiered THEN {tiered} ELSE 0 END"
    )
    values = ",\n    ".join(f"({bit}, '{caveat}', '{figures}')" for bit, caveat, figures in rows)
    return f"""
CREATE OR REPLACE VIEW {S}.caveats AS
WITH kinds(bit, caveat, figures) AS (VALUES
    {values}
),
flagged AS (
    SELECT id, flags
    FROM (
        SELECT id, {flags} AS flags
        FROM {S}.batch_costs
    )
    WHERE flags > 0
)
SELECT f.id, k.caveat, k.figures
FROM flagged AS f JOIN kinds AS k ON f.flags & k.bit <> 0{cost_caveats(organization_tables)}
UNION ALL
SELECT id, '{_REDACTED} ' || field, '{_REDACTED_FIGURES}'
FROM {S}.batches_in_scope, unnest(from_json(redacted_fields, '["VARCHAR"]')) AS r(field)
WHERE redacted_fields IS NOT NULL
UNION ALL
SELECT batch_id, '{_REDACTED} batch_requests.' || field, '{_REDACTED_FIGURES}'
FROM ({request_redactions(ledger_tables)})
UNION ALL
SELECT id, '{_ANTHROPIC_UNPRICED} ' || unpriced_reason, '{_ANTHROPIC_UNPRICED_FIGURES}'
FROM {S}.anthropic_batch_costs
WHERE NOT priced
UNION ALL
SELECT id, '{_ANTHROPIC_FALLBACK}', '{_ANTHROPIC_FALLBACK_FIGURES}'
FROM {S}.anthropic_batch_costs
WHERE price_source LIKE '%{GENAI_PRICES_STANDARD}%'
UNION ALL
SELECT id, '{_TIERED[0]}', '{_TIERED[1]}'
FROM {S}.anthropic_batch_costs
WHERE price_tiered
UNION ALL
SELECT id, '{_CAVEATS[0][1]}', '{_CAVEATS[0][2]}'
FROM {S}.anthropic_batch_costs
WHERE is_terminal AND ended_at IS NULL
UNION ALL
SELECT id, '{_CAVEATS[4][1]}', '{_CAVEATS[4][2]}'
FROM {S}.anthropic_batch_costs
WHERE created_at IS NULL{_compatible_caveats(provider_tables)}{_other_caveats(provider_tables)}
"""


# In creation order: DuckDB binds a view when it is created, so what a view reads comes before it.
_TIMING_VIEWS: tuple[tuple[str, str], ...] = (
    ("batch_timings", BATCH_TIMINGS),
    ("batch_costs", BATCH_COSTS),
)
_LATER_VIEWS: tuple[tuple[str, str], ...] = (
    ("throughput_hourly", THROUGHPUT_HOURLY),
    ("throughput_daily", THROUGHPUT_DAILY),
    ("turnaround_percentiles", TURNAROUND_PERCENTILES),
    ("failure_rates", FAILURE_RATES),
    ("open_batches", OPEN_BATCHES),
)


_COMPATIBLE_TIMINGS = batch_timings_sql(
    "compatible_batch_timings", "compatible_batches_in_scope", carry="provider, provider_status, "
)
_OTHER_TIMINGS = batch_timings_sql(
    "other_batch_timings",
    "other_batches_in_scope",
    carry="provider, provider_status, " + "".join(f"{c}, " for c in OTHER_CARRY),
    timeline=TIMELINE,
)

# What the reconciliation views (reconciliation.py) build on: the same definitions as every view here.
_TERMS = BatchTerms(usable=_usable, ended_at=_ENDED_AT, usage_consistent=_USAGE_CONSISTENT, no_model=NO_MODEL)


def views(
    has_gone_table: bool,
    organization_tables: frozenset[str] = frozenset(),
    ledger_tables: frozenset[str] = frozenset(),
    provider_tables: frozenset[str] = frozenset(),
) -> tuple[tuple[str, str], ...]:
    """Every view, in creation order; `batches_gone` exists only once a load found a batch gone, the
    Admin API's tables (`organization_tables`) once an admin key loaded them (see reconciliation.py), the
    request ledger's (`ledger_tables`) once a load read it (see ledger_views.py), other providers' batch
    tables (`provider_tables`, `anthropic_batches`) once a load wrote one (see anthropic_views.py)."""
    return (
        ("batches_in_scope", batches_in_scope(has_gone_table)),
        *_TIMING_VIEWS,
        *anthropic_views(ledger_tables | provider_tables, has_gone_table, _usable, _elapsed),
        (
            "compatible_batches_in_scope",
            compatible_in_scope(
                provider_tables, has_gone_table, _USAGE_CONSISTENT, _REQUEST_COUNTS_CONSISTENT, _usable
            ),
        ),
        ("compatible_batch_timings", _COMPATIBLE_TIMINGS),
        ("compatible_batch_costs", compatible_costs(provider_tables, _TIMING_COLUMNS)),
        (
            "other_batches_in_scope",
            other_in_scope(
                provider_tables | ledger_tables,
                has_gone_table,
                _USAGE_CONSISTENT,
                _REQUEST_COUNTS_CONSISTENT,
                _usable,
            ),
        ),
        ("other_batch_timings", _OTHER_TIMINGS),
        (
            "other_batch_costs",
            compatible_costs(
                provider_tables,
                _TIMING_COLUMNS,
                view="other_batch_costs",
                source="other_batch_timings",
                no_price_reasons=no_price_reasons(provider_tables),
                no_usage_reasons=no_usage_reasons(provider_tables),
                carry=OTHER_CARRY,
            ),
        ),
        ("batch_jobs", batch_jobs_sql(provider_tables)),
        ("batch_validation_errors", validation_errors_sql(provider_tables)),
        ("batch_job_timings", batch_job_timings_sql(provider_tables)),
        *_LATER_VIEWS,
        ("caveats", _caveats_sql(organization_tables, ledger_tables, provider_tables)),
        *reconciliation_views(organization_tables, _TERMS),
        *ledger_views(ledger_tables),
    )


VIEW_NAMES = tuple(name for name, _ in views(False))
# Other providers' batch tables the views read when present (session.py passes the ones a load created).
PROVIDER_TABLES = (*ANTHROPIC_TABLES, *COMPATIBLE_TABLES, *OTHER_TABLES)


def create_views(
    con: duckdb.DuckDBPyConnection,
    has_gone_table: bool,
    organization_tables: frozenset[str] = frozenset(),
    ledger_tables: frozenset[str] = frozenset(),
    provider_tables: frozenset[str] = frozenset(),
) -> None:
    """Create (or replace) the `since` macro and every view in the session's current catalog."""
    con.execute(SINCE_MACRO)
    for _, sql in views(has_gone_table, organization_tables, ledger_tables, provider_tables):
        con.execute(sql)


def fingerprint(
    prices: Sequence[PriceRow],
    has_gone_table: bool,
    organization_tables: frozenset[str] = frozenset(),
    ledger_tables: frozenset[str] = frozenset(),
    provider_tables: frozenset[str] = frozenset(),
) -> str:
    """What the analysis is made of: the SQL of the macro and views and the price rows. Stored with the
    views in the file, so a reader can tell whether what is stored there is what it would build now."""
    digest = hashlib.sha256(SINCE_MACRO.encode())
    for _, sql in views(has_gone_table, organization_tables, ledger_tables, provider_tables):
        digest.update(sql.encode())
    for row in prices:
        digest.update(repr(row).encode())
    return digest.hexdigest()[:16]


__all__ = ["JOB_COLUMNS", "NO_MODEL", "PROVIDER_TABLES", "VIEW_NAMES", "create_views", "fingerprint", "views"]
