"""Paging a batch list: a page, the cursor paginator (in the manner of dlt's rest_client paginators), and
the one loop that runs it with the next page fetched ahead."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .errors import ApiError
from .seen import SeenIds  # 8 bytes an id: a million-batch backfill in 8 MB

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# How often a wait for the page ahead wakes up, so that Ctrl-C is seen at once on every platform.
_WAKE_S = 0.5


@dataclass
class Page:
    data: list[dict[str, Any]]
    # The envelope's `has_more`; None when the API does not say (Groq's list has no `has_more`): paging then
    # goes on while pages bring batches not seen before (Paginator).
    has_more: bool | None
    project: str | None  # the `openai-project` response header: whose batches these are
    server_time: float | None = None  # the response's `Date` header (epoch seconds): the API's "now"


class Lister(Protocol):
    """What the pager needs of a client (BatchesClient, AnthropicClient): the page after a batch id, and the
    one-line name of that request."""

    def list_page(self, after: str | None = None) -> Page: ...

    def list_what(self, after: str | None) -> str: ...


class PagePlan(Protocol[T_co]):
    """What decides how far to page (sources/batches/plan.py's SyncPlan): what it makes of each page, in
    list order, and then whether the page after it is needed."""

    def observe(self, page: Page) -> T_co: ...

    def wants_next(self, page: Page) -> bool: ...


class EveryPage:
    """The plan that reads the whole list."""

    def observe(self, page: Page) -> None:
        return None

    def wants_next(self, page: Page) -> bool:
        return True


class Paginator(Generic[T]):
    """The cursor of a batch list (`after` = the last item's id), as dlt's `BasePaginator`: `next_params()`
    is the next request's query, `update_state(page)` takes a page in, `has_next_page` says whether to ask
    for another. Paging stops after an empty page, one with `has_more` false, or one after which `plan`
    needs nothing. Single-threaded: it is updated, and the plan asked, in the thread that consumes pages.

    Never a loop, whatever the server does with the cursor: a list without `has_more` (Groq's; `after` and
    `limit` possibly ignored) is paged while each page brings a batch not seen before, and ends at the first
    that does not (an ignored `after` repeats the head page: the end, one request more); a page that says
    `has_more` but brings nothing new, or a cursor the API repeats, is refused with ApiError in one line."""

    def __init__(self, plan: PagePlan[T], what: Callable[[str | None], str]) -> None:
        self.plan = plan
        self.what = what  # the request after a cursor, as an error line names it
        self.cursor: str | None = None
        self.has_next_page = True
        self._used: set[str] = set()
        self._seen = SeenIds()

    def next_params(self) -> dict[str, Any]:
        """The keyword arguments of the next `list_page` call."""
        return {"after": self.cursor} if self.cursor is not None else {}

    def update_state(self, page: Page) -> T:
        """Take `page` in: the plan observes it (its answer is returned), then decides whether to go on.
        A cursor the API repeats, or a page with `has_more` that repeats what was listed, would loop
        forever: refused with ApiError."""
        seen = self.plan.observe(page)  # always: the plan sees every page, the last included
        fresh = any(self._seen.add_new([str(item["id"]) for item in page.data]))
        if not (page.data and page.has_more is not False and self.plan.wants_next(page)):
            self.has_next_page = False
            return seen
        if not fresh and page.has_more is None:
            self.has_next_page = False  # no `has_more`, nothing new: the end of the list
            return seen
        cursor = str(page.data[-1]["id"])
        if cursor in self._used and page.has_more is None:
            # A list that ignores `after` and grew while paged (Groq's, a batch created between two requests):
            # the head again with the new batch on top, ending where the last page did. It was all read: the end.
            self.has_next_page = False
            return seen
        if cursor in self._used:
            self.has_next_page = False
            raise ApiError(
                self.what(cursor),
                message="the API returned the same cursor twice (paging does not advance); stopping",
            )
        if not fresh:
            self.has_next_page = False
            raise ApiError(
                self.what(self.cursor),
                message="has_more is true but the page repeats batches already listed (paging does not advance); "
                "stopping",
            )
        self._used.add(cursor)
        self.cursor = cursor
        return seen


def iter_pages(client: Lister, first: Page, plan: PagePlan[T]) -> Iterator[tuple[Page, T]]:
    """`first` (the head page, already fetched), then every following page the plan wants, each with what
    the plan made of it. The plan is asked about a page before the next request is made, so no request is
    made that it would not use; that request then runs on one pager thread while the caller processes the
    page, which hides local work behind network latency. Everything else runs in the caller's thread."""
    paginator = Paginator(plan, client.list_what)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="openai-batches-pager")
    try:
        page = first
        while True:
            seen = paginator.update_state(page)
            ahead = pool.submit(client.list_page, **paginator.next_params()) if paginator.has_next_page else None
            yield page, seen
            if ahead is None:
                return
            page = result(ahead)
    finally:
        # A request under way is not waited for (an interrupted run stops at once); its answer is dropped.
        pool.shutdown(wait=False, cancel_futures=True)


def result(future: concurrent.futures.Future[T]) -> T:
    """`future.result()`, waking up now and then so that a signal is handled at once on every platform."""
    while not concurrent.futures.wait([future], timeout=_WAKE_S).done:
        pass
    return future.result()
