"""What the request ledger did in one project's run (kept apart so that importing it needs no HTTP or arrow)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LedgerCounts:
    batches_read: int = 0  # batches whose requests were written this run
    files_read: int = 0
    bytes_read: int = 0
    files_gone: int = 0  # the API answered 404 (expired or deleted)
    requests: int = 0  # request rows written
    batches_pending: int = 0  # left for the next run (budget or a failure), with ...
    bytes_pending: int = 0  # ... this many bytes of files (as the API describes them)
    files_failed: int = 0  # failed after retries this run: their batch is pending
    too_old: int = 0  # finished longer ago than files are kept: not asked for
    seconds: float = 0.0  # from the first file request to the last byte parsed

    @property
    def wrote_rows(self) -> bool:
        return bool(self.batches_read or self.batches_pending or self.files_gone)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0


__all__ = ["LedgerCounts"]
