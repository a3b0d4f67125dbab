"""The request ledger's budget of bytes per run for batches whose size is known only once read."""

from __future__ import annotations


class ReadBudget:
    """The run's budget of bytes (`max_mb`) for batches of unknown size (Anthropic results): a download
    starts while the bytes read so far, those of the batches admitted by size, and an estimate for each
    download under way stay within the budget. The estimate is the bytes per request read so far in this
    run times the batch's requests; before any is known, one download at a time. The first batch of the
    run always starts, so a batch larger than the budget is not put off forever."""

    def __init__(self, max_bytes: int, sized: int) -> None:
        self.max_bytes = max_bytes
        self.used = sized  # bytes of batches admitted by their size, and read by those of unknown size
        self.under_way: list[int] = []  # requests of the downloads of unknown size under way
        self.read_requests = 0
        self.read_bytes = 0

    def may_start(self, requests: int, *, first: bool) -> bool:
        """Whether a download of a batch of `requests` requests may start now (`first`: the run's first
        batch); if so it counts as under way."""
        if not first:
            if self.read_requests == 0:
                if self.under_way or self.used >= self.max_bytes:
                    return False
            else:
                rate = self.read_bytes / self.read_requests
                if self.used + rate * (sum(self.under_way) + requests) > self.max_bytes:
                    return False
        self.under_way.append(requests)
        return True

    def read(self, requests: int, size: int) -> None:
        """A download under way ended having read `size` bytes (0: it failed, or was answered 404)."""
        self.under_way.remove(requests)
        self.used += size
        if size:
            self.read_requests += requests
            self.read_bytes += size


__all__ = ["ReadBudget"]
