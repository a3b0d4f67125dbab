"""The one paging loop of the Admin APIs (OpenAI's and Anthropic's): lists that continue after their last
item's id, and bucketed reports that continue with an opaque `next_page` cursor."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from .errors import ApiError
from .transport import ApiClient

# The response shapes (transport._has_shape) of bucketed report pages: OpenAI's (`start_time` epoch
# seconds) and Anthropic's (`starting_at` RFC 3339).
REPORT_SHAPES = ("page", "report")


class AdminPages(ApiClient):
    """`_pages`, for an ApiClient subclass that names its list cursor (`LIST_AFTER`) and the hint appended
    to a refusal of its key (`REFUSED_HINT`)."""

    # The list's cursor parameter; its value is the previous page's last item's id.
    LIST_AFTER = "after"
    # Appended to a 401/403: the usual cause is a key of another kind given as the admin key.
    REFUSED_HINT = ""

    def _pages(self, path: str, params: Mapping[str, Any], *, expect: str) -> Iterator[dict[str, Any]]:
        """Each page of ``path``, following the list cursor (`expect="list"`) or `next_page` (bucketed
        pages) until `has_more` is false. A cursor the API repeats would loop forever: refused."""
        query: dict[str, Any] = dict(params)
        used: set[str] = set()
        while True:
            what = f"GET {self.shown_base}{path}"
            body, _ = self._get(path, query, what, expect)
            yield body
            if not body.get("has_more"):
                return
            name, cursor = self._next_cursor(body, expect)
            if cursor is None:  # a list that says "more" with no item to continue after
                raise ApiError(what, message="has_more is true but the page has no data")
            if cursor in used:
                raise ApiError(
                    f"{what}?{name}={self.redactor.clean(cursor, 80)}",
                    message="the API returned the same cursor twice (paging does not advance); stopping",
                )
            used.add(cursor)
            query[name] = cursor

    def _next_cursor(self, body: Mapping[str, Any], expect: str) -> tuple[str, str | None]:
        if expect in REPORT_SHAPES:
            cursor = body.get("next_page")
            return "page", cursor if isinstance(cursor, str) and cursor else None
        data: Sequence[Mapping[str, Any]] = body.get("data") or []
        return self.LIST_AFTER, (str(data[-1]["id"]) if data else None)

    def _get(self, path: str, params: dict[str, Any], what: str, expect: str) -> tuple[dict[str, Any], httpx.Response]:
        try:
            return super()._get(path, params, what, expect)
        except ApiError as e:
            if e.status in (401, 403):
                e.message += self.REFUSED_HINT
                e.args = (str(e),)
            raise


__all__ = ["REPORT_SHAPES", "AdminPages"]
