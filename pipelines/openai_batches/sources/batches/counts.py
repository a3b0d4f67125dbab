"""Counts of one project's run (kept apart so that importing them needs no HTTP or numpy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchCounts:
    new: int = 0  # batches not loaded before (everything on a backfill)
    updated: int = 0  # batches open at the last run, read again
    still_open: int = 0  # batches not terminal after this run
    gone: int = 0  # open batches confirmed gone (the API no longer returns them)
