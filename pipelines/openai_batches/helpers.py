"""HTTP access to the Batches API: one client, one retry policy, one paging loop.

The same code talks to api.openai.com, to any compatible gateway and to the built-in simulator;
only the base URL and the key differ.
"""

from __future__ import annotations

import email.utils
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from . import settings

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request that failed for good. `str()` is the one line a person on call needs:
    what failed, the HTTP status, the API's own message and the `x-request-id` to quote to support."""

    def __init__(
        self,
        what: str,
        *,
        status: int | None = None,
        message: str = "",
        request_id: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.what = what
        self.status = status
        self.message = message
        self.request_id = request_id
        self.code = code
        self.retry_after = retry_after
        self.attempts = 1
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.what]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.message:
            parts.append(self.message)
        line = ": ".join(parts)
        if self.attempts > 1:
            line += f" (gave up after {self.attempts} attempts)"
        if self.request_id:
            line += f" [x-request-id {self.request_id}]"
        return line


class RetryableApiError(ApiError):
    """A failure that a later attempt may not see: connection drops, timeouts, 408/409/429/5xx, bad bodies."""


@dataclass
class RetryPolicy:
    """Capped exponential backoff with jitter, server hints honoured, and a budget for the whole run.

    One instance is shared by every request of a run, so a flapping API exhausts the budget once
    instead of once per page."""

    max_attempts: int = settings.RETRY_MAX_ATTEMPTS
    initial_backoff: float = settings.RETRY_INITIAL_S
    max_backoff: float = settings.RETRY_MAX_BACKOFF_S
    max_hint: float = settings.RETRY_MAX_HINT_S
    budget_retries: int = settings.RETRY_BUDGET_RETRIES
    budget_sleep: float = settings.RETRY_BUDGET_SLEEP_S
    sleep: Callable[[float], None] = time.sleep
    retries_used: int = 0
    slept: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hint = getattr(error, "retry_after", None)
        if hint is not None and 0 <= hint <= self.max_hint:
            return float(hint)
        backoff = min(self.initial_backoff * 2 ** (state.attempt_number - 1), self.max_backoff)
        # Jitter keeps many cron jobs that failed together from retrying in lockstep.
        return backoff * (1 - 0.25 * random.random())

    def stop(self, state: RetryCallState) -> bool:
        with self._lock:
            return (
                state.attempt_number >= self.max_attempts
                or self.retries_used >= self.budget_retries
                or self.slept >= self.budget_sleep
            )

    def before_sleep(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries_used += 1
            self.slept += state.upcoming_sleep
        error = state.outcome.exception() if state.outcome else None
        log.warning("retrying in %.1fs (attempt %d): %s", state.upcoming_sleep, state.attempt_number + 1, error)


@dataclass
class Page:
    data: list[dict[str, Any]]
    has_more: bool
    project: str | None  # the `openai-project` response header: whose batches these are


def _parse_retry_after(headers: httpx.Headers) -> float | None:
    """`retry-after-ms` (OpenAI's) wins over `retry-after` (seconds or an HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # a garbled hint is no hint: the client's own backoff applies
    return max(0.0, parsed.timestamp() - time.time())


def _error_details(response: httpx.Response, secret: str) -> tuple[str, str | None]:
    """The API's own message and code from an error body; a short excerpt when it is not JSON.

    `secret` (the key) is masked wherever the server echoed it, before the excerpt is cut, so that
    neither the error nor the retry warnings logged on the way carry it, not even in part."""

    def masked(text: str) -> str:
        # A "key" of a few characters is a test stub, not a secret: masking it would garble every message.
        return text.replace(secret, "***") if len(secret) >= 8 else text

    try:
        body = response.json()
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping):
            return masked(str(error.get("message") or "")), error.get("code")
    except ValueError:
        pass
    text = " ".join(masked(response.text).split())[:120]
    return (f"non-JSON body: {text}" if text else "empty body"), None


def base_url_problem(base_url: str) -> str | None:
    """Why a base URL cannot work, or None. Configuration checks it up front (a clear exit 2 before
    anything runs) and the client again, for callers that build one directly."""
    try:
        url = httpx.URL(base_url.rstrip("/"))
        port = url.port
    except httpx.InvalidURL as e:
        return f"base URL {base_url!r} is not a valid URL ({e})"
    if url.scheme not in ("http", "https") or not url.host:
        return f"base URL {base_url!r} must start with http:// or https:// and name a host"
    if "%" in url.host or (port is not None and not 0 < port < 65536):
        return f"base URL {base_url!r} names an invalid host or port"
    return None


class BatchesClient:
    """`GET /batches` and `GET /batches/{id}` with authentication, retries and request counting."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = settings.DEFAULT_BASE_URL,
        organization: str | None = None,
        project: str | None = None,
        timeout: float = settings.READ_TIMEOUT_S,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not api_key:
            raise ApiError("no API key configured (set OPENAI_API_KEY or sources.openai_batches.api_key)")
        if problem := base_url_problem(base_url):
            raise ApiError(problem)
        base = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        self._secret = api_key
        self._base = base
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, settings.CONNECT_TIMEOUT_S)),
            follow_redirects=False,
        )
        self.retry = retry or RetryPolicy()
        self.requests_made = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BatchesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_page(self, after: str | None = None, limit: int = settings.PAGE_LIMIT) -> Page:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        what = f"GET {self._base}/batches" + (f"?after={after}" if after else "")
        body, response = self._get("/batches", params, what, expect="list")
        return Page(
            data=body["data"],
            has_more=bool(body.get("has_more")),
            project=response.headers.get("openai-project"),
        )

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as it is now, or None when the API no longer knows it (404)."""
        try:
            body, _ = self._get(f"/batches/{batch_id}", {}, f"GET {self._base}/batches/{batch_id}", expect="batch")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return body

    def _get(self, path: str, params: dict[str, Any], what: str, expect: str) -> tuple[dict[str, Any], httpx.Response]:
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableApiError),
            wait=self.retry.wait,
            stop=self.retry.stop,
            before_sleep=self.retry.before_sleep,
            sleep=self.retry.sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, path, params, what, expect)
        except ApiError as e:
            if isinstance(e, RetryableApiError):
                e.attempts = retrying.statistics.get("attempt_number", 1)
                e.args = (str(e),)  # the one line, now with the attempts
            raise e from None

    def _attempt(
        self, path: str, params: dict[str, Any], what: str, expect: str
    ) -> tuple[dict[str, Any], httpx.Response]:
        with self._count_lock:
            self.requests_made += 1
        try:
            response = self._http.get(self._base + path, params=params)
        except httpx.TimeoutException as e:
            raise RetryableApiError(what, message=f"timed out ({type(e).__name__})") from None
        except httpx.UnsupportedProtocol as e:
            raise ApiError(what, message=f"unsupported URL: {e}") from None
        except httpx.TransportError as e:
            raise RetryableApiError(what, message=f"connection failed: {e or type(e).__name__}") from None
        request_id = response.headers.get("x-request-id")
        if response.status_code >= 400:
            self._raise_for_status(response, what, request_id)
        try:
            body = response.json()
        except ValueError:
            message, _ = _error_details(response, self._secret)
            raise RetryableApiError(what, status=response.status_code, message=message, request_id=request_id) from None
        if not _has_shape(body, expect):
            raise RetryableApiError(
                what,
                status=response.status_code,
                message=f"unexpected response body (not a {expect} object)",
                request_id=request_id,
            )
        return body, response

    def _raise_for_status(self, response: httpx.Response, what: str, request_id: str | None) -> None:
        status = response.status_code
        message, code = _error_details(response, self._secret)
        retryable = (
            status in settings.RETRYABLE_STATUSES or status >= 500
        ) and code not in settings.NON_RETRYABLE_CODES
        should_retry = response.headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        error_type = RetryableApiError if retryable else ApiError
        raise error_type(
            what,
            status=status,
            message=message,
            request_id=request_id,
            code=code,
            retry_after=_parse_retry_after(response.headers),
        )


def _has_shape(body: Any, expect: str) -> bool:
    if not isinstance(body, dict):
        return False
    # A batch without a string id can be neither merged nor used as a cursor: the page is refused.
    if expect == "list":
        return isinstance(body.get("data"), list) and all(_has_id(b) for b in body["data"])
    return _has_id(body)


def _has_id(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), str) and bool(item["id"])


def iter_pages(
    client: BatchesClient,
    wants_next: Callable[[Page], bool],
    prefetch: int = settings.PREFETCH_PAGES,
) -> Iterator[Page]:
    """Every list page from the head (newest first), cursor `after` = the last item's id.

    Stops after a page with `has_more` false, an empty page, or one after which `wants_next`
    says no. `wants_next` sees every page and runs in the fetching thread, in page order, before the next request,
    so no request is made that the caller would not use. The next page is fetched while the
    caller processes the current one, which hides local work behind network latency."""
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
        after: str | None = None
        used_cursors: set[str] = set()
        try:
            while not closing.is_set():
                page = client.list_page(after=after)
                if page.has_more and not page.data:
                    # Contradictory: "more" but nothing. Asked once more in case it was a glitch; if it
                    # persists (gateways that always say has_more), it ends the list, as in the SDK.
                    log.warning("GET /batches after=%s: has_more but no data; asking again", after)
                    page = client.list_page(after=after)
                wanted = wants_next(page)  # always: the caller observes every page, the last included
                more = bool(page.data) and page.has_more and wanted
                if not put("page", page) or not more:
                    return
                cursor = page.data[-1]["id"]
                if cursor in used_cursors:
                    raise ApiError(
                        f"GET {client._base}/batches?after={cursor}",
                        message="the API returned the same cursor twice (paging does not advance); stopping",
                    )
                used_cursors.add(cursor)
                after = cursor
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
