"""The one column list of the organisation's tables (`projects`, `usage_daily`, `costs_daily`), and
the conversion of Admin API objects into arrow tables that follow it.

Declared up front like the batch columns (tables/batches.py): every column exists from the first load with
a stable type. Values the API sends in another shape (a count that is not an integer, a time that is
not a number) are NULL, with one warning per field and run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from .batches import TIMESTAMP, Column, _hints, exact_int

log = logging.getLogger(__name__)

PROJECTS_TABLE = "projects"
USAGE_TABLE = "usage_daily"
COSTS_TABLE = "costs_daily"
ORGANIZATION_TABLES = (PROJECTS_TABLE, USAGE_TABLE, COSTS_TABLE)


def _column(name: str, arrow_type: pa.DataType, dlt_type: str, description: str) -> Column:
    return Column(name, (name,), arrow_type, dlt_type, description)


PROJECT_COLUMNS: tuple[Column, ...] = (
    _column("id", pa.string(), "text", "Project id (`proj_...`), as in `batches.project_id`; the merge key."),
    _column("name", pa.string(), "text", "Project name in the organization."),
    _column("status", pa.string(), "text", "`active` or `archived`."),
    _column("created_at", TIMESTAMP, "timestamp", "When the project was created."),
    _column("archived_at", TIMESTAMP, "timestamp", "When the project was archived; NULL while active."),
)

USAGE_COLUMNS: tuple[Column, ...] = (
    _column("day", pa.date32(), "date", "UTC day of the Usage API's daily bucket."),
    _column("project_id", pa.string(), "text", "Project the tokens were used in."),
    _column("model", pa.string(), "text", "Model as the Usage API names it."),
    _column("batch", pa.bool_(), "bool", "Batch API traffic (true) or synchronous requests (false)."),
    _column("input_tokens", pa.int64(), "bigint", "Input tokens, cached included, processed that day."),
    _column("input_cached_tokens", pa.int64(), "bigint", "Input tokens served from the prompt cache."),
    _column("output_tokens", pa.int64(), "bigint", "Output tokens processed that day."),
    _column("num_model_requests", pa.int64(), "bigint", "Requests processed that day."),
)

COST_COLUMNS: tuple[Column, ...] = (
    _column("day", pa.date32(), "date", "UTC day of the Costs API's daily bucket."),
    _column("project_id", pa.string(), "text", "Project billed."),
    _column("line_item", pa.string(), "text", "Line item, e.g. `gpt-4o-mini-2024-07-18, input_tokens`."),
    _column("amount_usd", pa.float64(), "double", "Amount billed for the line item that day."),
    _column("currency", pa.string(), "text", "Currency of the amount as the API names it (`usd`)."),
)

# The key a usage row is one of: one row per (day, project_id, model, batch); a day read again
# replaces that day's rows (the merge key of the load is the day, see sources/admin/source.py).
USAGE_KEY = ("day", "project_id", "model", "batch")
COST_KEY = ("day", "project_id", "line_item")


def projects_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(PROJECT_COLUMNS, "id")
    hints["id"]["primary_key"] = True
    return hints


def usage_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(USAGE_COLUMNS, "day")
    hints["day"]["merge_key"] = True
    return hints


def costs_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(COST_COLUMNS, "day")
    hints["day"]["merge_key"] = True
    return hints


def _schema(columns: Sequence[Column], key: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.name != key) for c in columns])


class _Odd:
    """Warns once per field and run about values that do not fit their column (they are stored as NULL)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.warned: set[str] = set()

    def integer(self, row: Mapping[str, Any], name: str) -> int | None:
        value = row.get(name)
        number = exact_int(value)
        if number is None and value is not None:
            self._warn(name, value)
        return number

    def number(self, value: Any, name: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        self._warn(name, value)
        return None

    def text(self, row: Mapping[str, Any], name: str) -> str | None:
        value = row.get(name)
        if value is None or isinstance(value, str):
            return value
        self._warn(name, value)
        return str(value)

    def flag(self, row: Mapping[str, Any], name: str) -> bool | None:
        value = row.get(name)
        if value is None or isinstance(value, bool):
            return value
        self._warn(name, value)
        return None

    def _warn(self, name: str, value: Any) -> None:
        if name not in self.warned:
            self.warned.add(name)
            shown = repr(value)
            log.warning("%s: %s=%s does not fit the column; stored as NULL", self.what, name, shown[:80])


def _day(start_time: int) -> date:
    return datetime.fromtimestamp(start_time, UTC).date()


def _time(value: Any, odd: _Odd, name: str) -> int | None:
    """Epoch seconds as microseconds for a TIMESTAMP column; NULL (with a warning) when not a time."""
    seconds = exact_int(value)
    if seconds is None or not -(2**62) // 1_000_000 < seconds < 2**62 // 1_000_000:
        if value is not None:
            odd._warn(name, value)
        return None
    return seconds * 1_000_000


def projects_to_arrow(projects: Iterable[Mapping[str, Any]]) -> pa.Table:
    odd = _Odd("project")
    rows = [p for p in projects if isinstance(p.get("id"), str) and p["id"]]
    return pa.table(
        {
            "id": [p["id"] for p in rows],
            "name": [odd.text(p, "name") for p in rows],
            "status": [odd.text(p, "status") for p in rows],
            "created_at": pa.array([_time(p.get("created_at"), odd, "created_at") for p in rows], pa.int64()).cast(
                TIMESTAMP
            ),
            "archived_at": pa.array([_time(p.get("archived_at"), odd, "archived_at") for p in rows], pa.int64()).cast(
                TIMESTAMP
            ),
        },
        schema=_schema(PROJECT_COLUMNS, "id"),
    )


def _results(buckets: Iterable[Mapping[str, Any]]) -> Iterable[tuple[date, Mapping[str, Any]]]:
    for bucket in buckets:
        day = _day(bucket["start_time"])
        for result in bucket["results"]:
            if isinstance(result, Mapping):
                yield day, result


def usage_to_arrow(buckets: Iterable[Mapping[str, Any]]) -> pa.Table:
    """One row per result of the daily completions-usage buckets."""
    odd = _Odd("usage result")
    cols: dict[str, list[Any]] = {c.name: [] for c in USAGE_COLUMNS}
    for day, r in _results(buckets):
        cols["day"].append(day)
        cols["project_id"].append(odd.text(r, "project_id"))
        cols["model"].append(odd.text(r, "model"))
        cols["batch"].append(odd.flag(r, "batch"))
        for name in ("input_tokens", "input_cached_tokens", "output_tokens", "num_model_requests"):
            cols[name].append(odd.integer(r, name))
    return pa.table(cols, schema=_schema(USAGE_COLUMNS, "day"))


def costs_to_arrow(buckets: Iterable[Mapping[str, Any]]) -> pa.Table:
    """One row per result of the daily cost buckets."""
    odd = _Odd("cost result")
    cols: dict[str, list[Any]] = {c.name: [] for c in COST_COLUMNS}
    for day, r in _results(buckets):
        amount = r.get("amount")
        amount = amount if isinstance(amount, Mapping) else {"value": amount}
        cols["day"].append(day)
        cols["project_id"].append(odd.text(r, "project_id"))
        cols["line_item"].append(odd.text(r, "line_item"))
        cols["amount_usd"].append(odd.number(amount.get("value"), "amount.value"))
        cols["currency"].append(odd.text(amount, "currency"))
    return pa.table(cols, schema=_schema(COST_COLUMNS, "day"))


__all__ = [
    "COSTS_TABLE",
    "COST_COLUMNS",
    "ORGANIZATION_TABLES",
    "PROJECTS_TABLE",
    "PROJECT_COLUMNS",
    "USAGE_COLUMNS",
    "USAGE_KEY",
    "USAGE_TABLE",
    "costs_hints",
    "costs_to_arrow",
    "projects_hints",
    "projects_to_arrow",
    "usage_hints",
    "usage_to_arrow",
]
