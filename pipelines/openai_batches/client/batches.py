"""HTTP access to the Batches and Files APIs: the BatchesClient (the HTTP machinery it shares with the other
providers' clients is transport.py's; errors, retry policy, total-time bound, paging and URL checks live
beside it, in errors.py, retry.py, deadline.py, paging.py and urls.py).

The same code talks to api.openai.com, to any compatible gateway and to the built-in simulator;
only the base URL and the key differ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx

from .. import settings
from .errors import ApiError
from .paging import Page
from .retry import RetryPolicy
from .transport import ApiClient, server_time
from .urls import check_api_key

log = logging.getLogger(__name__)

T = TypeVar("T")


# A project header sharing this many characters with the key is the key echoed back, not a project id:
# it is never stored. (Project ids are public; a shorter common run, like `research` in a key
# `sk-sim-research` of project `proj_research`, is a coincidence of names, not a leak.)
_PROJECT_SECRET_RUN = 16

# What an `openai-project` header may look like to be used as a project name (`proj_...` ids).
_PROJECT_HEADER = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


class FilesApi(ApiClient):
    """OpenAI's files API as the request ledger reads a batch's files: `GET /files/{id}` and its content. OpenAI's,
    and Together's and Mistral's, whose batches name files of the same API (client/others.py)."""

    # Parameters of every request (Azure's classic `api-version`: BatchesClient sets them).
    _query: dict[str, str] = {}

    def file_info(self, file_id: str) -> dict[str, Any] | None:
        """`GET /files/{id}`: the file object (`bytes`, `expires_at`, ...), or None when the API answers 404
        (the file expired or was deleted)."""
        what = f"GET {self.shown_base}/files/{self.redactor.clean(file_id, 80)}"
        try:
            body, _ = self._get("/files/" + quote(file_id, safe=""), dict(self._query), what, expect="file")
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
        query = ("?" + urlencode(self._query)) if self._query else ""
        return self._stream(self._base + path + query, what, consume, size)


class BatchesClient(FilesApi):
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
        key_header: str = "Authorization",
        query: Mapping[str, str] | None = None,
        page_limit: int | None = settings.PAGE_LIMIT,
        setting: str = "OPENAI_API_KEY or sources.openai_batches.api_key",
    ) -> None:
        """`key_header`: `Authorization` (sent as a bearer token) or Azure's `api-key` (the key as it is);
        `query`: parameters of every request (Azure's classic `api-version`); `page_limit`: the `limit` a list
        request asks for, None for none (Groq's list, whose SDK sends none: whether it takes one is unknown)."""
        if not api_key:
            raise ApiError(f"no API key configured (set {setting})")
        api_key, problem = check_api_key(api_key)
        if problem:
            raise ApiError(problem)
        headers = {key_header: f"Bearer {api_key}" if key_header == "Authorization" else api_key}
        self._query = dict(query or {})
        self._page_limit = page_limit
        for name, value in (("OpenAI-Organization", organization), ("OpenAI-Project", project)):
            if value:
                value = value.strip()
                if not value.isascii() or not value.isprintable():
                    raise ApiError(f"the {name} header value contains characters that cannot be sent in HTTP")
                headers[name] = value
        # every configured key in the redactor: a server may echo another's
        super().__init__(
            base_url=base_url, headers=headers, secrets=(api_key, *other_secrets), timeout=timeout, retry=retry
        )
        self._warned: set[str] = set()

    def __enter__(self) -> BatchesClient:
        return self

    def list_page(self, after: str | None = None, limit: int | None = None) -> Page:
        params: dict[str, Any] = dict(self._query)
        if (limit := limit or self._page_limit) is not None:
            params["limit"] = limit
        if after:
            params["after"] = after
        body, response = self._get("/batches", params, self.list_what(after), expect="list")
        has_more = body.get("has_more")
        return Page(
            data=body["data"],
            has_more=None if has_more is None else bool(has_more),
            project=self._project_header(response),
            server_time=server_time(response.headers),
        )

    def list_what(self, after: str | None) -> str:
        """The list request as an error line names it."""
        return f"GET {self.shown_base}/batches" + (f"?after={self.redactor.clean(after, 80)}" if after else "")

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as it is now, or None when the API answers 404 for it."""
        return self._retrieve("/batches", batch_id, self._query)

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
