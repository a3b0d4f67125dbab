"""HTTP access to the batch APIs of their own shape (issue 19): Together's (a bare JSON array, everything in one
request) and Mistral's (page numbers over `/batch/jobs`), and the key rules of these and OpenRouter's (whose list is
OpenAI's envelope: BatchesClient, batches.py). The machinery is transport.py's (the one retry policy and its run
budget, one-line errors with the request id, redaction, the total-time bound); the paging is client/paging.py's:
each client's `list_page(after)` continues after the last batch of the page before, as every list does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import quote

import orjson

from .. import settings
from .anthropic import KEY_PREFIX as ANTHROPIC_KEY_PREFIX
from .batches import BatchesClient, FilesApi
from .compatible import GROQ_KEY_PREFIX
from .errors import ApiError
from .paging import Page
from .retry import RetryPolicy
from .transport import server_time
from .urls import check_api_key

# OpenRouter's keys start with this (`sk-or-v1-...`), OpenAI's with `sk-` and anything else. Together's and
# Mistral's keys have no documented prefix: only the kinds recognisable as another provider's are refused.
OPENROUTER_KEY_PREFIX = "sk-or-"

# The setting each provider's single key is read from, as an error line names it.
KEY_SETTINGS = {
    "together": "TOGETHER_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}
_NAMES = {"together": "Together", "mistral": "Mistral", "openrouter": "OpenRouter"}
_WHERE = {
    "openai": "OPENAI_API_KEY",
    "anthropic": 'ANTHROPIC_API_KEY (or a project with provider = "anthropic")',
    "groq": 'GROQ_API_KEY (or a project with provider = "groq")',
    "openrouter": 'OPENROUTER_API_KEY (or a project with provider = "openrouter")',
}

# Batch jobs per Mistral list page: its default (the maximum is unconfirmed; a larger one might be refused or cut
# short, and `total` would still page to the end). A no-change run reads the jobs of the lookback window: one page.
MISTRAL_PAGE_SIZE = 100
MISTRAL_JOBS_PATH = "/batch/jobs"
# Result rows per page of OpenRouter's `GET /batches/{id}/results`: its maximum (1-1000), the fewest requests.
OPENROUTER_RESULTS_LIMIT = 1000

T = TypeVar("T")


def key_kind_problem(key: str, *, setting: str, provider: str) -> str | None:
    """Why `key` is recognisably another provider's than `provider`'s (one of settings.OTHER_PROVIDERS), else None.
    Only the prefix is named, never the key."""
    if key.startswith(ANTHROPIC_KEY_PREFIX):
        kind, owner = f"an Anthropic key ({ANTHROPIC_KEY_PREFIX}...)", "anthropic"
    elif key.startswith(GROQ_KEY_PREFIX):
        kind, owner = f"a Groq key ({GROQ_KEY_PREFIX}...)", "groq"
    elif key.startswith(OPENROUTER_KEY_PREFIX):
        if provider == "openrouter":
            return None
        kind, owner = f"an OpenRouter key ({OPENROUTER_KEY_PREFIX}...)", "openrouter"
    elif key.startswith("sk-"):
        kind, owner = "an OpenAI key (sk-...)", "openai"
    else:
        return None
    name = _NAMES[provider]
    return f"{setting} is {kind}, which {name} refuses: put a {name} key there and that one in {_WHERE[owner]}"


def _bearer(api_key: str, setting: str, provider: str) -> dict[str, str]:
    if not api_key:
        raise ApiError(f"no {_NAMES[provider]} API key configured (set {setting})")
    api_key, problem = check_api_key(api_key)
    if problem:
        raise ApiError(f"{setting}: {problem}")
    if problem := key_kind_problem(api_key, setting=setting, provider=provider):
        raise ApiError(problem)
    return {"Authorization": f"Bearer {api_key}"}


class TogetherClient(FilesApi):
    """`GET /batches` (every batch of the key's user, a bare JSON array: one request) and `GET /batches/{id}`; the
    request ledger reads a batch's files through `GET /files/{id}[/content]` (FilesApi: OpenAI-shaped JSONL)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = settings.OTHER_DEFAULT_BASE_URLS["together"],
        timeout: float = settings.READ_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        other_secrets: tuple[str, ...] = (),
        setting: str = KEY_SETTINGS["together"],
    ) -> None:
        headers = _bearer(api_key, setting, "together")
        api_key = headers["Authorization"].removeprefix("Bearer ")
        super().__init__(
            base_url=base_url, headers=headers, secrets=(api_key, *other_secrets), timeout=timeout, retry=retry
        )

    def list_page(self, after: str | None = None) -> Page:
        """The whole list, in one page that says it is the last (`has_more` false: paging ends at it). Sorted
        oldest first by creation time (batches without a readable one first): the order Together sends is
        undocumented, and the plan reads "the list went past an open batch" from the last times of a page, which
        a list in creation order never shows before its end; so an open batch missing from it is read by id and
        kept until it is missing on settings.GONE_AFTER_MISSES runs in a row."""
        if after is not None:
            raise ApiError(self.list_what(after), message="Together's list has no pages after the first")
        body, response = self._get("/batches", {}, self.list_what(None), expect="array")
        data = sorted(cast(list[dict[str, Any]], body), key=_created_key)
        return Page(data=data, has_more=False, project=None, server_time=server_time(response.headers))

    def list_what(self, after: str | None) -> str:
        return f"GET {self.shown_base}/batches"

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as it is now, or None when the API answers 404 for it."""
        return self._retrieve("/batches", batch_id)


def _created_key(batch: dict[str, Any]) -> tuple[int, float]:
    """Creation time as a sort key (unparseable first): the order only; the table parses the value strictly."""
    value = batch.get("created_at")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return (1, float(value))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return (0, 0.0)
        return (1, (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())
    return (0, 0.0)


class MistralClient(FilesApi):
    """`GET /batch/jobs` (page numbers, oldest first from `created_after`) and `GET /batch/jobs/{id}`; the request
    ledger reads a job's `output_file` and `error_file` through `GET /files/{id}[/content]` (FilesApi).

    The list is asked for in creation order (`order_by=created`) from `created_after` (the run's floor: the newest
    job loaded minus the lookback window; none on a backfill). Jobs created while a run pages are added at the
    end of that order, after the pages already read: page numbers cannot skip or repeat a job because of them, as
    they do on the default newest-first order (every new job moves every page down by one). Page N+1 is asked for
    after page N's last job (client/paging.py's cursor: the job id is mapped to the page number that follows
    it); `has_more` is whether `total` says jobs remain past this page."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = settings.OTHER_DEFAULT_BASE_URLS["mistral"],
        created_after: float | None = None,
        page_size: int = MISTRAL_PAGE_SIZE,
        timeout: float = settings.READ_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        other_secrets: tuple[str, ...] = (),
        setting: str = KEY_SETTINGS["mistral"],
    ) -> None:
        headers = _bearer(api_key, setting, "mistral")
        api_key = headers["Authorization"].removeprefix("Bearer ")
        super().__init__(
            base_url=base_url, headers=headers, secrets=(api_key, *other_secrets), timeout=timeout, retry=retry
        )
        self.page_size = page_size
        # A second less than the floor: whether `created_after` is strict is unconfirmed, and a job created in the
        # floor's own second must be listed either way (the plan drops what it loaded before).
        self._after = None if created_after is None else _iso(created_after - 1)
        self._next: dict[str, int] = {}  # the last job id of each page read -> the page number after it

    def list_page(self, after: str | None = None) -> Page:
        number = 0 if after is None else self._next.get(after)
        if number is None:
            raise ApiError(self.list_what(after), message="no page of this run ends at that job")
        params: dict[str, Any] = {"page": number, "page_size": self.page_size, "order_by": "created"}
        if self._after is not None:
            params["created_after"] = self._after
        body, response = self._get(MISTRAL_JOBS_PATH, params, self.list_what(after), expect="list")
        data: list[dict[str, Any]] = body["data"]
        total = body.get("total")
        has_more = None
        if isinstance(total, int) and not isinstance(total, bool):
            listed = number * self.page_size + len(data)
            # A full page past what `total` claims contradicts it: `total` lied low (it ended paging, the jobs after
            # this page never loaded); a full page then means "more" (an empty page ends it: one request more).
            has_more = listed < total or (total < listed and len(data) >= self.page_size)
        if data:
            self._next[str(data[-1]["id"])] = number + 1
        return Page(data=data, has_more=has_more, project=None, server_time=server_time(response.headers))

    def list_what(self, after: str | None) -> str:
        number = 0 if after is None else self._next.get(after, "?")
        query = f"?page={number}&order_by=created" + (f"&created_after={self._after}" if self._after else "")
        return f"GET {self.shown_base}{MISTRAL_JOBS_PATH}{query}"

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        """The job as it is now, or None when the API answers 404 for it (deleted)."""
        return self._retrieve(MISTRAL_JOBS_PATH, batch_id)


class OpenRouterClient(BatchesClient):
    """OpenRouter's batches: OpenAI's envelope and cursor (BatchesClient), and a batch's results from its own
    endpoint, `GET /batches/{id}/results` (cursor pages of result rows, `next_cursor`), for the request ledger."""

    def stream_results(self, batch_id: str, consume: Callable[[Iterator[bytes]], T]) -> T | None:
        """The batch's result rows, page after page (`cursor` = the page before's `next_cursor`), handed to
        `consume` as JSON lines as each page arrives (one page held at a time, never the whole results); its result
        is returned; None when the API answers 404 for the first page (results past their 30 days, batch deleted).

        Each page is one request under the run's retry policy (`_get`); a page that fails after it, or a cursor
        that repeats (paging that does not advance), ends the read with ApiError: the batch waits for the next run
        (its pages are stable for 30 days, so it is read again whole)."""
        path = "/batches/" + quote(batch_id, safe="") + "/results"
        what = f"GET {self.shown_base}/batches/{self.redactor.clean(batch_id, 80)}/results"
        first = True

        def lines() -> Iterator[bytes]:
            nonlocal first
            cursor: str | None = None
            cursors: set[str] = set()
            while True:
                params: dict[str, Any] = {"limit": OPENROUTER_RESULTS_LIMIT}
                if cursor is not None:
                    params["cursor"] = cursor
                body, _ = self._get(path, params, what + (f"?cursor={cursor[:40]}" if cursor else ""), "results")
                first = False
                for row in body["data"]:
                    yield orjson.dumps(row) + b"\n"
                following, more = body.get("next_cursor"), body.get("has_more")
                if following is None and more:  # "more", but no cursor to ask for it: never taken as the end
                    raise ApiError(what, message="has_more is true but next_cursor is missing")
                if following is None or more is False:
                    return
                if isinstance(following, int) and not isinstance(following, bool):
                    following = str(following)  # an offset-paged gateway's number: sent as its text
                if not isinstance(following, str):
                    raise ApiError(what, message=f"the results' next_cursor is a {type(following).__name__}")
                if following in cursors:
                    raise ApiError(what, message="the results' next_cursor repeats (paging does not advance)")
                cursors.add(following)
                cursor = following

        try:
            return consume(lines())
        except ApiError as e:
            if e.status == 404 and first:
                return None
            raise


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(max(0.0, seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "KEY_SETTINGS",
    "MISTRAL_PAGE_SIZE",
    "OPENROUTER_KEY_PREFIX",
    "MistralClient",
    "OpenRouterClient",
    "TogetherClient",
    "key_kind_problem",
]
