"""HTTP access to Anthropic's Message Batches API: the AnthropicClient (list, retrieve, the results stream).

A sibling of BatchesClient: the same machinery (transport.py: retry policy and its run budget, the total
time bound, one-line errors with the request id, redaction, streamed downloads decoded from gzip), with
Anthropic's authentication, paths, paging and key rules. What it sends is what the API reference
documents (`x-api-key`, `anthropic-version: 2023-06-01`); the base URL is the API root without `/v1`,
as the official SDK takes it (`ANTHROPIC_BASE_URL`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from .. import settings
from .errors import ApiError, RetryableApiError
from .paging import Page
from .retry import RetryPolicy
from .transport import ApiClient, server_time
from .urls import check_api_key, shown_url

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.anthropic.com"
# The version the API reference documents for the Message Batches endpoints (GA since 2024-12). Newer
# SDKs send a later one; the loader sends the documented one, whose objects it was written against.
API_VERSION = "2023-06-01"
# Batches per list page: the API's maximum (`limit` 1..1000, default 20), so a backfill takes the fewest
# requests and a cron run with nothing new takes one.
PAGE_LIMIT = 1000
BATCHES_PATH = "/v1/messages/batches"

# Workspace API keys start with this (`sk-ant-api03-...`); Admin API keys with ADMIN_KEY_PREFIX; OpenAI's
# keys with `sk-` and anything but `ant-`. Only these documented prefixes are judged: another shape (a
# gateway's key) is left to the API's refusal.
KEY_PREFIX = "sk-ant-"
ADMIN_KEY_PREFIX = "sk-ant-admin"


def key_kind_problem(key: str, *, setting: str) -> str | None:
    """Why ``key`` is of the wrong kind for ``setting`` (a workspace API key is expected), else None.

    Only the prefix is named, never the key."""
    if key.startswith(ADMIN_KEY_PREFIX):
        return (
            f"{setting} is an Anthropic Admin API key ({ADMIN_KEY_PREFIX}...), which cannot list message batches: "
            f"put a workspace API key ({KEY_PREFIX}api...) there"
        )
    if key.startswith("sk-") and not key.startswith(KEY_PREFIX):
        return (
            f"{setting} looks like an OpenAI key (sk-..., not {KEY_PREFIX}...): Anthropic refuses it; put an Anthropic "
            "API key there (and OpenAI keys in OPENAI_API_KEY)"
        )
    return None


class AnthropicClient(ApiClient):
    """`GET /v1/messages/batches`, `GET /v1/messages/batches/{id}` and the batch's `results_url`."""

    REQUEST_ID_HEADER = "request-id"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = settings.READ_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        other_secrets: tuple[str, ...] = (),
        setting: str = "ANTHROPIC_API_KEY",
    ) -> None:
        if not api_key:
            raise ApiError(f"no Anthropic API key configured (set {setting})")
        api_key, problem = check_api_key(api_key)
        if problem:
            raise ApiError(f"{setting}: {problem}")
        if problem := key_kind_problem(api_key, setting=setting):
            raise ApiError(problem)
        headers = {"x-api-key": api_key, "anthropic-version": API_VERSION}
        super().__init__(
            base_url=base_url, headers=headers, secrets=(api_key, *other_secrets), timeout=timeout, retry=retry
        )
        self._origin = _origin(httpx.URL(self._base))

    def __enter__(self) -> AnthropicClient:
        return self

    def list_page(self, after: str | None = None, limit: int = PAGE_LIMIT) -> Page:
        """One page of the list, newest first: the head, or the page after the batch `after` (the previous
        page's `last_id`, which is its last item's id: a page where they differ is refused and retried, so
        client/paging.py's pager, which continues after the last item, follows `last_id`)."""
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after_id"] = after
        what = self.list_what(after)
        body, response = self._with_retries(self._list_attempt, params, what)
        return Page(
            data=body["data"],
            has_more=bool(body.get("has_more")),
            project=None,  # a key reads one workspace; which one the Admin API says
            server_time=server_time(response.headers),
        )

    def _list_attempt(self, params: dict[str, Any], what: str) -> tuple[dict[str, Any], httpx.Response]:
        body, response = self._attempt(BATCHES_PATH, params, what, "list")
        data, last_id = body["data"], body.get("last_id")
        if data and last_id is not None and last_id != data[-1]["id"]:
            raise RetryableApiError(
                what,
                status=response.status_code,
                message="last_id is not the id of the page's last batch",
                request_id=self._request_id(response),
            )
        return body, response

    def list_what(self, after: str | None) -> str:
        """The list request as an error line names it."""
        return f"GET {self.shown_base}{BATCHES_PATH}" + (f"?after_id={self.redactor.clean(after, 80)}" if after else "")

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as it is now, or None when the API answers 404 for it (deleted)."""
        return self._retrieve(BATCHES_PATH, batch_id)

    def stream_results(self, results_url: str, consume: Callable[[Iterator[bytes]], T]) -> T | None:
        """`GET results_url` (a batch's, absolute), streamed: `consume(chunks)` reads the JSONL as it arrives
        and its result is returned; None when the API answers 404 (results archived, batch deleted).

        Retried, decoded and bounded in time like BatchesClient.stream_file (a retry calls `consume` again
        from the first byte). The key goes only to the configured host: a `results_url` on another scheme,
        host or port, or with a user name or password, is refused before any request; a relative one is taken on
        the configured root."""
        url = self._results_url(results_url)
        what = f"GET {shown_url(url)}"
        return self._stream(url, what, consume, None)

    def _results_url(self, results_url: str) -> str:
        shown = shown_url(results_url)
        try:
            url = httpx.URL(self._base).join(results_url) if results_url.startswith("/") else httpx.URL(results_url)
            origin = _origin(url)
        except (httpx.InvalidURL, ValueError):
            raise ApiError(f"results_url {shown!r} is not a valid URL") from None
        if url.userinfo:
            # httpx would send them as `Authorization: Basic`, a header the server chose, next to the key: refused
            # as a base URL with credentials is.
            raise ApiError(f"results_url {shown!r} contains a user name or password: refused")
        if origin != self._origin:
            raise ApiError(
                f"results_url {shown!r} is not on the configured API host ({self.shown_base}): refused, the key "
                "is sent nowhere else"
            )
        return str(url)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one when implied): where a request, and the key, would go."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default


__all__ = ["API_VERSION", "DEFAULT_BASE_URL", "PAGE_LIMIT", "AnthropicClient", "key_kind_problem"]
