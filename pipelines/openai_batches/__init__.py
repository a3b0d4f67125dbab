"""dlt source for OpenAI Batch API jobs: `openai_batches`, resource `batches` (and, with `requests=True`,
the request ledger: every request of each finished batch, read from its files; see sources/ledger/reader.py).

Pages `GET /v1/batches` newest first, flattens `usage` and `request_counts` into columns, puts
`errors.data` into `batches__errors__data`, and merges into the destination by batch id. Each run
reads what is new since the last run (with a lookback window, see sources/batches/plan.py) plus every batch that
was still open then, and nothing more. The source is complete on its own: one
`pipeline.run(openai_batches(api_key=...))` loads the whole history, the next one is incremental.

`openai_organization` (sources/admin/source.py) is the second source: the organisation's projects, daily
usage and daily costs from the Admin API (an admin key), for reconciliation.

`anthropic_batches` (sources/anthropic/source.py) is the same source (same schema, `openai_batches`) for an
Anthropic workspace: resource `anthropic_batches`, `pipeline.run(anthropic_batches(api_key="sk-ant-..."))`.

Names are imported from their modules on first use: `openai-batches --help` imports this package and
must not pay for dlt, pyarrow or even dataclasses.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sources.admin.source import openai_organization
    from .sources.anthropic.source import anthropic_batches
    from .sources.batches.source import openai_batches
    from .sources.progress import ProgressSink
    from .sources.stats import ProjectCounts

_WHERE = {
    "anthropic_batches": ".sources.anthropic.source",
    "openai_batches": ".sources.batches.source",
    "openai_organization": ".sources.admin.source",
    "ProgressSink": ".sources.progress",
    "ProjectCounts": ".sources.stats",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ProgressSink", "ProjectCounts", "anthropic_batches", "openai_batches", "openai_organization"]
