"""Paging a batch list: a page, and the loop that follows the cursor (the last item's id) one page ahead."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .. import settings
from .errors import ApiError

T = TypeVar("T")


@dataclass
class Page:
    data: list[dict[str, Any]]
    has_more: bool
    project: str | None  # the `openai-project` response header: whose batches these are
    server_time: float | None = None  # the response's `Date` header (epoch seconds): the API's "now"


class Lister(Protocol):
    """What the pager needs of a client (BatchesClient, AnthropicClient): the page after a batch id, and the
    one-line name of that request."""

    def list_page(self, after: str | None = None) -> Page: ...

    def list_what(self, after: str | None) -> str: ...


def iter_pages(
    client: Lister,
    first: Page,
    observe: Callable[[Page], tuple[T, bool]],
    prefetch: int = settings.PREFETCH_PAGES,
) -> Iterator[tuple[Page, T]]:
    """`first` (the head page, already fetched), then every following list page, cursor `after` = the
    last item's id; each with what `observe` made of it.

    `observe(page)` returns (what to hand the caller, whether the next page is needed). It sees every
    page, `first` included, and runs in the fetching thread, in page order, before the next request, so
    no request is made that the caller would not use. Paging stops after a page with `has_more` false or
    one `observe` needs nothing after. The next page is fetched while the caller processes the current
    one, which hides local work behind network latency."""
    pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, prefetch))
    closing = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not closing.is_set():
            try:
                pages.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        page = first
        used_cursors: set[str] = set()
        try:
            while not closing.is_set():
                seen, wanted = observe(page)  # always: the caller observes every page, the last included
                more = bool(page.data) and page.has_more and wanted
                if not put("page", (page, seen)) or not more:
                    return
                cursor = page.data[-1]["id"]
                if cursor in used_cursors:
                    raise ApiError(
                        client.list_what(cursor),
                        message="the API returned the same cursor twice (paging does not advance); stopping",
                    )
                used_cursors.add(cursor)
                page = client.list_page(after=cursor)
        except BaseException as e:  # handed to the consumer, which re-raises it in its own thread
            put("error", e)
        finally:
            put("end", None)

    worker = threading.Thread(target=fetch, name="openai-batches-pager", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = pages.get()
            if kind == "page":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        closing.set()
        worker.join(timeout=5)
