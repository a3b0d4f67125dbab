"""The one column list of the organisation's tables (`projects`, `usage_daily`, `costs_daily`,
`admin_days_read`), and the conversion of Admin API objects into arrow tables that follow it.

Declared up front like the batch columns (tables/batches.py): every column exists from the first load with
a stable type. Values the API sends in another shape (a count that is not an integer, a time that is
not a number) are NULL, with one warning per field and run. A cost amount is the exception: money
that cannot be read is never a silent NULL; it keeps the value as sent (`amount_raw`), out of every
sum, and `caveats` names it.

One row per key and day: results of one bucket with the same key (the API splits by dimensions not
grouped by, e.g. service tier or API key) are added up, so no tokens or money are lost; a bucket read
again (the same day, in the run or a later one) replaces the one read before (sources/admin/source.py).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from .batches import TIMESTAMP, Column, _hints, exact_int

log = logging.getLogger(__name__)

# Makes a text from the server safe to store (the key masked wherever it was echoed).
Clean = Callable[[str], str]

PROJECTS_TABLE = "projects"
USAGE_TABLE = "usage_daily"
COSTS_TABLE = "costs_daily"
DAYS_READ_TABLE = "admin_days_read"
ORGANIZATION_TABLES = (PROJECTS_TABLE, USAGE_TABLE, COSTS_TABLE, DAYS_READ_TABLE)
# `admin_days_read.endpoint` of each bucketed endpoint.
USAGE_ENDPOINT = "usage/completions"
COSTS_ENDPOINT = "costs"


def _column(name: str, arrow_type: pa.DataType, dlt_type: str, description: str) -> Column:
    return Column(name, (name,), arrow_type, dlt_type, description)


# dlt's `hard_delete` flag of `usage_daily` and `costs_daily`: a bucket read with no rows becomes one row
# of its day carrying it, which makes the merge delete the day's rows (the merge key) and is itself never
# inserted. Without it a day read again and empty would keep the rows of the copy before. dlt creates
# the column in the table (always NULL there), so it is declared and documented like any other.
EMPTY_DAY_MARKER = "_empty_day"
EMPTY_DAY_COLUMN = _column(
    EMPTY_DAY_MARKER,
    pa.bool_(),
    "bool",
    "Internal deletion marker of a day read again with no results (it removes the day's rows); always NULL in "
    "stored rows.",
)


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
    EMPTY_DAY_COLUMN,
)

COST_COLUMNS: tuple[Column, ...] = (
    _column("day", pa.date32(), "date", "UTC day of the Costs API's daily bucket."),
    _column("project_id", pa.string(), "text", "Project billed."),
    _column("line_item", pa.string(), "text", "Line item, e.g. `gpt-4o-mini-2024-07-18, input_tokens`."),
    _column(
        "amount_usd",
        pa.float64(),
        "double",
        "Amount billed for the line item that day, in USD; NULL when the currency is another or the amount is not a "
        "number.",
    ),
    _column("currency", pa.string(), "text", "Currency of the amount as the API names it (`usd`)."),
    _column("amount", pa.float64(), "double", "Amount in `currency` (a numeric string read as the number it is)."),
    _column(
        "amount_raw",
        pa.string(),
        "text",
        "The amount as sent (JSON) when it is not a finite number; NULL otherwise. Such a line item is in no sum "
        "(`caveats`).",
    ),
    EMPTY_DAY_COLUMN,
)

DAYS_READ_COLUMNS: tuple[Column, ...] = (
    _column("endpoint", pa.string(), "text", "`usage/completions` or `costs`: the Admin API endpoint read."),
    _column("day", pa.date32(), "date", "UTC day of a daily bucket the endpoint answered (read, even if empty)."),
    _column("results", pa.int64(), "bigint", "Results the bucket held: 0 is a day read with no usage or cost."),
    _column("read_at", TIMESTAMP, "timestamp", "When the bucket was last read (this machine's clock)."),
)

# The key a usage row is one of: one row per (day, project_id, model, batch); a day read again
# replaces that day's rows (the merge key of the load is the day, see sources/admin/source.py).
USAGE_KEY = ("day", "project_id", "model", "batch")
COST_KEY = ("day", "project_id", "line_item", "currency")  # and one row per amount that is not a number
DAYS_READ_KEY = ("endpoint", "day")


def projects_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(PROJECT_COLUMNS, "id")
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


def days_read_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(DAYS_READ_COLUMNS, "day")
    for name in DAYS_READ_KEY:
        hints[name]["primary_key"] = True
        hints[name]["nullable"] = False
    return hints


def _schema(columns: Sequence[Column], key: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.name != key) for c in columns])


class _Odd:
    """Warns once per field and run about values that do not fit their column (they are stored as NULL);
    `clean` makes every text stored safe (a key the server echoed masked)."""

    def __init__(self, what: str, clean: Clean | None = None) -> None:
        self.what = what
        self.warned: set[str] = set()
        self.clean = clean

    def integer(self, row: Mapping[str, Any], name: str) -> int | None:
        value = row.get(name)
        number = exact_int(value)
        if number is None and value is not None:
            self._warn(name, value)
        return number

    def amount(self, value: Any, name: str) -> tuple[float | None, str | None]:
        """(the number, None), or (None, the value as sent) when it is not a finite number: kept, never
        NULL with only a log line (the views leave it out of sums and `caveats` names it)."""
        number = finite_number(value)
        if number is not None:
            return number, None
        self._warn(name, value, kept=True)
        return None, json.dumps(value, default=str)[:200]

    def text(self, row: Mapping[str, Any], name: str) -> str | None:
        value = row.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self._warn(name, value)
            value = str(value)
        return self.clean(value) if self.clean is not None else value

    def flag(self, row: Mapping[str, Any], name: str) -> bool | None:
        value = row.get(name)
        if value is None or isinstance(value, bool):
            return value
        self._warn(name, value)
        return None

    def _warn(self, name: str, value: Any, *, kept: bool = False) -> None:
        if name not in self.warned:
            self.warned.add(name)
            shown = repr(value)[:200]
            shown = self.clean(shown) if self.clean is not None else shown
            stored = "kept as sent, out of every sum" if kept else "stored as NULL"
            log.warning("%s: %s=%s does not fit the column; %s", self.what, name, shown[:80], stored)


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float: a JSON number or a numeric string (`"2.25"`); else None (text, a
    flag, null, NaN, infinity)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


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


def projects_to_arrow(projects: Iterable[Mapping[str, Any]], clean: Clean | None = None) -> pa.Table:
    odd = _Odd("project", clean)
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


def _add(a: int | None, b: int | None) -> int | None:
    """Two parts of one figure: unknown (NULL) when either part is, or when the sum is no BIGINT (each
    part fits, as exact_int made sure; their sum may not, and would fail the whole load)."""
    return None if a is None or b is None else exact_int(a + b)


_USAGE_COUNTS = ("input_tokens", "input_cached_tokens", "output_tokens", "num_model_requests")


def usage_to_arrow(buckets: Iterable[Mapping[str, Any]], clean: Clean | None = None) -> pa.Table:
    """One row per day and `USAGE_KEY` of the daily completions-usage buckets: results of one bucket
    with the same key are added up (a count that is not one makes the sum NULL, with a warning)."""
    odd = _Odd("usage result", clean)
    buckets = list(buckets)
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for day, r in _results(buckets):
        key = (day, odd.text(r, "project_id"), odd.text(r, "model"), odd.flag(r, "batch"))
        counts = [odd.integer(r, name) for name in _USAGE_COUNTS]
        before = rows.get(key)
        if before is not None:
            added = [_add(a, b) for a, b in zip(before, counts, strict=True)]
            for name, a, b, total in zip(_USAGE_COUNTS, before, counts, added, strict=True):
                if total is None and a is not None and b is not None:
                    odd._warn(name, f"{a} + {b}")
            counts = added
        rows[key] = counts
    cols: dict[str, list[Any]] = {c.name: [] for c in USAGE_COLUMNS}
    for key, counts in rows.items():
        for name, value in zip((*USAGE_KEY, *_USAGE_COUNTS, EMPTY_DAY_MARKER), (*key, *counts, None), strict=True):
            cols[name].append(value)
    _mark_empty_days(cols, buckets)
    return pa.table(cols, schema=_schema(USAGE_COLUMNS, "day"))


def costs_to_arrow(buckets: Iterable[Mapping[str, Any]], clean: Clean | None = None) -> pa.Table:
    """One row per day and `COST_KEY` of the daily cost buckets, amounts of one bucket with the same key
    added up; an amount that is not a finite number is a row of its own, kept as sent (`amount_raw`)."""
    odd = _Odd("cost result", clean)
    buckets = list(buckets)
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for n, (day, r) in enumerate(_results(buckets)):
        amount = r.get("amount")
        amount = amount if isinstance(amount, Mapping) else {"value": amount}
        currency = odd.text(amount, "currency")
        value, raw = odd.amount(amount.get("value"), "amount.value")
        key = (day, odd.text(r, "project_id"), odd.text(r, "line_item"), currency)
        if value is not None and key in rows and finite_number(rows[key][0] + value) is None:
            # Each part finite, the sum not (1e308 twice): this part is kept as sent, out of every sum.
            odd._warn("amount.value", f"{rows[key][0]!r} + {value!r}", kept=True)
            value, raw = None, json.dumps(amount.get("value"), default=str)[:200]
        if raw is not None:
            rows[(*key, n)] = [None, raw]  # never added to anything: a row per such amount
        elif key in rows:
            rows[key][0] += value
        else:
            rows[key] = [value, None]
    cols: dict[str, list[Any]] = {c.name: [] for c in COST_COLUMNS}
    for key, (value, raw) in rows.items():
        day, project_id, line_item, currency = key[:4]
        usd = (currency or "usd").lower() == "usd"
        for name, cell in (
            ("day", day),
            ("project_id", project_id),
            ("line_item", line_item),
            ("amount_usd", value if usd else None),
            ("currency", currency),
            ("amount", value),
            ("amount_raw", raw),
            (EMPTY_DAY_MARKER, None),
        ):
            cols[name].append(cell)
    _mark_empty_days(cols, buckets)
    return pa.table(cols, schema=_schema(COST_COLUMNS, "day"))


def _bucket_day(bucket: Mapping[str, Any]) -> date:
    return _day(bucket["start_time"])


def _mark_empty_days(
    cols: dict[str, list[Any]],
    buckets: Sequence[Mapping[str, Any]],
    day_of: Callable[[Mapping[str, Any]], date] = _bucket_day,
) -> None:
    """Adds a marker row (`EMPTY_DAY_MARKER`) for each day of ``buckets`` that gave no row: the merge
    then deletes the rows a copy read before left for that day, as it replaces those of a day with rows."""
    with_rows = set(cols["day"])
    for day in dict.fromkeys(day_of(b) for b in buckets):
        if day not in with_rows:
            for name, column in cols.items():
                column.append(day if name == "day" else True if name == EMPTY_DAY_MARKER else None)


def days_read_to_arrow(endpoint: str, days: Mapping[date, int], read_at: datetime) -> pa.Table:
    """One row per daily bucket read: its day and how many results it held (an empty day read is a day
    with no usage, not a day nobody looked at)."""
    at = int(read_at.timestamp() * 1_000_000)
    return pa.table(
        {
            "endpoint": [endpoint] * len(days),
            "day": list(days),
            "results": list(days.values()),
            "read_at": pa.array([at] * len(days), pa.int64()).cast(TIMESTAMP),
        },
        schema=pa.schema([pa.field(c.name, c.arrow_type, nullable=c.name == "read_at") for c in DAYS_READ_COLUMNS]),
    )


__all__ = [
    "EMPTY_DAY_MARKER",
    "COSTS_ENDPOINT",
    "COSTS_TABLE",
    "COST_COLUMNS",
    "DAYS_READ_COLUMNS",
    "DAYS_READ_TABLE",
    "ORGANIZATION_TABLES",
    "PROJECTS_TABLE",
    "PROJECT_COLUMNS",
    "USAGE_COLUMNS",
    "USAGE_ENDPOINT",
    "USAGE_KEY",
    "USAGE_TABLE",
    "costs_hints",
    "costs_to_arrow",
    "days_read_hints",
    "days_read_to_arrow",
    "finite_number",
    "projects_hints",
    "projects_to_arrow",
    "usage_hints",
    "usage_to_arrow",
]
