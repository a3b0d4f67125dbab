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
    # A listing with more to load after this dlt run (see `_Listing`): the runner runs the source
    # again with the same stats, and the next run continues it. None once the listing is complete.
    resume: _Listing | None = field(default=None, repr=False, compare=False)

    def close_listing(self) -> None:
        """Stop a listing that will not be continued (a later dlt run failed); idempotent."""
        if self.resume is not None:
            self.resume.close()
            self.resume = None


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
    # Per-project state lives under one resource; it is written before the last yield because dlt
    # commits resource state together with the items of the same extract.
    all_projects: dict[str, Any] = dlt.current.resource_state().setdefault("projects", {})
    listing = stats.resume
    stats.resume = None
    if listing is None:
        client = BatchesClient(
            api_key=api_key, base_url=base_url, organization=organization, project=project, timeout=timeout, retry=retry
        )
        listing = _Listing(client, project_name, full_refresh, stats, progress)
    try:
        yield from listing.tables(all_projects)
    except BaseException:
        listing.close()
        raise
    if listing.done:
        listing.close()
    else:
        stats.resume = listing


class _Listing:
    """One project's paging and sync plan, possibly spread over several dlt runs.

    A run that loads more than settings.LOAD_CHUNK_ROWS batches (a backfill) ends its dlt run there
    and leaves the listing open: the runner runs the source again and paging continues where it
    stopped. Each run is one load package, so DuckDB stages and merges a bounded number of rows and
    the loader's memory does not grow with the history. Only the last run writes the new sync state,
    so a failure part way leaves the previous state, and the next `load` reads those batches again."""

    def __init__(
        self,
        client: BatchesClient,
        project_name: str | None,
        full_refresh: bool,
        stats: SyncStats,
        progress: ProgressSink,
    ) -> None:
        self.client = client
        self.project_name = project_name
        self.full_refresh = full_refresh
        self.stats = stats
        self.progress = progress
        self.all_projects: dict[str, Any] = {}  # the resource state of the dlt run under way
        self.plan = SyncPlan(self._previous_state)
        stats.counts = self.plan.counts
        self.pages = iter_pages(client, self.plan.wants_next)
        self.position = 0
        self.done = False

    def _previous_state(self, first_page: Page) -> Mapping[str, Any] | None:
        self.stats.project = self.project_name or first_page.project or "default"
        return None if self.full_refresh else self.all_projects.get(self.stats.project)

    def tables(self, all_projects: dict[str, Any]) -> Iterator[Any]:
        """The arrow tables of this dlt run; sets `done` when nothing is left for another run."""
        self.all_projects = all_projects
        stats, plan = self.stats, self.plan
        pending: list[dict[str, Any]] = []
        in_this_run = 0
        try:
            for page in self.pages:
                stats.requests = self.client.requests_made
                self.progress.page(stats.project or "", len(page.data))
                for item in page.data:
                    if plan.should_load(item, self.position):
                        pending.append(item)
                    self.position += 1
                if len(pending) >= settings.ARROW_CHUNK_ROWS:
                    tables = _tables(pending, stats.project)
                    in_this_run += len(pending)
                    pending = []  # the batch objects are freed before dlt writes their tables
                    yield from tables
                    if in_this_run >= settings.LOAD_CHUNK_ROWS:
                        return  # the rest goes into the next dlt run (pending is empty here)
            for batch_id in plan.leftovers():
                fetched = self.client.retrieve(batch_id)
                stats.requests = self.client.requests_made
                self.progress.fetched(stats.project or "", batch_id)
                plan.record_fetched(batch_id, fetched)
                if fetched is None:
                    log.warning("batch %s was open at the last run but the API no longer returns it", batch_id)
                else:
                    pending.append(fetched)
            if stats.project is not None:
                all_projects[stats.project] = plan.new_state()
            if pending:
                yield from _tables(pending, stats.project)
            self.done = True
        finally:
            stats.requests = self.client.requests_made

    def close(self) -> None:
        getattr(self.pages, "close", lambda: None)()  # a generator: closing it stops the prefetch thread
        self.stats.requests = self.client.requests_made
        self.client.close()


def _tables(batches: Sequence[Mapping[str, Any]], project: str | None) -> list[Any]:
    """Both tables of a chunk, built at once so the caller can drop the batch objects before dlt
    writes them (they are the bulk of the extract's memory)."""
    return [
        dlt.mark.with_hints(
            batches_to_arrow(batches, [project or ""] * len(batches)), BATCHES_HINTS, create_table_variant=True
        ),
        dlt.mark.with_hints(errors_to_arrow(batches), ERRORS_HINTS, create_table_variant=True),
    ]
