"""What a key and a base URL must be to be used, and how a URL may be shown (no credential in it)."""

from __future__ import annotations

import re

import httpx

from .redact import Redactor


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
            f"base URL {shown!r} contains a user name or password: remove them (the key goes in the provider's "
            "API key setting, OPENAI_API_KEY, MISTRAL_API_KEY, ..., or api_key in .dlt/secrets.toml)"
        )
    if "%" in url.host or (port is not None and not 0 < port < 65536):
        return f"base URL {shown!r} names an invalid host or port"
    if url.query or url.fragment:
        return f"base URL {shown!r} must not have a query string or fragment"
    return None
