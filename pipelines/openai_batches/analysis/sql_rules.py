"""SQL rules shared by the batch views (views.py) and the request ledger's (ledger_views.py): written once."""

from __future__ import annotations

from collections.abc import Callable

from ..settings import GONE_TABLE
from .settings import MAX_PLAUSIBLE_TOKENS
from .settings import SCHEMA as S

# Batches from before September 2025 carry no model (nor does an Anthropic batch whose results are not read
# yet); grouping them under a visible label keeps them in every per-model total instead of a NULL row
# readers overlook.
NO_MODEL = "(not reported)"


def usage_consistent(inp: str, cached: str, out: str, reasoning: str) -> str:
    """The one test of usage, over any four token columns (a batch's, or a request's in the ledger): NULL
    without usage, false for usage the API cannot have meant (cached input above input, reasoning above
    output, a negative count, a count beyond `MAX_PLAUSIBLE_TOKENS`)."""
    return f"""CASE WHEN {inp} IS NOT NULL THEN
        {inp} BETWEEN 0 AND {MAX_PLAUSIBLE_TOKENS}
        AND coalesce({cached}, 0) BETWEEN 0 AND {inp}
        AND coalesce({out}, 0) BETWEEN 0 AND {MAX_PLAUSIBLE_TOKENS}
        AND coalesce({reasoning}, 0) BETWEEN 0 AND coalesce({out}, 0)
    END"""


def sync_cost(inp: str, cached: str, out: str) -> str:
    """The one price rule, at the standard (synchronous) price: uncached input at the input price, cached
    input at the cached-input price, output (reasoning included) at the output price; USD. Needs the
    price columns of `batch_costs` (`input_usd_per_mtok`, ...) in scope; times `batch_factor` for a batch."""
    return f"""(
            ({inp} - coalesce({cached}, 0)) * input_usd_per_mtok
            + coalesce({cached}, 0) * cached_input_usd_per_mtok
            + coalesce({out}, 0) * coalesce(output_usd_per_mtok, 0)
        ) / 1e6"""


__all__ = ["NO_MODEL", "sync_cost", "usage_consistent"]


def providers_in_scope_view(
    name: str,
    columns: str,
    union: str,
    *,
    has_gone: bool,
    usage_consistent: str,
    counts_consistent: str,
    usable: Callable[[str], str],
) -> str:
    """`CREATE VIEW name`: the provider tables' `union` (as `b`) in scope of the report window, `columns` first,
    then what every `batches_in_scope` adds (model label, consistency flags, gone). A batch is gone when
    `batches_gone` holds its id for its project (ids are unique only within a provider)."""
    gone = (
        f"EXISTS (SELECT 1 FROM {S}.{GONE_TABLE} AS g WHERE g.id = b.id AND g.project = b.project)"
        if has_gone
        else "false"
    )
    return f"""
CREATE OR REPLACE VIEW {S}.{name} AS
SELECT
    {columns},
    coalesce(model, '{NO_MODEL}') AS model_label,
    {usage_consistent} AS usage_consistent,
    {counts_consistent} AS request_counts_consistent,
    {gone} AS gone
FROM (
    {union}
) AS b
WHERE {S}.report_since() = TIMESTAMPTZ '-infinity' OR {usable("created_at")} >= {S}.report_since()
"""
