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
from datetime import UTC, date, datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from ... import settings
from ...client.admin import COSTS_PAGE_DAYS, COSTS_PATH, USAGE_PAGE_DAYS, USAGE_PATH, AdminClient
from ...client.redact import Redactor
from ...client.retry import RetryPolicy
from ...tables.admin import (
    COSTS_ENDPOINT,
    COSTS_TABLE,
    PROJECTS_TABLE,
    USAGE_ENDPOINT,
    USAGE_TABLE,
    costs_hints,
    costs_to_arrow,
    projects_hints,
    projects_to_arrow,
    usage_hints,
    usage_to_arrow,
)
from .days import DAY_KEYED, REREAD_DAYS, DailyRead, epoch, read_daily_buckets

log = logging.getLogger(__name__)

# The Batch API opened in April 2024: no batch usage can be older.
EARLIEST_DAY = date(2024, 4, 1)
_MERGE: Any = {"disposition": "merge", "strategy": "delete-insert"}


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

    def client() -> AdminClient:
        return AdminClient(**client_args)

    def usage_daily() -> Iterator[Any]:
        params = {"bucket_width": "1d", "group_by[]": ["project_id", "model", "batch"], "limit": USAGE_PAGE_DAYS}
        read = DailyRead(USAGE_ENDPOINT, client, _fetch(USAGE_PATH, params), _day_of, usage_to_arrow)
        yield from read_daily_buckets(read, **common, counter="usage_rows", from_attr="usage_from")

    def costs_daily() -> Iterator[Any]:
        params = {"bucket_width": "1d", "group_by[]": ["project_id", "line_item"], "limit": COSTS_PAGE_DAYS}
        read = DailyRead(COSTS_ENDPOINT, client, _fetch(COSTS_PATH, params), _day_of, costs_to_arrow)
        yield from read_daily_buckets(read, **common, counter="cost_rows")

    common: dict[str, Any] = {"start": start, "full_refresh": full_refresh, "clean": clean, "stats": stats}
    project_columns: Any = projects_hints()
    usage_columns: Any = usage_hints()
    cost_columns: Any = costs_hints()
    return (
        dlt.resource(
            projects, name=PROJECTS_TABLE, write_disposition=_MERGE, primary_key="id", columns=project_columns
        ),
        dlt.resource(usage_daily, name=USAGE_TABLE, columns=usage_columns, **DAY_KEYED),
        dlt.resource(costs_daily, name=COSTS_TABLE, columns=cost_columns, **DAY_KEYED),
    )


def _fetch(path: str, params: dict[str, Any]) -> Any:
    """The buckets of ``path`` from a day on (`start_time` = the day's midnight, UTC)."""

    def fetch(client: AdminClient, day: date) -> Iterator[dict[str, Any]]:
        return client.buckets(path, {**params, "start_time": epoch(day)})

    return fetch


def _day_of(bucket: Any) -> date:
    return datetime.fromtimestamp(bucket["start_time"], UTC).date()


__all__ = ["EARLIEST_DAY", "REREAD_DAYS", "AdminCounts", "openai_organization"]
