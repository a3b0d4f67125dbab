"""The paginator and the paging loop on their own, and the ledger's download pool: no HTTP, a fake
`list_page` (these run in milliseconds)."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import pytest

from openai_batches.client.errors import ApiError
from openai_batches.client.paging import EveryPage, Page, Paginator, iter_pages
from openai_batches.sources.ledger.workers import as_done, in_order

WAIT_S = 5.0  # only a broken pager waits this long


def ids(*numbers: int) -> list[dict[str, Any]]:
    return [{"id": f"batch_{n}"} for n in numbers]


class FakeList:
    """A list of `pages` (item numbers), cursor `after` = the last item's id; records every request."""

    def __init__(self, pages: list[list[int]], *, repeat: bool = False) -> None:
        self.pages = pages
        self.repeat = repeat  # answer the same page forever: the cursor never advances
        self.asked: list[str | None] = []
        self.threads: set[int] = set()
        self.asked_event = threading.Event()

    def list_page(self, after: str | None = None) -> Page:
        self.asked.append(after)
        self.threads.add(threading.get_ident())
        self.asked_event.set()
        index = 0 if after is None or self.repeat else self._after(after)
        return Page(data=ids(*self.pages[index]), has_more=self.repeat or index + 1 < len(self.pages), project=None)

    def _after(self, after: str) -> int:
        return next(i for i, page in enumerate(self.pages) if page and f"batch_{page[-1]}" == after) + 1

    def list_what(self, after: str | None) -> str:
        return f"GET /batches?after={after}"


class Plan:
    """Wants pages while fewer than `stop_after` were observed; records which thread asked it."""

    def __init__(self, stop_after: int = 10**9) -> None:
        self.stop_after = stop_after
        self.observed: list[list[str]] = []
        self.threads: set[int] = set()

    def observe(self, page: Page) -> int:
        self.threads.add(threading.get_ident())
        self.observed.append([item["id"] for item in page.data])
        return len(page.data)

    def wants_next(self, page: Page) -> bool:
        self.threads.add(threading.get_ident())
        return len(self.observed) < self.stop_after


def test_paginator_follows_the_last_id_until_has_more_is_false() -> None:
    paginator = Paginator(EveryPage(), lambda after: f"list after {after}")
    assert paginator.next_params() == {} and paginator.has_next_page
    paginator.update_state(Page(ids(3, 2), has_more=True, project=None))
    assert paginator.next_params() == {"after": "batch_2"} and paginator.has_next_page
    paginator.update_state(Page(ids(1), has_more=False, project=None))
    assert not paginator.has_next_page


def test_paginator_stops_on_an_empty_page_that_claims_more() -> None:
    paginator = Paginator(EveryPage(), str)
    paginator.update_state(Page([], has_more=True, project=None))
    assert not paginator.has_next_page


def test_the_plan_sees_every_page_and_decides_when_to_stop() -> None:
    plan = Plan(stop_after=2)
    paginator = Paginator(plan, str)
    assert paginator.update_state(Page(ids(5, 4), has_more=True, project=None)) == 2  # what the plan made of it
    assert paginator.has_next_page
    paginator.update_state(Page(ids(3), has_more=True, project=None))
    assert not paginator.has_next_page
    assert plan.observed == [["batch_5", "batch_4"], ["batch_3"]]


def test_a_repeated_cursor_is_refused_in_one_line_naming_the_request() -> None:
    paginator = Paginator(EveryPage(), lambda after: f"GET /batches?after={after}")
    paginator.update_state(Page(ids(2), has_more=True, project=None))
    with pytest.raises(ApiError, match=r"GET /batches\?after=batch_2: .*same cursor twice"):
        paginator.update_state(Page(ids(2), has_more=True, project=None))
    assert not paginator.has_next_page


def test_iter_pages_reads_every_page_and_asks_the_plan_in_the_callers_thread() -> None:
    lister = FakeList([[6, 5], [4, 3], [2, 1]])
    plan = Plan()
    seen = [(page.data[0]["id"], made) for page, made in iter_pages(lister, lister.list_page(), plan)]
    assert seen == [("batch_6", 2), ("batch_4", 2), ("batch_2", 2)]
    assert lister.asked == [None, "batch_5", "batch_3"]
    assert plan.threads == {threading.get_ident()}  # the plan is never touched from the pager thread


def test_no_request_is_made_that_the_plan_does_not_want() -> None:
    """A cron run with nothing new costs one request: the head page, and no page after it."""
    lister = FakeList([[2], [1]])
    pages = list(iter_pages(lister, lister.list_page(), Plan(stop_after=1)))
    assert len(pages) == 1 and lister.asked == [None]


def test_the_next_page_is_fetched_while_the_caller_processes_this_one() -> None:
    lister = FakeList([[2], [1]])
    first = lister.list_page()
    lister.asked_event.clear()
    pages = iter_pages(lister, first, EveryPage())
    next(pages)
    # The caller holds the first page; the second is asked for meanwhile, on another thread.
    assert lister.asked_event.wait(WAIT_S)
    assert lister.asked == [None, "batch_2"]
    assert threading.get_ident() not in lister.threads - {threading.get_ident()}
    assert len(lister.threads) == 2
    assert [p.data[0]["id"] for p, _ in pages] == ["batch_1"]


def test_a_failed_request_is_raised_in_the_callers_thread() -> None:
    class Failing(FakeList):
        def list_page(self, after: str | None = None) -> Page:
            if after is not None:
                raise ApiError("GET /batches", status=500, message="boom")
            return super().list_page(after)

    lister = Failing([[2], [1]])
    pages = iter_pages(lister, lister.list_page(), EveryPage())
    next(pages)
    with pytest.raises(ApiError, match="boom"):
        next(pages)


def test_a_repeating_api_stops_with_an_error_after_one_repeat() -> None:
    lister = FakeList([[2]], repeat=True)
    with pytest.raises(ApiError, match="same cursor twice"):
        list(iter_pages(lister, lister.list_page(), EveryPage()))
    assert lister.asked == [None, "batch_2"]


def test_in_order_gives_results_and_exceptions_in_the_items_order() -> None:
    def work(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n * 10

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        out = list(in_order(pool, work, [1, 2, 3]))
    assert out[0] == 10 and isinstance(out[1], ValueError) and out[2] == 30


def test_as_done_bounds_the_work_under_way_by_count_and_weight() -> None:
    lock = threading.Lock()
    running: list[int] = []
    peak_count = peak_weight = 0

    def work(n: int) -> int:
        nonlocal peak_count, peak_weight
        with lock:
            running.append(n)
            peak_count = max(peak_count, len(running))
            peak_weight = max(peak_weight, sum(running))
        with lock:
            running.remove(n)
        return n

    items = [5, 5, 5, 1, 1, 1, 1, 1, 20]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        out = list(as_done(pool, work, items, at_once=3, weight=lambda n: n, max_weight=10))
    assert sorted(out) == sorted(items)
    assert peak_count <= 3
    assert peak_weight <= 20  # the heavy one goes alone; the others stay within 10 together


def test_as_done_raises_the_first_error_once() -> None:
    def work(n: int) -> int:
        if n == 1:
            raise ValueError("one")
        return n

    with concurrent.futures.ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="one"):
        list(as_done(pool, work, [1], at_once=2, weight=lambda n: 0, max_weight=0))
