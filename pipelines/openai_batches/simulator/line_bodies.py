"""What the lines of a batch file say besides their content: JSON as batch files write it, the error
bodies of failed, unrun and status-0 requests, and the moderation results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import orjson

from .batch_requests import CONTENT_MARKER_NUMBER_TEXT


def json_spaced(value: Any) -> bytes:
    """JSON with `, ` and `: ` separators, as batch files are written."""
    return json.dumps(value).encode()


def quoted(value: str) -> bytes:
    """A JSON string literal, safe inside a %-template."""
    return orjson.dumps(value).replace(b"%", b"%%")


@dataclass(frozen=True)
class LineError:
    status: int
    code: str | None
    message: str | None
    body: bytes


def _line_error(status: int, message: str, type_: str, param: str | None, code: str | None) -> LineError:
    body = json_spaced({"error": {"message": message, "type": type_, "param": param, "code": code}})
    return LineError(status, code, message, body)


_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


# Non-2xx lines users find in the OUTPUT file, and the two bodies status-0 lines come with.
OUTPUT_ERRORS = (
    _line_error(500, _SERVER_ERROR, "server_error", None, None),
    _line_error(503, "The server is overloaded or not ready yet.", "server_error", None, None),
)


ZERO_STATUS_ERRORS = (LineError(0, None, None, b"{}"), _line_error(0, _SERVER_ERROR, "server_error", None, None))


@cache
def failed_request_errors(family: str) -> tuple[LineError, ...]:
    """Error-file lines of failed requests in 100 slots (a request's kind % 100 picks one): 35% too long,
    15% flagged, 10% oversized field, 40% server errors. No content in messages: a ledger stores them."""
    if family == "embeddings":
        too_long = _line_error(
            400,
            "This model's maximum context length is 8192 tokens, however you requested 9157 tokens "
            "(9157 in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
            "invalid_request_error",
            None,
            "context_length_exceeded",
        )
    else:
        too_long = _line_error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 131844 "
            "tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "messages",
            "context_length_exceeded",
        )
    field = "messages[1].content" if family == "chat" else "input"
    flagged = _line_error(
        400,
        "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
        "Please try again with a different prompt.",
        "invalid_request_error",
        None,
        "invalid_prompt",
    )
    oversized = _line_error(
        400,
        f"Invalid '{field}': string too long. Expected a string with maximum length 10485760, "
        "but got a string with length 10502311 instead.",
        "invalid_request_error",
        field,
        "string_above_max_length",
    )
    server = _line_error(500, _SERVER_ERROR, "server_error", None, None)
    return (too_long,) * 35 + (flagged,) * 15 + (oversized,) * 10 + (server,) * 40


UNRUN_ERRORS = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request could not be executed before the batch was cancelled."),
}


_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@cache
def moderation_results() -> tuple[bytes, ...]:
    """Four result variants (one flagged); each carries the marker number as a score."""
    rng = np.random.default_rng(7)
    out = []
    for flagged in (False, False, False, True):
        scores = {c: round(float(v), 10) for c, v in zip(_MODERATION_CATEGORIES, rng.random(13) * 1e-3, strict=True)}
        scores["harassment"] = float(CONTENT_MARKER_NUMBER_TEXT)
        if flagged:
            scores["violence"] = 0.8731
        result = {
            "flagged": flagged,
            "categories": {c: flagged and c == "violence" for c in _MODERATION_CATEGORIES},
            "category_scores": scores,
            "category_applied_input_types": {c: ["text"] for c in _MODERATION_CATEGORIES},
        }
        out.append(json_spaced(result))
    return tuple(out)
