"""The resources `azure_batches`, `groq_batches` and `openai_compatible_batches` of the dlt source `openai_batches`
(one schema for every provider): all batches one key can see on an OpenAI-shaped batch API, incrementally.

The run is OpenAI's (sources/batches/source.py `sync_batches`: the one paging loop, the one plan, open batches
brought up to date by id however old, the lookback window, gone batches kept and marked). What is the
provider's: how the key is sent (Azure's `api-key` header, a bearer token elsewhere), the classic Azure API's
`api-version`, whether a list page asks for a `limit` (Groq's SDK sends none), the shape (ISO times and
capitalised statuses taken: shape.py), the project name (the configured one: these APIs send no
`openai-project` header) and the table.

Where the rows go: a table per provider with OpenAI's column list (`azure_batches` and
`azure_batches__errors__data`, ...), not `batches` with a provider column. `batches` is merged on the batch id
alone, and ids are only unique within one provider: a gateway in front of OpenAI (`openai-compatible`) lists
OpenAI's own ids, and merged into `batches` its rows would overwrite the OpenAI project's (project, figures,
every field). In a table of its own nothing of either is lost, and `batch_jobs` names the provider of each row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from ... import settings
from ...client.batches import BatchesClient
from ...client.paging import Page
from ...client.redact import Redactor
from ...client.retry import RetryPolicy
from ...tables.batches import batches_column_hints, errors_column_hints
from ..batches.source import Provider, SameProject, batches_resource, merged_table, openai_tables
from ..progress import ProgressSink
from ..stats import ProjectCounts
from .shape import COMPATIBLE_SHAPE, normalised

# The setting each provider's key is named by in an error line (a single-key form; a named project names its own).
KEY_SETTINGS = {
    "azure": "AZURE_OPENAI_API_KEY",
    "groq": "GROQ_API_KEY",
    "openai-compatible": 'sources.openai_batches.projects.NAME.api_key (provider = "openai-compatible")',
}


def table_hints(provider: str) -> tuple[Any, Any]:
    """The hints of the provider's batches table and of its errors table (OpenAI's columns, its own names)."""
    table = settings.BATCH_TABLES[provider]
    return (
        merged_table(table, batches_column_hints(), key="id"),
        merged_table(f"{table}__errors__data", errors_column_hints(), merge_key="batch_id"),
    )


def open_client(
    provider: str,
    *,
    api_key: str,
    base_url: str,
    api_version: str | None = None,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    other_keys: Sequence[str] = (),
    setting: str | None = None,
) -> BatchesClient:
    """The provider's client: OpenAI's, with the provider's key header, query and page size."""
    return BatchesClient(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        retry=retry,
        other_secrets=tuple(other_keys),
        key_header="api-key" if provider == "azure" else "Authorization",
        query={"api-version": api_version} if api_version else None,
        page_limit=None if provider == "groq" else settings.PAGE_LIMIT,
        setting=setting or KEY_SETTINGS[provider],
    )


@dlt.source(name="openai_batches", max_table_nesting=0)
def compatible_batches(
    provider: str,
    api_key: str = dlt.secrets.value,
    base_url: str = settings.GROQ_DEFAULT_BASE_URL,
    project_name: str = settings.GROQ_PROJECT_NAME,
    api_version: str | None = None,
    full_refresh: bool = False,
    lookback_seconds: int = settings.DEFAULT_LOOKBACK_S,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: ProjectCounts | None = None,
    progress: ProgressSink | None = None,
    requests: bool = settings.DEFAULT_REQUESTS,
    requests_max_mb_per_run: float = settings.DEFAULT_REQUESTS_MAX_MB,
    other_keys: Sequence[str] = (),
    known_ids: Sequence[str] | None = None,
    claimed: dict[str, str] | None = None,
) -> DltResource:
    """All batches one key can see on `provider`'s OpenAI-shaped batch API (`azure`, `groq`,
    `openai-compatible`): one Azure resource, one Groq organisation, one endpoint's key.

    Args:
        provider: One of settings.OPENAI_LIKE_PROVIDERS: the `provider` in `batch_jobs` and the table's name.
        api_key: The key (never stored); Azure's goes in `api-key`, the others' as `Authorization: Bearer`.
        base_url: The API root with its version path, as the official SDK takes it
            (`https://{resource}.openai.azure.com/openai/v1`, `https://api.groq.com/openai/v1`).
        project_name: Name written to the `project` column and keying the incremental state.
        api_version: Azure's classic API (`{endpoint}/openai/batches?api-version=...`): sent with every request.
        requests: Also read the request ledger (OpenAI's: the output and error files).
        known_ids: With `full_refresh`: the project's ids loaded earlier and not gone; those a complete listing
            no longer holds are recorded gone.
        claimed: Batch ids the head pages of this load's projects listed, with the name that listed each: a
            second project reading the same batches fails with SameProject rather than relabelling them.
        The rest as `openai_batches`.
    """
    if provider not in settings.OPENAI_LIKE_PROVIDERS:
        raise ValueError(f"not an OpenAI-shaped provider: {provider!r}")
    claimed = claimed if claimed is not None else {}
    rows_hints, errors_hints = table_hints(provider)
    tables = openai_tables(rows_hints, errors_hints)

    def provider_tables(
        batches: Sequence[Mapping[str, Any]], project: str, project_id: str | None, redactor: Redactor
    ) -> list[Any]:
        return tables(normalised(batches), project, project_id, redactor)

    spec = Provider(
        open_client=lambda: open_client(
            provider,
            api_key=api_key,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            retry=retry,
            other_keys=other_keys,
        ),
        shape=COMPATIBLE_SHAPE,
        label=lambda state, first, client: _label(project_name, settings.BATCH_TABLES[provider], first, claimed),
        tables=provider_tables,
    )
    return batches_resource(
        spec,
        settings.BATCH_TABLES[provider],
        full_refresh=full_refresh,
        lookback=lookback_seconds,
        stats=stats,
        progress=progress,
        requests_max_mb=requests_max_mb_per_run if requests else None,
        known_ids=known_ids,
    )


def _label(project_name: str, table: str, first: Page, claimed: dict[str, str]) -> tuple[str, str | None]:
    """The configured name, and no project id (these APIs send no `openai-project` header). Two configured
    projects of one provider whose keys read the same batches (one Azure resource under two names) would
    relabel each other's rows: the head page's ids are claimed (per table: the same id in two providers' tables
    overwrites nothing), and the second fails with SameProject, as for Anthropic."""
    for item in first.data:
        owner = claimed.setdefault(f"{table}:{item['id']}", project_name)
        if owner != project_name:
            raise SameProject(
                f"the keys of projects {owner!r} and {project_name!r} read the same batches (both list batch "
                f"{item['id']}): loaded once, as {owner!r}; configure each resource or key once"
            )
    return project_name, None


__all__ = ["KEY_SETTINGS", "compatible_batches", "open_client", "table_hints"]
