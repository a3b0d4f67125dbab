"""What one project's run did, filled in by the source as it runs (the runner and CLI report it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .batches.counts import BatchCounts
from .ledger.counts import LedgerCounts


@dataclass
class ProjectCounts:
    """One project's tallies: API calls made, batch counts, request-ledger counts."""

    project: str | None = None  # the name rows are filed under (`project` column)
    api_calls: int = 0  # HTTP calls made (retries included)
    counts: BatchCounts = field(default_factory=BatchCounts)
    ledger: LedgerCounts | None = None  # set when the run read the request ledger (`requests=True`)
