"""Faults a test injects into the simulator (`SimulatorServer.inject`): what each kind is, and the answer
it gives instead of the normal one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import unquote

from . import anthropic, anthropic_admin
from .files import FILES_PREFIX, not_found
from .responses import Response, error_response, json_response, mask_key

FAULT_KINDS = (
    "429",
    "429-no-retry-after",
    "insufficient_quota",
    "500",
    "502-html",
    "503",
    "timeout",
    "slow",
    "truncated-json",
    "non-json",
    "empty-body",
    "401",
    "403",
    "corrupt-gzip",
    "truncated-gzip",
    "404",
    "529",
)


# Random faults a well-behaved client must survive by retrying (fault campaigns pick from these).
DEFAULT_RANDOM_FAULTS = ("429", "500", "502-html", "503")


_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>"
    b"<body><p>Checking your browser before accessing api.openai.com.</p></body></html>\n"
)


@dataclass
class Fault:
    """A misbehaviour to apply to the next ``count`` requests whose path starts with ``path_prefix``.

    ``timeout`` holds the connection ``delay`` seconds and closes it without a response (``delay=0``:
    an immediate disconnect); ``corrupt-gzip`` and ``truncated-gzip`` (on a server with ``compress``,
    to a client that accepts gzip) send a gzip body with bytes flipped in its middle, or cut before the
    end of its stream while the HTTP framing is complete (a gateway that compressed a cut answer);
    ``404`` answers not found (a gateway that briefly loses a file); ``slow`` answers normally after
    ``delay``; ``retry_after`` (seconds) is sent as ``retry-after`` and ``retry-after-ms`` on 429/503;
    ``should_retry`` as ``x-should-retry``; ``529`` is Anthropic's "overloaded" (an OpenAI-shaped 529
    elsewhere). On Anthropic's paths every answer is Anthropic's (`anthropic_fault_response`).
    """

    kind: str
    count: int = 1
    path_prefix: str = "/v1/batches"
    retry_after: float | None = 0.01
    delay: float = 0.0
    should_retry: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")


def _retry_headers(fault: Fault) -> dict[str, str]:
    h: dict[str, str] = {}
    if fault.retry_after is not None:
        h["retry-after"] = f"{fault.retry_after:g}"
        h["retry-after-ms"] = f"{fault.retry_after * 1000:g}"
    return h


def fault_response(
    fault: Fault, key: str, path: str, organization: str, *, request_id: str = "", now: float = 0.0
) -> Response | None:
    """The answer `fault` gives to a request for `path` made with `key` (None: the normal answer, which
    `slow` delays and `truncated-json` cuts afterwards). `request_id` and `now` (the simulated clock) are
    what Anthropic's answers carry."""
    if anthropic.handles(path) or anthropic_admin.handles(path):
        return anthropic_fault_response(fault, path, request_id, now)
    kind = fault.kind
    if kind == "404":
        if path.startswith(FILES_PREFIX + "/"):
            return json_response(404, not_found(unquote(path.split("/")[3])))
        return error_response(404, f"No batch found with id '{unquote(path.rsplit('/', 1)[-1])}'.")
    if kind == "429":
        r = error_response(
            429,
            f"Rate limit reached for requests in organization {organization} on requests per min (RPM): "
            "Limit 100, Used 100, Requested 1. Please try again in 600ms.",
            "requests",
            None,
            "rate_limit_exceeded",
        )
        r.headers.update(_retry_headers(fault))
        return r
    if kind == "429-no-retry-after":
        return error_response(
            429, "Rate limit reached for requests. Please try again later.", "requests", None, "rate_limit_exceeded"
        )
    if kind == "insufficient_quota":
        return error_response(
            429,
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            None,
            "insufficient_quota",
        )
    if kind == "529":
        return error_response(529, "The server is overloaded, please try again later.", "server_error")
    if kind == "500":
        return error_response(
            500, "The server had an error while processing your request. Sorry about that!", "server_error"
        )
    if kind == "502-html":
        return Response(502, _HTML_502, "text/html")
    if kind == "503":
        r = error_response(503, "The engine is currently overloaded, please try again later.", "server_error")
        r.headers.update(_retry_headers(fault))
        return r
    if kind == "non-json":
        return Response(200, _HTML_PAGE, "text/html; charset=UTF-8")
    if kind == "empty-body":
        return Response(200, b"")
    if kind == "401":
        return error_response(
            401,
            f"Incorrect API key provided: {mask_key(key or 'sk-none')}. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    if kind == "403":
        return error_response(
            403,
            "You have insufficient permissions for this operation. Missing scopes: api.batch.read. "
            "Check that you have the correct role in your organization (Reader, Writer, Owner) and project "
            "(Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.",
            code=None,
        )
    return None  # slow, truncated-json: the normal answer (possibly mangled afterwards)


# Anthropic's answers to the same faults: (status, error type, message) in its envelope
# (`{"type": "error", "error": {"type", "message"}, "request_id"}`, the id also in `request-id`).
_ANTHROPIC_ERRORS = {
    "429": (
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. For details, "
        "refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. "
        "Please try again later.",
    ),
    "429-no-retry-after": (429, "rate_limit_error", "Number of concurrent connections has exceeded your rate limit."),
    "529": (529, "overloaded_error", "Overloaded"),
    "500": (500, "api_error", "Internal server error"),
    "503": (503, "api_error", "Service Unavailable"),
    "401": (401, "authentication_error", "invalid x-api-key"),
    "403": (403, "permission_error", "Your API key does not have permission to use the specified resource."),
    # Anthropic's out-of-credit answer: a 400, not retried (OpenAI's is a 429 with code insufficient_quota).
    "insufficient_quota": (
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or "
        "purchase credits.",
    ),
}
# Requests per minute the rate limit headers of a simulated 429 state (any positive number would do).
_ANTHROPIC_RPM = 50


def anthropic_fault_response(fault: Fault, path: str, request_id: str, now: float) -> Response | None:
    """The answer `fault` gives on Anthropic's paths (None: the normal answer). `retry-after` goes out as
    Anthropic sends it: whole seconds (rounded up: never sooner than the server allows), without OpenAI's
    `retry-after-ms`, with its `anthropic-ratelimit-requests-*` headers, on rate limits (429, and the 503
    a gateway sends); 529 overloaded carries none."""
    kind = fault.kind
    if kind == "502-html":
        return Response(502, _HTML_502, "text/html")
    if kind == "non-json":
        return Response(200, _HTML_PAGE.replace(b"api.openai.com", b"api.anthropic.com"), "text/html; charset=UTF-8")
    if kind == "empty-body":
        return Response(200, b"")
    if kind == "404":
        parts = [unquote(p) for p in path[len(anthropic.PREFIX) :].split("/")][1:] if anthropic.handles(path) else []
        what = f"No message batch found with id '{parts[0]}'" if parts else f"Not found: {path}"
        return json_response(404, anthropic.error_body("not_found_error", what, request_id))
    found = _ANTHROPIC_ERRORS.get(kind)
    if found is None:
        return None  # slow, truncated-json, the gzip faults: the normal answer (possibly mangled afterwards)
    status, error_type, message = found
    r = json_response(status, anthropic.error_body(error_type, message, request_id))
    if kind in ("429", "503") and fault.retry_after is not None:
        seconds = math.ceil(fault.retry_after)
        r.headers["retry-after"] = str(seconds)
        if kind == "429":
            r.headers["anthropic-ratelimit-requests-limit"] = str(_ANTHROPIC_RPM)
            r.headers["anthropic-ratelimit-requests-remaining"] = "0"
            r.headers["anthropic-ratelimit-requests-reset"] = anthropic.rfc3339(now + seconds)
    return r
