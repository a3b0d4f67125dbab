"""The one column list of Anthropic's books (`anthropic_workspaces`, `anthropic_usage_daily`,
`anthropic_costs_daily`, `anthropic_project_workspaces`), and the conversion of Anthropic Admin API objects
into arrow tables that follow it. The days read go to the shared `admin_days_read` (tables/admin.py), under
their own endpoint names.

Like tables/admin.py: declared up front, values of another shape stored as NULL with one warning per field
and run. Report rows are stored one per result as sent (the API already sums what it does not group by);
a bucket read again replaces its day (sources/anthropic_admin/source.py). A cost `amount` is a decimal
string in the currency's lowest unit (cents): `amount_raw` keeps it as sent, `amount` is it converted
exactly (decimal arithmetic) to the currency's unit, `amount_usd` the same when the currency is USD.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from .admin import EMPTY_DAY_COLUMN, EMPTY_DAY_MARKER, Clean, _add, _column, _mark_empty_days, _Odd, _schema
from .batches import TIMESTAMP, Column, _hints

WORKSPACES_TABLE = "anthropic_workspaces"
USAGE_TABLE = "anthropic_usage_daily"
COSTS_TABLE = "anthropic_costs_daily"
PROJECT_WORKSPACES_TABLE = "anthropic_project_workspaces"
BOOKS_TABLES = (WORKSPACES_TABLE, USAGE_TABLE, COSTS_TABLE, PROJECT_WORKSPACES_TABLE)
# `admin_days_read.endpoint` of each report (OpenAI's are `usage/completions` and `costs`).
USAGE_ENDPOINT = "anthropic/usage_report/messages"
COSTS_ENDPOINT = "anthropic/cost_report"
# `anthropic_project_workspaces.key_match`.
MATCHED = "matched"
NO_MATCH = "no key matches"
AMBIGUOUS = "several workspaces match"


WORKSPACE_COLUMNS: tuple[Column, ...] = (
    _column("id", pa.string(), "text", "Workspace id (`wrkspc_...`); the merge key."),
    _column("name", pa.string(), "text", "Workspace name in the organization."),
    _column("display_color", pa.string(), "text", "The Console's color of the workspace."),
    _column("created_at", TIMESTAMP, "timestamp", "When the workspace was created."),
    _column("archived_at", TIMESTAMP, "timestamp", "When the workspace was archived; NULL while active."),
)

USAGE_COLUMNS: tuple[Column, ...] = (
    _column("day", pa.date32(), "date", "UTC day of the usage report's daily bucket."),
    _column("workspace_id", pa.string(), "text", "Workspace the tokens were used in (NULL: the default workspace)."),
    _column("model", pa.string(), "text", "Model as the usage report names it."),
    _column("service_tier", pa.string(), "text", "`batch` (Message Batches), `standard`, `priority`, ..."),
    _column("uncached_input_tokens", pa.int64(), "bigint", "Input tokens neither read from nor written to the cache."),
    _column("cache_read_input_tokens", pa.int64(), "bigint", "Input tokens read from the prompt cache."),
    _column("cache_creation_5m_input_tokens", pa.int64(), "bigint", "Input tokens written to the 5-minute cache."),
    _column("cache_creation_1h_input_tokens", pa.int64(), "bigint", "Input tokens written to the 1-hour cache."),
    _column(
        "input_tokens",
        pa.int64(),
        "bigint",
        "All input tokens (the four above added up), as `batch_requests.input_tokens` counts them.",
    ),
    _column("output_tokens", pa.int64(), "bigint", "Output tokens."),
    _column("web_search_requests", pa.int64(), "bigint", "Server tool use: web searches."),
    EMPTY_DAY_COLUMN,
)

COST_COLUMNS: tuple[Column, ...] = (
    _column("day", pa.date32(), "date", "UTC day of the cost report's daily bucket."),
    _column("workspace_id", pa.string(), "text", "Workspace billed (NULL: the default workspace or organisation)."),
    _column("description", pa.string(), "text", "The cost item's description, as sent."),
    _column("cost_type", pa.string(), "text", "`tokens`, `web_search`, `code_execution`, ..."),
    _column("model", pa.string(), "text", "Model billed (token costs)."),
    _column("service_tier", pa.string(), "text", "`batch`, `standard`, ... (token costs)."),
    _column(
        "token_type", pa.string(), "text", "`uncached_input_tokens`, `output_tokens`, `cache_read_input_tokens`, ..."
    ),
    _column("context_window", pa.string(), "text", "`0-200k` or `200k-1M`."),
    _column("inference_geo", pa.string(), "text", "Inference geo, as sent."),
    _column("currency", pa.string(), "text", "Currency of the amount (`USD`)."),
    _column(
        "amount",
        pa.float64(),
        "double",
        'Amount in `currency`, converted exactly from the lowest unit sent (cents: "123.45" is 1.2345); NULL when '
        "the amount is not a number.",
    ),
    _column("amount_usd", pa.float64(), "double", "`amount` when the currency is USD; NULL otherwise."),
    _column("amount_raw", pa.string(), "text", "The amount as sent: a decimal string in cents."),
    EMPTY_DAY_COLUMN,
)

PROJECT_WORKSPACE_COLUMNS: tuple[Column, ...] = (
    _column("project", pa.string(), "text", "Configured Anthropic project (`project` in `anthropic_batches`)."),
    _column("workspace_id", pa.string(), "text", "Workspace its API key belongs to; NULL when none matches."),
    _column("workspace_name", pa.string(), "text", "That workspace's name."),
    _column(
        "key_match",
        pa.string(),
        "text",
        f"`{MATCHED}`: the key's hint in the Admin API's key list names one workspace; `{NO_MATCH}`; `{AMBIGUOUS}`.",
    ),
)


def workspaces_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(WORKSPACE_COLUMNS, "id")
    hints["id"]["primary_key"] = True
    return hints


def usage_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(USAGE_COLUMNS, "day")
    hints["day"]["merge_key"] = True
    hints[EMPTY_DAY_MARKER]["hard_delete"] = True
    return hints


def costs_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(COST_COLUMNS, "day")
    hints["day"]["merge_key"] = True
    hints[EMPTY_DAY_MARKER]["hard_delete"] = True
    return hints


def project_workspaces_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(PROJECT_WORKSPACE_COLUMNS, "project")
    hints["project"]["primary_key"] = True
    return hints


# A report bucket's UTC day (`starting_at`): client/transport.py's `report_bucket_day`, which checked every
# bucket of a page before the page was taken; the source passes it to the conversions.
DayOf = Callable[[Mapping[str, Any]], date]


def _instant(value: Any, odd: _Odd, name: str) -> int | None:
    """An RFC 3339 time as microseconds for a TIMESTAMP column; NULL (with a warning) when not one."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError
        return int(parsed.astimezone(UTC).timestamp() * 1_000_000)
    except (ValueError, OverflowError):
        odd._warn(name, value)
        return None


def workspaces_to_arrow(workspaces: Iterable[Mapping[str, Any]], clean: Clean | None = None) -> pa.Table:
    odd = _Odd("workspace", clean)
    rows = [w for w in workspaces if isinstance(w.get("id"), str) and w["id"]]
    times = {
        name: pa.array([_instant(w.get(name), odd, name) for w in rows], pa.int64()).cast(TIMESTAMP)
        for name in ("created_at", "archived_at")
    }
    return pa.table(
        {
            "id": [w["id"] for w in rows],
            "name": [odd.text(w, "name") for w in rows],
            "display_color": [odd.text(w, "display_color") for w in rows],
            **times,
        },
        schema=_schema(WORKSPACE_COLUMNS, "id"),
    )


def _results(buckets: Iterable[Mapping[str, Any]], day_of: DayOf) -> Iterable[tuple[date, Mapping[str, Any]]]:
    for bucket in buckets:
        day = day_of(bucket)
        for result in bucket["results"]:
            if isinstance(result, Mapping):
                yield day, result


def usage_to_arrow(buckets: Iterable[Mapping[str, Any]], clean: Clean | None = None, *, day_of: DayOf) -> pa.Table:
    """One row per result of the daily usage buckets, as sent."""
    odd = _Odd("anthropic usage result", clean)
    buckets = list(buckets)
    cols: dict[str, list[Any]] = {c.name: [] for c in USAGE_COLUMNS}
    for day, r in _results(buckets, day_of):
        split = r.get("cache_creation")
        split = split if isinstance(split, Mapping) else {}
        tool = r.get("server_tool_use")
        tool = tool if isinstance(tool, Mapping) else {}
        counts = [
            odd.integer(r, "uncached_input_tokens"),
            odd.integer(r, "cache_read_input_tokens"),
            odd.integer(split, "ephemeral_5m_input_tokens"),
            odd.integer(split, "ephemeral_1h_input_tokens"),
        ]
        total: int | None = 0
        for n in counts:
            total = _add(total, n)
        values = (
            day,
            odd.text(r, "workspace_id"),
            odd.text(r, "model"),
            odd.text(r, "service_tier"),
            *counts,
            total,
            odd.integer(r, "output_tokens"),
            odd.integer(tool, "web_search_requests"),
            None,
        )
        for column, value in zip(cols.values(), values, strict=True):
            column.append(value)
    _mark_empty_days(cols, buckets, day_of)
    return pa.table(cols, schema=_schema(USAGE_COLUMNS, "day"))


def cents_to_units(value: Any) -> float | None:
    """A decimal amount in the lowest unit (cents) as the currency's unit, exactly (decimal arithmetic,
    then the nearest double): "123.45" -> 1.2345. None when it is not a finite decimal number in ASCII digits
    (Decimal also reads `1_000` and other scripts' digits) or its value is beyond a double (`1e400` became
    infinite; an exponent past Decimal's own range raised Overflow and failed the run)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    if not _DECIMAL.fullmatch(text):
        return None
    try:
        units = float(Decimal(text) / 100)
    except ArithmeticError:  # InvalidOperation, Overflow
        return None
    return units if math.isfinite(units) else None


# A decimal number as JSON writes one (and as Python's str writes a float): ASCII digits, an optional
# fraction and exponent.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def costs_to_arrow(buckets: Iterable[Mapping[str, Any]], clean: Clean | None = None, *, day_of: DayOf) -> pa.Table:
    """One row per result of the daily cost buckets, as sent, with the amount converted from cents."""
    odd = _Odd("anthropic cost result", clean)
    buckets = list(buckets)
    cols: dict[str, list[Any]] = {c.name: [] for c in COST_COLUMNS}
    texts = ("workspace_id", "description", "cost_type", "model", "service_tier", "token_type")
    for day, r in _results(buckets, day_of):
        raw = r.get("amount")
        amount = cents_to_units(raw)
        if amount is None:
            odd._warn("amount", raw, kept=True)
        currency = odd.text(r, "currency")
        usd = (currency or "USD").upper() == "USD"
        values = {
            "day": day,
            **{name: odd.text(r, name) for name in texts},
            "context_window": odd.text(r, "context_window"),
            "inference_geo": odd.text(r, "inference_geo"),
            "currency": currency,
            "amount": amount,
            "amount_usd": amount if usd else None,
            "amount_raw": _raw_text(raw, clean),
            EMPTY_DAY_MARKER: None,
        }
        for name, column in cols.items():
            column.append(values[name])
    _mark_empty_days(cols, buckets, day_of)
    return pa.table(cols, schema=_schema(COST_COLUMNS, "day"))


def _raw_text(raw: Any, clean: Clean | None) -> str:
    """An amount as sent, as text (JSON for what is not a string), made safe to store like every text."""
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    text = text[:200]
    return clean(text) if clean is not None else text


def project_workspaces_to_arrow(rows: Iterable[tuple[str, str | None, str | None, str]]) -> pa.Table:
    """(project, workspace id, workspace name, key_match) rows."""
    rows = list(rows)
    return pa.table(
        {c.name: [r[i] for r in rows] for i, c in enumerate(PROJECT_WORKSPACE_COLUMNS)},
        schema=_schema(PROJECT_WORKSPACE_COLUMNS, "project"),
    )


__all__ = [
    "BOOKS_TABLES",
    "COSTS_ENDPOINT",
    "COSTS_TABLE",
    "COST_COLUMNS",
    "PROJECT_WORKSPACES_TABLE",
    "PROJECT_WORKSPACE_COLUMNS",
    "USAGE_COLUMNS",
    "USAGE_ENDPOINT",
    "USAGE_TABLE",
    "WORKSPACES_TABLE",
    "WORKSPACE_COLUMNS",
    "cents_to_units",
    "costs_hints",
    "costs_to_arrow",
    "project_workspaces_hints",
    "project_workspaces_to_arrow",
    "usage_hints",
    "usage_to_arrow",
    "workspaces_hints",
    "workspaces_to_arrow",
]
