"""dlt source for OpenAI Batch API jobs: `openai_batches`, resource `batches`.

Pages `GET /v1/batches` newest first, flattens `usage` and `request_counts` into columns, puts
`errors.data` into `batches__errors__data`, and merges into the destination by batch id. Each run
reads what is new since the last run plus every batch that was still open then, and nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.sources import DltResource

from . import settings
from .columns import (
    batches_column_hints,
    batches_to_arrow,
    errors_column_hints,
    errors_to_arrow,
)
from .helpers import BatchesClient, Page, RetryPolicy, iter_pages
from .sync_plan import SyncCounts, SyncPlan

log = logging.getLogger(__name__)


class _ExpectedArrowHintOverride(logging.Filter):
    """dlt warns on every run that a hint overrides the arrow type. The one override here is
    deliberate (`metadata` is a JSON string in arrow, a JSON column in the table), so the warning
    would only teach people to ignore warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


logging.getLogger("dlt").addFilter(_ExpectedArrowHintOverride())

__all__ = ["ProgressSink", "SyncStats", "openai_batches"]


class ProgressSink:
    """Told about every page and batch read; the CLI shows a bar or log lines, tests ignore it."""

    def page(self, project: str, items: int) -> None:  # pragma: no cover - interface
        pass

    def fetched(self, project: str, batch_id: str) -> None:  # pragma: no cover - interface
        pass


@dataclass
class SyncStats:
    """What one project's run did, filled in as the resource runs."""

    project: str | None = None
    requests: int = 0
    counts: SyncCounts = field(default_factory=SyncCounts)


# Both tables are declared as table variants of the one resource: a variant inherits the resource's
# own hints, so the resource carries none that the errors table must not have (key, columns).
BATCHES_HINTS = dlt.mark.make_hints(
    table_name=settings.BATCHES_TABLE,
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    primary_key="id",
    columns=batches_column_hints(),  # type: ignore[arg-type]
)
ERRORS_HINTS = dlt.mark.make_hints(
    table_name=settings.ERRORS_TABLE,
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    primary_key=[],
    merge_key="batch_id",
    columns=errors_column_hints(),  # type: ignore[arg-type]
)


@dlt.source(name="openai_batches", max_table_nesting=0)
def openai_batches(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    organization: str | None = None,
    project: str | None = None,
    project_name: str | None = None,
    full_refresh: bool = False,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: SyncStats | None = None,
    progress: ProgressSink | None = None,
) -> DltResource:
    """All batches one API key can see (one project).

    Args:
        api_key: Secret key of the project (`sk-...`); sent as `Authorization: Bearer`, never stored.
        base_url: API root up to `/v1`; point it at the simulator or a compatible gateway.
        organization: Sent as `OpenAI-Organization` when set (keys in several organizations).
        project: Sent as `OpenAI-Project` when set (legacy user keys that span projects).
        project_name: Name written to the `project` column and keying the incremental state;
            defaults to the `openai-project` response header.
        full_refresh: Ignore what earlier runs loaded and re-read every batch.
        timeout: Seconds one request may take before it is retried.
        retry: Retry policy shared by all requests of the run (budget included).
        stats: Filled with requests made and batches new / updated / still open.
        progress: Told about each page, for progress display.
    """
    return dlt.resource(
        _batches(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            project_name=project_name,
            full_refresh=full_refresh,
            timeout=timeout,
            retry=retry,
            stats=stats if stats is not None else SyncStats(),
            progress=progress or ProgressSink(),
        ),
        name=settings.BATCHES_TABLE,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    )


def _batches(
    *,
    api_key: str,
    base_url: str,
    organization: str | None,
    project: str | None,
    project_name: str | None,
    full_refresh: bool,
    timeout: float,
    retry: RetryPolicy | None,
    stats: SyncStats,
    progress: ProgressSink,
) -> Iterator[Any]:
    # Per-project state lives under one resource; it is written before each yield because dlt
    # commits resource state together with the items of the same extract.
    all_projects: dict[str, Any] = dlt.current.resource_state().setdefault("projects", {})
    client = BatchesClient(
        api_key=api_key, base_url=base_url, organization=organization, project=project, timeout=timeout, retry=retry
    )

    def previous_state(first_page: Page) -> Mapping[str, Any] | None:
        stats.project = project_name or first_page.project or "default"
        return None if full_refresh else all_projects.get(stats.project)

    plan = SyncPlan(previous_state)
    stats.counts = plan.counts
    pending: list[dict[str, Any]] = []
    position = 0
    try:
        for page in iter_pages(client, plan.wants_next):
            stats.requests = client.requests_made
            progress.page(stats.project or "", len(page.data))
            for item in page.data:
                if plan.should_load(item, position):
                    pending.append(item)
                position += 1
            if len(pending) >= settings.ARROW_CHUNK_ROWS:
                yield from _tables(pending, stats.project)
                pending = []
        for batch_id in plan.leftovers():
            fetched = client.retrieve(batch_id)
            stats.requests = client.requests_made
            progress.fetched(stats.project or "", batch_id)
            plan.record_fetched(batch_id, fetched)
            if fetched is None:
                log.warning("batch %s was open at the last run but the API no longer returns it", batch_id)
            else:
                pending.append(fetched)
        if stats.project is not None:
            all_projects[stats.project] = plan.new_state()
        if pending:
            yield from _tables(pending, stats.project)
    finally:
        stats.requests = client.requests_made
        client.close()


def _tables(batches: Sequence[Mapping[str, Any]], project: str | None) -> Iterator[Any]:
    yield dlt.mark.with_hints(
        batches_to_arrow(batches, [project or ""] * len(batches)), BATCHES_HINTS, create_table_variant=True
    )
    yield dlt.mark.with_hints(errors_to_arrow(batches), ERRORS_HINTS, create_table_variant=True)
