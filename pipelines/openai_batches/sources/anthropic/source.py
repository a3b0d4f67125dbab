"""The resource `anthropic_batches` of the dlt source `openai_batches` (one schema for every provider): all
message batches one Anthropic API key can see (one workspace), incrementally, with the request ledger.

The run is OpenAI's (sources/batches/source.py `sync_batches`: the one paging loop, the one plan with
Anthropic's shape, open batches brought up to date by id however old, the lookback window, batches the API
stopped returning kept and marked in `batches_gone`); what is Anthropic's is the client, the shape, the
project name (the configured one: no response names the workspace) and the table. The ledger always runs:
a batch object has no model, tokens or cost, its results are their only source (within the per-run MB
budget), and they are gone 29 days after the batch was created.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from ... import settings
from ...client.anthropic import AnthropicClient
from ...client.paging import Lister, Page
from ...client.redact import Redactor
from ...client.retry import RetryPolicy
from ...tables.anthropic import anthropic_column_hints, anthropic_to_arrow
from ..batches.echoed import flagged_ids, mask_batches
from ..batches.source import Provider, SameProject, batches_resource, merged_table
from ..progress import ProgressSink
from ..stats import ProjectCounts
from .shape import ANTHROPIC_SHAPE

log = logging.getLogger(__name__)

ANTHROPIC_HINTS = merged_table(settings.ANTHROPIC_BATCHES_TABLE, anthropic_column_hints(), key="id")


@dlt.source(name="openai_batches", max_table_nesting=0)
def anthropic_batches(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.ANTHROPIC_DEFAULT_BASE_URL,
    project_name: str = settings.ANTHROPIC_PROJECT_NAME,
    full_refresh: bool = False,
    lookback_seconds: int = settings.DEFAULT_LOOKBACK_S,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: ProjectCounts | None = None,
    progress: ProgressSink | None = None,
    requests: bool = True,
    requests_max_mb_per_run: float = settings.DEFAULT_REQUESTS_MAX_MB,
    other_keys: Sequence[str] = (),
    known_ids: Sequence[str] | None = None,
    claimed: dict[str, str] | None = None,
    client: AnthropicClient | None = None,
    pages: Lister | None = None,
) -> DltResource:
    """All message batches one Anthropic API key can see (one workspace), and their results' ledger.

    Args:
        api_key: Workspace API key (`sk-ant-api...`); sent as `x-api-key`, never stored.
        base_url: API root without `/v1` (`ANTHROPIC_BASE_URL`, as the official SDK takes it).
        project_name: Name written to the `project` column and keying the incremental state.
        full_refresh: Ignore what earlier runs loaded and re-read every batch.
        lookback_seconds: How far below the newest batch already loaded each run looks again.
        timeout: Seconds one request may take in all before it is retried.
        retry: Retry policy shared by all requests of the run (budget included).
        stats: Filled with requests made and batches new / updated / still open / gone, and the ledger's counts.
        progress: Told about each page, for progress display.
        requests: Read the results of every batch that ended into the request ledger (`batch_requests`,
            `batch_files`): on by default, the only source of an Anthropic batch's model, tokens and cost.
        requests_max_mb_per_run: MB of results one run starts reading at most; the rest waits for the next runs.
        other_keys: The other configured keys: masked like `api_key` wherever a server sends one back.
        known_ids: With `full_refresh`: the ids of the project's batches loaded earlier and not gone. Those the
            complete listing no longer holds were deleted (Anthropic allows it once a batch ended): recorded in
            `batches_gone`, their rows kept as last loaded.
        claimed: Batch ids the head pages of this load's projects listed, with the configured name that listed
            each (shared by the runs of one load): a key of a workspace another project read fails with
            `SameProject`.
        client: An open client to use instead of one made from the arguments above (the CLI's, which began
            reading the list while the program started: load/head_start.py); closed when the run ends.
        pages: Where the run takes the list's pages from instead of `client`'s requests (the pages the CLI
            read ahead with `client`, then its requests).
    """
    claimed = claimed if claimed is not None else {}
    provider = Provider(
        open_client=lambda: (
            client
            or AnthropicClient(
                api_key=api_key, base_url=base_url, timeout=timeout, retry=retry, other_secrets=tuple(other_keys)
            )
        ),
        shape=ANTHROPIC_SHAPE,
        label=lambda state, first, client: _label(project_name, first, claimed),
        tables=_tables,
        pages=pages,
    )
    return batches_resource(
        provider,
        settings.ANTHROPIC_BATCHES_TABLE,
        full_refresh=full_refresh,
        lookback=lookback_seconds,
        stats=stats,
        progress=progress,
        requests_max_mb=requests_max_mb_per_run if requests else None,
        known_ids=known_ids,
    )


def _label(project_name: str, first: Page, claimed: dict[str, str]) -> tuple[str, str | None]:
    """The configured name, and no project id: Anthropic's responses do not name the workspace.

    What does name it is its batches (ids are unique across workspaces): two configured projects whose keys
    read one workspace list the same ones, and the second would relabel every row of the first. The head
    page's ids are claimed; a project whose head page holds a batch another project claimed in this load
    fails with SameProject (loaded once, as the first), as two keys of one OpenAI project do."""
    for item in first.data:
        owner = claimed.setdefault(str(item["id"]), project_name)
        if owner != project_name:
            raise SameProject(
                f"the keys of projects {owner!r} and {project_name!r} read one Anthropic workspace (both list "
                f"batch {item['id']}): loaded once, as {owner!r}; configure one key per workspace"
            )
    return project_name, None


def _tables(
    batches: Sequence[Mapping[str, Any]], project: str, project_id: str | None, redactor: Redactor
) -> list[Any]:
    """The `anthropic_batches` rows of a chunk; a batch in which the server sent back a configured key is
    masked, and the fields that altered named in `redacted_fields`, before anything is kept (echoed.py)."""
    if not batches:
        return []
    rows = anthropic_to_arrow(batches, project)
    if flagged := flagged_ids([rows], redactor.key_regex()):
        masked, redacted = mask_batches(batches, flagged, redactor)
        rows = anthropic_to_arrow(masked, project, redacted)
        log.warning(
            "%d message batches of %s carry a configured API key the server sent back: masked (***), the fields "
            "named in anthropic_batches.redacted_fields",
            sum(1 for fields in redacted if fields),
            project,
        )
    return [dlt.mark.with_hints(rows, ANTHROPIC_HINTS, create_table_variant=True)]


__all__ = ["ANTHROPIC_HINTS", "anthropic_batches"]
