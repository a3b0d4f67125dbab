"""Reconciliation with OpenAI's own books: the views `usage_reconciliation`, `project_coverage` and
`cost_reconciliation`, over `batches` and the Admin API's tables (`projects`, `usage_daily`,
`costs_daily`, loaded with an admin key), and what `status` and the load summary say about them.

Plain SQL, like every view (see views.py). Without the Admin API's tables (no admin key) each view
reads an empty relation of the same columns in their place: the views exist, and `queries/` run
unchanged on any database, with no rows.

Months and the Usage API. OpenAI counts a batch's tokens when they are processed, so one batch can
fall on two days, and, rarely, on two months. A batch counts here in the month its work ended
(`completed_at`, `expired_at`, `cancelled_at`). The difference between the two sides of a month
is therefore bounded by the batches that ran across its start or end, and by those still open (counted
by OpenAI as far as they got, here nowhere yet): the "boundary batches". A month `match`es when the
Usage API's figure lies within those bounds, widened by 1%; anything beyond cannot come from timing
and `differs`. No assumption about how a batch's work is spread over its hours is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..settings import BATCHES_TABLE
from ..tables.admin import (
    COST_COLUMNS,
    COSTS_TABLE,
    DAYS_READ_COLUMNS,
    DAYS_READ_TABLE,
    ORGANIZATION_TABLES,
    PROJECT_COLUMNS,
    PROJECTS_TABLE,
    USAGE_COLUMNS,
    USAGE_ENDPOINT,
    USAGE_TABLE,
)
from ..tables.anthropic_admin import BOOKS_TABLES
from . import settings

S = settings.SCHEMA

# Share of our own figure the Usage API may differ by beyond what boundary batches explain.
TOLERANCE = 0.01
# OpenAI fills a day's buckets late (the load reads the last three days again): a month is not over
# until three days after its end, and its verdict is `month not over` until then.
SETTLING_DAYS = 3
# The window of `project_coverage.batch_input_tokens`, ending at the last day the Usage API data has.
RECENT_DAYS = 30

# Endpoints the Usage API's completions endpoint counts (the only one that splits batch traffic):
# chat completions, legacy completions and responses, also as compatible gateways name them.
_COMPLETIONS = "regexp_matches(coalesce(endpoint, ''), '(^|/)(chat/completions|completions|responses)$')"

_DUCKDB_TYPES = {
    "text": "VARCHAR",
    "bigint": "BIGINT",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "bool": "BOOLEAN",
    "double": "DOUBLE",
}
_COLUMNS = {
    PROJECTS_TABLE: PROJECT_COLUMNS,
    USAGE_TABLE: USAGE_COLUMNS,
    COSTS_TABLE: COST_COLUMNS,
    DAYS_READ_TABLE: DAYS_READ_COLUMNS,
}
# The `name` of `cost_reconciliation`'s row for line items the Costs API bills to no project.
NO_PROJECT = "(no project: organisation-level)"
# Every `caveats` text about a Costs API line item starts so (a report counts line items, not batches).
COSTS_CAVEAT = "Costs API line item"


@dataclass(frozen=True)
class BatchTerms:
    """The definitions views.py builds every view on, handed over by it (`views()`), so that this
    module uses the same ones without importing it: when a time is usable, when usage is consistent,
    when a batch ended, and the label of a batch without a model."""

    usable: Callable[[str], str]
    ended_at: str
    usage_consistent: str
    no_model: str


def _relation(table: str, present: frozenset[str]) -> str:
    """The table, or (before an admin key ever loaded it) an empty relation with its columns. A table
    loaded before a column was declared (`costs_daily.amount_raw`) reads that column as NULL until the
    next load adds it: the views never fail on a database an older version wrote."""
    columns = ", ".join(f'CAST(NULL AS {_DUCKDB_TYPES[c.dlt_type]}) AS "{c.name}"' for c in _COLUMNS[table])
    empty = f"(SELECT {columns} WHERE false)"
    if table in present:
        return f"(SELECT * FROM {empty} UNION ALL BY NAME SELECT * FROM {S}.{table})"
    return empty


def usage_days(present: frozenset[str]) -> str:
    """The days the Usage API was read for: recorded in `admin_days_read` (a day read and empty is a day
    with no usage), and the days of `usage_daily` (loaded before that table existed)."""
    usage = _relation(USAGE_TABLE, present)
    days_read = _relation(DAYS_READ_TABLE, present)
    return f"""(SELECT day FROM {days_read} WHERE endpoint = '{USAGE_ENDPOINT}' UNION SELECT day FROM {usage})"""


def _ours(name: str, present: frozenset[str]) -> str:
    """One of our own tables or views; without any of the Admin API's tables there is nothing to
    reconcile it with, and `LIMIT 0` spares every report a scan of a million batches for no row."""
    return f"{S}.{name}" if present else f"(SELECT * FROM {S}.{name} LIMIT 0)"


def _month(timestamp: str) -> str:
    """The UTC month of a TIMESTAMPTZ as a DATE (its first day); NULL stays NULL."""
    return f"CAST(date_trunc('month', make_timestamp(epoch_us({timestamp}))) AS DATE)"


def _in_since(month: str) -> str:
    """A month is shown when it begins at or after `since` (each month is compared whole)."""
    return (
        f"({S}.report_since() = TIMESTAMPTZ '-infinity' "
        f"OR to_timestamp(epoch(CAST({month} AS TIMESTAMP))) >= {S}.report_since())"
    )


def _usage_priced(present: frozenset[str], terms: BatchTerms) -> str:
    """The Usage API's daily rows, each priced at the batch rate of its model on that day (the
    `model_prices` period in force at the day's start): the estimate for batches that report no
    usage. Usage that cannot be right (cached above input, a negative count) or a model without a
    price gives no estimate (NULL), never 0."""
    usage = _relation(USAGE_TABLE, present)
    day_start = "to_timestamp(epoch(CAST(u.day AS TIMESTAMP)))"
    return f"""usage_priced AS (
    SELECT
        u.day,
        CAST(date_trunc('month', u.day) AS DATE) AS month,
        u.project_id,
        coalesce(u.model, '{terms.no_model}') AS model,
        u.batch,
        u.input_tokens,
        u.output_tokens,
        CASE WHEN u.input_cached_tokens BETWEEN 0 AND u.input_tokens AND u.output_tokens >= 0 THEN (
            (u.input_tokens - u.input_cached_tokens) * p.input_usd_per_mtok
            + u.input_cached_tokens * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
            + CASE WHEN u.output_tokens = 0 THEN 0 ELSE u.output_tokens * p.output_usd_per_mtok END
        ) / 1e6 * p.batch_factor END AS estimate_usd
    FROM {usage} AS u
    LEFT JOIN {S}.{settings.PRICES_TABLE} AS p
        ON p.provider = 'openai' AND p.model = u.model
        AND {day_start} >= coalesce(p.valid_from, TIMESTAMPTZ '-infinity')
        AND {day_start} < coalesce(p.valid_to, TIMESTAMPTZ 'infinity')
)"""


def _within(column: str) -> str:
    """The Usage API's figure lies within what boundary batches explain, widened by the tolerance."""
    ours, theirs = f"coalesce(b.{column}, 0)", f"coalesce(u.{column}, 0)"
    return (
        f"({theirs} - {ours} BETWEEN -coalesce(x.{column}_before, 0) - {TOLERANCE} * {ours} "
        f"AND coalesce(x.{column}_after, 0) + {TOLERANCE} * {ours})"
    )


def _diff_pct(column: str) -> str:
    return f"round(100.0 * (coalesce(u.{column}, 0) - b.{column}) / nullif(b.{column}, 0), 2)"


def usage_reconciliation(present: frozenset[str], terms: BatchTerms) -> str:
    started = f"coalesce({terms.usable('in_progress_at')}, {terms.usable('created_at')})"
    month_end = "CAST(k.month AS TIMESTAMP) + INTERVAL 1 MONTH"
    return f"""
SELECT *, 'openai' AS provider FROM (
WITH
-- Completions batches of known projects (all of them: a month is compared whole, whatever `since`).
-- Failed batches never ran. A batch without a usable end (open, gone, an odd time) counts in no month.
work AS (
    SELECT
        project_id,
        coalesce(model, '{terms.no_model}') AS model,
        CASE WHEN {terms.usage_consistent} THEN usage__input_tokens END AS input_tokens,
        CASE WHEN {terms.usage_consistent} THEN usage__output_tokens END AS output_tokens,
        coalesce(NOT ({terms.usage_consistent}), false) AS usage_impossible,
        {_month(terms.ended_at)} AS counted_month,
        {_month(started)} AS started_month
    FROM {_ours(BATCHES_TABLE, present)}
    WHERE project_id IS NOT NULL AND {_COMPLETIONS} AND status IS DISTINCT FROM 'failed'
),
batch_side AS (
    SELECT
        counted_month AS month, project_id, model,
        count(*) AS batches,
        count(*) FILTER (WHERE input_tokens IS NULL AND NOT usage_impossible) AS without_usage,
        count(*) FILTER (WHERE usage_impossible) AS impossible_usage,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens
    FROM work
    WHERE counted_month IS NOT NULL
    GROUP BY ALL
),
{_usage_priced(present, terms)},
-- The Usage API's batch tokens of the projects whose batches are loaded (the others are
-- `project_coverage`'s business).
usage_side AS (
    SELECT
        month, project_id, model,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        CASE WHEN bool_and(estimate_usd IS NOT NULL) THEN fsum(estimate_usd) END AS estimate_usd
    FROM usage_priced
    WHERE batch AND project_id IN (SELECT project_id FROM {_ours(BATCHES_TABLE, present)})
    GROUP BY ALL
),
keys AS (
    SELECT month, project_id, model FROM batch_side
    UNION
    SELECT month, project_id, model FROM usage_side
),
-- Batches that ran across a month's start (counted in it: OpenAI may have counted part of them
-- before it) or across its end (counted later, or still open: OpenAI counted part of them in it).
boundary AS (
    SELECT
        k.month, k.project_id, k.model,
        count(*) AS batches,
        sum(w.input_tokens) FILTER (WHERE w.counted_month = k.month) AS input_tokens_before,
        sum(w.output_tokens) FILTER (WHERE w.counted_month = k.month) AS output_tokens_before,
        sum(w.input_tokens) FILTER (WHERE w.counted_month IS DISTINCT FROM k.month) AS input_tokens_after,
        sum(w.output_tokens) FILTER (WHERE w.counted_month IS DISTINCT FROM k.month) AS output_tokens_after
    FROM keys AS k
    JOIN work AS w
        ON w.project_id = k.project_id AND w.model = k.model
        AND w.started_month <= k.month AND coalesce(w.counted_month, DATE '9999-12-01') >= k.month
    WHERE w.counted_month IS NULL OR w.started_month < w.counted_month
    GROUP BY ALL
),
-- A month whose batches (some or all) carry no usage (before September 2025) cannot be compared; nor one
-- with a batch whose usage the API cannot have meant (`batch_costs` leaves it unpriced): our side is unknown.
without_usage AS (
    SELECT
        month, project_id,
        bool_or(without_usage > 0) AS any_without_usage,
        bool_or(impossible_usage > 0) AS any_impossible_usage
    FROM batch_side
    GROUP BY ALL
),
-- The days the Usage API was read for, empty ones included: a month read whose buckets hold no batch
-- tokens is a month with none, compared like any other.
coverage AS (
    SELECT min(day) AS first_day, max(day) AS last_day FROM {usage_days(present)}
)
SELECT
    k.month,
    k.project_id,
    k.model,
    coalesce(b.batches, 0) AS batches,
    b.input_tokens AS batches_input_tokens,
    u.input_tokens AS usage_input_tokens,
    b.output_tokens AS batches_output_tokens,
    u.output_tokens AS usage_output_tokens,
    {_diff_pct("input_tokens")} AS input_diff_pct,
    {_diff_pct("output_tokens")} AS output_diff_pct,
    coalesce(x.batches, 0) AS boundary_batches,
    u.estimate_usd AS usage_estimate_usd,
    CASE
        WHEN c.first_day IS NULL OR {month_end} <= c.first_day OR k.month > c.last_day THEN 'no usage data'
        WHEN n.any_without_usage THEN 'no batch usage'
        WHEN n.any_impossible_usage THEN 'inconsistent usage'
        WHEN epoch(now()) < epoch({month_end} + INTERVAL {SETTLING_DAYS} DAY) THEN 'month not over'
        WHEN {_within("input_tokens")} AND {_within("output_tokens")} THEN 'match'
        ELSE 'differs'
    END AS verdict
FROM keys AS k
LEFT JOIN batch_side AS b USING (month, project_id, model)
LEFT JOIN usage_side AS u USING (month, project_id, model)
LEFT JOIN boundary AS x USING (month, project_id, model)
LEFT JOIN without_usage AS n USING (month, project_id)
CROSS JOIN coverage AS c
WHERE {_in_since("k.month")}
)"""


def project_coverage(present: frozenset[str]) -> str:
    usage = _relation(USAGE_TABLE, present)
    return f"""
SELECT *, 'openai' AS provider FROM (
WITH
horizon AS (
    SELECT max(day) AS last_day FROM {usage_days(present)}
),
batch_usage AS (
    SELECT
        u.project_id,
        sum(u.input_tokens) FILTER (WHERE u.day > h.last_day - {RECENT_DAYS}) AS recent_input_tokens,
        max(u.day) FILTER (WHERE u.input_tokens > 0 OR u.num_model_requests > 0) AS last_day
    FROM {usage} AS u CROSS JOIN horizon AS h
    WHERE u.batch
    GROUP BY ALL
),
loaded AS (
    SELECT project_id, count(*) AS batches
    FROM {_ours(BATCHES_TABLE, present)}
    WHERE project_id IS NOT NULL
    GROUP BY ALL
)
SELECT
    p.id AS project_id,
    p.name,
    p.status,
    l.project_id IS NOT NULL AS loaded,
    coalesce(l.batches, 0) AS batches_loaded,
    coalesce(bu.recent_input_tokens, 0) AS batch_input_tokens,
    bu.last_day AS last_batch_usage_day,
    CASE
        WHEN l.project_id IS NOT NULL THEN 'covered'
        WHEN coalesce(bu.recent_input_tokens, 0) > 0 THEN 'missing'
        ELSE 'idle'
    END AS verdict
FROM {_relation(PROJECTS_TABLE, present)} AS p
LEFT JOIN loaded AS l ON l.project_id = p.id
LEFT JOIN batch_usage AS bu ON bu.project_id = p.id
)"""


def _cost_rows(present: frozenset[str]) -> str:
    """`costs_daily` with each amount in its currency (`value`, NULL when it is not a number) and its
    lower-cased currency (`usd` when the API names none). Rows loaded before `amount` existed carry it
    in `amount_usd`."""
    return f"""(
    SELECT
        day, CAST(date_trunc('month', day) AS DATE) AS month, project_id, line_item,
        lower(coalesce(currency, 'usd')) AS currency,
        CASE WHEN amount_raw IS NULL THEN coalesce(amount, amount_usd) END AS value,
        amount_raw
    FROM {_relation(COSTS_TABLE, present)}
)"""


def cost_reconciliation(present: frozenset[str], terms: BatchTerms) -> str:
    return f"""
SELECT *, 'openai' AS provider FROM (
WITH
cost_rows AS (SELECT * FROM {_cost_rows(present)}),
-- An amount in another currency is never added into a USD figure: summed per currency, shown apart.
other_currencies AS (
    SELECT month, project_id, currency, fsum(value) AS value
    FROM cost_rows
    WHERE currency <> 'usd' AND value IS NOT NULL
    GROUP BY ALL
),
costs AS (
    SELECT
        month, project_id,
        -- 0 when the month has line items but none in USD; NULL: the Costs API reported none at all.
        coalesce(fsum(value) FILTER (WHERE currency = 'usd'), 0) AS costs_usd,
        count(*) FILTER (WHERE value IS NULL) AS costs_not_numbers
    FROM cost_rows
    GROUP BY ALL
),
{_usage_priced(present, terms)},
-- Each row's tokens added as HUGEINT: two counts the Usage API sends can overflow 64 bits together.
tokens AS (
    SELECT
        month, project_id,
        coalesce(sum(CAST(input_tokens AS HUGEINT) + output_tokens) FILTER (WHERE batch), 0) AS batch_tokens,
        sum(CAST(input_tokens AS HUGEINT) + output_tokens) AS all_tokens,
        CASE
            WHEN count(*) FILTER (WHERE batch) = 0 THEN 0
            WHEN bool_and(estimate_usd IS NOT NULL) FILTER (WHERE batch) THEN fsum(estimate_usd) FILTER (WHERE batch)
        END AS usage_estimate_usd
    FROM usage_priced
    GROUP BY ALL
),
-- The loaded batches (in scope: `since` applies to them as to every cost figure) by the month
-- their work ended, priced as everywhere (`batch_costs`).
ended AS (
    SELECT id, project_id, {_month(terms.ended_at)} AS month
    FROM {_ours(BATCHES_TABLE, present)}
    WHERE project_id IS NOT NULL
),
ours AS (
    SELECT
        e.month, e.project_id,
        count(*) FILTER (WHERE NOT c.priced) AS unpriced_batches,
        count(*) FILTER (WHERE c.unpriced_reason = 'no usage reported' AND c.status <> 'failed') AS without_usage,
        fsum(c.cost_usd) AS cost_usd
    FROM {_ours("batch_costs", present)} AS c
    JOIN ended AS e ON e.id = c.id
    WHERE e.month IS NOT NULL
    GROUP BY ALL
),
-- Line items billed to no project (organisation-level) are a row of their own per month: project_id
-- NULL, so every join below matches NULL to NULL.
keys AS (
    SELECT month, project_id FROM costs
    UNION SELECT month, project_id FROM ours
    UNION SELECT month, project_id FROM tokens WHERE batch_tokens > 0
),
estimates AS (
    SELECT
        k.month, k.project_id,
        o.project_id IS NULL OR o.without_usage > 0 AS from_usage,
        o.cost_usd, o.unpriced_batches, t.usage_estimate_usd, t.batch_tokens, t.all_tokens
    FROM keys AS k
    LEFT JOIN ours AS o ON o.month = k.month AND o.project_id IS NOT DISTINCT FROM k.project_id
    LEFT JOIN tokens AS t ON t.month = k.month AND t.project_id IS NOT DISTINCT FROM k.project_id
)
SELECT
    e.month,
    e.project_id,
    CASE WHEN e.project_id IS NULL THEN '{NO_PROJECT}' ELSE p.name END AS name,
    c.costs_usd,
    CASE
        WHEN NOT e.from_usage THEN e.cost_usd
        WHEN e.batch_tokens IS NULL THEN 0  -- no usage at all that month: no batch usage either
        ELSE e.usage_estimate_usd
    END AS batches_estimate_usd,
    CASE WHEN e.from_usage THEN 'usage api' ELSE 'batches' END AS estimate_source,
    round(100.0 * e.batch_tokens / nullif(e.all_tokens, 0), 2) AS batch_token_share_pct,
    CASE WHEN e.from_usage THEN 0 ELSE coalesce(e.unpriced_batches, 0) END AS unpriced_batches,
    (
        SELECT string_agg(CAST(round(o.value, 9) AS VARCHAR) || ' ' || upper(o.currency), ', ' ORDER BY o.currency)
        FROM other_currencies AS o
        WHERE o.month = e.month AND o.project_id IS NOT DISTINCT FROM e.project_id
    ) AS other_currency_costs,
    coalesce(c.costs_not_numbers, 0) AS costs_not_numbers
FROM estimates AS e
LEFT JOIN costs AS c ON c.month = e.month AND c.project_id IS NOT DISTINCT FROM e.project_id
LEFT JOIN {_relation(PROJECTS_TABLE, present)} AS p ON p.id = e.project_id
WHERE {_in_since("e.month")}
)"""


def cost_caveats(present: frozenset[str] | Sequence[str]) -> str:
    """`caveats` rows (a `UNION ALL` to append) for the Costs API's line items a USD figure leaves out:
    an amount in another currency, or one that is not a number. `id` names the line item."""
    from . import reconciliation_anthropic as anthropic

    theirs = anthropic.cost_caveats(
        frozenset(present), prefix=f"{COSTS_CAVEAT} (Anthropic cost report)", since=_in_since("month")
    )
    tables = frozenset(present) & frozenset(ORGANIZATION_TABLES)
    if COSTS_TABLE not in tables:
        return theirs
    figures = "cost_reconciliation.costs_usd"
    other = f"{COSTS_CAVEAT} in another currency: shown apart (cost_reconciliation.other_currency_costs), never in USD"
    not_number = f"{COSTS_CAVEAT} whose amount is not a number (costs_daily.amount_raw): left out of every sum"
    return f"""
UNION ALL
SELECT
    'costs_daily ' || strftime(day, '%Y-%m-%d') || ' ' || coalesce(project_id, 'no project') || ': '
        || coalesce(line_item, 'no line item')
        || CASE WHEN value IS NULL THEN ' = ' || coalesce(amount_raw, 'null')
            ELSE ' (' || upper(currency) || ')' END AS id,
    CASE WHEN value IS NULL THEN '{not_number}' ELSE '{other}' END AS caveat,
    '{figures}' AS figures
FROM {_cost_rows(tables)}
WHERE (value IS NULL OR currency <> 'usd') AND {_in_since("month")}{theirs}"""


def reconciliation_views(present: frozenset[str] | Sequence[str], terms: BatchTerms) -> tuple[tuple[str, str], ...]:
    """The three views, for the tables ``present`` in the database (the others read as empty): OpenAI's
    rows (`provider = 'openai'`) from the Admin API's tables, and Anthropic's (reconciliation_anthropic.py)
    once an Anthropic Admin API key loaded its books."""
    from . import reconciliation_anthropic as anthropic

    tables = frozenset(present) & frozenset(ORGANIZATION_TABLES)
    if not tables - {DAYS_READ_TABLE}:  # only Anthropic's days read: no OpenAI books
        tables = frozenset()
    books = frozenset(present) & frozenset(BOOKS_TABLES)
    ours = frozenset(present) & frozenset(anthropic.TABLES)
    since = _in_since("k.month")
    others = {
        "usage_reconciliation": lambda: anthropic.usage_rows(
            ours, no_model=terms.no_model, tolerance=TOLERANCE, settling_days=SETTLING_DAYS, since=since
        ),
        "project_coverage": lambda: anthropic.coverage_rows(ours, recent_days=RECENT_DAYS),
        "cost_reconciliation": lambda: anthropic.cost_rows(ours, no_project=NO_PROJECT, since=since),
    }
    views = (
        ("usage_reconciliation", usage_reconciliation(tables, terms)),
        ("project_coverage", project_coverage(tables)),
        ("cost_reconciliation", cost_reconciliation(tables, terms)),
    )
    return tuple(
        (name, f"CREATE OR REPLACE VIEW {S}.{name} AS{sql}" + (f"\nUNION ALL BY NAME{others[name]()}" if books else ""))
        for name, sql in views
    )


__all__ = ["COSTS_CAVEAT", "NO_PROJECT", "BatchTerms", "cost_caveats", "reconciliation_views", "usage_days"]
