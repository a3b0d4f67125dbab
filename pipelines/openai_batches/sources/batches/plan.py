"""Which batches a run must read, and with which requests.

The list endpoint is newest first and has no filters, so a run pages from the head until it has
passed what the last run already had. OpenAI does not document the order, and the recorded real page
shows ids whose creation stamp differs from `created_at` by up to a second: batches created close
together are not strictly in `created_at` order, and one can become visible in the list a little after
later ones. So a run does not stop at the newest batch it loaded before (the watermark) but pages on
through a lookback window below it (`lookback_seconds`, default 15 minutes) and loads every batch in
the window whose id it has not loaded yet; the ids loaded inside the window are kept for that. A run
with nothing new still costs one request while fewer than a page (100) of batches were created in the
window. A batch that becomes visible more than the window below the watermark is not found by
incremental runs (`load --full-refresh` finds it).

Batches that were still open at the last run can be anywhere further down; each is brought up to
date either by paging on or by one `GET /batches/{id}`, whichever costs fewer requests. Positions in
the list remembered from the last run give the estimate; ids and creation times decide what was
actually found, so a wrong estimate costs requests, never data. A batch the API answers 404 for stays
open (and is asked for again next run) until it is confirmed gone: paging went past where it must be,
or it was missing on `GONE_AFTER_MISSES` runs in a row.

The plan is every provider's: each list is newest first and continues after the last id of a page. What it
reads of a batch object (when it was created, whether it is still open, the page size) is the provider's
`Shape`: OpenAI's below, Anthropic's in sources/anthropic/shape.py.

Only sane creation times steer the plan: an integer between 2023 and the API's own "now" (its `Date`
header) plus a small tolerance. A value in the future (clock skew, milliseconds), null or text still
loads, with a warning, but never moves the watermark or ends paging.

State kept per project (dlt resource state, committed with the loaded data; no `after` cursor ever):
    {"version": 2, "watermark": created_at, "recent": {id: created_at}, "odd": [ids],
     "open": {id: [created_at or None, position, misses]}, "gone": [ids]}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ... import settings
from ...client.paging import Page
from ...client.seen import SeenIds
from .counts import BatchCounts

log = logging.getLogger(__name__)

STATE_VERSION = 2


@dataclass
class OpenBatch:
    created: int | None  # None when the API's created_at is not a usable time
    position: int  # place in the list (from the head) when last seen or estimated
    misses: int = 0  # runs in a row the API answered 404 for it


@dataclass
class ProjectState:
    """What one project's last successful run left for the next one."""

    watermark: int | None = None  # newest sane created_at loaded
    recent: dict[str, int] = field(default_factory=dict)  # ids loaded with created_at in the lookback window
    odd: list[str] = field(default_factory=list)  # ids loaded whose created_at is not a usable time
    open: dict[str, OpenBatch] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)  # confirmed gone (kept to notice one coming back)

    @classmethod
    def load(cls, raw: Mapping[str, Any] | None) -> ProjectState | None:
        """The state of an earlier run (this version's or the previous one's), None for none."""
        if not raw:
            return None
        if raw.get("version") == STATE_VERSION:
            return cls(
                watermark=None if raw.get("watermark") is None else int(raw["watermark"]),
                recent={str(k): int(v) for k, v in (raw.get("recent") or {}).items()},
                odd=[str(i) for i in raw.get("odd") or []],
                open={
                    str(k): OpenBatch(_opt_int(v[0]), int(v[1]), int(v[2])) for k, v in (raw.get("open") or {}).items()
                },
                gone=[str(i) for i in raw.get("gone") or []],
            )
        # Version 1: {"watermark": [created_at, id], "watermark_ids": [...], "open": {id: [created_at, position]}}.
        watermark = raw.get("watermark")
        if not watermark:
            return None
        created = int(watermark[0])
        return cls(
            watermark=created,
            recent={str(i): created for i in raw.get("watermark_ids") or [watermark[1]]},
            open={str(k): OpenBatch(int(v[0]), int(v[1])) for k, v in (raw.get("open") or {}).items()},
        )

    def dump(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "watermark": self.watermark,
            "recent": dict(sorted(self.recent.items())),
            "odd": self.odd,
            "open": {k: [o.created, o.position, o.misses] for k, o in sorted(self.open.items())},
            "gone": self.gone,
        }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def sane_created(item: Mapping[str, Any], latest: float) -> int | None:
    """`created_at` as epoch seconds when it can be a real creation time, else None.

    `latest` is the newest believable value (the API's clock plus a tolerance). Numeric strings and
    integral floats count (the loader coerces them the same way); booleans, text, fractions, values
    before 2023 or after `latest` do not."""
    value = item.get("created_at")
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    return believable(int(number), latest)


def believable(created: int, latest: float) -> int | None:
    """`created` (epoch seconds) when it can be a real batch's creation time: after 2023, not after `latest`."""
    return created if settings.MIN_CREATED_AT <= created <= latest else None


def _openai_open(item: Mapping[str, Any]) -> bool:
    return settings.is_open(item.get("status"))


@dataclass(frozen=True)
class Shape:
    """What the plan reads of one provider's batch objects: when a batch was created (epoch seconds, None when
    the value is not a believable time; `latest` as `sane_created` takes it), whether it is still open, and
    how many batches a list page holds. The plan is the same for every provider; only this differs."""

    created: Callable[[Mapping[str, Any], float], int | None]
    is_open: Callable[[Mapping[str, Any]], bool]
    page_limit: int


# OpenAI's batches: `created_at` in epoch seconds, `status` (settings.is_open), pages of 100.
OPENAI_SHAPE = Shape(created=sane_created, is_open=_openai_open, page_limit=settings.PAGE_LIMIT)


def latest_believable(server_time: float | None, now: float) -> float:
    """The newest creation time a batch can have: the API's own clock (its `Date` header) plus a
    tolerance, or, without that header, this machine's clock plus a day (which still catches
    milliseconds and wildly wrong values)."""
    if server_time is not None:
        return server_time + settings.CREATED_AT_TOLERANCE_S
    return now + 86_400


@dataclass
class PageDecision:
    """What a run does with one page: the items to load, in list order."""

    load: list[dict[str, Any]]


@dataclass
class Gone:
    batch_id: str
    reason: str  # "paged past", "missing N runs in a row" or UNLISTED


# The reason of a batch a complete listing no longer holds (SyncPlan.mark_unlisted).
UNLISTED = "not listed by a full refresh"


class SyncPlan:
    """Observes pages in order and decides: load this batch? fetch another page? what is left to GET?

    Built once the first page is known (the project, hence the previous state, comes from its
    `openai-project` header). Not thread-safe, and needs not be: the paginator (client/paging.py) asks
    `observe` and `wants_next` in the thread that consumes pages, the rest is asked after paging ended."""

    def __init__(
        self,
        previous: ProjectState | None,
        *,
        lookback: int = settings.DEFAULT_LOOKBACK_S,
        latest: float,
        page_limit: int | None = None,
        warn_odd: bool = True,
        shape: Shape = OPENAI_SHAPE,
    ) -> None:
        self.shape = shape
        self.previous = previous
        self.lookback = max(0, int(lookback))
        self.latest = latest
        self.page_limit = page_limit or shape.page_limit
        self.warn_odd = warn_odd
        self.counts = BatchCounts()
        self.position = 0  # items traversed from the head: the one position counter of a run
        self.seen = SeenIds()
        self.targets: dict[str, OpenBatch] = dict(previous.open) if previous else {}
        self.floor: int | None = (
            previous.watermark - self.lookback if previous and previous.watermark is not None else None
        )
        self._recent_before = previous.recent if previous else {}
        self._odd_before = set(previous.odd) if previous else set()
        self._gone_before = set(previous.gone) if previous else set()
        self.tail: list[int] = []  # the last two sane created_at values seen, in list order
        self.head_done = previous is None  # a backfill has no window to pass: everything is read
        self.new_in_head = 0  # batches loaded before the window was passed: how far old positions moved
        self.paging_targets: set[str] | None = None
        self.found: dict[str, int] = {}  # target id -> position where it was seen
        self.passed: set[str] = set()  # targets paging went past without seeing them
        # What the next run needs, built as items are loaded.
        self.watermark = previous.watermark if previous else None
        self.recent: dict[str, int] = {}
        self.odd: list[str] = []
        self.open_now: dict[str, OpenBatch] = {}
        self.gone_now: list[Gone] = []
        self.back: list[str] = []  # ids confirmed gone earlier that the API returns again

    # --- paging -------------------------------------------------------------------------------
    def observe(self, page: Page) -> PageDecision:
        """Classify one page's items (in list order); call `wants_next` afterwards."""
        ids = [str(item["id"]) for item in page.data]
        fresh = self.seen.add_new(ids)
        load: list[dict[str, Any]] = []
        for item, batch_id, first_sighting in zip(page.data, ids, fresh, strict=True):
            created = self.shape.created(item, self.latest)
            if created is not None:
                self.tail = [*self.tail[-1:], created]
            if batch_id in self.targets and batch_id not in self.found:
                self.found[batch_id] = self.position
            if first_sighting and self._wanted(batch_id, created):
                if created is None and self.warn_odd:
                    log.warning(
                        "batch %s: created_at=%r is not a plausible creation time; loaded, but not used to "
                        "decide what later runs read",
                        batch_id,
                        _short(item.get("created_at")),
                    )
                self._record(item, batch_id, created, self.position)
                load.append(item)
            self.position += 1
        if not self.head_done and self.floor is not None and self._tail_below(self.floor):
            self.head_done = True
        return PageDecision(load)

    def _tail_below(self, bound: int) -> bool:
        """True once the last two sane creation times are below `bound`: the list has moved past it.
        Two, so that one out-of-place value cannot end paging early."""
        return len(self.tail) == 2 and all(c < bound for c in self.tail)

    def wants_next(self, page: Page) -> bool:
        """Whether the page after `page` is needed (called after `observe(page)`)."""
        if not self.head_done:
            return True
        if self.previous is None:
            return True  # backfill: everything
        if self.paging_targets is None:
            self.paging_targets = self._choose_paging_targets()
        pending = [t for t in self.paging_targets if t not in self.found and t not in self.passed]
        for target in pending:
            created = self.targets[target].created
            if created is not None and self._tail_below(created - self.lookback):
                self.passed.add(target)  # the list went past where it must be without showing it
        return any(t not in self.found and t not in self.passed for t in self.paging_targets)

    def _estimated_position(self, batch_id: str) -> int:
        return self.targets[batch_id].position + self.new_in_head

    def _choose_paging_targets(self) -> set[str]:
        """Page on down to depth d, GET the rest: pick the d with the fewest requests in total."""
        self.new_in_head = self.counts.new
        remaining = sorted(
            (max(self._estimated_position(t), self.position), t)
            for t, o in self.targets.items()
            if t not in self.found and o.created is not None
        )
        # Targets without a usable creation time are always read by id: paging cannot know where they are.
        best_cost, best_count = len(remaining), 0  # all by GET
        for i, (pos, _) in enumerate(remaining):
            pages = math.ceil((pos - self.position + 1) / self.page_limit)
            cost = pages + len(remaining) - (i + 1)
            if cost < best_cost:
                best_cost, best_count = cost, i + 1
        return {t for _, t in remaining[:best_count]}

    # --- what to load -------------------------------------------------------------------------
    def _wanted(self, batch_id: str, created: int | None) -> bool:
        if self.previous is None or batch_id in self.targets:
            return True
        if created is None:
            return batch_id not in self._odd_before
        assert self.floor is not None or self.previous.watermark is None
        if self.floor is None or created >= self.floor:
            return batch_id not in self._recent_before
        return False  # below the window: loaded by an earlier run

    def is_new(self, batch_id: str, created: int | None) -> bool:
        """Whether the previous run had not loaded this batch as it is now: not loaded at all, or open then
        (what an incremental run loads). `created` as the plan's shape reads it."""
        return self._wanted(batch_id, created)

    def leftovers(self) -> list[str]:
        """Open batches that paging did not show: to be read one by one. Those the list went past
        (the last creation times seen are below theirs by more than the window) are noted, so that a
        404 for them confirms they are gone at once."""
        missing = [t for t in self.targets if t not in self.found]
        for target in missing:
            created = self.targets[target].created
            if created is not None and self._tail_below(created - self.lookback):
                self.passed.add(target)
        return missing

    def mark_unlisted(self, known: Sequence[str]) -> None:
        """After a complete listing (a full refresh, paged to the end): each id of `known` (loaded by earlier
        runs, not gone) that the list no longer holds is gone, `not listed by a full refresh`. Anthropic
        deletes a batch only after it ended, and no incremental run looks at an ended batch again: a full
        listing is the one way to notice it."""
        unlisted = [i for i, new in zip(known, self.seen.add_new(list(known)), strict=True) if new]
        for batch_id in unlisted:
            self.gone_now.append(Gone(batch_id, UNLISTED))
            self.counts.gone += 1
        if unlisted:
            log.warning(
                "%d batches loaded earlier are no longer listed (deleted): recorded as gone, kept as last loaded",
                len(unlisted),
            )

    def record_fetched(self, batch_id: str, item: Mapping[str, Any] | None) -> None:
        """The answer to `GET /batches/{id}` for a leftover: the batch, or None for a 404."""
        target = self.targets[batch_id]
        if item is not None:
            self.seen.add_new([batch_id])
            self._record(item, batch_id, self.shape.created(item, self.latest), self._estimated_position(batch_id))
            return
        misses = target.misses + 1
        if batch_id in self.passed or misses >= settings.GONE_AFTER_MISSES:
            reason = "paged past" if batch_id in self.passed else f"missing {misses} runs in a row"
            self.gone_now.append(Gone(batch_id, reason))
            self.counts.gone += 1
            log.warning("batch %s was open but the API no longer returns it (%s): recorded as gone", batch_id, reason)
        else:
            # Kept open: a single 404 (a replica lagging, a glitch) must not freeze the batch's row forever.
            self.open_now[batch_id] = OpenBatch(target.created, self._estimated_position(batch_id), misses)
            log.warning(
                "batch %s was open at the last run but the API answered 404 (%d of %d before it counts as gone)",
                batch_id,
                misses,
                settings.GONE_AFTER_MISSES,
            )

    def _record(self, item: Mapping[str, Any], batch_id: str, created: int | None, position: int) -> None:
        if batch_id in self.targets:
            self.counts.updated += 1
        else:
            self.counts.new += 1
        if batch_id in self._gone_before:
            self.back.append(batch_id)
        if created is None:
            self.odd.append(batch_id)
        elif self.watermark is None or created > self.watermark:
            self.watermark = created
        if created is not None and self.watermark is not None and created >= self.watermark - self.lookback:
            # Only the window is kept: on a backfill every other batch is below it (a million ids in a
            # dict were 150 MB of the extract's peak). The watermark only rises, so nothing kept here
            # could belong in the window that `new_state` keeps and be missing.
            self.recent[batch_id] = created
        if self.shape.is_open(item):
            self.open_now[batch_id] = OpenBatch(created, position)

    def new_state(self) -> ProjectState:
        """The state to commit with this run's data."""
        self.counts.still_open = len(self.open_now)
        floor = None if self.watermark is None else self.watermark - self.lookback
        recent = {k: v for k, v in {**self._recent_before, **self.recent}.items() if floor is None or v >= floor}
        odd = list(dict.fromkeys([*(self.previous.odd if self.previous else []), *self.odd]))
        gone = [*(g for g in (self.previous.gone if self.previous else []) if g not in self.back)]
        gone += [g.batch_id for g in self.gone_now]
        return ProjectState(
            watermark=self.watermark,
            recent=recent,
            odd=odd[-settings.MAX_ODD_IDS :],
            open=dict(self.open_now),
            gone=gone[-settings.MAX_GONE_IDS :],
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "OPENAI_SHAPE",
    "Gone",
    "OpenBatch",
    "PageDecision",
    "ProjectState",
    "SeenIds",
    "Shape",
    "BatchCounts",
    "SyncPlan",
    "believable",
    "latest_believable",
    "sane_created",
]
