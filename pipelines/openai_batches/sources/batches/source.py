"""The dlt source `openai_batches` and its resource `batches` (tables `batches`,
`batches__errors__data`, `batches_gone`, and with `requests=True` the request ledger's `batch_requests`
and `batch_files`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.sources import DltResource

from ... import settings
from ...client.anthropic import AnthropicClient
from ...client.batches import BatchesClient
from ...client.errors import ApiError
from ...client.paging import Lister, Page, iter_pages
from ...client.redact import Redactor, masked_logs
from ...client.retry import RetryPolicy
from ...tables.batches import (
    batches_column_hints,
    batches_to_arrow,
    errors_column_hints,
    errors_to_arrow,
    gone_column_hints,
    gone_to_arrow,
)
from ...tables.ledger import LEDGER_KEY, files_column_hints, requests_column_hints
from ..dlt_logging import expected_arrow_overrides
from ..ledger.counts import LedgerCounts
from ..ledger.reader import Ledger
from ..progress import ProgressSink
from ..stats import ProjectCounts
from .echoed import flagged_ids, mask_batches
from .plan import OPENAI_SHAPE, ProjectState, Shape, SyncPlan, latest_believable

log = logging.getLogger(__name__)


_MERGE: Any = {"disposition": "merge", "strategy": "delete-insert"}


def merged_table(
    table: str, columns: Any, *, key: str | None = None, merge_key: str | Sequence[str] | None = None
) -> Any:
    """Hints of one table the resource yields into, merged on `key` (a primary key) or `merge_key`."""
    return dlt.mark.make_hints(
        table_name=table,
        write_disposition=_MERGE,
        primary_key=key or [],
        merge_key=list(merge_key) if isinstance(merge_key, tuple) else merge_key,  # None: no merge key
        columns=columns,
    )


# The tables are declared as table variants of the one resource: a variant inherits the resource's
# own hints, so the resource carries none that another table must not have (key, columns).
BATCHES_HINTS = merged_table(settings.BATCHES_TABLE, batches_column_hints(), key="id")
ERRORS_HINTS = merged_table(settings.ERRORS_TABLE, errors_column_hints(), merge_key="batch_id")
GONE_HINTS = merged_table(settings.GONE_TABLE, gone_column_hints(), key="id")
# The request ledger's tables. Merge key (`project`, `batch_id`) without a primary key: a batch's rows of one
# project are deleted and inserted as a whole (its requests are read together), which DuckDB does in a few bytes
# per row; a primary key would make dlt deduplicate the staged rows first, ~1 KB per row (a million requests: a
# gigabyte). The project is in the key because batch ids are unique only within a provider (LEDGER_KEY).
REQUESTS_HINTS = merged_table(settings.REQUESTS_TABLE, requests_column_hints(), merge_key=LEDGER_KEY)
FILES_HINTS = merged_table(settings.FILES_TABLE, files_column_hints(), merge_key=LEDGER_KEY)
_LEDGER_HINTS = {"requests": REQUESTS_HINTS, "files": FILES_HINTS}
# Resource state key of the request ledger's state (per project, see sources/ledger/reader.py).
_LEDGER = "ledger"

# Resource state key under which the name used for a key without a configured project name is
# remembered, so that one response without an `openai-project` header cannot relabel its rows.
_UNNAMED = "unnamed_project"


# A provider's client: the list and retrieve of its batch API, with the one retry policy and redaction.
Client = BatchesClient | AnthropicClient


@dataclass(frozen=True)
class Provider:
    """What differs between providers in a project's run (`sync_batches`, which is the same for all): the
    client (opened when the extract starts), what the plan reads of a batch object, the project a run files
    its rows under (from the resource state, the head page and the client: name and project id), and the
    tables of a chunk of batch objects (`batches` and its errors, `anthropic_batches`, ...), masked."""

    open_client: Callable[[], Client]
    shape: Shape
    label: Callable[[dict[str, Any], Page, Client], tuple[str, str | None]]
    tables: Callable[[Sequence[Mapping[str, Any]], str, str | None, Redactor], list[Any]]
    # The list as the run pages it, when not the client's own requests (the CLI's head start: pages read ahead).
    pages: Lister | None = None
    # The request ledger's reading of this provider's batch objects (`Candidate.of`: None, OpenAI's and
    # Anthropic's; `together`, `mistral`, `openrouter`) and how long its files are kept at most (None: unknown).
    ledger: str | None = None
    files_kept_s: float | None = settings.FILES_KEPT_AT_MOST_S


@dlt.source(name="openai_batches", max_table_nesting=0)
def openai_batches(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    organization: str | None = None,
    project: str | None = None,
    project_name: str | None = None,
    full_refresh: bool = False,
    lookback_seconds: int = settings.DEFAULT_LOOKBACK_S,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: ProjectCounts | None = None,
    progress: ProgressSink | None = None,
    requests: bool = settings.DEFAULT_REQUESTS,
    requests_max_mb_per_run: float = settings.DEFAULT_REQUESTS_MAX_MB,
    claimed: dict[str, str] | None = None,
    other_keys: Sequence[str] = (),
    client: BatchesClient | None = None,
    pages: Lister | None = None,
) -> DltResource:
    """All batches one API key can see (one project), and with `requests` the request ledger.

    Args:
        api_key: Secret key of the project (`sk-...`); sent as `Authorization: Bearer`, never stored.
        base_url: API root up to `/v1`; point it at the simulator or a compatible gateway.
        organization: Sent as `OpenAI-Organization` when set (keys in several organizations).
        project: Project id sent as `OpenAI-Project` when set (legacy user keys that span projects);
            also the `project_id` column when the API does not name the project.
        project_name: Name written to the `project` column and keying the incremental state;
            defaults to the `openai-project` response header.
        full_refresh: Ignore what earlier runs loaded and re-read every batch.
        lookback_seconds: How far below the newest batch already loaded each run looks again for
            batches it has not seen (the list is not strictly in creation order).
        timeout: Seconds one request may take in all before it is retried.
        retry: Retry policy shared by all requests of the run (budget included).
        stats: Filled with requests made and batches new / updated / still open / gone.
        progress: Told about each page, for progress display.
        requests: Also read the request ledger: every request of every batch that finished (tables
            `batch_requests`, `batch_files`; see sources/ledger/reader.py). Downloads each batch's files once.
        requests_max_mb_per_run: MB of files one run starts reading at most; the rest waits for the
            next runs, files that expire first before the others.
        other_keys: The other configured keys (other projects', the admin key): masked like `api_key`
            wherever a server sends one back (see echoed.py); never sent, never stored.
        claimed: OpenAI project ids already loaded in this load, with the configured name that loaded
            each (shared by the runs of one load): a key of a project in it fails with `SameProject`
            before anything is read, rather than filing the project's batches under a second name.
        client: An open client to use instead of one made from the arguments above (the CLI's, which began
            reading the list while the program started: load/head_start.py); closed when the run ends.
        pages: Where the run takes the list's pages from instead of `client`'s requests (the pages the CLI
            read ahead with `client`, then its requests).

    The ledger runs in the same resource, right after the batches are listed: it needs the batches this
    run saw finish, which exist only once the listing is done (dlt interleaves separate resources), and
    its state then commits in the same load package as the batches' own.
    """
    claimed = claimed if claimed is not None else {}

    def label(state: dict[str, Any], first: Page, client: Client) -> tuple[str, str | None]:
        name, header_id = _project_label(state, project_name, first, client)
        _claim(claimed, header_id, name)
        return name, header_id or project

    provider = Provider(
        open_client=lambda: (
            client
            or BatchesClient(
                api_key=api_key,
                base_url=base_url,
                organization=organization,
                project=project,
                timeout=timeout,
                retry=retry,
                other_secrets=tuple(other_keys),
            )
        ),
        shape=OPENAI_SHAPE,
        label=label,
        tables=_tables,
        pages=pages,
    )
    return batches_resource(
        provider,
        settings.BATCHES_TABLE,
        full_refresh=full_refresh,
        lookback=lookback_seconds,
        stats=stats,
        progress=progress,
        requests_max_mb=requests_max_mb_per_run if requests else None,
    )


def _project_label(
    state: dict[str, Any], configured: str | None, first: Page, client: Client
) -> tuple[str, str | None]:
    """The `project` name rows are filed under, and the project id if known.

    A configured name wins; else the `openai-project` header. A response without the header must not
    file the key's rows under another name: the name remembered from earlier runs is kept."""
    remembered = state.get(_UNNAMED) or {}
    if configured:
        return configured, first.project
    if first.project:
        state[_UNNAMED] = {"name": first.project, "project_id": first.project}
        return first.project, first.project
    name = remembered.get("name") or "default"
    log.warning(
        "%s answered without an openai-project header; filing the batches under %r as before "
        "(set project_name to choose the name)",
        client.shown_base,
        name,
    )
    return name, remembered.get("project_id")


def batches_resource(
    provider: Provider,
    table: str,
    *,
    full_refresh: bool,
    lookback: int,
    stats: ProjectCounts | None,
    progress: ProgressSink | None,
    requests_max_mb: float | None,
    known_ids: Sequence[str] | None = None,
) -> DltResource:
    """The dlt resource of one project's batches, for every provider: `sync_batches` merged into `table` (the
    ledger read when `requests_max_mb` is given; `known_ids` used only by a full refresh)."""
    return dlt.resource(
        sync_batches(
            provider,
            full_refresh=full_refresh,
            lookback=lookback,
            stats=stats if stats is not None else ProjectCounts(),
            progress=progress or ProgressSink(),
            requests_max_mb=requests_max_mb,
            known_ids=known_ids if full_refresh else None,
        ),
        name=table,
        write_disposition=_MERGE,
    )


def sync_batches(
    provider: Provider,
    *,
    full_refresh: bool,
    lookback: int,
    stats: ProjectCounts,
    progress: ProgressSink,
    requests_max_mb: float | None = None,
    known_ids: Sequence[str] | None = None,
) -> Iterator[Any]:
    """One project's run, for every provider: the head page, the pages and GETs the plan wants, the tables of
    what it loads, the gone ones, then the request ledger (`requests_max_mb` None: none). The items of a dlt
    resource; its state (per project: the plan's, the ledger's) is committed with them. `known_ids` (given
    for a full refresh): the ids of the project's rows loaded earlier and not gone; those the complete
    listing no longer holds are recorded gone (SyncPlan.mark_unlisted)."""
    resource_state = dlt.current.resource_state()
    all_projects: dict[str, Any] = resource_state.setdefault("projects", {})
    client = provider.open_client()
    # What the run logs (odd values, undeclared fields, batch ids) is server text: no configured key in it.
    with expected_arrow_overrides(), masked_logs(client.redactor):
        try:
            lister: Lister = provider.pages or client
            first = lister.list_page()
            stats.api_calls = client.api_calls
            project, project_id = provider.label(resource_state, first, client)
            stats.project = project
            before = all_projects.get(project)
            latest = latest_believable(first.server_time, time.time())
            ledger = None
            if requests_max_mb is not None:
                ledger = _ledger(
                    resource_state, project, client, requests_max_mb, first.server_time, stats, progress, provider
                )
                # Batches were loaded while the ledger was off: list them all once, to read what finished meanwhile.
                full_refresh = full_refresh or not ledger.in_sync_with(before)
            previous = None if full_refresh else ProjectState.load(before)
            plan = SyncPlan(previous, lookback=lookback, latest=latest, shape=provider.shape)
            stats.counts = plan.counts
            offer = _ledger_offer(ledger, before, full_refresh, lookback, latest, provider.shape)

            pending: list[dict[str, Any]] = []
            for page, decision in iter_pages(lister, first, plan):
                stats.api_calls = client.api_calls
                progress.page(project, len(page.data))
                pending.extend(decision.load)
                for batch in decision.load:
                    offer(batch)
                if len(pending) >= settings.ARROW_CHUNK_ROWS:
                    tables = provider.tables(pending, project, project_id, client.redactor)
                    pending = []  # the batch objects are freed before dlt writes their tables
                    yield from tables
            for batch_id in plan.leftovers():
                fetched = client.retrieve(batch_id)
                stats.api_calls = client.api_calls
                progress.fetched(project, batch_id)
                plan.record_fetched(batch_id, fetched)
                if fetched is not None:
                    pending.append(fetched)
                    offer(fetched)
            for batch_id in ledger.rechecks() if ledger is not None else ():
                # A finished batch whose ledger was written short: when its file ids changed, read again.
                fetched = client.retrieve(batch_id)
                stats.api_calls = client.api_calls
                if ledger is not None and ledger.recheck(batch_id, fetched) and fetched is not None:
                    pending.append(fetched)
            if known_ids is not None and previous is None:  # a full listing, paged to its end
                plan.mark_unlisted(known_ids)
            # State is written before the last yield: dlt commits it with the items of this extract.
            all_projects[project] = plan.new_state().dump()
            tables = provider.tables(pending, project, project_id, client.redactor)
            if plan.gone_now or plan.back:
                gone = [(g.batch_id, g.reason) for g in plan.gone_now]
                tables.append(
                    dlt.mark.with_hints(
                        gone_to_arrow(gone, plan.back, project, time.time()), GONE_HINTS, create_table_variant=True
                    )
                )
            yield from tables
            if ledger is not None:
                for kind, table in ledger.read(all_projects[project]):
                    stats.api_calls = client.api_calls
                    yield dlt.mark.with_hints(table, _LEDGER_HINTS[kind], create_table_variant=True)
        finally:
            stats.api_calls = client.api_calls
            client.close()


class SameProject(ApiError):
    """Two configured projects hold keys of one OpenAI project: their batches would be loaded twice, the
    second time relabelled. A configuration error, named in one line."""


def _claim(claimed: dict[str, str], project_id: str | None, name: str) -> None:
    """Record that `name` loads OpenAI project `project_id` in this load; raise SameProject when another
    configured name already did (the id is the API's `openai-project` header: two keys, one project)."""
    if not project_id:
        return
    first = claimed.setdefault(project_id, name)
    if first != name:
        raise SameProject(
            f"the keys of projects {first!r} and {name!r} both belong to OpenAI project {project_id}: "
            f"loaded once, as {first!r}; configure one key per OpenAI project"
        )


def _ledger(
    resource_state: dict[str, Any],
    project: str,
    client: Client,
    max_mb: float,
    server_time: float | None,
    stats: ProjectCounts,
    progress: ProgressSink | None = None,
    provider: Provider | None = None,
) -> Ledger:
    """The project's request ledger for this run, with its state from earlier runs (`provider`: whose batch
    objects it reads, and how long their files are kept)."""
    state = resource_state.setdefault(_LEDGER, {}).setdefault(project, {})
    stats.ledger = LedgerCounts()
    now = server_time if server_time is not None else time.time()
    # The ledger reads each provider's results through its client (an Anthropic batch's `results_url`).
    reader: Any = client
    return Ledger(
        state,
        reader,
        project=project,
        max_mb=max_mb,
        now=now,
        counts=stats.ledger,
        progress=progress,
        provider=provider.ledger if provider is not None else None,
        files_kept_s=provider.files_kept_s if provider is not None else settings.FILES_KEPT_AT_MOST_S,
    )


def _ledger_offer(
    ledger: Ledger | None,
    before: dict[str, Any] | None,
    full_refresh: bool,
    lookback: int,
    latest: float,
    shape: Shape = OPENAI_SHAPE,
) -> Callable[[Mapping[str, Any]], None]:
    """What to do with each batch the run loads: offer it to the ledger, or nothing.

    An incremental run loads only batches that are new or were open at the last run, so each one it sees
    finished has files the ledger has not read. A full refresh loads every batch again: only those an
    incremental run would have loaded are offered (files are read once), and those whose ledger was
    written short and may now be read in full (Ledger.wants_again)."""
    if ledger is None:
        return lambda batch: None
    previous = ProjectState.load(before)
    if not full_refresh or previous is None or not ledger.in_sync_with(before):
        return ledger.offer
    incremental = SyncPlan(previous, lookback=lookback, latest=latest, warn_odd=False, shape=shape)

    def offer_new(batch: Mapping[str, Any]) -> None:
        if incremental.is_new(str(batch["id"]), shape.created(batch, latest)) or ledger.wants_again(batch):
            ledger.offer(batch)

    return offer_new


def openai_tables(rows_hints: Any, errors_hints: Any) -> Callable[..., list[Any]]:
    """The `tables` of a Provider whose batch objects are OpenAI's: `batches` and its errors (OpenAI's), or
    another provider's pair of tables with the same columns (`azure_batches`, ...: sources/compatible/)."""

    def tables(
        batches: Sequence[Mapping[str, Any]], project: str, project_id: str | None, redactor: Redactor
    ) -> list[Any]:
        """The tables of a chunk (the batches and their errors), built at once so the caller can drop the batch
        objects before dlt writes them (they are the bulk of the extract's memory). A batch in which the server
        sent back a configured key is masked, and the fields that altered recorded, before anything is kept
        (echoed.py)."""
        if not batches:
            return []
        n = len(batches)
        rows = batches_to_arrow(batches, [project] * n, [project_id] * n)
        errors = errors_to_arrow(batches)
        if flagged := flagged_ids([rows, errors], redactor.key_regex()):
            masked, redacted = mask_batches(batches, flagged, redactor)
            rows = batches_to_arrow(masked, [project] * n, [project_id] * n, redacted)
            errors = errors_to_arrow(masked)
            log.warning(
                "%d batches of %s carry a configured API key the server sent back: masked (***), the fields named "
                "in batches.redacted_fields and the caveats report",
                sum(1 for fields in redacted if fields),
                project,
            )
        return [
            dlt.mark.with_hints(rows, rows_hints, create_table_variant=True),
            dlt.mark.with_hints(errors, errors_hints, create_table_variant=True),
        ]

    return tables


_tables = openai_tables(BATCHES_HINTS, ERRORS_HINTS)


__all__ = [
    "GONE_HINTS",
    "Provider",
    "SameProject",
    "batches_resource",
    "merged_table",
    "openai_batches",
    "openai_tables",
    "sync_batches",
]
