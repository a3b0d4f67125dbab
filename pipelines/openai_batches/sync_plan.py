"""Which batches a run must read, and with which requests.

The list endpoint is newest first and has no filters, so a run pages from the head until it
reaches what the last run already had (the watermark). Batches that were still open at the last
run can be anywhere further down; each is brought up to date either by paging on or by one
`GET /batches/{id}`, whichever costs fewer requests. Positions in the list remembered from the last
run give the estimate; ids and creation times decide what was actually found, so a wrong estimate
costs requests, never data.

State kept per project (in dlt's resource state, which commits with the loaded data):
    {"watermark": [created_at, id], "watermark_ids": [ids created in that same second],
     "open": {id: [created_at, position], ...}}
The list is ordered by creation time only to the second, so a batch created in the watermark's
second can sort below it; `watermark_ids` tells those apart from batches already loaded.
No `after` cursor is ever stored: every run starts at the head.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import settings
from .helpers import Page

StateLookup = Callable[[Page], Mapping[str, Any] | None]


@dataclass
class SyncCounts:
    new: int = 0  # batches created since the last run (everything on a backfill)
    updated: int = 0  # batches open at the last run, read again
    still_open: int = 0  # batches not terminal after this run
    gone: int = 0  # open batches the API no longer returns (404)


@dataclass
class SyncPlan:
    """Observes pages in order and answers: load this batch? fetch another page? what is left to GET?

    `previous` is looked up when the first page arrives, because the project a key belongs to is
    only known from the first response's `openai-project` header."""

    lookup_previous: StateLookup
    page_limit: int = settings.PAGE_LIMIT
    counts: SyncCounts = field(default_factory=SyncCounts)

    def __post_init__(self) -> None:
        self.started = False
        self.watermark: tuple[int, str] | None = None
        self.watermark_ids: set[str] = set()
        self.head_ids: set[str] = set()  # ids created in the same second as this run's head
        self.targets: dict[str, tuple[int, int]] = {}  # open at the last run: id -> (created_at, position)
        self.position = 0  # items traversed so far from the head
        self.head_done = False
        self.new_before_watermark = 0  # items ahead of the watermark: shift of every old position
        self.paging_targets: set[str] | None = None
        self.found: dict[str, int] = {}  # target id -> position where it was seen
        self.loaded = TakenIds()  # every batch to load, by id (a backfill's million ids in a few MB)
        self.loaded_targets: set[str] = set()  # the targets among them
        self.open_now: dict[str, tuple[int, int]] = {}
        self.head: tuple[int, str] | None = None

    # --- paging -------------------------------------------------------------------------------
    def wants_next(self, page: Page) -> bool:
        """Called for every page, in order, before the next one is requested."""
        if not self.started:
            self._start(page)
        oldest_on_page: int | None = None
        for item in page.data:
            created = _created(item)
            batch_id = str(item["id"])
            if self.head is None:
                self.head = (created, batch_id)
            if created == self.head[0]:
                self.head_ids.add(batch_id)
            oldest_on_page = created if oldest_on_page is None else min(oldest_on_page, created)
            if batch_id in self.targets and batch_id not in self.found:
                self.found[batch_id] = self.position
            if self.watermark is not None and not self.head_done and created < self.watermark[0]:
                self.head_done = True
                self.new_before_watermark = self.position
            self.position += 1
        if self.watermark is None:
            return True  # backfill: everything
        if not self.head_done:
            return True
        if self.paging_targets is None:
            self.paging_targets = self._choose_paging_targets()
        pending = [self.targets[t][0] for t in self.paging_targets if t not in self.found]
        if not pending:
            return False
        # Passed the oldest of them without seeing it: the list changed under us; GET it instead.
        return oldest_on_page is None or oldest_on_page >= min(pending)

    def _start(self, page: Page) -> None:
        self.started = True
        previous = self.lookup_previous(page)
        if previous and previous.get("watermark"):
            created, batch_id = previous["watermark"]
            self.watermark = (int(created), str(batch_id))
            self.watermark_ids = {str(i) for i in previous.get("watermark_ids") or [batch_id]}
            self.targets = {str(k): (int(v[0]), int(v[1])) for k, v in (previous.get("open") or {}).items()}

    def _estimated_position(self, batch_id: str) -> int:
        return self.targets[batch_id][1] + self.new_before_watermark

    def _choose_paging_targets(self) -> set[str]:
        """Page on down to depth d, GET the rest: pick the d with the fewest requests in total."""
        remaining = sorted(
            (max(self._estimated_position(t), self.position), t) for t in self.targets if t not in self.found
        )
        best_cost, best_count = len(remaining), 0  # all by GET
        for i, (pos, _) in enumerate(remaining):
            pages = math.ceil((pos - self.position + 1) / self.page_limit)
            cost = pages + len(remaining) - (i + 1)
            if cost < best_cost:
                best_cost, best_count = cost, i + 1
        return {t for _, t in remaining[:best_count]}

    # --- what to load -------------------------------------------------------------------------
    def should_load(self, item: Mapping[str, Any], position: int) -> bool:
        """New batches and the ones open at the last run; never twice."""
        batch_id = str(item["id"])
        created = _created(item)
        if self.loaded.taken(created, batch_id):
            return False  # the same item on two pages: keep the first, newer sighting
        wanted = (
            self.watermark is None
            or batch_id in self.targets
            or created > self.watermark[0]
            or (created == self.watermark[0] and batch_id not in self.watermark_ids)
        )
        if wanted:
            self._record(item, position)
        return wanted

    def leftovers(self) -> list[str]:
        """Open batches that paging did not reach: to be read one by one."""
        return [t for t in self.targets if t not in self.loaded_targets]

    def record_fetched(self, batch_id: str, item: Mapping[str, Any] | None) -> None:
        if item is None:
            self.counts.gone += 1
            return
        self._record(item, self._estimated_position(batch_id))

    def _record(self, item: Mapping[str, Any], position: int) -> None:
        batch_id = str(item["id"])
        self.loaded.take(_created(item), batch_id)
        if batch_id in self.targets:
            self.loaded_targets.add(batch_id)
            self.counts.updated += 1
        else:
            self.counts.new += 1
        if item.get("status") not in settings.TERMINAL_STATUSES:
            self.open_now[batch_id] = (_created(item), position)

    def new_state(self) -> dict[str, Any]:
        """The state to commit with this run's data."""
        self.counts.still_open = len(self.open_now)
        watermark: tuple[int, str] | None
        if self.head is not None:
            watermark, ids = self.head, set(self.head_ids)
            if self.watermark is not None and self.watermark[0] == self.head[0]:
                ids |= self.watermark_ids
        else:
            watermark, ids = self.watermark, self.watermark_ids
        return {
            "watermark": list(watermark) if watermark else None,
            "watermark_ids": sorted(ids),
            "open": {k: [c, p] for k, (c, p) in self.open_now.items()},
        }


class TakenIds:
    """The ids a run already took, answering "taken?" exactly in 8 bytes per id instead of a set of strings
    (~150 MB for a million-batch backfill, the bulk of the loader's growth with history).

    Pages arrive newest first, so almost every item sorts below everything taken so far and cannot
    have been taken: that needs only the lowest (created_at, id) taken. Ties within that second are
    checked against the ids of that second. Anything else (an item out of order, which a consistent
    API never sends) is checked against 64-bit hashes of every taken id, as a set built on first use;
    two ids of one run sharing a 64-bit hash is a chance of about 1e-8 per million-batch run.
    Assumes a batch's created_at never changes, which the API guarantees (it is the creation time)."""

    def __init__(self) -> None:
        self._low: tuple[int, str] | None = None  # the lowest (created_at, id) taken
        self._low_second: set[str] = set()  # taken ids created in the second of `_low`
        self._hashes = array("q")
        self._hash_set: set[int] | None = None  # built only when an item arrives out of order

    def __len__(self) -> int:
        return len(self._hashes)

    def taken(self, created: int, batch_id: str) -> bool:
        if self._low is None or (created, batch_id) < self._low:
            return False
        if created == self._low[0]:
            return batch_id in self._low_second
        if self._hash_set is None:
            self._hash_set = set(self._hashes)
        return hash(batch_id) in self._hash_set

    def take(self, created: int, batch_id: str) -> None:
        digest = hash(batch_id)
        self._hashes.append(digest)
        if self._hash_set is not None:
            self._hash_set.add(digest)
        if self._low is None or created < self._low[0]:
            self._low, self._low_second = (created, batch_id), {batch_id}
            return
        if created == self._low[0]:
            self._low_second.add(batch_id)
            self._low = min(self._low, (created, batch_id))


def _created(item: Mapping[str, Any]) -> int:
    value = item.get("created_at")
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
