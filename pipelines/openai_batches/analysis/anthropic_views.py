"""Anthropic's side of the analysis: what each Message Batch request and batch cost, and the batch as a row
of `batch_jobs` (views.py), in plain SQL over `anthropic_batches`, `batch_requests` and `model_prices`.

An Anthropic batch object carries no model and no tokens: both come from its results, read into the
request ledger (`batch_requests`). A request is priced at the price in force at its batch's `created_at`:
genai-prices' batch price (`model_prices.processing = 'batch'`) where it has one, else the standard price
times `batch_factor` (`settings.ANTHROPIC_BATCH_FACTOR`, or the price file's); `price_source` says which.
Input tokens in the ledger are all input (cache reads and writes included, as on the OpenAI side), so:

    cost = ((input - cache_read - cache_write) * input_price + cache_read * cache_read_price
            + (cache_write - cache_write_1h) * cache_write_price + cache_write_1h * cache_write_1h_price
            + output * output_price) / 1e6 * batch_factor

A batch is priced when its results were read and every request is priced; until then its cost is NULL
with the reason (never $0). Before a load has created a table, the views read an empty relation of its
columns in its place (as ledger_views.py does), so an OpenAI-only database has these views, with no rows.
"""

from __future__ import annotations

from collections.abc import Callable

from ..settings import ANTHROPIC_BATCHES_TABLE, FILES_TABLE, GONE_TABLE, REQUESTS_TABLE
from ..tables.anthropic import ADDED_COLUMNS as ANTHROPIC_ADDED_COLUMNS
from ..tables.anthropic import ANTHROPIC_COLUMNS
from ..tables.ledger import FILE_COLUMNS, REQUEST_COLUMNS, custom_id_prefix_sql
from .settings import MAX_PLAUSIBLE_TOKENS
from .settings import SCHEMA as S
from .sql_rules import usage_consistent

PROVIDER = "anthropic"
# Every Message Batch runs against the Messages API: the `endpoint` of its row in `batch_jobs`.
ENDPOINT = "/v1/messages"

_SQL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "timestamp": "TIMESTAMPTZ", "json": "JSON"}


# The columns of `anthropic_batches` (tables/anthropic.py's one list), for the empty relation that stands in
# for the table before the first Anthropic load.
ANTHROPIC_BATCH_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (c.name, _SQL_TYPES[c.dlt_type]) for c in (*ANTHROPIC_COLUMNS, *ANTHROPIC_ADDED_COLUMNS)
)


def _empty(columns: tuple[tuple[str, str], ...]) -> str:
    typed = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in columns)
    return f"(SELECT {typed} WHERE false)"


def relation(table: str, present: frozenset[str]) -> str:
    """A table these views read, or (before a load created it) an empty relation of its columns."""
    if table in present:
        return f"{S}.{table}"
    if table == ANTHROPIC_BATCHES_TABLE:
        return _empty(ANTHROPIC_BATCH_COLUMNS)
    columns = REQUEST_COLUMNS if table == REQUESTS_TABLE else FILE_COLUMNS
    return _empty(tuple((c.name, _SQL_TYPES[c.dlt_type]) for c in columns))


# The prices a request pays: the batch price row (v) where genai-prices has one, else the standard row (s).
_PRICE_COLUMNS = (
    "input_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "cache_write_usd_per_mtok",
    "cache_write_1h_usd_per_mtok",
    "output_usd_per_mtok",
    "batch_factor",
    "source",
    "matched_model",
    "tiered",
)


def _cost(p: str) -> str:
    """The formula of the module's docstring at the prices prefixed ``p``, before `batch_factor`; USD.
    Cache reads pay the input price where the source lists no cache-read price (as on the OpenAI side)."""
    return f"""(
            (input_tokens - coalesce(cached_tokens, 0) - coalesce(cache_write_tokens, 0)) * {p}input_usd_per_mtok
            + coalesce(cached_tokens, 0) * coalesce({p}cached_input_usd_per_mtok, {p}input_usd_per_mtok)
            + (coalesce(cache_write_tokens, 0) - coalesce(cache_write_1h_tokens, 0))
                * coalesce({p}cache_write_usd_per_mtok, 0)
            + coalesce(cache_write_1h_tokens, 0) * coalesce({p}cache_write_1h_usd_per_mtok, 0)
            + coalesce(output_tokens, 0) * coalesce({p}output_usd_per_mtok, 0)
        ) / 1e6"""


def _usage_consistent() -> str:
    """`usage_consistent` of the OpenAI side, and cache writes that fit: reads and writes within input
    (input counts both), 1-hour writes within writes, none negative. Added as HUGEINT: no two counts the
    API sends can overflow the test of them."""
    base = usage_consistent("r.input_tokens", "r.cached_tokens", "r.output_tokens", "r.reasoning_tokens")
    return f"""CASE WHEN r.input_tokens IS NOT NULL THEN ({base})
        AND coalesce(r.cache_write_tokens, 0) BETWEEN 0 AND {MAX_PLAUSIBLE_TOKENS}
        AND CAST(coalesce(r.cached_tokens, 0) AS HUGEINT) + coalesce(r.cache_write_tokens, 0) <= r.input_tokens
        AND coalesce(r.cache_write_1h_tokens, 0) BETWEEN 0 AND coalesce(r.cache_write_tokens, 0)
    END"""


def _in_scope(usable: Callable[[str], str]) -> str:
    return f"{S}.report_since() = TIMESTAMPTZ '-infinity' OR {usable('created_at')} >= {S}.report_since()"


def _price_join(alias: str, processing: str) -> str:
    return f"""LEFT JOIN {S}.model_prices AS {alias}
        ON {alias}.provider = '{PROVIDER}' AND {alias}.processing {processing} AND {alias}.model = r.model
        AND b.created_at >= coalesce({alias}.valid_from, TIMESTAMPTZ '-infinity')
        AND b.created_at < coalesce({alias}.valid_to, TIMESTAMPTZ 'infinity')"""


def _request_costs(present: frozenset[str], usable: Callable[[str], str]) -> str:
    chosen = ",\n        ".join(
        f"CASE WHEN v.model IS NOT NULL THEN v.{c} ELSE s.{c} END AS {c}" for c in _PRICE_COLUMNS
    )
    standard = ",\n        ".join(f"s.{c} AS standard_{c}" for c in _PRICE_COLUMNS[:5])
    masked = ",\n    ".join(
        f"CASE WHEN usage_consistent IS NOT false THEN {c} END AS {c}"
        for c in (
            "input_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "output_tokens",
            "reasoning_tokens",
        )
    )
    not_billed = "(no_tokens AND outcome <> 'succeeded')"
    return f"""
CREATE OR REPLACE VIEW {S}.anthropic_request_costs AS
WITH batches AS (
    SELECT id, project, {usable("created_at")} AS created_at
    FROM {relation(ANTHROPIC_BATCHES_TABLE, present)}
    WHERE {_in_scope(usable)}
),
joined AS (
    SELECT
        r.batch_id, r.custom_id, b.project, r.outcome, r.error_code, r.error_message, r.model, b.created_at,
        CAST(make_timestamp(epoch_us(b.created_at)) AS DATE) AS created_day,
        r.service_tier, {custom_id_prefix_sql("r")} AS custom_id_prefix,
        {_usage_consistent()} AS usage_consistent,
        r.input_tokens, r.cached_tokens, r.cache_write_tokens, r.cache_write_1h_tokens, r.output_tokens,
        r.reasoning_tokens,
        r.input_tokens IS NULL AND r.cached_tokens IS NULL AND r.cache_write_tokens IS NULL
            AND r.output_tokens IS NULL AND r.reasoning_tokens IS NULL AS no_tokens,
        {chosen},
        {standard}
    FROM {relation(REQUESTS_TABLE, present)} AS r
    JOIN batches AS b ON b.id = r.batch_id AND b.project = r.project
    {_price_join("s", "IS NULL")}
    {_price_join("v", "= 'batch'")}
),
reasoned AS (
    SELECT
        *,
        CASE
            WHEN {not_billed} THEN NULL
            WHEN input_tokens IS NULL THEN 'no usage reported'
            WHEN NOT usage_consistent THEN 'inconsistent usage'
            WHEN model IS NULL THEN 'no model reported'
            WHEN created_at IS NULL THEN 'no usable creation time'
            WHEN input_usd_per_mtok IS NULL THEN 'no price for model'
            WHEN output_usd_per_mtok IS NULL AND coalesce(output_tokens, 0) > 0 THEN 'no output price for model'
            WHEN cache_write_usd_per_mtok IS NULL
                AND coalesce(cache_write_tokens, 0) - coalesce(cache_write_1h_tokens, 0) > 0
                THEN 'no cache write price for model'
            WHEN cache_write_1h_usd_per_mtok IS NULL AND coalesce(cache_write_1h_tokens, 0) > 0
                THEN 'no 1-hour cache write price for model'
        END AS unpriced_reason
    FROM joined
)
SELECT
    batch_id, custom_id, project, outcome, error_code, error_message, model, created_at, created_day, service_tier,
    custom_id_prefix,
    {masked},
    unpriced_reason IS NULL AS priced,
    unpriced_reason,
    CASE WHEN {not_billed} THEN 0 WHEN unpriced_reason IS NULL THEN {_cost("")} * batch_factor END AS cost_usd,
    CASE WHEN {not_billed} THEN 0 WHEN unpriced_reason IS NULL THEN {_cost("standard_")} END AS sync_cost_usd,
    -- What caching saved at batch prices: reads below the input price, less what writes cost above it.
    CASE WHEN {not_billed} THEN 0 WHEN unpriced_reason IS NULL THEN (
            coalesce(cached_tokens, 0) * (input_usd_per_mtok - coalesce(cached_input_usd_per_mtok, input_usd_per_mtok))
            - (coalesce(cache_write_tokens, 0) - coalesce(cache_write_1h_tokens, 0))
                * (coalesce(cache_write_usd_per_mtok, input_usd_per_mtok) - input_usd_per_mtok)
            - coalesce(cache_write_1h_tokens, 0)
                * (coalesce(cache_write_1h_usd_per_mtok, input_usd_per_mtok) - input_usd_per_mtok)
        ) / 1e6 * batch_factor
    END AS cache_savings_usd,
    CASE WHEN unpriced_reason IS NULL AND NOT {not_billed} THEN source END AS price_source,
    matched_model AS price_model,
    coalesce(unpriced_reason IS NULL AND NOT {not_billed} AND tiered, false) AS price_tiered,
    batch_factor
FROM reasoned
"""


# Anthropic's `processing_status` in OpenAI's words (README, "One table of every batch job"): an ended batch
# is `cancelled` when a cancel was asked for or a request was cancelled, else `expired` when a request
# expired, else `completed` (its errored requests are counted in `requests_failed`, as OpenAI's are).
STATUS = """CASE processing_status
        WHEN 'in_progress' THEN 'in_progress'
        WHEN 'canceling' THEN 'cancelling'
        WHEN 'ended' THEN CASE
            WHEN cancel_initiated_at IS NOT NULL OR request_counts__canceled > 0 THEN 'cancelled'
            WHEN request_counts__expired > 0 THEN 'expired'
            ELSE 'completed'
        END
        ELSE processing_status
    END"""

_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")
# The unpriced reason of an ended batch whose results name another number of requests than its counts.
RESULTS_DISAGREE = "results disagree with its request counts"


def _batch_costs(
    present: frozenset[str], has_gone: bool, usable: Callable[[str], str], elapsed: Callable[[str, str], str]
) -> str:
    gone = f"id IN (SELECT id FROM {S}.{GONE_TABLE})" if has_gone else "false"
    counts_ok = " AND ".join(f"coalesce(request_counts__{c}, 0) >= 0" for c in _COUNTS)
    total = " + ".join(f"CAST(coalesce(request_counts__{c}, 0) AS HUGEINT)" for c in _COUNTS)
    return f"""
CREATE OR REPLACE VIEW {S}.anthropic_batch_costs AS
WITH batches AS (
    SELECT
        id, project, processing_status,
        {STATUS} AS status,
        {usable("created_at")} AS created_at,
        {usable("expires_at")} AS expires_at,
        CASE WHEN processing_status = 'ended' THEN {usable("ended_at")} END AS ended_at,
        {gone} AS gone,
        CASE WHEN {counts_ok} THEN {total} END AS requests_total,
        {", ".join(f"CASE WHEN {counts_ok} THEN request_counts__{c} END AS {c}" for c in _COUNTS[1:])}
    FROM {relation(ANTHROPIC_BATCHES_TABLE, present)}
    WHERE {_in_scope(usable)}
),
files AS (
    SELECT project, batch_id, bool_or(state = 'read') AS read, bool_or(state = 'gone') AS gone
    FROM {relation(FILES_TABLE, present)}
    GROUP BY project, batch_id
),
requests AS (
    SELECT
        project,
        batch_id,
        count(*) AS requests,
        string_agg(DISTINCT model, ', ' ORDER BY model) AS model,
        sum(input_tokens) AS input_tokens,
        sum(cached_tokens) AS cached_tokens,
        sum(cache_write_tokens) AS cache_write_tokens,
        sum(output_tokens) AS output_tokens,
        sum(reasoning_tokens) AS reasoning_tokens,
        count(*) FILTER (WHERE NOT priced) AS unpriced,
        min(unpriced_reason) AS unpriced_reason,
        fsum(cost_usd) AS cost_usd,
        fsum(sync_cost_usd) AS sync_cost_usd,
        fsum(cache_savings_usd) AS cache_savings_usd,
        string_agg(DISTINCT price_source, ', ' ORDER BY price_source) AS price_source,
        bool_or(price_tiered) AS price_tiered
    FROM {S}.anthropic_request_costs
    GROUP BY project, batch_id
),
joined AS (
    SELECT
        b.*,
        NOT b.gone AND b.processing_status = 'ended' AS is_terminal,
        r.model, r.input_tokens, r.cached_tokens, r.cache_write_tokens, r.output_tokens, r.reasoning_tokens,
        r.cost_usd, r.sync_cost_usd, r.cache_savings_usd, r.price_source, r.price_tiered,
        CASE
            WHEN coalesce(r.requests, 0) = 0 AND NOT coalesce(f.read, false) THEN CASE
                WHEN b.processing_status IS DISTINCT FROM 'ended' THEN 'still running: no results yet'
                WHEN coalesce(f.gone, false) THEN 'results gone before they were read'
                ELSE 'results not read yet'
            END
            -- Its cost is the sum of its results: lines for fewer requests than it counts (a download that
            -- ended cleanly short, a server that drops lines) or for more would be a wrong total shown as exact.
            WHEN b.processing_status = 'ended' AND r.requests IS DISTINCT FROM b.requests_total
                THEN '{RESULTS_DISAGREE}'
            WHEN r.unpriced > 0 THEN r.unpriced_reason
        END AS unpriced_reason
    FROM batches AS b
    LEFT JOIN files AS f ON f.batch_id = b.id AND f.project = b.project
    LEFT JOIN requests AS r ON r.batch_id = b.id AND r.project = b.project
)
SELECT
    id, project, status, processing_status, created_at, expires_at, ended_at, gone, is_terminal,
    model, requests_total, succeeded, errored, canceled, expired,
    input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
    unpriced_reason IS NULL AS priced,
    unpriced_reason,
    CASE WHEN unpriced_reason IS NULL THEN coalesce(cost_usd, 0) END AS cost_usd,
    CASE WHEN unpriced_reason IS NULL THEN coalesce(sync_cost_usd, 0) END AS sync_cost_usd,
    CASE WHEN unpriced_reason IS NULL THEN coalesce(cache_savings_usd, 0) END AS cache_savings_usd,
    CASE WHEN unpriced_reason IS NULL THEN price_source END AS price_source,
    coalesce(unpriced_reason IS NULL AND price_tiered, false) AS price_tiered,
    {elapsed("ended_at", "created_at")} AS turnaround_s,
    CASE WHEN NOT is_terminal AND NOT gone THEN {elapsed("now()", "created_at")} END AS open_for_s,
    coalesce(created_at <= ended_at, false) AS timeline_complete,
    CASE
        WHEN status = 'completed' AND ended_at >= created_at THEN ended_at <= expires_at
        WHEN status = 'expired' THEN false
    END AS within_window,
    status = 'completed' AND requests_total > 0 AND errored >= requests_total AS all_requests_failed
FROM joined
"""


def anthropic_views(
    present: frozenset[str], has_gone: bool, usable: Callable[[str], str], elapsed: Callable[[str, str], str]
) -> tuple[tuple[str, str], ...]:
    """The per-request and per-batch views, over the tables among ``present`` (the others: empty relations).
    Without `anthropic_batches` both are empty relations of their columns, so the Anthropic side of every
    report costs an OpenAI-only database nothing."""
    if ANTHROPIC_BATCHES_TABLE not in present:
        return (
            ("anthropic_request_costs", _nothing("anthropic_request_costs", REQUEST_COST_COLUMNS)),
            ("anthropic_batch_costs", _nothing("anthropic_batch_costs", BATCH_COST_COLUMNS)),
        )
    return (
        ("anthropic_request_costs", _request_costs(present, usable)),
        ("anthropic_batch_costs", _batch_costs(present, has_gone, usable, elapsed)),
    )


# The columns of the two views (tests/test_anthropic_costs.py checks them against the views built over
# tables): without `anthropic_batches` each is an empty relation of them, which every query binds in no
# time (the views over empty tables took ~10 ms to bind, in each of the twenty-odd reports). Counts and
# tokens are BIGINT here, as in `batch_costs`, so `batch_jobs` of an OpenAI-only database has its types.
_T, _B, _I, _D, _TS = "VARCHAR", "BOOLEAN", "BIGINT", "DOUBLE", "TIMESTAMPTZ"
REQUEST_COST_COLUMNS: tuple[tuple[str, str], ...] = (
    *((c, _T) for c in ("batch_id", "custom_id", "project", "outcome", "error_code", "error_message", "model")),
    ("created_at", _TS),
    ("created_day", "DATE"),
    ("service_tier", _T),
    ("custom_id_prefix", _T),
    *(
        (c, _I)
        for c in (
            "input_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "output_tokens",
            "reasoning_tokens",
        )
    ),
    ("priced", _B),
    ("unpriced_reason", _T),
    *((c, _D) for c in ("cost_usd", "sync_cost_usd", "cache_savings_usd")),
    ("price_source", _T),
    ("price_model", _T),
    ("price_tiered", _B),
    ("batch_factor", _D),
)
BATCH_COST_COLUMNS: tuple[tuple[str, str], ...] = (
    *((c, _T) for c in ("id", "project", "status", "processing_status")),
    *((c, _TS) for c in ("created_at", "expires_at", "ended_at")),
    ("gone", _B),
    ("is_terminal", _B),
    ("model", _T),
    *((c, _I) for c in ("requests_total", "succeeded", "errored", "canceled", "expired")),
    *((c, _I) for c in ("input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")),
    ("priced", _B),
    ("unpriced_reason", _T),
    *((c, _D) for c in ("cost_usd", "sync_cost_usd", "cache_savings_usd")),
    ("price_source", _T),
    ("price_tiered", _B),
    ("turnaround_s", _D),
    ("open_for_s", _D),
    *((c, _B) for c in ("timeline_complete", "within_window", "all_requests_failed")),
)


def _nothing(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    return f"CREATE OR REPLACE VIEW {S}.{name} AS\n{_empty(columns)[1:-1]}\n"


# Which tables the views read when present (session.py passes the ones a load created).
PROVIDER_TABLES = (ANTHROPIC_BATCHES_TABLE,)

__all__ = [
    "ANTHROPIC_BATCHES_TABLE",
    "ANTHROPIC_BATCH_COLUMNS",
    "PROVIDER_TABLES",
    "anthropic_views",
    "relation",
]
