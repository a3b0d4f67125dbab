"""Errors of the clients: a request that failed for good, or one a later attempt may not see, each
with its one line; and what an error body says (the API's message and code, cleaned).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .redact import MAX_SHOWN_CHARS, Redactor


class ApiError(Exception):
    """A request that failed for good. `str()` is the one line a person on call needs:
    what failed, the HTTP status, the API's own message and the request id to quote to support
    (OpenAI's `x-request-id`, Anthropic's `request-id`)."""

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
        # The header the request id came in (OpenAI's `x-request-id`, Anthropic's `request-id`): named in
        # the line, so support is quoted the id by the name it knows.
        self.id_header = "x-request-id"
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
            line += f" [{self.id_header} {self.request_id}]"
        return line


class RetryableApiError(ApiError):
    """A failure that a later attempt may not see: connection drops, timeouts, 408/409/429/5xx, bad bodies."""


# What `json.loads` raises on a body that is not JSON it can take: nesting thousands deep (`[[[[...`)
# exhausts Python's recursion limit rather than raising a ValueError.
NOT_JSON = (ValueError, RecursionError)


# Longest excerpt of a body that is not the expected JSON: enough to recognise an HTML error page.
_EXCERPT_CHARS = 120


def error_details(body: bytes, redactor: Redactor) -> tuple[str, str | None]:
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
    except NOT_JSON:
        pass
    text = redactor.clean(body.decode("utf-8", errors="replace"), _EXCERPT_CHARS)
    return (f"non-JSON body: {text}" if text else "empty body"), None


def error_line(error: BaseException, *, with_type: bool = False) -> str:
    """Any exception as the one line a person reads (ApiError's `str()` is already that line): the first
    line of its text, or all its lines joined when the first is a heading ending in `:` (dlt's config
    errors put the file and the parser's position on separate lines), at most MAX_SHOWN_CHARS; the
    type's name when it has no text. With `with_type`, `Type: text`."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    text = text[:MAX_SHOWN_CHARS]
    name = type(error).__name__
    if with_type:
        return f"{name}: {text}" if text else name
    return text or name
