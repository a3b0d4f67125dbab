"""The ledger's downloads on a `concurrent.futures` pool: in the items' order, or as they finish within a
bound on the work under way. The caller owns the pool and shuts it down without waiting
(`pool.shutdown(wait=False, cancel_futures=True)`): downloads see the run's stop between chunks.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from typing import TypeVar

from ...client.paging import result

T = TypeVar("T")
R = TypeVar("R")

# How often a wait for a download wakes up, so that Ctrl-C is seen at once on every platform.
_WAKE_S = 0.5


def in_order(pool: concurrent.futures.Executor, fn: Callable[[T], R], items: list[T]) -> Iterator[R | BaseException]:
    """`fn(item)` for every item, as many at once as the pool has workers; each result, or the exception
    it raised, in the items' order."""
    futures = [pool.submit(fn, item) for item in items]
    for future in futures:
        try:
            yield result(future)
        except Exception as e:  # the caller decides per item (a file that could not be described waits)
            yield e


def as_done(
    pool: concurrent.futures.Executor,
    fn: Callable[[T], R],
    items: list[T],
    *,
    at_once: int,
    weight: Callable[[T], int],
    max_weight: int,
    may_start: Callable[[T], bool] = lambda item: True,
) -> Iterator[R]:
    """`fn(item)` for every item, results as they finish; the first exception is raised (the rest are
    cancelled with the pool). An item is handed out only once the caller is done with a result (it turns
    each into rows before more are downloaded), while at most `at_once` are under way weighing at most
    `max_weight` together (one always goes): memory stays bounded by both. `may_start(item)` is asked
    before each item is handed out (it may say yes later, once results came in); items it never let start
    are not run (the caller tells them by the results it got)."""
    under_way: dict[concurrent.futures.Future[R], int] = {}
    handed = 0

    def hand_out() -> None:
        nonlocal handed
        while handed < len(items) and len(under_way) < at_once:
            heavy = weight(items[handed])
            if under_way and sum(under_way.values()) + heavy > max_weight:
                return
            if not may_start(items[handed]):
                return
            under_way[pool.submit(fn, items[handed])] = heavy
            handed += 1

    hand_out()
    while under_way:
        done, _ = concurrent.futures.wait(under_way, timeout=_WAKE_S, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            del under_way[future]
            yield future.result()
            hand_out()
