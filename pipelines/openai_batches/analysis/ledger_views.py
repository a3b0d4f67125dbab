"""The request ledger's views: plain SQL over `batch_requests`, `batch_files` and the batch views.

Like views.py (whose rules they reuse): `since` applies through `batches_in_scope` (here through
`batch_costs`, which reads it), a request is priced with its batch's price (the period in force at the
batch's `created_at`, the batch factor) by the one cost rule `sync_cost`, and usage that cannot be right
is tested by the one `usage_consistent`. No guesses: an amount is right or NULL with a reason.

Before a load has read the ledger (`load --requests`), its tables do not exist: the views read an empty
relation of the same columns in their place, so they exist and `queries/` run on any database, with no rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..settings import FILES_TABLE, REQUESTS_TABLE
from ..tables.batches import Column
from ..tables.ledger import FILE_COLUMNS, NO_PREFIX, OUTCOMES, REQUEST_COLUMNS, custom_id_prefix_sql
from .anthropic_views import ENDPOINT as ANTHROPIC_ENDPOINT
from .anthropic_views import PROVIDER as ANTHROPIC
from .settings import SCHEMA as S
from .sql_rules import NO_MODEL, sync_cost, usage_consistent

# The job a custom id names (tables/ledger.py): stored with each row, computed for rows an older version wrote.
_PREFIX = custom_id_prefix_sql("r")

_REQUEST_USAGE = usage_consistent("r.input_tokens", "r.cached_tokens", "r.output_tokens", "r.reasoning_tokens")

_SQL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "timestamp": "TIMESTAMPTZ", "json": "JSON"}


def ledger_relation(table: str, columns: Sequence[Column], present: frozenset[str]) -> str:
    """The ledger's table, or (before a load read the ledger) an empty relation with its columns."""
    if table in present:
        return f"{S}.{table}"
    typed = ", ".join(f'CAST(NULL AS {_SQL_TYPES[c.dlt_type]}) AS "{c.name}"' for c in columns)
    return f"(SELECT {typed} WHERE false)"


# Each batch's price, of OpenAI and of every provider priced per batch (the OpenAI-shaped ones, Together, Mistral,
# OpenRouter: their requests are read like OpenAI's), one relation; matched to a request by batch id and project
# (ids are unique only within a provider; a project is one provider's).
_PRICE_COLUMNS = (
    "id, project, model, model_label, endpoint, created_at, created_day, input_usd_per_mtok, "
    "cached_input_usd_per_mtok, output_usd_per_mtok, batch_factor, price_model, price_tiered"
)
_BATCH_PRICES = f"""(
        SELECT 'openai' AS provider, {_PRICE_COLUMNS} FROM {S}.batch_costs
        UNION ALL SELECT provider, {_PRICE_COLUMNS} FROM {S}.compatible_batch_costs
        UNION ALL SELECT provider, {_PRICE_COLUMNS} FROM {S}.other_batch_costs
    )"""

# Per request: its cost at its batch's price. A request that did not succeed and reports no tokens cost
# nothing (only completed work is billed): 0, priced. One that succeeded without usage (moderations),
# with usage that cannot be right, or in a batch without a usable model, time or price: NULL, with why.
_REQUEST_COSTS = """
CREATE OR REPLACE VIEW {S}.request_costs AS
WITH joined AS (
    SELECT
        r.batch_id, r.custom_id, {prefix} AS custom_id_prefix, r.project, r.outcome, r.status_code,
        r.error_code, r.error_message,
        r.model, c.model AS batch_model, c.model_label, c.endpoint, c.created_at, c.created_day,
        {request_usage} AS usage_consistent,
        r.input_tokens, r.cached_tokens, r.output_tokens, r.reasoning_tokens,
        r.input_tokens IS NULL AND r.cached_tokens IS NULL AND r.output_tokens IS NULL
            AND r.reasoning_tokens IS NULL AS no_tokens,
        c.input_usd_per_mtok, c.cached_input_usd_per_mtok, c.output_usd_per_mtok, c.batch_factor,
        c.price_model, c.price_tiered, c.provider
    FROM {requests} AS r
    JOIN {batch_prices} AS c ON c.id = r.batch_id AND c.project = r.project
),
reasoned AS (
    SELECT
        *,
        CASE
            WHEN no_tokens AND outcome <> 'succeeded' THEN NULL
            WHEN input_tokens IS NULL THEN 'no usage reported'
            WHEN NOT usage_consistent THEN 'inconsistent usage'
            WHEN batch_model IS NULL THEN 'no model reported'
            WHEN created_at IS NULL THEN 'no usable creation time'
            WHEN input_usd_per_mtok IS NULL THEN 'no price for model'
            WHEN output_usd_per_mtok IS NULL AND coalesce(output_tokens, 0) > 0 THEN 'no output price for model'
        END AS unpriced_reason
    FROM joined
)
SELECT
    batch_id, custom_id, custom_id_prefix, project, outcome, status_code, error_code, error_message,
    model, batch_model, model_label, endpoint, created_at, created_day,
    CASE WHEN usage_consistent IS NOT false THEN input_tokens END AS input_tokens,
    CASE WHEN usage_consistent IS NOT false THEN cached_tokens END AS cached_tokens,
    CASE WHEN usage_consistent IS NOT false THEN output_tokens END AS output_tokens,
    CASE WHEN usage_consistent IS NOT false THEN reasoning_tokens END AS reasoning_tokens,
    unpriced_reason IS NULL AS priced,
    unpriced_reason,
    CASE
        WHEN no_tokens AND outcome <> 'succeeded' THEN 0
        WHEN unpriced_reason IS NULL THEN {cost} * batch_factor
    END AS cost_usd,
    price_model, coalesce(unpriced_reason IS NULL AND price_tiered, false) AS price_tiered,
    provider
FROM reasoned
UNION ALL
-- Anthropic's requests, priced by their own rule (anthropic_views.py); the batch's model is the models its
-- requests name.
SELECT
    r.batch_id, r.custom_id, r.custom_id_prefix, r.project, r.outcome, CAST(NULL AS BIGINT) AS status_code,
    r.error_code, r.error_message,
    r.model, b.model AS batch_model, coalesce(b.model, '{no_model}') AS model_label, '{endpoint}' AS endpoint,
    r.created_at, r.created_day,
    r.input_tokens, r.cached_tokens, r.output_tokens, r.reasoning_tokens,
    r.priced, r.unpriced_reason, r.cost_usd, r.price_model, r.price_tiered,
    '{provider}' AS provider
FROM {S}.anthropic_request_costs AS r
LEFT JOIN {S}.anthropic_batch_costs AS b ON b.id = r.batch_id AND b.project = r.project
"""

# Per batch with a read ledger (at least one file read), in scope, of OpenAI and the OpenAI-shaped providers
# (whose batch objects count requests and tokens themselves; Together's counts come from the ledger, so there is
# nothing to check them against): the batch's own counts and usage next to the ledger's. `consistent`: every
# file it needs was read, every request is accounted for (a row per request; a batch stopped before it ran
# anything keeps counts of 0 and has every request missing), the
# requests that succeeded are exactly those the batch calls completed, and the tokens add up to its usage
# where both report them (`tokens_match` NULL: nothing to compare, e.g. moderations, or a
# batch from before usage was reported). What did not succeed is `failed`, `expired`, `cancelled` or
# `missing`, next to the batch's `failed` and the requests it says never ran.
# A count per outcome, one list for every outcome the ledger writes.
_OUTCOME_COUNTS = ",\n        ".join(f"count(*) FILTER (WHERE outcome = '{o}') AS {o}" for o in OUTCOMES)
_LEDGER_CHECK = """
CREATE OR REPLACE VIEW {S}.ledger_check AS
WITH files AS (
    SELECT
        project,
        batch_id,
        count(*) FILTER (WHERE state = 'read') AS files_read,
        count(*) FILTER (WHERE state = 'gone') AS files_gone,
        count(*) FILTER (WHERE state = 'pending') AS files_pending
    FROM {files}
    GROUP BY project, batch_id
),
requests AS (
    SELECT
        project,
        batch_id,
        count(*) AS requests,
        {outcome_counts},
        count(input_tokens) + count(output_tokens) AS token_counts,
        sum(input_tokens) AS input_tokens,
        sum(cached_tokens) AS cached_tokens,
        sum(output_tokens) AS output_tokens,
        sum(reasoning_tokens) AS reasoning_tokens
    FROM {requests}
    GROUP BY project, batch_id
),
compared AS (
    SELECT
        b.provider, b.id AS batch_id, b.project, b.model_label AS model, b.endpoint, b.status, b.created_at,
        f.files_read, f.files_gone, f.files_pending,
        b.request_counts__total AS batch_total,
        coalesce(r.requests, 0) AS ledger_requests,
        b.request_counts__completed AS batch_completed,
        coalesce(r.succeeded, 0) AS ledger_succeeded,
        b.request_counts__failed AS batch_failed,
        CASE WHEN b.request_counts_consistent THEN
            b.request_counts__total - b.request_counts__completed - b.request_counts__failed
        END AS batch_not_run,
        b.request_counts_consistent,
        coalesce(r.failed, 0) AS ledger_failed,
        coalesce(r.expired, 0) AS ledger_expired,
        coalesce(r.cancelled, 0) AS ledger_cancelled,
        coalesce(r.missing, 0) AS ledger_missing,
        b.usage__input_tokens AS batch_input_tokens,
        r.input_tokens AS ledger_input_tokens,
        b.usage__output_tokens AS batch_output_tokens,
        r.output_tokens AS ledger_output_tokens,
        CASE WHEN b.usage__input_tokens IS NOT NULL AND coalesce(r.token_counts, 0) > 0 THEN
            r.input_tokens = b.usage__input_tokens
            AND coalesce(r.cached_tokens, 0) = coalesce(b.usage__input_tokens_details__cached_tokens, 0)
            AND coalesce(r.output_tokens, 0) = coalesce(b.usage__output_tokens, 0)
            AND coalesce(r.reasoning_tokens, 0) = coalesce(b.usage__output_tokens_details__reasoning_tokens, 0)
        END AS tokens_match
    FROM (
        SELECT 'openai' AS provider, * FROM {S}.batches_in_scope
        UNION ALL BY NAME SELECT * FROM {S}.compatible_batches_in_scope
    ) AS b
    JOIN files AS f ON f.batch_id = b.id AND f.project = b.project
    LEFT JOIN requests AS r ON r.batch_id = b.id AND r.project = b.project
    WHERE f.files_read > 0
)
SELECT
    *,
    coalesce(
        files_gone = 0 AND files_pending = 0
        AND (
            ledger_requests = batch_total
            -- stopped before it ran anything (counts stay 0): every request of its input file is missing
            OR (batch_completed = 0 AND batch_failed = 0 AND ledger_missing = ledger_requests)
        )
        AND ledger_succeeded = batch_completed
        AND tokens_match IS NOT false
        -- counts the API cannot have meant (batches_in_scope) agree with no ledger
        AND request_counts_consistent IS NOT false,
        false
    ) AS consistent
FROM compared
"""


def request_redactions(present: frozenset[str]) -> str:
    """(batch_id, field) of each batch in scope and `batch_requests` column in which a configured key the
    server sent back was masked in some request (`redacted_fields`): for `caveats`, one row per batch and field."""
    requests = ledger_relation(REQUESTS_TABLE, REQUEST_COLUMNS, present)
    return f"""
    SELECT DISTINCT batch_id, field FROM (
        SELECT r.batch_id, unnest(from_json(r.redacted_fields, '["VARCHAR"]')) AS field
        FROM {requests} AS r
        WHERE r.redacted_fields IS NOT NULL
            AND EXISTS (SELECT 1 FROM {S}.batches_in_scope AS b WHERE b.id = r.batch_id AND b.project = r.project)
    )"""


def ledger_views(present: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """The ledger's views, over its tables among `present` (the others: empty relations)."""
    requests = ledger_relation(REQUESTS_TABLE, REQUEST_COLUMNS, present)
    files = ledger_relation(FILES_TABLE, FILE_COLUMNS, present)
    return (
        (
            "request_costs",
            _REQUEST_COSTS.format(
                S=S,
                requests=requests,
                prefix=_PREFIX,
                request_usage=_REQUEST_USAGE,
                cost=sync_cost("input_tokens", "cached_tokens", "output_tokens"),
                batch_prices=_BATCH_PRICES,
                no_model=NO_MODEL,
                endpoint=ANTHROPIC_ENDPOINT,
                provider=ANTHROPIC,
            ),
        ),
        ("ledger_check", _LEDGER_CHECK.format(S=S, requests=requests, files=files, outcome_counts=_OUTCOME_COUNTS)),
    )


LEDGER_TABLES = (REQUESTS_TABLE, FILES_TABLE)

__all__ = ["LEDGER_TABLES", "NO_PREFIX", "ledger_relation", "ledger_views", "request_redactions"]
