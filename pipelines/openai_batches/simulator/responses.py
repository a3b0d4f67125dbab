"""What the simulator sends: a response, JSON bodies as the API formats them, OpenAI's error shape and key
masking, and gzip on the wire (whole or streamed, mangled when a fault asks).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .files import Streamed


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Streamed | None = None  # a body sent in chunks instead of `body` (batch file content)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    # The real API pretty-prints with two-space indentation, as the recorded fixture shows.
    return Response(status, orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n", headers=headers or {})


def error_response(
    status: int, message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> Response:
    return json_response(status, {"error": {"message": message, "type": type_, "param": param, "code": code}})


def mask_key(key: str) -> str:
    """OpenAI-style masking: a short prefix and the last 4 chars, never the whole key."""
    if len(key) < 12:
        return key[:2] + "*" * max(1, len(key) - 2) if len(key) > 3 else "*" * max(1, len(key))
    prefix = 8 if key.startswith("sk-proj-") else min(7, len(key) // 4)
    return key[:prefix] + "*" * (len(key) - prefix - 4) + key[-4:]


# Bytes of compressed output gathered before an HTTP chunk is sent (zlib emits small pieces).
_GZIP_CHUNK = 64 * 1024


def gzip_chunks(chunks: Iterator[bytes], limit: int | None, *, corrupt: bool) -> Iterator[bytes]:
    """`chunks` gzip-compressed as they come (level 6, Cloudflare's kind); with `limit`, only its first
    `limit` bytes and no end of stream; with `corrupt`, a byte of the first full piece flipped."""
    encoder = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    pending = bytearray()
    taken = 0
    flipped = not corrupt
    for chunk in chunks:
        if limit is not None:
            chunk = chunk[: max(0, limit - taken)]
        taken += len(chunk)
        pending += encoder.compress(chunk)
        if len(pending) >= _GZIP_CHUNK:
            if not flipped:
                pending[len(pending) // 2] ^= 0xFF
                flipped = True
            yield bytes(pending)
            pending.clear()
        if limit is not None and taken >= limit:
            pending += encoder.flush(zlib.Z_SYNC_FLUSH)  # what was compressed so far, but no end of stream
            break
    else:
        pending += encoder.flush()
    if pending:
        if not flipped:
            pending[len(pending) // 2] ^= 0xFF
        yield bytes(pending)


def gzip_body(body: bytes, fault: str | None) -> bytes:
    """A whole JSON body gzip-compressed, mangled as `corrupt-gzip` / `truncated-gzip` say."""
    return b"".join(
        gzip_chunks(
            iter((body,)), len(body) // 2 if fault == "truncated-gzip" else None, corrupt=fault == "corrupt-gzip"
        )
    )
