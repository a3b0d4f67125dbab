"""The OpenAI-shaped providers' side of the analysis (Azure OpenAI, Groq, any openai-compatible endpoint): their
batches as rows of `batch_jobs` (views.py), in plain SQL over `azure_batches`, `groq_batches`,
`openai_compatible_batches` (OpenAI's column list each) and `model_prices`.

One entry of `OPENAI_SHAPED` per provider: its table and why a batch of a model without a price is unpriced. The
tables present are read as one relation, `compatible_batches_in_scope` (a `provider` column; `status` in OpenAI's
words, `settings.openai_status_sql`, any casing; the provider's own value as `provider_status`), on which
`compatible_batch_timings` is OpenAI's `batch_timings` (the same SQL, views.py) and `compatible_batch_costs` prices
each batch as Anthropic's requests are priced: genai-prices' batch price (`model_prices.processing = 'batch'`)
where it lists one at the batch's `created_at`, else the standard price x `batch_factor`; `sync_cost_usd` is
always at the standard price. Without any of the tables the relation is empty (and `batch_jobs` leaves this side
out: an OpenAI-only database is read exactly as before).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..settings import BATCH_TABLES, BATCHES_TABLE, ERRORS_TABLE, OPENAI_LIKE_PROVIDERS, openai_status_sql
from .settings import PRICES_TABLE
from .settings import SCHEMA as S
from .sql_rules import providers_in_scope_view, sync_cost


@dataclass(frozen=True)
class OpenAIShaped:
    provider: str  # `batch_jobs.provider`, `model_prices.provider`
    table: str  # its batches, OpenAI's columns
    no_price: str  # `unpriced_reason` of a batch whose model has no price


_NO_PRICE = {
    "azure": "no price for deployment (name the OpenAI model it runs under [azure.deployments] in prices.toml)",
    "groq": "no price for model",
    "openai-compatible": "no price for model: an openai-compatible endpoint is priced only from prices.toml "
    '(provider = "openai-compatible")',
}
OPENAI_SHAPED: tuple[OpenAIShaped, ...] = tuple(
    OpenAIShaped(p, BATCH_TABLES[p], _NO_PRICE[p]) for p in OPENAI_LIKE_PROVIDERS
)
# Each OpenAI-shaped provider's table of validation errors (`errors.data` of its batch objects, as dlt names the
# nested table), beside OpenAI's own `batches__errors__data`.
ERROR_TABLES = {"openai": ERRORS_TABLE, **{p.provider: f"{p.table}__errors__data" for p in OPENAI_SHAPED}}
# Which tables the views read when present (session.py passes the ones a load created).
COMPATIBLE_TABLES = (*(p.table for p in OPENAI_SHAPED), *ERROR_TABLES.values())
# The providers' batch tables: with none of them there is no batch of theirs (OpenAI's own errors table, read by
# `batch_validation_errors`, brings none), and `batch_jobs` and `caveats` leave this side out.
COMPATIBLE_BATCH_TABLES = tuple(p.table for p in OPENAI_SHAPED)


def validation_errors_sql(present: frozenset[str]) -> str:
    """`batch_validation_errors`: why batches failed validation, one row per error of a batch in scope, of OpenAI
    and every OpenAI-shaped provider whose errors table is ``present`` (a provider's own batch ids are matched
    within that provider only)."""
    columns = "e.batch_id, e.error_index, e.code, e.line, e.message, e.param"
    sides = [
        f"SELECT 'openai' AS provider, b.project, {columns} FROM {S}.{ERRORS_TABLE} AS e "
        f"JOIN {S}.batches_in_scope AS b ON b.id = e.batch_id"
    ] * (ERRORS_TABLE in present)
    sides += [
        f"SELECT '{p.provider}' AS provider, b.project, {columns} FROM {S}.{ERROR_TABLES[p.provider]} AS e "
        f"JOIN {S}.compatible_batches_in_scope AS b ON b.provider = '{p.provider}' AND b.id = e.batch_id"
        for p in OPENAI_SHAPED
        if p.table in present and ERROR_TABLES[p.provider] in present
    ]
    body = "\nUNION ALL\n".join(sides) or (
        "SELECT CAST(NULL AS VARCHAR) AS provider, CAST(NULL AS VARCHAR) AS project, CAST(NULL AS VARCHAR) AS "
        "batch_id, CAST(NULL AS BIGINT) AS error_index, CAST(NULL AS VARCHAR) AS code, CAST(NULL AS BIGINT) AS line, "
        "CAST(NULL AS VARCHAR) AS message, CAST(NULL AS VARCHAR) AS param WHERE false"
    )
    return f"CREATE OR REPLACE VIEW {S}.batch_validation_errors AS\n{body}\n"


def present_providers(present: frozenset[str]) -> tuple[OpenAIShaped, ...]:
    return tuple(p for p in OPENAI_SHAPED if p.table in present)


def in_scope(
    present: frozenset[str],
    has_gone: bool,
    usage_consistent: str,
    counts_consistent: str,
    usable: Callable[[str], str],
) -> str:
    """`batches_in_scope` of the providers whose tables are ``present``, one relation with a `provider` column.
    A batch is gone when `batches_gone` holds its id for its project (ids are unique only within a provider)."""
    sides = [
        f"SELECT '{p.provider}' AS provider, status AS provider_status, "
        f"* REPLACE ({openai_status_sql('status')} AS status) FROM {S}.{p.table}"
        for p in present_providers(present)
    ] or [
        # nothing loaded yet: `batches`' columns (every table here has them), no rows
        f"SELECT CAST(NULL AS VARCHAR) AS provider, status AS provider_status, * FROM {S}.{BATCHES_TABLE} WHERE false"
    ]
    union = "\n    UNION ALL BY NAME\n    ".join(sides)
    return providers_in_scope_view(
        "compatible_batches_in_scope",
        "*",
        union,
        has_gone=has_gone,
        usage_consistent=usage_consistent,
        counts_consistent=counts_consistent,
        usable=usable,
    )


_PRICED = (
    "matched_model",
    "source",
    "valid_from",
    "tiered",
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "batch_factor",
)
_AS = {
    "matched_model": "price_model",
    "source": "price_source",
    "valid_from": "price_valid_from",
    "tiered": "price_tiered",
}


def _at_standard(sql: str) -> str:
    """The one price rule (`sync_cost`) at the standard row's prices (`std_...`) instead of the chosen ones."""
    return re.sub(r"\b(input_usd_per_mtok|cached_input_usd_per_mtok|output_usd_per_mtok)\b", r"std_\1", sql)


def costs(
    present: frozenset[str],
    timing_columns: tuple[str, ...],
    *,
    view: str = "compatible_batch_costs",
    source: str = "compatible_batch_timings",
    no_price_reasons: Mapping[str, str] | None = None,
    no_usage_reasons: Mapping[str, str] | None = None,
    carry: tuple[str, ...] = (),
) -> str:
    """`batch_costs` of the OpenAI-shaped providers, over `compatible_batch_timings` (module docstring); or, named
    ``view`` over ``source``, of other providers mapped onto OpenAI's columns (other_views.py), with their own
    reasons for a batch without a price or usage (by provider) and the columns ``carry`` passed through."""
    if no_price_reasons is None:
        no_price_reasons = {p.provider: p.no_price for p in present_providers(present)}
    no_usage = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in (no_usage_reasons or {}).items())
    no_usage_reason = f"CASE b.provider {no_usage} ELSE 'no usage reported' END" if no_usage else "'no usage reported'"
    carried = "".join(f"{c}, " for c in carry)
    chosen = ",\n        ".join(
        f"CASE WHEN v.model IS NOT NULL THEN v.{c} ELSE s.{c} END AS {_AS.get(c, c)}" for c in _PRICED
    )
    no_price = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in no_price_reasons.items())
    no_price_reason = f"CASE b.provider {no_price} END" if no_price else "'no price for model'"
    rule = sync_cost("input_tokens", "cached_input_tokens", "output_tokens")

    def join(alias: str, processing: str) -> str:
        return f"""LEFT JOIN {S}.{PRICES_TABLE} AS {alias}
        ON {alias}.provider = b.provider AND {alias}.processing {processing} AND {alias}.model = b.model
        AND b.created_at_as_sent >= coalesce({alias}.valid_from, TIMESTAMPTZ '-infinity')
        AND b.created_at_as_sent < coalesce({alias}.valid_to, TIMESTAMPTZ 'infinity')"""

    return f"""
CREATE OR REPLACE VIEW {S}.{view} AS
WITH joined AS (
    SELECT
        b.provider, b.provider_status, {"".join(f"b.{c}, " for c in carry)}b.id, b.project, b.model, b.model_label,
        b.endpoint, b.status, b.created_at,
        CAST(make_timestamp(epoch_us(b.created_at)) AS DATE) AS created_day,
        b.metadata,
        b.input_tokens, b.cached_input_tokens, b.output_tokens, b.reasoning_tokens,
        {", ".join(f"b.{c}" for c in timing_columns)},
        {chosen},
        CASE WHEN v.model IS NOT NULL THEN coalesce(v.cached_input_usd_per_mtok, v.input_usd_per_mtok)
            ELSE coalesce(s.cached_input_usd_per_mtok, s.input_usd_per_mtok) END AS cached_input_usd_per_mtok,
        s.input_usd_per_mtok AS std_input_usd_per_mtok,
        coalesce(s.cached_input_usd_per_mtok, s.input_usd_per_mtok) AS std_cached_input_usd_per_mtok,
        s.output_usd_per_mtok AS std_output_usd_per_mtok,
        CASE
            WHEN b.usage_consistent IS NULL THEN {no_usage_reason}
            WHEN NOT b.usage_consistent THEN 'inconsistent usage'
            WHEN b.model IS NULL THEN 'no model reported'
            WHEN b.created_at IS NULL THEN 'no usable creation time'
            WHEN v.model IS NULL AND s.model IS NULL THEN {no_price_reason}
            WHEN coalesce(v.output_usd_per_mtok, s.output_usd_per_mtok) IS NULL AND coalesce(b.output_tokens, 0) > 0
                THEN 'no output price for model'
        END AS unpriced_reason
    FROM {S}.{source} AS b
    {join("s", "IS NULL")}
    {join("v", "= 'batch'")}
),
priced AS (
    SELECT
        *,
        unpriced_reason IS NULL AS priced,
        CASE WHEN unpriced_reason IS NULL THEN {rule} * batch_factor END AS cost_usd,
        -- the same tokens without the Batch API: at the standard price (a batch price's model has one)
        CASE WHEN unpriced_reason IS NULL THEN coalesce({_at_standard(rule)}, {rule}) END AS sync_cost_usd
    FROM joined
)
SELECT
    provider, provider_status, {carried}id, project, model, model_label, endpoint, status, created_at, created_day,
    metadata,
    input_tokens,
    cached_input_tokens,
    input_tokens - coalesce(cached_input_tokens, 0) AS uncached_input_tokens,
    output_tokens,
    reasoning_tokens,
    priced,
    unpriced_reason,
    cost_usd,
    sync_cost_usd,
    sync_cost_usd - cost_usd AS batch_savings_usd,
    CASE WHEN priced THEN
        coalesce(cached_input_tokens, 0) * (input_usd_per_mtok - cached_input_usd_per_mtok) / 1e6 * batch_factor
    END AS cache_savings_usd,
    price_model, price_source, price_valid_from, coalesce(priced AND price_tiered, false) AS price_tiered,
    input_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok, batch_factor,
    {", ".join(timing_columns)}
FROM priced
"""


__all__ = [
    "COMPATIBLE_BATCH_TABLES",
    "COMPATIBLE_TABLES",
    "OPENAI_SHAPED",
    "OpenAIShaped",
    "costs",
    "in_scope",
    "present_providers",
]
