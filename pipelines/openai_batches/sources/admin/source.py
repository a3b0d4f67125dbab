"""dlt source `openai_organization`: the organisation's projects, daily completions usage and daily
costs from OpenAI's Admin API (an admin key), for reconciling the loaded batches with OpenAI's books.

Resources (tables in the same dataset as the batches):

* `projects`: every project, archived ones included, re-listed on every run (one request per 100).
* `usage_daily`: `GET /organization/usage/completions`, daily buckets grouped by project, model and
  batch flag. Only this usage endpoint splits Batch API traffic from synchronous requests.
* `costs_daily`: `GET /organization/costs`, daily buckets grouped by project and line item.
* `admin_days_read`: every daily bucket the two read (endpoint, day, results): a day read and empty
  is a day with no usage, which the views must tell from a day nobody read.

A bucket is one UTC day: one the API serves twice (on two pages of a run) counts once, the last copy
read; a day read again on a later run replaces that day's rows (the merge key is the day), also when
it comes back empty: such a day is sent as one row flagged `_empty_day` (dlt's `hard_delete`), which
deletes the day's rows and is not stored.

Incremental: OpenAI fills a day's buckets late, so every run reads again the last
`REREAD_DAYS` days it read (the day holding the API's now and the two before), and never anything
older: a run with nothing new costs three requests (projects, usage, costs). The first run starts at
`first_day` (the runner passes the first day with batches in the database), never before
`EARLIEST_DAY`. Usable in any pipeline:

    pipeline.run(openai_organization(admin_key="sk-admin-...", first_day=date(2025, 1, 1)))
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from ... import settings
from ...client.admin import COSTS_PAGE_DAYS, COSTS_PATH, USAGE_PAGE_DAYS, USAGE_PATH, AdminClient
from ...client.redact import Redactor
from ...client.retry import RetryPolicy
from ...tables.admin import (
    COSTS_ENDPOINT,
    COSTS_TABLE,
    DAYS_READ_TABLE,
    EMPTY_DAY_MARKER,
    PROJECTS_TABLE,
    USAGE_ENDPOINT,
    USAGE_TABLE,
    costs_hints,
    costs_to_arrow,
    days_read_hints,
    days_read_to_arrow,
    projects_hints,
    projects_to_arrow,
    usage_hints,
    usage_to_arrow,
)
from ..dlt_logging import expected_arrow_overrides

log = logging.getLogger(__name__)

# The Batch API opened in April 2024: no batch usage can be older.
EARLIEST_DAY = date(2024, 4, 1)
# Days read again on every run, the newest included: buckets fill late.
REREAD_DAYS = 3
# Buckets are converted and handed to dlt in chunks of this many days (a backfill of years stays small).
_CHUNK_DAYS = 93

_MERGE: Any = {"disposition": "merge", "strategy": "delete-insert"}
# A day read again replaces that day's rows, so the merge key is the day; rows are one per USAGE_KEY,
# and a day read with no rows is one `EMPTY_DAY_MARKER` row (hard delete: the day's rows go, it is not stored).
_DAY_KEYED: Any = {"write_disposition": _MERGE, "primary_key": [], "merge_key": "day"}
_STATE_KEY = "next_day"
# The days read go to their own table, from both resources: a variant of each with its own hints.
_DAYS_READ_HINTS: Any = dlt.mark.make_hints(
    table_name=DAYS_READ_TABLE,
    write_disposition=_MERGE,
    primary_key=["endpoint", "day"],
    columns=days_read_hints(),  # type: ignore[arg-type]
)


@dataclass
class AdminCounts:
    """What a run of the source did: API calls, rows, and the days it read."""

    api_calls: int = 0  # HTTP calls made (retries included)
    projects: int = 0
    usage_rows: int = 0
    cost_rows: int = 0
    usage_from: date | None = None
    first_run: bool = False


@dlt.source(name="openai_organization", max_table_nesting=0)
def openai_organization(  # noqa: C901, PLR0915 -- a dlt source: its three resources are closures over one run's client settings and days
    admin_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    organization: str | None = None,
    first_day: date | None = None,
    full_refresh: bool = False,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: AdminCounts | None = None,
    other_keys: Sequence[str] = (),
) -> tuple[DltResource, ...]:
    """The organisation's projects, daily completions usage and daily costs.

    Args:
        admin_key: Organization admin key (`sk-admin-...`); sent as `Authorization: Bearer`, never stored.
        base_url: API root up to `/v1`.
        organization: Sent as `OpenAI-Organization` when set.
        first_day: First UTC day the first run reads (default and lower bound: 2024-04-01).
        full_refresh: Read everything from `first_day` again, as a first run would.
        timeout: Seconds one request may take in all before it is retried.
        retry: Retry policy shared with the rest of the run (its budget included).
        stats: Filled with requests made, rows loaded and the days read.
        other_keys: The other configured keys (the projects'): masked like `admin_key` wherever a server
            sends one back; never sent, never stored.
    """
    stats = stats if stats is not None else AdminCounts()
    client_args: dict[str, Any] = {
        "api_key": admin_key,
        "base_url": base_url,
        "organization": organization,
        "timeout": timeout,
        "retry": retry,
        "other_secrets": tuple(other_keys),
    }
    start = max(first_day or EARLIEST_DAY, EARLIEST_DAY)
    redactor = Redactor(admin_key, *other_keys)

    def clean(text: str) -> str:
        """Names, models and line items as sent, unless the server echoed the key in one: then cleaned
        like every server text, so no part of the key is ever stored."""
        return redactor.clean(text, settings.IDENTIFIER_MAX_CHARS) if redactor.contains_secret(text) else text

    def projects() -> Iterator[Any]:
        with AdminClient(**client_args) as client:
            try:
                table = projects_to_arrow(list(client.projects()), clean)
            finally:
                stats.api_calls += client.api_calls
        stats.projects = table.num_rows
        yield table

    def usage_daily() -> Iterator[Any]:
        params = {"bucket_width": "1d", "group_by[]": ["project_id", "model", "batch"], "limit": USAGE_PAGE_DAYS}
        yield from _buckets(USAGE_PATH, USAGE_ENDPOINT, params, usage_to_arrow, "usage_rows")

    def costs_daily() -> Iterator[Any]:
        params = {"bucket_width": "1d", "group_by[]": ["project_id", "line_item"], "limit": COSTS_PAGE_DAYS}
        yield from _buckets(COSTS_PATH, COSTS_ENDPOINT, params, costs_to_arrow, "cost_rows")

    def _buckets(path: str, endpoint: str, params: dict[str, Any], convert: Any, counter: str) -> Iterator[Any]:
        with expected_arrow_overrides():
            yield from _read_buckets(path, endpoint, params, convert, counter)

    def _read_buckets(path: str, endpoint: str, params: dict[str, Any], convert: Any, counter: str) -> Iterator[Any]:
        state = dlt.current.resource_state()
        remembered = None if full_refresh else state.get(_STATE_KEY)
        stats.first_run = stats.first_run or remembered is None
        day = date.fromisoformat(remembered) if remembered else start
        if path == USAGE_PATH:
            stats.usage_from = day
        # The run's buckets by UTC day (the merge key): a day served again replaces the copy read before,
        # also one already converted into an earlier chunk (a dlt merge does not dedupe within a load).
        pending: dict[date, dict[str, Any]] = {}
        chunks: list[tuple[dict[date, int], Any]] = []  # (results per day, its rows)
        last: date | None = None
        outside = 0  # buckets dated before `day`, ignored
        with AdminClient(**client_args) as client:
            try:
                for bucket in client.buckets(path, {**params, "start_time": _epoch(day)}):
                    bucket_day = datetime.fromtimestamp(bucket["start_time"], UTC).date()
                    if bucket_day < day:
                        # Not asked for (the query starts at `day`): it would replace a day read and
                        # settled before (the merge key is the day) with whatever this server says now.
                        if not outside:
                            log.warning("%s: a bucket for %s, before the %s asked for, ignored", path, bucket_day, day)
                        outside += 1
                        continue
                    for i, (days, table) in enumerate(chunks):
                        if days.pop(bucket_day, None) is not None:
                            chunks[i] = (days, _without_day(table, bucket_day))
                    pending.pop(bucket_day, None)
                    pending[bucket_day] = bucket
                    read = sum(len(days) for days, _ in chunks) + len(pending)
                    # Daily buckets follow each other from `day`: one dated further cannot move the cursor
                    # past what was read (a wild timestamp would otherwise skip days for good).
                    last = min(bucket_day if last is None else max(last, bucket_day), day + timedelta(days=read - 1))
                    if len(pending) >= _CHUNK_DAYS:
                        chunks.append(_converted(pending, convert, clean))
                        pending = {}
            finally:
                stats.api_calls += client.api_calls
        if last is not None:
            # The newest bucket is the API's today: it and the two days before are read again next time.
            state[_STATE_KEY] = max(day, last - timedelta(days=REREAD_DAYS - 1)).isoformat()
        chunks.append(_converted(pending, convert, clean))
        read_at = datetime.now(UTC)
        for days, table in chunks:
            # Rows stored: a day's marker (read, no rows) carries the flag, every other row leaves it NULL.
            setattr(stats, counter, getattr(stats, counter) + table[EMPTY_DAY_MARKER].null_count)
            yield table  # also when empty: the state above commits with this extract
            if days:
                read = days_read_to_arrow(endpoint, days, read_at)
                yield dlt.mark.with_hints(read, _DAYS_READ_HINTS, create_table_variant=True)

    project_columns: Any = projects_hints()
    usage_columns: Any = usage_hints()
    cost_columns: Any = costs_hints()
    return (
        dlt.resource(
            projects, name=PROJECTS_TABLE, write_disposition=_MERGE, primary_key="id", columns=project_columns
        ),
        dlt.resource(usage_daily, name=USAGE_TABLE, columns=usage_columns, **_DAY_KEYED),
        dlt.resource(costs_daily, name=COSTS_TABLE, columns=cost_columns, **_DAY_KEYED),
    )


def _converted(pending: dict[date, dict[str, Any]], convert: Any, clean: Any) -> tuple[dict[date, int], Any]:
    """The results each day's bucket held, and the buckets as rows."""
    results = {d: len(b["results"]) if isinstance(b.get("results"), list) else 0 for d, b in pending.items()}
    return results, convert(list(pending.values()), clean)


def _without_day(table: Any, day: date) -> Any:
    """The rows of ``table`` of every day but ``day`` (whose bucket was served again)."""
    import pyarrow.compute as pc

    return table.filter(pc.not_equal(table["day"], pa.scalar(day, pa.date32())))


def _epoch(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp())


__all__ = ["EARLIEST_DAY", "REREAD_DAYS", "AdminCounts", "openai_organization"]
