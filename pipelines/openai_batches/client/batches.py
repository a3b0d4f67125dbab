"""HTTP access to the Batches API: one client, one retry policy, one paging loop.

The same code talks to api.openai.com, to any compatible gateway and to the built-in simulator;
only the base URL and the key differ.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import queue
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpcore
import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from .. import settings
from .redact import Redactor

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    server_time: float | None = None  # the response's `Date` header (epoch seconds): the API's "now"


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


# What `json.loads` raises on a body that is not JSON it can take: nesting thousands deep (`[[[[...`)
# exhausts Python's recursion limit rather than raising a ValueError.
_NOT_JSON = (ValueError, RecursionError)

# Longest excerpt of a body that is not the expected JSON: enough to recognise an HTML error page.
_EXCERPT_CHARS = 120


def _error_details(body: bytes, redactor: Redactor) -> tuple[str, str | None]:
    """The API's own message and code from an error body; a short excerpt when it is not JSON.

    Everything goes through `redactor` (the key masked wherever the server echoed it, even in part;
    control characters and escape sequences removed; length bounded), so neither the error nor the
    retry warnings logged on the way can carry the key or forge log lines."""
    try:
        parsed = json.loads(body)
        error = parsed.get("error") if isinstance(parsed, Mapping) else None
        if isinstance(error, Mapping):
            code = error.get("code")
            return redactor.clean(error.get("message") or ""), (
                redactor.clean(code, 80) if isinstance(code, str) else None
            )
    except _NOT_JSON:
        pass
    text = redactor.clean(body.decode("utf-8", errors="replace"), _EXCERPT_CHARS)
    return (f"non-JSON body: {text}" if text else "empty body"), None


def check_api_key(key: str) -> tuple[str, str | None]:
    """The key without surrounding whitespace, and why it cannot be used (None when it can).

    A pasted key often carries a newline or a CRLF; httpx then refuses the header and puts its value,
    the whole key, in the exception. Surrounding whitespace is stripped; anything else that cannot go
    into an HTTP header is refused, and the reason never contains the key."""
    key = key.strip()
    if not key:
        return key, "the API key is empty"
    bad = [ch for ch in key if not 0x21 <= ord(ch) <= 0x7E]
    if bad:
        return key, (
            f"the API key contains {len(bad)} character(s) that cannot be sent in an HTTP header (spaces, line "
            "breaks, control or non-ASCII characters); copy the key again"
        )
    return key, None


def shown_url(url: str) -> str:
    """A URL as it may be printed: whatever could be a credential replaced, control characters gone.

    Also for URLs that do not parse as intended (`user:pw@host/v1` without a scheme parses as scheme
    `user`; `http:/user:pw@host` has no host): everything before the last `@` goes, and so does any
    query string or fragment (`?api-key=...`). Masking a little too much in an error line is harmless."""
    scheme = _SHOWN_SCHEME.match(url)
    if "@" in url:
        url = (scheme.group(0) if scheme else "") + "***@" + url.rsplit("@", 1)[1]
    for mark in "?#":
        if mark in url:
            url = url.split(mark, 1)[0] + mark + "***"
            break
    return Redactor().clean(url, 200)


_SHOWN_SCHEME = re.compile(r"^\s*https?://", re.IGNORECASE)


def base_url_problem(base_url: str) -> str | None:
    """Why a base URL cannot work, or None. Configuration checks it up front (a clear exit 2 before
    anything runs) and the client again, for callers that build one directly. No message shows a
    password the URL may carry."""
    shown = shown_url(base_url)
    try:
        url = httpx.URL(base_url.rstrip("/"))
        port = url.port
    except httpx.InvalidURL:
        return f"base URL {shown!r} is not a valid URL"
    if url.scheme not in ("http", "https") or not url.host:
        return f"base URL {shown!r} must start with http:// or https:// and name a host"
    if url.userinfo:
        # httpx would send them as Basic auth instead of the Bearer key, and every error line would
        # print them: refused, so they can be neither used nor shown.
        return (
            f"base URL {shown!r} contains a user name or password: remove them (the key goes in OPENAI_API_KEY "
            "or api_key in .dlt/secrets.toml)"
        )
    if "%" in url.host or (port is not None and not 0 < port < 65536):
        return f"base URL {shown!r} names an invalid host or port"
    if url.query or url.fragment:
        return f"base URL {shown!r} must not have a query string or fragment"
    return None


# A project header sharing this many characters with the key is the key echoed back, not a project id:
# it is never stored. (Project ids are public; a shorter common run, like the simulator's `research`
# in both `sk-sim-research` and `proj_research`, is a coincidence of names, not a leak.)
_PROJECT_SECRET_RUN = 16

# What an `openai-project` header may look like to be used as a project name (`proj_...` ids).
_PROJECT_HEADER = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def _server_time(headers: httpx.Headers) -> float | None:
    value = headers.get("date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None


class _Deadline(threading.local):
    """The instant by which the current thread's request must be done (None: no request under way)."""

    at: float | None = None


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits at most until the request's deadline.

    httpx's timeouts bound each wait for bytes, not the request: a server that sends a byte every few
    seconds, in the headers or the body, would keep a request (and the run, and its lock) alive forever."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def _bounded(self, timeout: float | None) -> float | None:
        if self._deadline.at is None:
            return timeout
        remaining = self._deadline.at - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the request's total time limit was reached")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._bounded(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._bounded(timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options), self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bound_total_time(client: httpx.Client, deadline: _Deadline) -> None:
    """Route every connection of `client` (direct and through proxies) through `_DeadlineStream`.

    httpx does not expose httpcore's network backend, so it is swapped on the connection pools of the
    client's transports (httpx < 0.29 is pinned; tests/test_hostile_api.py fails if this stops working)."""
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = _DeadlineBackend(pool._network_backend, deadline)


class BatchesClient:
    """`GET /batches` and `GET /batches/{id}` with authentication, retries and request counting.

    Every request is bounded in total time (a server that trickles bytes cannot hold a run, and its
    lock, forever), and everything shown from a response is cleaned by one `Redactor` that knows the key.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = settings.DEFAULT_BASE_URL,
        organization: str | None = None,
        project: str | None = None,
        timeout: float = settings.READ_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        other_secrets: tuple[str, ...] = (),
    ) -> None:
        if not api_key:
            raise ApiError("no API key configured (set OPENAI_API_KEY or sources.openai_batches.api_key)")
        api_key, problem = check_api_key(api_key)
        if problem:
            raise ApiError(problem)
        if problem := base_url_problem(base_url):
            raise ApiError(problem)
        base = base_url.rstrip("/")
        # Compressed answers are asked for (JSONL is 5-10x smaller on the wire) and decoded: by httpx for
        # JSON bodies, while streaming for files (_Decoded). Named, so that no other coding is advertised.
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "Accept-Encoding": ", ".join(_CODINGS),
        }
        for name, value in (("OpenAI-Organization", organization), ("OpenAI-Project", project)):
            if value:
                value = value.strip()
                if not value.isascii() or not value.isprintable():
                    raise ApiError(f"the {name} header value contains characters that cannot be sent in HTTP")
                headers[name] = value
        self.redactor = Redactor(api_key, *other_secrets)  # every configured key: a server may echo another's
        self._base = base
        self.shown_base = shown_url(base)
        self.timeout = timeout
        self._http = httpx.Client(
            headers=headers,
            # The read timeout bounds each wait for bytes; `timeout` also bounds the whole request (see _read).
            timeout=httpx.Timeout(timeout, connect=min(timeout, settings.CONNECT_TIMEOUT_S)),
            follow_redirects=False,
        )
        self._deadline = _Deadline()
        _bound_total_time(self._http, self._deadline)
        self.retry = retry or RetryPolicy()
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._warned: set[str] = set()

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
        what = f"GET {self.shown_base}/batches" + (f"?after={self.redactor.clean(after, 80)}" if after else "")
        body, response = self._get("/batches", params, what, expect="list")
        return Page(
            data=body["data"],
            has_more=bool(body.get("has_more")),
            project=self._project_header(response),
            server_time=_server_time(response.headers),
        )

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as it is now, or None when the API answers 404 for it."""
        path = "/batches/" + quote(batch_id, safe="")
        what = f"GET {self.shown_base}/batches/{self.redactor.clean(batch_id, 80)}"
        try:
            body, _ = self._get(path, {}, what, expect="batch")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        if body.get("id") != batch_id:
            raise ApiError(what, message="the API returned a different batch than the one asked for")
        return body

    def _project_header(self, response: httpx.Response) -> str | None:
        """The `openai-project` header when it looks like a project id; anything else (a value carrying
        the key, control characters, kilobytes) is not used as a name, with one warning per client."""
        value = response.headers.get("openai-project")
        if value is None:
            return None
        if _PROJECT_HEADER.match(value) and not self.redactor.contains_secret(value, _PROJECT_SECRET_RUN):
            return value
        if "project" not in self._warned:
            self._warned.add("project")
            log.warning(
                "ignoring an openai-project response header that is not a project id: %s",
                self.redactor.clean(value, 80),
            )
        return None

    def _get(self, path: str, params: dict[str, Any], what: str, expect: str) -> tuple[dict[str, Any], httpx.Response]:
        return self._with_retries(self._attempt, path, params, what, expect)

    def _with_retries(self, attempt: Callable[..., T], *args: Any) -> T:
        """`attempt(*args)` under the run's retry policy; a final failure says how many attempts it took."""
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableApiError),
            wait=self.retry.wait,
            stop=self.retry.stop,
            before_sleep=self.retry.before_sleep,
            sleep=self.retry.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt, *args)
        except ApiError as e:
            if isinstance(e, RetryableApiError):
                e.attempts = retrying.statistics.get("attempt_number", 1)
                e.args = (str(e),)  # the one line, now with the attempts
            raise e from None

    def _read(self, path: str, params: dict[str, Any]) -> tuple[httpx.Response, bytes]:
        """One request with the whole body read, within `timeout` seconds from connect to last byte."""
        self._deadline.at = time.monotonic() + self.timeout
        try:
            response = self._http.get(self._base + path, params=params)
        finally:
            self._deadline.at = None
        return response, response.content

    def _attempt(
        self, path: str, params: dict[str, Any], what: str, expect: str
    ) -> tuple[dict[str, Any], httpx.Response]:
        with self._count_lock:
            self.requests_made += 1
        with self._transport_errors(what):
            response, raw = self._read(path, params)
        request_id = self._request_id(response)
        if response.status_code >= 400:
            self._raise_for_status(response, raw, what, request_id)
        try:
            body = json.loads(raw)
        except _NOT_JSON:
            message, _ = _error_details(raw, self.redactor)
            raise RetryableApiError(what, status=response.status_code, message=message, request_id=request_id) from None
        if not _has_shape(body, expect):
            raise RetryableApiError(
                what,
                status=response.status_code,
                message=f"unexpected response body (not a {expect} object)",
                request_id=request_id,
            )
        if expect == "page" and body.get("has_more") and not body.get("next_page"):
            # The Admin API's bucketed pages: "more", but no cursor to ask for it with.
            raise RetryableApiError(
                what,
                status=response.status_code,
                message="has_more is true but next_page is missing",
                request_id=request_id,
            )
        if expect == "list" and body.get("has_more") and not body["data"]:
            # Contradictory ("more", but nothing): retried like any bad answer. Taken as the end of the list,
            # it once ended a backfill part way with the watermark at the head, losing the rest for good.
            raise RetryableApiError(
                what,
                status=response.status_code,
                message="has_more is true but the page has no data",
                request_id=request_id,
            )
        return body, response

    @contextlib.contextmanager
    def _transport_errors(self, what: str) -> Iterator[None]:
        """httpx's failures as this module's errors: timeouts and connection problems are retryable."""
        try:
            yield
        except httpx.TimeoutException as e:
            raise RetryableApiError(what, message=f"timed out ({type(e).__name__})") from None
        except httpx.UnsupportedProtocol:
            raise ApiError(what, message="unsupported URL scheme") from None
        except httpx.DecodingError as e:
            # A compressed body that does not decode (corrupt or cut gzip): a bad answer, retried like one.
            raise RetryableApiError(
                what, message=f"the body could not be decoded: {self.redactor.clean(e, 120)}"
            ) from None
        except httpx.TransportError as e:
            # httpx's own text can quote what was sent (a header value): show only its kind and cleaned text.
            raise RetryableApiError(
                what, message=f"connection failed: {type(e).__name__}: {self.redactor.clean(e, 160)}"
            ) from None

    # --- batch files (the request ledger) ---------------------------------------------------------
    def file_info(self, file_id: str) -> dict[str, Any] | None:
        """`GET /files/{id}`: the file object (`bytes`, `expires_at`, ...), or None when the API answers 404
        (the file expired or was deleted)."""
        what = f"GET {self.shown_base}/files/{self.redactor.clean(file_id, 80)}"
        try:
            body, _ = self._get("/files/" + quote(file_id, safe=""), {}, what, expect="file")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return body

    def stream_file(
        self, file_id: str, consume: Callable[[Iterator[bytes]], T], *, size: int | None = None
    ) -> T | None:
        """`GET /files/{id}/content`, streamed: `consume(chunks)` reads the body as it arrives (it is never
        held whole) and its result is returned; None when the API answers 404.

        Retried like every request; a retry calls `consume` again from the first byte, so it must start
        from nothing each time. A `Content-Encoding: gzip` (or `deflate`) body is decoded as it streams,
        and the checks apply to the right bytes: the content-length to the bytes on the wire, `size` (the
        file object's `bytes`) and the end of the compressed stream to the decoded file. A body shorter
        than `size`, one that ends before its content-length, a compressed stream that is corrupt or cut
        before its end: each is a download cut short, retried (a content-length that lies, or a
        connection closed early without one, ends the body quietly, and its last requests would be lost
        for good). The whole download is bounded in time: at any moment it may have taken `timeout` plus
        the bytes received so far (on the wire) at settings.DOWNLOAD_MIN_BYTES_PER_S. Only bytes that
        arrived extend it, never a size the server announces (a content-length of terabytes would let a
        server that trickles bytes hold the run for months), nor what they decode to."""
        what = f"GET {self.shown_base}/files/{self.redactor.clean(file_id, 80)}/content"
        path = "/files/" + quote(file_id, safe="") + "/content"
        try:
            return self._with_retries(self._stream_attempt, path, what, consume, size)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def _stream_attempt(self, path: str, what: str, consume: Callable[[Iterator[bytes]], T], size: int | None) -> T:
        with self._count_lock:
            self.requests_made += 1
        started = time.monotonic()
        self._deadline.at = started + self.timeout
        try:
            with self._transport_errors(what), self._http.stream("GET", self._base + path) as response:
                request_id = self._request_id(response)
                if response.status_code >= 400:
                    # An error body is small; a server sending megabytes instead is cut short.
                    raw = b"".join(_first_bytes(response.iter_raw(), _ERROR_BODY_MAX))
                    self._raise_for_status(response, _decoded_error(raw, response.headers), what, request_id)

                def cut(message: str) -> RetryableApiError:
                    return RetryableApiError(what, status=response.status_code, message=message, request_id=request_id)

                wire = _Paced(response.iter_raw(), self._deadline, started + self.timeout)
                coding = response.headers.get("content-encoding", "identity").strip().lower() or "identity"
                if coding not in _CODINGS and coding != "identity":
                    raise cut(
                        f"the body has a content-encoding that was not asked for ({self.redactor.clean(coding, 40)})"
                    )
                body = _Decoded(wire, coding)
                result = consume(iter(body))
                announced = response.headers.get("content-length")
                if announced is not None and announced.isdigit() and wire.received < int(announced):
                    raise cut(f"the download ended after {wire.received} of the {announced} bytes announced")
                if not body.complete:
                    raise cut(f"the {coding} stream ended before its end, after {wire.received} bytes")
                if size is not None and body.received < size:
                    raise cut(f"the download ended after {body.received} of the file's {size} bytes")
                return result
        finally:
            self._deadline.at = None

    def _request_id(self, response: httpx.Response) -> str | None:
        value = response.headers.get("x-request-id")
        return self.redactor.clean(value, 80) if value else None

    def _raise_for_status(self, response: httpx.Response, raw: bytes, what: str, request_id: str | None) -> None:
        status = response.status_code
        message, code = _error_details(raw, self.redactor)
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


class _Paced:
    """A download's chunks, each one moving its deadline on by its size at DOWNLOAD_MIN_BYTES_PER_S (from
    `base`, the start plus the request timeout); counts the bytes received."""

    def __init__(self, chunks: Iterator[bytes], deadline: _Deadline, base: float) -> None:
        self._chunks = chunks
        self._deadline = deadline
        self._base = base
        self.received = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.received += len(chunk)
            self._deadline.at = self._base + self.received / settings.DOWNLOAD_MIN_BYTES_PER_S
            yield chunk


# Content codings the client asks for and decodes (httpx's own for JSON bodies, `_Decoded` for files).
_CODINGS = ("gzip", "deflate")
# Most bytes one wire chunk decodes to at once: a small chunk of a gzip bomb expands ~1000x; the rest of
# it is decoded on the next turns, so memory stays bounded whatever the ratio.
_DECODED_CHUNK_MAX = 1 << 20


class _Decoded:
    """A body's chunks decoded from its content coding as they arrive (`identity`: as they are).

    `received` counts decoded bytes; `complete` says, once the chunks are exhausted, whether a compressed
    stream reached its end (a gzip cut short decodes quietly to a short file otherwise). A corrupt stream
    raises httpx.DecodingError, which the client retries like any bad answer."""

    def __init__(self, chunks: Iterable[bytes], coding: str) -> None:
        self._chunks = chunks
        self._coding = coding
        self.received = 0
        self.complete = coding == "identity"

    def __iter__(self) -> Iterator[bytes]:
        if self._coding == "identity":
            for chunk in self._chunks:
                self.received += len(chunk)
                yield chunk
            return
        # gzip: the gzip header (wbits 16+); deflate: zlib-wrapped as the RFC says, raw as some servers send.
        wbits = zlib.MAX_WBITS | 16 if self._coding == "gzip" else zlib.MAX_WBITS
        decoder = zlib.decompressobj(wbits)
        first = True
        try:
            for chunk in self._chunks:
                if self._coding == "deflate" and first and chunk and (chunk[0] & 0x0F) != 8:
                    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                first = first and not chunk
                data = chunk
                while data:
                    if decoder.eof:
                        # RFC 1952: a gzip body is one or more members (`cat a.gz b.gz`); stopping at the
                        # first would quietly drop the requests of the others. NUL padding after a member
                        # is ignored (as Python's gzip does); other bytes must be a member, else corrupt.
                        data = data.lstrip(b"\0") if self._coding == "gzip" else b""
                        if not data:
                            break
                        decoder = zlib.decompressobj(wbits)
                    out = decoder.decompress(data, _DECODED_CHUNK_MAX)
                    data = decoder.unused_data if decoder.eof else decoder.unconsumed_tail
                    if out:
                        self.received += len(out)
                        yield out
            out = decoder.flush()
        except zlib.error as e:
            raise httpx.DecodingError(f"corrupt {self._coding} stream ({e})") from None
        if out:
            self.received += len(out)
            yield out
        self.complete = decoder.eof


def _decoded_error(raw: bytes, headers: httpx.Headers) -> bytes:
    """An error body as text: decoded when it came compressed (only its message is wanted; a body that
    does not decode is shown as received)."""
    coding = headers.get("content-encoding", "").strip().lower()
    if coding not in _CODINGS:
        return raw
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 32 if coding == "gzip" else zlib.MAX_WBITS).decompress(
            raw, _ERROR_BODY_MAX
        )
    except zlib.error:
        return raw


# Bytes of an error response read at most (the API's error bodies are a few hundred bytes).
_ERROR_BODY_MAX = 64 * 1024


def _first_bytes(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    taken = 0
    for chunk in chunks:
        yield chunk[: limit - taken]
        taken += len(chunk)
        if taken >= limit:
            return


def _has_shape(body: Any, expect: str) -> bool:
    if not isinstance(body, dict):
        return False
    # A batch without a string id can be neither merged nor used as a cursor: the page is refused.
    if expect == "list":
        return isinstance(body.get("data"), list) and all(_has_id(b) for b in body["data"])
    if expect == "page":  # the Admin API's usage and costs: buckets, each a start time and its results
        return isinstance(body.get("data"), list) and all(_is_bucket(b) for b in body["data"])
    return _has_id(body)


# Bucket start times a day can be made of (1970 to 9999): anything else is no time, and made into a
# date it ended the run in a Python error instead of a refused page.
_BUCKET_START_MAX = 253_402_214_400  # 9999-12-31T00:00:00Z


def _is_bucket(item: Any) -> bool:
    start = item.get("start_time") if isinstance(item, dict) else None
    return (
        isinstance(start, int)
        and not isinstance(start, bool)
        and 0 <= start <= _BUCKET_START_MAX
        and isinstance(item.get("results"), list)
    )


def _has_id(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), str) and bool(item["id"])


def iter_pages(
    client: BatchesClient,
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
                        f"GET {client.shown_base}/batches?after={client.redactor.clean(cursor, 80)}",
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
