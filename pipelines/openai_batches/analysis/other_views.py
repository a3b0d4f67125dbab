"""Together's, Mistral's and OpenRouter's batches as rows of `batch_jobs` (views.py), in plain SQL over
`together_batches`, `mistral_batches`, `openrouter_batches` (each provider's own columns, tables/others.py) and
`model_prices`.

Each table is mapped onto OpenAI's column names (`OTHER_SIDES`: one expression per column), and the tables present
are read as one relation, `other_batches_in_scope` (`provider`, `status` in OpenAI's words via
`settings.openai_status_sql`, the provider's own value as `provider_status`), on which `other_batch_timings` is
OpenAI's `batch_timings` (the same SQL, views.py) and `other_batch_costs` the OpenAI-shaped providers' pricing
(compatible_views.py): genai-prices' batch price where it lists one, else the standard price x `batch_factor`.

What each provider sends and what is NULL (no guess):
- Together: no request counts, no tokens: both come from the request ledger (`batch_requests`, the batch's result
  files) once every file of the batch is read (`batch_files`: none gone or pending), `LEDGER_SUMS`; until then NULL,
  and the batch unpriced with the reason "not read yet"; `job_deadline` is `expires_at`; its end time is
  `completed_at` whatever the status. Priced only from the price file (`provider = "together"`).
- Mistral: request counts on the job (`succeeded_requests` is OpenAI's `completed`), no tokens: the ledger's, as
  Together's; `started_at` is `in_progress_at`; no deadline.
- OpenRouter: OpenAI's request counts, its `usage` (`prompt_tokens`, cached and reasoning tokens in its details),
  `finalized_at` the end, `expires_at`; its reported cost (`usage__cost`, USD) is `reported_cost_usd`, beside the
  loader's own estimate (`cost_usd`), NULL for every other provider.
None of the three sends stage times OpenAI does (finalizing): a batch's timeline is complete when its creation and
end are known and in order, as for Anthropic's. Without any of the tables the relation is empty (and `batch_jobs`
leaves this side out: a database without them is read exactly as before).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..settings import BATCH_TABLES, FILES_TABLE, OTHER_PROVIDERS, REQUESTS_TABLE, openai_status_sql
from ..tables.ledger import FILE_COLUMNS, REQUEST_COLUMNS
from .ledger_views import ledger_relation
from .settings import SCHEMA as S
from .sql_rules import providers_in_scope_view

_T, _TS, _I, _D, _J = "VARCHAR", "TIMESTAMPTZ", "BIGINT", "DOUBLE", "JSON"
# The relation's columns (OpenAI's names, what `batch_timings_sql` reads) and their types; `ended` is the batch's
# end time, whatever its status (`completed_at`, `failed_at`, ... are all it: the timings choose by status).
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", _T),
    ("endpoint", _T),
    ("metadata", _J),
    ("created_at", _TS),
    ("in_progress_at", _TS),
    ("expires_at", _TS),
    ("ended", _TS),
    ("request_counts__total", _I),
    ("request_counts__completed", _I),
    ("request_counts__failed", _I),
    ("usage__input_tokens", _I),
    ("usage__input_tokens_details__cached_tokens", _I),
    ("usage__output_tokens", _I),
    ("usage__output_tokens_details__reasoning_tokens", _I),
    ("reported_cost_usd", _D),
)


def _detail(column: str, key: str) -> str:
    """An integer from a JSON details column (`{"cached_tokens": 12}`); NULL when absent or not an integer."""
    return f"TRY_CAST(json_extract_string({column}, '$.{key}') AS BIGINT)"


@dataclass(frozen=True)
class OtherSide:
    provider: str  # `batch_jobs.provider`, `model_prices.provider`
    table: str
    model_column: str  # the column naming the model (the one `model_prices` is looked up by)
    columns: Mapping[str, str]  # OpenAI's column -> expression over the table; absent: NULL
    no_price: str  # `unpriced_reason` of a batch whose model has no price
    no_usage: str  # `unpriced_reason` of a batch without tokens
    from_ledger: tuple[str, ...] = ()  # OpenAI's columns taken from the request ledger (`LEDGER_SUMS`)


_NO_TOKENS = "no usage reported: {who} sends no tokens on a batch (they are in its result files, not read yet)"
# OpenAI's columns from a batch's requests in the ledger, when every file of the batch was read (`_ledger_sums`):
# counts by outcome; tokens summed, NULL while a request that succeeded reports none (unknown, never 0), 0 for a
# batch none of whose requests ran (nothing is billed for them).
_TOKENS_KNOWN = "l.succeeded_without_tokens = 0"
LEDGER_SUMS = {
    "request_counts__total": "l.requests",
    "request_counts__completed": "l.succeeded",
    "request_counts__failed": "l.failed",
    "usage__input_tokens": f"CASE WHEN {_TOKENS_KNOWN} THEN coalesce(l.input_tokens, 0) END",
    "usage__input_tokens_details__cached_tokens": f"CASE WHEN {_TOKENS_KNOWN} THEN coalesce(l.cached_tokens, 0) END",
    "usage__output_tokens": f"CASE WHEN {_TOKENS_KNOWN} THEN coalesce(l.output_tokens, 0) END",
    "usage__output_tokens_details__reasoning_tokens": f"CASE WHEN {_TOKENS_KNOWN} THEN l.reasoning_tokens END",
}
_LEDGER_TOKENS = tuple(c for c in LEDGER_SUMS if c.startswith("usage__"))
OTHER_SIDES: tuple[OtherSide, ...] = (
    OtherSide(
        "together",
        BATCH_TABLES["together"],
        "model_id",
        {
            "model": "model_id",
            "endpoint": "endpoint",
            "created_at": "created_at",
            "expires_at": "job_deadline",
            "ended": "completed_at",
        },
        'no price for model: Together batches are priced only from prices.toml (provider = "together")',
        _NO_TOKENS.format(who="Together"),
        tuple(LEDGER_SUMS),
    ),
    OtherSide(
        "mistral",
        BATCH_TABLES["mistral"],
        "model",
        {
            "model": "model",
            "endpoint": "endpoint",
            "metadata": "metadata",
            "created_at": "created_at",
            "in_progress_at": "started_at",
            "ended": "completed_at",
            "request_counts__total": "total_requests",
            "request_counts__completed": "succeeded_requests",
            "request_counts__failed": "failed_requests",
        },
        "no price for model",
        _NO_TOKENS.format(who="Mistral"),
        _LEDGER_TOKENS,
    ),
    OtherSide(
        "openrouter",
        BATCH_TABLES["openrouter"],
        "model",
        {
            "model": "model",
            "endpoint": "endpoint",
            "created_at": "created_at",
            "expires_at": "expires_at",
            "ended": "finalized_at",
            "request_counts__total": "request_counts__total",
            "request_counts__completed": "request_counts__completed",
            "request_counts__failed": "request_counts__failed",
            "usage__input_tokens": "usage__prompt_tokens",
            "usage__input_tokens_details__cached_tokens": _detail("usage__prompt_tokens_details", "cached_tokens"),
            "usage__output_tokens": "usage__completion_tokens",
            "usage__output_tokens_details__reasoning_tokens": _detail(
                "usage__completion_tokens_details", "reasoning_tokens"
            ),
            "reported_cost_usd": "usage__cost",
        },
        "no price for model",
        "no usage reported",
    ),
)
assert tuple(s.provider for s in OTHER_SIDES) == OTHER_PROVIDERS
# Which tables the views read when present (session.py passes the ones a load created).
OTHER_TABLES = tuple(s.table for s in OTHER_SIDES)
# Carried from the relation through the timings and costs views to `batch_jobs`.
CARRY = ("reported_cost_usd",)


def present_sides(present: frozenset[str]) -> tuple[OtherSide, ...]:
    return tuple(s for s in OTHER_SIDES if s.table in present)


def _ledger_sums(present: frozenset[str]) -> str:
    """Per (project, batch) whose every file the ledger read (none gone or pending): its requests by outcome and
    their tokens (`LEDGER_SUMS` reads them as `l`)."""
    requests = ledger_relation(REQUESTS_TABLE, REQUEST_COLUMNS, present)
    files = ledger_relation(FILES_TABLE, FILE_COLUMNS, present)
    return f"""(
        SELECT
            r.project, r.batch_id,
            count(*) AS requests,
            count(*) FILTER (WHERE r.outcome = 'succeeded') AS succeeded,
            count(*) FILTER (WHERE r.outcome = 'failed') AS failed,
            count(*) FILTER (WHERE r.outcome = 'succeeded' AND r.input_tokens IS NULL) AS succeeded_without_tokens,
            sum(r.input_tokens) AS input_tokens,
            sum(r.cached_tokens) AS cached_tokens,
            sum(r.output_tokens) AS output_tokens,
            sum(r.reasoning_tokens) AS reasoning_tokens
        FROM {requests} AS r
        JOIN (
            SELECT project, batch_id FROM {files} GROUP BY ALL HAVING bool_and(state = 'read')
        ) AS f ON f.project = r.project AND f.batch_id = r.batch_id
        GROUP BY r.project, r.batch_id
    )"""


def _select(side: OtherSide | None, present: frozenset[str] = frozenset()) -> str:
    """One provider's rows in OpenAI's columns (the ledger's sums where the side takes them); ``side`` None: no
    rows, the same columns and types."""
    if side is None:
        values = [f"CAST(NULL AS {t}) AS {c}" for c, t in _COLUMNS]
        head = "CAST(NULL AS VARCHAR) AS provider, CAST(NULL AS VARCHAR) AS provider_status, "
        head += "CAST(NULL AS VARCHAR) AS status, CAST(NULL AS VARCHAR) AS id, CAST(NULL AS VARCHAR) AS project"
        return f"SELECT {head}, {', '.join(values)} WHERE false"
    columns = {**side.columns, **{c: LEDGER_SUMS[c] for c in side.from_ledger}}
    values = [f"CAST({columns.get(c, 'NULL')} AS {t}) AS {c}" for c, t in _COLUMNS]
    head = f"'{side.provider}' AS provider, t.status AS provider_status, {openai_status_sql('t.status')} AS status"
    source = f"{S}.{side.table} AS t"
    if side.from_ledger:
        source += f"\n    LEFT JOIN {_ledger_sums(present)} AS l ON l.project = t.project AND l.batch_id = t.id"
    return f"SELECT {head}, t.id, t.project, {', '.join(values)} FROM {source}"


def in_scope(
    present: frozenset[str],
    has_gone: bool,
    usage_consistent: str,
    counts_consistent: str,
    usable: Callable[[str], str],
) -> str:
    """`batches_in_scope` of the providers whose tables are ``present``, in OpenAI's columns (module docstring), with
    the request ledger's sums where its tables are ``present`` too. A batch is gone when `batches_gone` holds its id
    for its project."""
    sides = [_select(side, present) for side in present_sides(present)] or [_select(None)]
    union = "\n    UNION ALL\n    ".join(sides)
    ended = ", ".join(f"ended AS {c}" for c in ("completed_at", "failed_at", "expired_at", "cancelled_at"))
    return providers_in_scope_view(
        "other_batches_in_scope",
        f"* EXCLUDE (ended), CAST(NULL AS TIMESTAMPTZ) AS finalizing_at, {ended}",
        union,
        has_gone=has_gone,
        usage_consistent=usage_consistent,
        counts_consistent=counts_consistent,
        usable=usable,
    )


# A timeline without stage times: creation and end known and in order (`ended_at`, chosen by status).
TIMELINE = "coalesce(created_at <= ended_at, false)"


def no_price_reasons(present: frozenset[str]) -> dict[str, str]:
    return {s.provider: s.no_price for s in present_sides(present)}


def no_usage_reasons(present: frozenset[str]) -> dict[str, str]:
    return {s.provider: s.no_usage for s in present_sides(present) if s.no_usage != "no usage reported"}


def model_columns() -> dict[str, tuple[str, str]]:
    """provider -> (table, the column naming its batches' model): what the prices are looked up for."""
    return {s.provider: (s.table, s.model_column) for s in OTHER_SIDES}


__all__ = [
    "CARRY",
    "OTHER_SIDES",
    "OTHER_TABLES",
    "TIMELINE",
    "OtherSide",
    "in_scope",
    "model_columns",
    "no_price_reasons",
    "no_usage_reasons",
    "present_sides",
]
