"""The HTTP machinery every client of an LLM batch API shares: authentication headers sent as given, the
one retry policy and its run budget (retry.py), the total-time bound (deadline.py), one-line errors with
the request id (errors.py), everything shown cleaned by one `Redactor` (redact.py), request counting, and
streamed downloads decoded from gzip/deflate as they arrive.

`ApiClient` knows no provider: BatchesClient (OpenAI, batches.py) and AnthropicClient (anthropic.py) are
its subclasses, each adding its endpoints, its key rules and its paging.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from tenacity import Retrying, retry_if_exception_type

from .. import settings
from .deadline import Deadline, Paced, bound_total_time
from .errors import NOT_JSON, ApiError, RetryableApiError, error_details
from .redact import Redactor
from .retry import RetryPolicy, parse_retry_after
from .urls import base_url_problem, shown_url

T = TypeVar("T")


def server_time(headers: httpx.Headers) -> float | None:
    """A response's `Date` header (epoch seconds): the API's "now"; None when absent or not a date."""
    value = headers.get("date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None


class ApiClient:
    """GET requests to one API root with retries, a total time bound per request and request counting.

    Every request is bounded in total time (a server that trickles bytes cannot hold a run, and its
    lock, forever), and everything shown from a response is cleaned by one `Redactor` that knows every
    configured key (a server may echo another's)."""

    # The response header that names the request, to quote to the API's support (and in every error line).
    REQUEST_ID_HEADER = "x-request-id"

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        secrets: tuple[str, ...],
        timeout: float,
        retry: RetryPolicy | None,
    ) -> None:
        if problem := base_url_problem(base_url):
            raise ApiError(problem)
        base = base_url.rstrip("/")
        self.redactor = Redactor(*secrets)
        regex = self.redactor.key_regex()
        self._key_pattern = re.compile(regex) if regex else None  # one scan of a page's ids
        self._base = base
        self.shown_base = shown_url(base)
        self.timeout = timeout
        # Compressed answers are asked for (JSONL is 5-10x smaller on the wire) and decoded: by httpx for
        # JSON bodies, while streaming for files (_Decoded). Named, so that no other coding is advertised.
        self._http = httpx.Client(
            headers={**headers, "Accept": "application/json", "Accept-Encoding": ", ".join(_CODINGS)},
            # The read timeout bounds each wait for bytes; `timeout` also bounds the whole request (see _read).
            timeout=httpx.Timeout(timeout, connect=min(timeout, settings.CONNECT_TIMEOUT_S)),
            follow_redirects=False,
        )
        self._deadline = Deadline()
        bound_total_time(self._http, self._deadline)
        self.retry = retry or RetryPolicy()
        self.api_calls = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retrieve(
        self, collection: str, batch_id: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """`GET {collection}/{batch_id}`: the batch as it is now, or None when the API answers 404 for it (an
        answer about another batch is refused)."""
        path = f"{collection}/" + quote(batch_id, safe="")
        what = f"GET {self.shown_base}{collection}/{self.redactor.clean(batch_id, 80)}"
        try:
            body, _ = self._get(path, dict(params or {}), what, expect="batch")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        if body.get("id") != batch_id:
            raise ApiError(what, message="the API returned a different batch than the one asked for")
        return body

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
            return retrying(self._named(attempt), *args)
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
            self.api_calls += 1
        with self._transport_errors(what):
            response, raw = self._read(path, params)
        request_id = self._request_id(response)
        if response.status_code >= 400:
            self._raise_for_status(response, raw, what, request_id)
        try:
            body = json.loads(raw)
        except NOT_JSON:
            message, _ = error_details(raw, self.redactor)
            if expect in ("list", "array") and not _cut_short(raw):
                # A whole answer that is not JSON (a web page, a gateway's text) where the list was asked for:
                # base_url points at something that is not a batch API, and asking again cannot change that.
                raise ApiError(
                    what, status=response.status_code, message=f"{message} {_NOT_A_LIST}", request_id=request_id
                ) from None
            raise RetryableApiError(what, status=response.status_code, message=message, request_id=request_id) from None
        if expect == "list" and (wrong := _not_a_list(body)):
            # JSON of another shape (a bare array, `{"batches": ...}`): the server's answer, not a glitch on the
            # way; retrying it cost ~8 attempts and ~30 s before the same error (issue 19).
            raise ApiError(
                what,
                status=response.status_code,
                message=f"{self.redactor.clean(wrong, 160)} {_NOT_A_LIST}",
                request_id=request_id,
            )
        if expect == "array" and (wrong := _not_an_array(body)):
            # Together's list is a bare array: an envelope there is another API's answer, refused alike.
            raise ApiError(
                what,
                status=response.status_code,
                message=f"{self.redactor.clean(wrong, 160)} {_NOT_AN_ARRAY}",
                request_id=request_id,
            )
        if expect == "list":
            # One meaning of `has_more` for everything after this (the checks below, every client's Page): a
            # gateway's "false" was `bool("false")`, true, and the empty page after the last was retried until
            # the run failed ("has_more is true but the page has no data").
            body["has_more"] = _has_more(body.get("has_more"))
        if not _has_shape(body, expect):
            # What was expected, in words (`array`: Together's list, a bare array of batch objects).
            shape = "an array of batch objects" if expect == "array" else f"a {expect} object"
            raise RetryableApiError(
                what,
                status=response.status_code,
                message=f"unexpected response body (not {shape})",
                request_id=request_id,
            )
        if expect in ("list", "batch", "array") and self._id_echoes_a_key(body):
            # The id is a merge key, a list cursor and the request ledger's key: masked, it would no longer
            # be the batch's; kept, the key would be stored (state.json, batch_requests). A server echoing a
            # key there is refused like an item without a usable id, in one line; retrying would not help.
            raise ApiError(
                what,
                status=response.status_code,
                message="a batch id carries a configured API key the server sent back: the answer is refused",
                request_id=request_id,
            )
        if expect in ("page", "report") and body.get("has_more") and not body.get("next_page"):
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

    def _id_echoes_a_key(self, body: Any) -> bool:
        """Whether a batch id of a list page (or the batch) shares a run of characters with a configured key."""
        if self._key_pattern is None:
            return False
        if isinstance(body, list):  # a bare array (Together's list)
            ids = [b["id"] for b in body]
        else:
            ids = [b["id"] for b in body["data"]] if isinstance(body.get("data"), list) else [body["id"]]
        return self._key_pattern.search("\n".join(ids)) is not None

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

    def _named(self, attempt: Callable[..., T]) -> Callable[..., T]:
        """`attempt` whose errors name this API's request-id header (shown in their line, retry warnings too)."""

        def run(*args: Any) -> T:
            try:
                return attempt(*args)
            except ApiError as e:
                e.id_header = self.REQUEST_ID_HEADER
                e.args = (str(e),)
                raise

        return run

    def _stream(self, url: str, what: str, consume: Callable[[Iterator[bytes]], T], size: int | None) -> T | None:
        """`GET url` (absolute), streamed into `consume`, under the retry policy; None on a 404. The contract
        (decoding, the checks of a download cut short, the time bound) is BatchesClient.stream_file's."""
        try:
            return self._with_retries(self._stream_attempt, url, what, consume, size)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def _stream_attempt(self, url: str, what: str, consume: Callable[[Iterator[bytes]], T], size: int | None) -> T:
        with self._count_lock:
            self.api_calls += 1
        started = time.monotonic()
        self._deadline.at = started + self.timeout
        try:
            with self._transport_errors(what), self._http.stream("GET", url) as response:
                request_id = self._request_id(response)
                if response.status_code >= 400:
                    # An error body is small; a server sending megabytes instead is cut short.
                    raw = b"".join(_first_bytes(response.iter_raw(), _ERROR_BODY_MAX))
                    self._raise_for_status(response, _decoded_error(raw, response.headers), what, request_id)

                def cut(message: str) -> RetryableApiError:
                    return RetryableApiError(what, status=response.status_code, message=message, request_id=request_id)

                wire = Paced(response.iter_raw(), self._deadline, started + self.timeout)
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
        value = response.headers.get(self.REQUEST_ID_HEADER)
        return self.redactor.clean(value, 80) if value else None

    def _raise_for_status(self, response: httpx.Response, raw: bytes, what: str, request_id: str | None) -> None:
        status = response.status_code
        message, code = error_details(raw, self.redactor)
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
            retry_after=parse_retry_after(response.headers),
        )


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


# What a list answer of the wrong shape is told with: not retried, and where to look.
_NOT_A_LIST = (
    '(expected a batch list {"data": [...]}; not retried: check base_url and provider, an answer of another '
    "shape cannot fix itself)"
)


# The same for a list that is a bare JSON array (Together's), where an envelope came.
_NOT_AN_ARRAY = (
    "(expected a bare JSON array of batches [...]; not retried: check base_url and provider, an answer of another "
    "shape cannot fix itself)"
)


def _not_an_array(body: Any) -> str | None:
    """Why `body` is not a bare JSON array, in words that name what came; None when it is one."""
    if isinstance(body, list):
        return None
    if isinstance(body, dict):
        keys = ", ".join(sorted(str(k) for k in body)[:6]) or "none"
        return f"the answer is a JSON object (keys: {keys}), not a bare array"
    return f"the answer is a JSON {type(body).__name__}, not a bare array"


def _cut_short(raw: bytes) -> bool:
    """Whether a body that does not parse may be JSON cut short on the way (empty, or starting as JSON does: a
    gateway or a dropped connection cut it; retried) rather than a whole answer of something else (a web page,
    plain text: not retried)."""
    text = raw.lstrip()
    return not text or text[:1] in (b"{", b"[")


def _not_a_list(body: Any) -> str | None:
    """Why `body` is not a list envelope at all (`{"data": [...]}`), in words that name what came; None when
    it is one (its items are checked by `_has_shape`: an item without an id is retried, as a mangled page)."""
    if isinstance(body, list):
        return f"the answer is a bare JSON array of {len(body)} items, not a list object"
    if not isinstance(body, dict):
        return f"the answer is a JSON {type(body).__name__}, not a list object"
    if "data" not in body:
        keys = ", ".join(sorted(str(k) for k in body)[:6]) or "none"
        return f"the answer is an object without `data` (keys: {keys})"
    if not isinstance(body["data"], list):
        return f"the answer's `data` is a {type(body['data']).__name__}, not a list"
    try:
        _has_more(body.get("has_more"))
    except ValueError:
        return f"the answer's `has_more` is {str(body['has_more'])[:40]!r}, not true or false"
    return None


# `has_more` as gateways spell it besides a JSON boolean: the text of one (any case) or 0 and 1.
_HAS_MORE_TEXT = {"true": True, "false": False}


def _has_more(value: Any) -> bool | None:
    """A list's `has_more` as a boolean, None when the answer does not say (Groq's list); ValueError for
    anything else (`"maybe"`, an object): not a list of any API, refused at once like another shape."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _HAS_MORE_TEXT:
        return _HAS_MORE_TEXT[value.strip().lower()]
    raise ValueError(value)


def _has_shape(body: Any, expect: str) -> bool:
    if expect == "array":
        return isinstance(body, list) and all(_has_id(b) for b in body)
    if not isinstance(body, dict):
        return False
    # A batch without a string id can be neither merged nor used as a cursor: the page is refused.
    if expect == "list":
        return isinstance(body.get("data"), list) and all(_has_id(b) for b in body["data"])
    if expect == "page":  # the Admin API's usage and costs: buckets, each a start time and its results
        return isinstance(body.get("data"), list) and all(_is_bucket(b) for b in body["data"])
    if expect == "results":  # OpenRouter's results of a batch: a page of result rows (client/others.py)
        return isinstance(body.get("data"), list) and all(isinstance(r, dict) for r in body["data"])
    if expect == "report":  # Anthropic's usage and cost reports: buckets from an RFC 3339 `starting_at`
        return isinstance(body.get("data"), list) and all(_is_report_bucket(b) for b in body["data"])
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


def report_bucket_day(bucket: Mapping[str, Any]) -> date:
    """The UTC day an Anthropic report bucket starts (`starting_at`, RFC 3339); ValueError when it is no
    such time (a page with such a bucket is refused: `_has_shape`)."""
    start = bucket.get("starting_at")
    if not isinstance(start, str) or not 10 <= len(start) <= 40:
        raise ValueError("starting_at is not an RFC 3339 time")
    parsed = datetime.fromisoformat(start.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("starting_at has no offset")  # a time without one is no instant: never guessed
    return parsed.astimezone(UTC).date()


def _is_report_bucket(item: Any) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("results"), list):
        return False
    try:
        report_bucket_day(item)
    except (ValueError, OverflowError):
        return False
    return True


def _has_id(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), str) and bool(item["id"])
