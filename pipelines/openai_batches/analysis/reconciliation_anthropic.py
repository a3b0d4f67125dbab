"""Anthropic's rows of the reconciliation views (`usage_reconciliation`, `project_coverage`,
`cost_reconciliation`, `provider = 'anthropic'`): the loaded Message Batches against Anthropic's books
(`anthropic_usage_daily`, `anthropic_costs_daily`, `anthropic_workspaces`, loaded with an Admin API key).

The same verdicts as OpenAI's (reconciliation.py), with a workspace in the place of a project: `project_id`
is the workspace id (`wrkspc_...`). Which workspace a configured project loads is
`anthropic_project_workspaces` (its key's hint in the Admin API's key list).

Our side is the request ledger: a batch's tokens are its succeeded requests in `batch_requests` (the results
are the only source of an Anthropic batch's model and tokens), `input_tokens` counting all input (cache
reads and writes included), as `anthropic_usage_daily.input_tokens` does. A batch counts in the month it
ended; as for OpenAI, batches that ran across a month's start or end are the boundary that timing can
explain. An ended batch whose results are not (all) read leaves its month's figure unknown: `no batch usage`.
Anthropic's side is the `batch` service tier only.
"""

from __future__ import annotations

from ..settings import ANTHROPIC_BATCHES_TABLE, REQUESTS_TABLE
from ..tables.admin import DAYS_READ_TABLE
from ..tables.anthropic_admin import (
    COSTS_TABLE,
    PROJECT_WORKSPACES_TABLE,
    USAGE_ENDPOINT,
    USAGE_TABLE,
    WORKSPACES_TABLE,
)
from . import settings

S = settings.SCHEMA

# `project_coverage.verdict` of a configured project whose key's workspace the Admin API does not tell.
KEY_NOT_FOUND = "key not in the Admin API"


def _typed(columns: dict[str, str]) -> str:
    return ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in columns.items())


# The columns read of each table, with their types: an absent table reads as an empty relation of them,
# and a present one is read through them (a table loaded before a column existed reads it as NULL).
_COLUMNS: dict[str, dict[str, str]] = {
    WORKSPACES_TABLE: {"id": "VARCHAR", "name": "VARCHAR", "archived_at": "TIMESTAMPTZ"},
    USAGE_TABLE: {
        "day": "DATE",
        "workspace_id": "VARCHAR",
        "model": "VARCHAR",
        "service_tier": "VARCHAR",
        "input_tokens": "BIGINT",
        "output_tokens": "BIGINT",
    },
    COSTS_TABLE: {
        "day": "DATE",
        "workspace_id": "VARCHAR",
        "service_tier": "VARCHAR",
        "description": "VARCHAR",
        "currency": "VARCHAR",
        "amount": "DOUBLE",
        "amount_raw": "VARCHAR",
    },
    PROJECT_WORKSPACES_TABLE: {
        "project": "VARCHAR",
        "workspace_id": "VARCHAR",
        "workspace_name": "VARCHAR",
        "key_match": "VARCHAR",
    },
    DAYS_READ_TABLE: {"endpoint": "VARCHAR", "day": "DATE"},
    ANTHROPIC_BATCHES_TABLE: {
        "id": "VARCHAR",
        "project": "VARCHAR",
        "created_at": "TIMESTAMPTZ",
        "ended_at": "TIMESTAMPTZ",
        "request_counts__succeeded": "BIGINT",
    },
    REQUESTS_TABLE: {
        "batch_id": "VARCHAR",
        "project": "VARCHAR",
        "outcome": "VARCHAR",
        "model": "VARCHAR",
        "input_tokens": "BIGINT",
        "output_tokens": "BIGINT",
    },
}
# Every table these rows read, for the session to say which exist.
TABLES = tuple(_COLUMNS)


def _rel(table: str, present: frozenset[str]) -> str:
    empty = f"(SELECT {_typed(_COLUMNS[table])} WHERE false)"
    if table not in present:
        return empty
    names = ", ".join(f'"{c}"' for c in _COLUMNS[table])
    return f"(SELECT {names} FROM (SELECT * FROM {empty} UNION ALL BY NAME SELECT * FROM {S}.{table}))"


def _month(timestamp: str) -> str:
    return f"CAST(date_trunc('month', make_timestamp(epoch_us({timestamp}))) AS DATE)"


def _usage_days(present: frozenset[str]) -> str:
    days_read = _rel(DAYS_READ_TABLE, present)
    usage = _rel(USAGE_TABLE, present)
    return f"(SELECT day FROM {days_read} WHERE endpoint = '{USAGE_ENDPOINT}' UNION SELECT day FROM {usage})"


def _batches(present: frozenset[str]) -> str:
    """The loaded batches of the projects whose workspace is known, with the months they started and ended."""
    return f"""(
    SELECT
        b.id, b.project, m.workspace_id, b.request_counts__succeeded AS succeeded,
        {_month("b.ended_at")} AS counted_month,
        {_month("b.created_at")} AS started_month
    FROM {_rel(ANTHROPIC_BATCHES_TABLE, present)} AS b
    JOIN {_rel(PROJECT_WORKSPACES_TABLE, present)} AS m ON m.project = b.project AND m.workspace_id IS NOT NULL
)"""


def usage_rows(present: frozenset[str], *, no_model: str, tolerance: float, settling_days: int, since: str) -> str:
    """`usage_reconciliation`'s Anthropic rows (a SELECT: `since` is the filter of a month column `k.month`)."""
    usage = _rel(USAGE_TABLE, present)
    requests = _rel(REQUESTS_TABLE, present)
    month_end = "CAST(k.month AS TIMESTAMP) + INTERVAL 1 MONTH"

    def within(column: str) -> str:
        ours, theirs = f"coalesce(b.{column}, 0)", f"coalesce(u.{column}, 0)"
        return (
            f"({theirs} - {ours} BETWEEN -coalesce(x.{column}_before, 0) - {tolerance} * {ours} "
            f"AND coalesce(x.{column}_after, 0) + {tolerance} * {ours})"
        )

    def diff(column: str) -> str:
        return f"round(100.0 * (coalesce(u.{column}, 0) - b.{column}) / nullif(b.{column}, 0), 2)"

    return f"""
SELECT * FROM (
WITH
batches AS {_batches(present)},
requests AS (
    SELECT
        project, batch_id, coalesce(model, '{no_model}') AS model, count(*) AS succeeded,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM {requests} AS r
    WHERE outcome = 'succeeded'
        AND EXISTS (SELECT 1 FROM batches AS b WHERE b.id = r.batch_id AND b.project = r.project)
    GROUP BY ALL
),
-- Ended batches whose succeeded requests are not all in the ledger (results not read yet, or gone): the
-- month's figure on our side is unknown.
unread AS (
    SELECT b.counted_month AS month, b.workspace_id AS project_id, count(*) AS batches
    FROM batches AS b
    LEFT JOIN (SELECT project, batch_id, sum(succeeded) AS succeeded FROM requests GROUP BY ALL) AS r
        ON r.batch_id = b.id AND r.project = b.project
    WHERE b.counted_month IS NOT NULL AND coalesce(r.succeeded, 0) < coalesce(b.succeeded, 0)
    GROUP BY ALL
),
work AS (
    SELECT b.id, b.workspace_id AS project_id, q.model, q.input_tokens, q.output_tokens, b.counted_month,
        b.started_month
    FROM batches AS b JOIN requests AS q ON q.batch_id = b.id AND q.project = b.project
),
batch_side AS (
    SELECT counted_month AS month, project_id, model, count(DISTINCT id) AS batches,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM work
    WHERE counted_month IS NOT NULL
    GROUP BY ALL
),
-- The batch tier of the workspaces whose batches are loaded (the others are `project_coverage`'s business).
usage_side AS (
    SELECT
        CAST(date_trunc('month', day) AS DATE) AS month, workspace_id AS project_id,
        coalesce(model, '{no_model}') AS model,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM {usage}
    WHERE service_tier = 'batch' AND workspace_id IN (SELECT workspace_id FROM batches)
    GROUP BY ALL
),
keys AS (
    SELECT month, project_id, model FROM batch_side
    UNION
    SELECT month, project_id, model FROM usage_side
),
boundary AS (
    SELECT
        k.month, k.project_id, k.model,
        count(DISTINCT w.id) AS batches,
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
coverage AS (
    SELECT min(day) AS first_day, max(day) AS last_day FROM {_usage_days(present)}
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
    {diff("input_tokens")} AS input_diff_pct,
    {diff("output_tokens")} AS output_diff_pct,
    coalesce(x.batches, 0) AS boundary_batches,
    -- Not priced: the usage table keeps input and output totals, not the cache read / write split a price needs.
    CAST(NULL AS DOUBLE) AS usage_estimate_usd,
    CASE
        WHEN c.first_day IS NULL OR {month_end} <= c.first_day OR k.month > c.last_day THEN 'no usage data'
        WHEN n.batches > 0 THEN 'no batch usage'
        WHEN epoch(now()) < epoch({month_end} + INTERVAL {settling_days} DAY) THEN 'month not over'
        WHEN {within("input_tokens")} AND {within("output_tokens")} THEN 'match'
        ELSE 'differs'
    END AS verdict,
    'anthropic' AS provider
FROM keys AS k
LEFT JOIN batch_side AS b USING (month, project_id, model)
LEFT JOIN usage_side AS u USING (month, project_id, model)
LEFT JOIN boundary AS x USING (month, project_id, model)
LEFT JOIN unread AS n USING (month, project_id)
CROSS JOIN coverage AS c
WHERE {since}
)"""


def coverage_rows(present: frozenset[str], *, recent_days: int) -> str:
    """`project_coverage`'s Anthropic rows: every workspace (`covered` when a configured project's key
    belongs to it), then each configured project whose key's workspace the Admin API does not tell."""
    usage = _rel(USAGE_TABLE, present)
    mapping = _rel(PROJECT_WORKSPACES_TABLE, present)
    batches = _rel(ANTHROPIC_BATCHES_TABLE, present)
    return f"""
SELECT * FROM (
WITH
horizon AS (SELECT max(day) AS last_day FROM {_usage_days(present)}),
batch_usage AS (
    SELECT
        u.workspace_id,
        sum(u.input_tokens) FILTER (WHERE u.day > h.last_day - {recent_days}) AS recent_input_tokens,
        max(u.day) FILTER (WHERE u.input_tokens > 0 OR u.output_tokens > 0) AS last_day
    FROM {usage} AS u CROSS JOIN horizon AS h
    WHERE u.service_tier = 'batch'
    GROUP BY ALL
),
loaded AS (
    SELECT m.project, m.workspace_id, count(b.id) AS batches
    FROM {mapping} AS m LEFT JOIN {batches} AS b ON b.project = m.project
    GROUP BY ALL
)
SELECT
    w.id AS project_id,
    w.name,
    CASE WHEN w.archived_at IS NULL THEN 'active' ELSE 'archived' END AS status,
    l.workspace_id IS NOT NULL AS loaded,
    coalesce(l.batches, 0) AS batches_loaded,
    coalesce(bu.recent_input_tokens, 0) AS batch_input_tokens,
    bu.last_day AS last_batch_usage_day,
    CASE
        WHEN l.workspace_id IS NOT NULL THEN 'covered'
        WHEN coalesce(bu.recent_input_tokens, 0) > 0 THEN 'missing'
        ELSE 'idle'
    END AS verdict,
    'anthropic' AS provider
FROM {_rel(WORKSPACES_TABLE, present)} AS w
LEFT JOIN (SELECT workspace_id, sum(batches) AS batches FROM loaded GROUP BY ALL) AS l ON l.workspace_id = w.id
LEFT JOIN batch_usage AS bu ON bu.workspace_id = w.id
UNION ALL
SELECT
    NULL, project, NULL, true, batches, 0, NULL, '{KEY_NOT_FOUND}', 'anthropic'
FROM loaded
WHERE workspace_id IS NULL
)"""


def cost_rows(present: frozenset[str], *, no_project: str, since: str) -> str:
    """`cost_reconciliation`'s Anthropic rows: what the cost report bills each workspace per month (all
    tiers in `costs_usd`, the batch tier in `batch_costs_usd`), next to our estimate for its batches."""
    costs = _rel(COSTS_TABLE, present)
    usage = _rel(USAGE_TABLE, present)
    mapping = _rel(PROJECT_WORKSPACES_TABLE, present)
    return f"""
SELECT * FROM (
WITH
cost_rows AS (
    SELECT
        CAST(date_trunc('month', day) AS DATE) AS month, workspace_id AS project_id, service_tier,
        lower(coalesce(currency, 'usd')) AS currency, amount AS value
    FROM {costs}
),
other_currencies AS (
    SELECT month, project_id, currency, fsum(value) AS value
    FROM cost_rows
    WHERE currency <> 'usd' AND value IS NOT NULL
    GROUP BY ALL
),
billed AS (
    SELECT
        month, project_id,
        coalesce(fsum(value) FILTER (WHERE currency = 'usd'), 0) AS costs_usd,
        coalesce(fsum(value) FILTER (WHERE currency = 'usd' AND service_tier = 'batch'), 0) AS batch_costs_usd,
        count(*) FILTER (WHERE value IS NULL) AS costs_not_numbers
    FROM cost_rows
    GROUP BY ALL
),
tokens AS (
    SELECT
        CAST(date_trunc('month', day) AS DATE) AS month, workspace_id AS project_id,
        coalesce(sum(CAST(input_tokens AS HUGEINT) + output_tokens) FILTER (WHERE service_tier = 'batch'), 0)
            AS batch_tokens,
        sum(CAST(input_tokens AS HUGEINT) + output_tokens) AS all_tokens
    FROM {usage}
    GROUP BY ALL
),
-- Our estimate: what `batch_jobs` prices the workspace's batches at, by the month they ended (billed when run).
ours AS (
    SELECT
        CAST(date_trunc('month', make_timestamp(epoch_us(j.ended_at))) AS DATE) AS month,
        m.workspace_id AS project_id,
        fsum(j.cost_usd) FILTER (WHERE j.priced) AS cost_usd,
        count(*) FILTER (WHERE NOT j.priced) AS unpriced_batches
    FROM {S}.batch_jobs AS j
    JOIN {mapping} AS m ON m.project = j.project
    WHERE j.provider = 'anthropic' AND j.ended_at IS NOT NULL AND m.workspace_id IS NOT NULL
    GROUP BY ALL
),
keys AS (
    SELECT month, project_id FROM billed
    UNION SELECT month, project_id FROM tokens WHERE batch_tokens > 0
    UNION SELECT month, project_id FROM ours
)
SELECT
    k.month,
    k.project_id,
    CASE WHEN k.project_id IS NULL THEN '{no_project}' ELSE w.name END AS name,
    c.costs_usd,
    o.cost_usd AS batches_estimate_usd,
    'batches' AS estimate_source,
    round(100.0 * t.batch_tokens / nullif(t.all_tokens, 0), 2) AS batch_token_share_pct,
    coalesce(o.unpriced_batches, 0) AS unpriced_batches,
    (
        SELECT string_agg(CAST(round(o.value, 9) AS VARCHAR) || ' ' || upper(o.currency), ', ' ORDER BY o.currency)
        FROM other_currencies AS o
        WHERE o.month = k.month AND o.project_id IS NOT DISTINCT FROM k.project_id
    ) AS other_currency_costs,
    coalesce(c.costs_not_numbers, 0) AS costs_not_numbers,
    c.batch_costs_usd,
    'anthropic' AS provider
FROM keys AS k
LEFT JOIN billed AS c ON c.month = k.month AND c.project_id IS NOT DISTINCT FROM k.project_id
LEFT JOIN tokens AS t ON t.month = k.month AND t.project_id IS NOT DISTINCT FROM k.project_id
LEFT JOIN ours AS o ON o.month = k.month AND o.project_id IS NOT DISTINCT FROM k.project_id
LEFT JOIN {_rel(WORKSPACES_TABLE, present)} AS w ON w.id = k.project_id
WHERE {since}
)"""


def cost_caveats(present: frozenset[str], *, prefix: str, since: str) -> str:
    """`caveats` rows (a `UNION ALL` to append) for the cost report's items a USD figure leaves out: an
    amount in another currency, or one that is not a number (`since` filters a `month` column)."""
    if COSTS_TABLE not in present:
        return ""
    figures = "cost_reconciliation.costs_usd"
    other = f"{prefix} in another currency: shown apart (cost_reconciliation.other_currency_costs), never in USD"
    not_number = f"{prefix} whose amount is not a number (anthropic_costs_daily.amount_raw): left out of every sum"
    return f"""
UNION ALL
SELECT
    'anthropic_costs_daily ' || strftime(day, '%Y-%m-%d') || ' ' || coalesce(workspace_id, 'no workspace') || ': '
        || coalesce(description, 'no description')
        || CASE WHEN amount IS NULL THEN ' = ' || coalesce(amount_raw, 'null')
            ELSE ' (' || upper(coalesce(currency, 'usd')) || ')' END AS id,
    CASE WHEN amount IS NULL THEN '{not_number}' ELSE '{other}' END AS caveat,
    '{figures}' AS figures
FROM (SELECT *, CAST(date_trunc('month', day) AS DATE) AS month FROM {_rel(COSTS_TABLE, present)})
WHERE (amount IS NULL OR lower(coalesce(currency, 'usd')) <> 'usd') AND {since}"""


__all__ = [
    "ANTHROPIC_BATCHES_TABLE",
    "KEY_NOT_FOUND",
    "TABLES",
    "cost_caveats",
    "cost_rows",
    "coverage_rows",
    "usage_rows",
]
