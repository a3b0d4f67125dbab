"""What one project's run did, filled in by the source as it runs (the runner and CLI report it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .batches.counts import BatchCounts
from .ledger.counts import LedgerCounts


@dataclass
class SyncStats:
    project: str | None = None  # the name rows are filed under (`project` column)
    requests: int = 0
    counts: BatchCounts = field(default_factory=BatchCounts)
    ledger: LedgerCounts | None = None  # set when the run read the request ledger (`requests=True`)
