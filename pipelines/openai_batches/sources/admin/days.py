"""Reading an Admin API's daily buckets into a day-keyed table, for OpenAI's usage and costs
(source.py) and Anthropic's usage and cost reports (sources/anthropic_admin/source.py) alike.

The days a run reads: from the resource state's `next_day` (the first run: `start`) to the API's
now. A bucket is one UTC day: one the API serves twice (on two pages of a run) counts once, the last copy
read; a day read again on a later run replaces that day's rows (the merge key is the day), also when it
comes back empty: such a day is sent as one row flagged `_empty_day` (dlt's `hard_delete`), which deletes
the day's rows and is not stored. Every day read is recorded in `admin_days_read` (endpoint, day, results):
a day read and empty is a day with no usage, which the views must tell from a day nobody read. The last
`REREAD_DAYS` days read (the day holding the API's now and the two before) are read again next run: the
APIs fill a day's buckets late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import dlt
import pyarrow as pa

from ...tables.admin import DAYS_READ_TABLE, EMPTY_DAY_MARKER, days_read_hints, days_read_to_arrow
from ..dlt_logging import expected_arrow_overrides

log = logging.getLogger(__name__)

# Days read again on every run, the newest included: buckets fill late.
REREAD_DAYS = 3
# Buckets are converted and handed to dlt in chunks of this many days (a backfill of years stays small).
_CHUNK_DAYS = 93
_STATE_KEY = "next_day"
_MERGE: Any = {"disposition": "merge", "strategy": "delete-insert"}
# A day read again replaces that day's rows, so the merge key is the day; a day read with no rows is one
# `EMPTY_DAY_MARKER` row (hard delete: the day's rows go, it is not stored).
DAY_KEYED: Any = {"write_disposition": _MERGE, "primary_key": [], "merge_key": "day"}
# The days read go to their own table, from every bucketed resource: a variant of each with its own hints.
_DAYS_READ_HINTS: Any = dlt.mark.make_hints(
    table_name=DAYS_READ_TABLE,
    write_disposition=_MERGE,
    primary_key=["endpoint", "day"],
    columns=days_read_hints(),  # type: ignore[arg-type]
)

Bucket = Mapping[str, Any]


class _Counted(Protocol):
    api_calls: int


@dataclass
class DailyRead:
    """One bucketed endpoint as `read_daily_buckets` reads it."""

    endpoint: str  # `admin_days_read.endpoint`
    client: Callable[[], AbstractContextManager[_Counted]]  # a new client (its `api_calls` are counted)
    fetch: Callable[[Any, date], Iterator[Bucket]]  # (client, first day) -> every bucket from that day on
    day_of: Callable[[Bucket], date]  # a bucket's UTC day
    convert: Callable[[list[Bucket], Callable[[str], str]], pa.Table]  # buckets -> rows (and empty-day markers)


def read_daily_buckets(
    read: DailyRead,
    *,
    start: date,
    full_refresh: bool,
    clean: Callable[[str], str],
    stats: Any,
    counter: str,
    from_attr: str | None = None,
) -> Iterator[Any]:
    """The tables of a dlt resource reading ``read``: its rows in chunks, and the days read. Updates
    ``stats``: `api_calls`, `first_run`, the rows counter named ``counter``, and the first day read in the
    attribute named ``from_attr``."""
    with expected_arrow_overrides():
        yield from _read(read, start, full_refresh, clean, stats, counter, from_attr)


def _read(  # noqa: PLR0913 -- one resource's whole read, each parameter one of its inputs
    read: DailyRead,
    start: date,
    full_refresh: bool,
    clean: Callable[[str], str],
    stats: Any,
    counter: str,
    from_attr: str | None,
) -> Iterator[Any]:
    state = dlt.current.resource_state()
    remembered = None if full_refresh else state.get(_STATE_KEY)
    stats.first_run = stats.first_run or remembered is None
    day = date.fromisoformat(remembered) if remembered else start
    if from_attr is not None:
        setattr(stats, from_attr, day)
    # The run's buckets by UTC day (the merge key): a day served again replaces the copy read before,
    # also one already converted into an earlier chunk (a dlt merge does not dedupe within a load).
    pending: dict[date, Bucket] = {}
    chunks: list[tuple[dict[date, int], Any]] = []  # (results per day, its rows)
    last: date | None = None
    outside = 0  # buckets dated before `day`, ignored
    with read.client() as client:
        try:
            for bucket in read.fetch(client, day):
                bucket_day = read.day_of(bucket)
                if bucket_day < day:
                    # Not asked for (the query starts at `day`): it would replace a day read and
                    # settled before (the merge key is the day) with whatever this server says now.
                    if not outside:
                        log.warning(
                            "%s: a bucket for %s, before the %s asked for, ignored", read.endpoint, bucket_day, day
                        )
                    outside += 1
                    continue
                for i, (days, table) in enumerate(chunks):
                    if days.pop(bucket_day, None) is not None:
                        chunks[i] = (days, _without_day(table, bucket_day))
                pending.pop(bucket_day, None)
                pending[bucket_day] = bucket
                read_so_far = sum(len(days) for days, _ in chunks) + len(pending)
                # Daily buckets follow each other from `day`: one dated further cannot move the cursor
                # past what was read (a wild timestamp would otherwise skip days for good).
                last = min(bucket_day if last is None else max(last, bucket_day), day + timedelta(days=read_so_far - 1))
                if len(pending) >= _CHUNK_DAYS:
                    chunks.append(_converted(pending, read.convert, clean))
                    pending = {}
        finally:
            stats.api_calls += client.api_calls
    if last is not None:
        # The newest bucket is the API's today: it and the two days before are read again next time.
        state[_STATE_KEY] = max(day, last - timedelta(days=REREAD_DAYS - 1)).isoformat()
    chunks.append(_converted(pending, read.convert, clean))
    read_at = datetime.now(UTC)
    for days, table in chunks:
        # Rows stored: a day's marker (read, no rows) carries the flag, every other row leaves it NULL.
        setattr(stats, counter, getattr(stats, counter) + table[EMPTY_DAY_MARKER].null_count)
        yield table  # also when empty: the state above commits with this extract
        if days:
            yield dlt.mark.with_hints(
                days_read_to_arrow(read.endpoint, days, read_at), _DAYS_READ_HINTS, create_table_variant=True
            )


def _converted(pending: dict[date, Bucket], convert: Any, clean: Any) -> tuple[dict[date, int], Any]:
    """The results each day's bucket held, and the buckets as rows."""
    results = {d: len(b["results"]) if isinstance(b.get("results"), list) else 0 for d, b in pending.items()}
    return results, convert(list(pending.values()), clean)


def _without_day(table: Any, day: date) -> Any:
    """The rows of ``table`` of every day but ``day`` (whose bucket was served again)."""
    import pyarrow.compute as pc

    return table.filter(pc.not_equal(table["day"], pa.scalar(day, pa.date32())))


def epoch(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp())


__all__ = ["DAY_KEYED", "REREAD_DAYS", "DailyRead", "epoch", "read_daily_buckets"]
