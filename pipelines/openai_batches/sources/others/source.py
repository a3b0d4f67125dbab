"""The resources `together_batches`, `mistral_batches` and `openrouter_batches` of the dlt source `openai_batches`
(one schema for every provider): all batches one key can see on Together's, Mistral's or OpenRouter's batch API,
incrementally, each into a table of its own with the provider's own columns (tables/others.py).

The run is every provider's (sources/batches/source.py `sync_batches`: the one paging loop, the one plan, open
batches brought up to date by id however old, the lookback window, gone batches kept and marked). What is the
provider's:
- Together: the list is a bare JSON array of everything, one request a run (client/others.py TogetherClient); the
  plan loads what is new or was open, and reads by id an open batch the list no longer holds.
- Mistral: page numbers, oldest first from the run's floor (`created_after` = the newest job loaded minus the
  lookback window, read from the project's state before the first request: MistralClient).
- OpenRouter: OpenAI's envelope and cursor (BatchesClient), its own batch object with `usage` and `cost`.
Result content is never kept (Mistral's `outputs`, OpenRouter's `results`: tables/others.py).

The request ledger is the same for them (sources/ledger/: the one reader, budget, gone/pending/watch rules; never
content): Together's and Mistral's batches name files of OpenAI's files API (`GET /files/{id}[/content]`,
OpenAI-shaped JSONL), OpenRouter's results come from `GET /batches/{id}/results`; each provider's batch object is
read by `Candidate.of(batch, provider)`. It is on unless `requests` is false for Together and Mistral (their
results are the only source of their tokens, and Together's of its request counts) and as for OpenAI on OpenRouter
(its batches report tokens and cost).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from ... import settings
from ...client.others import KEY_SETTINGS, MistralClient, OpenRouterClient, TogetherClient
from ...client.redact import Redactor
from ...client.retry import RetryPolicy
from ...tables.others import column_hints, to_arrow, without_content
from ..batches.echoed import flagged_ids, mask_batches
from ..batches.plan import ProjectState
from ..batches.source import Client, Provider, batches_resource, merged_table
from ..compatible.source import _label
from ..ledger.reader import in_sync
from ..progress import ProgressSink
from ..stats import ProjectCounts
from .shape import SHAPES

log = logging.getLogger(__name__)

# Whether the request ledger is read when `requests` is not set: Together's and Mistral's results are the only source
# of their tokens (and Together's request counts), as Anthropic's are of its; OpenRouter's batches report both, and
# its ledger follows OpenAI's default.
REQUESTS_DEFAULTS = {"together": True, "mistral": True, "openrouter": settings.DEFAULT_REQUESTS}


def table_hints(provider: str) -> Any:
    return merged_table(settings.BATCH_TABLES[provider], column_hints(provider), key="id")


def open_client(
    provider: str,
    *,
    api_key: str,
    base_url: str,
    created_after: float | None = None,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    other_keys: Sequence[str] = (),
    setting: str | None = None,
) -> Client | TogetherClient | MistralClient:
    """The provider's client (`created_after`: Mistral's floor)."""
    common: dict[str, Any] = {
        "api_key": api_key,
        "base_url": base_url,
        "timeout": timeout,
        "retry": retry,
        "other_secrets": tuple(other_keys),
        "setting": setting or KEY_SETTINGS[provider],
    }
    if provider == "together":
        return TogetherClient(**common)
    if provider == "mistral":
        return MistralClient(created_after=created_after, **common)
    from ...client.others import key_kind_problem
    from ...client.urls import check_api_key

    key, _ = check_api_key(api_key)
    if key and (problem := key_kind_problem(key, setting=common["setting"], provider=provider)):
        from ...client.errors import ApiError

        raise ApiError(problem)
    return OpenRouterClient(**common)


@dlt.source(name="openai_batches", max_table_nesting=0)
def other_batches(
    provider: str,
    api_key: str = dlt.secrets.value,
    base_url: str | None = None,
    project_name: str | None = None,
    full_refresh: bool = False,
    lookback_seconds: int = settings.DEFAULT_LOOKBACK_S,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: ProjectCounts | None = None,
    progress: ProgressSink | None = None,
    other_keys: Sequence[str] = (),
    known_ids: Sequence[str] | None = None,
    claimed: dict[str, str] | None = None,
    requests: bool | None = None,
    requests_max_mb_per_run: float = settings.DEFAULT_REQUESTS_MAX_MB,
) -> DltResource:
    """All batches one key can see on `provider`'s batch API (`together`, `mistral`, `openrouter`), and with
    `requests` the request ledger.

    Args:
        provider: One of settings.OTHER_PROVIDERS: the `provider` in `batch_jobs` and the table's name.
        api_key: The key (never stored), sent as `Authorization: Bearer`.
        base_url: The API root with its version path, as the official SDK takes it (default: the provider's).
        project_name: Name written to the `project` column and keying the incremental state (default: provider).
        known_ids: With `full_refresh`: the project's ids loaded earlier and not gone; those a complete listing
            no longer holds are recorded gone.
        claimed: Batch ids the head pages of this load's projects listed, with the name that listed each.
        requests: Read the request ledger (the batches' results); None: the provider's default (REQUESTS_DEFAULTS).
        The rest as `openai_batches`.
    """
    if provider not in settings.OTHER_PROVIDERS:
        raise ValueError(f"not one of {settings.OTHER_PROVIDERS}: {provider!r}")
    claimed = claimed if claimed is not None else {}
    base = base_url or settings.OTHER_DEFAULT_BASE_URLS[provider]
    name = project_name or provider
    table = settings.BATCH_TABLES[provider]
    hints = table_hints(provider)
    shape = SHAPES[provider]
    read_ledger = REQUESTS_DEFAULTS[provider] if requests is None else requests

    def client() -> Any:
        after = None
        if provider == "mistral" and not full_refresh:
            # The floor of this run's plan, known before the first request: the project's state (committed with
            # the data of the last run). `sync_batches` reads the same state once the head page is in.
            state = dlt.current.resource_state()
            raw = state.get("projects", {}).get(name)
            previous = ProjectState.load(raw)
            ledger_state = state.get("ledger", {}).get(name) or {}  # sync_batches keeps it there (`_LEDGER`)
            if read_ledger and not in_sync(ledger_state, raw):
                previous = None  # the run lists the whole history once for the ledger (sync_batches): no floor
            if previous is not None and previous.watermark is not None:
                after = float(previous.watermark - max(0, int(lookback_seconds)))
        return open_client(
            provider,
            api_key=api_key,
            base_url=base,
            created_after=after,
            timeout=timeout,
            retry=retry,
            other_keys=other_keys,
        )

    def tables(batches: Sequence[Mapping[str, Any]], project: str, project_id: str | None, redactor: Redactor) -> Any:
        if not batches:
            return []
        kept = without_content(provider, batches)
        rows = to_arrow(provider, kept, project)
        if flagged := flagged_ids([rows], redactor.key_regex()):
            masked, redacted = mask_batches(kept, flagged, redactor)
            rows = to_arrow(provider, masked, project, redacted)
            log.warning(
                "%d batches of %s carry a configured API key the server sent back: masked (***), the fields named "
                "in %s.redacted_fields",
                sum(1 for fields in redacted if fields),
                project,
                table,
            )
        return [dlt.mark.with_hints(rows, hints, create_table_variant=True)]

    spec = Provider(
        open_client=client,
        shape=shape,
        label=lambda state, first, _client: _label(name, table, first, claimed),
        tables=tables,
        ledger=provider,
        # How long after a batch ended its files can exist: undocumented for Together and Mistral (always asked
        # for, the API's 404 decides); OpenRouter's results are kept 30 days (`Candidate._of_openrouter`).
        files_kept_s=None,
    )
    return batches_resource(
        spec,
        table,
        full_refresh=full_refresh,
        lookback=lookback_seconds,
        stats=stats,
        progress=progress,
        requests_max_mb=requests_max_mb_per_run if read_ledger else None,
        known_ids=known_ids,
    )


__all__ = ["REQUESTS_DEFAULTS", "open_client", "other_batches", "table_hints"]
