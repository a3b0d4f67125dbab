"""Anthropic's Admin API face of the simulator: `GET /v1/organizations/workspaces`, `/api_keys`,
`/usage_report/messages` and `/cost_report`, with an Admin API key (`sk-ant-admin01-...`) only.

The numbers come from anthropic_books.py. Shapes follow the API reference (2023-06-01) and the official
`anthropic` package's types (which also page the lists). Choices where the reference is silent, each made
once here:

* Lists page oldest first with `after_id`/`before_id`, `limit` 1..1000 (default 20), `first_id`/`last_id`/
  `has_more`, like the Message Batches list; an unknown cursor gives an empty page.
* Report buckets are aligned to their width in UTC (1d: midnight), from `starting_at` (snapped down) to
  `ending_at` (buckets that end after it are left out) or the bucket holding now; a page holds up to
  `limit` buckets, empty ones included. `page`/`next_page` is an opaque cursor (the next bucket's start).
* A workspace API key on these paths gets 403 `permission_error`; an unknown key 401
  `authentication_error`, in Anthropic's error envelope. An admin key on the Message Batches paths is
  unknown there (anthropic.py).
* Results carry every group key, null when not grouped by it; `api_key_id`, `context_window` and
  `inference_geo` are null (the simulator attributes no usage to them), and filtering by `api_key_ids`
  matches nothing.

Misbehaviour a test can ask for (AnthropicBooks): report pages that repeat the previous page's last
buckets (`repeat_buckets`), usage buckets with no results (`empty_usage`), cost results added as given
(`add_cost_result`), no standard-tier traffic (`standard_traffic = False`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from .admin_api import _BadRequest, _decode_page, _encode_page, _Query
from .anthropic import error_body, key_of, rfc3339
from .anthropic_books import TOKEN_TYPES, AnthropicBooks, UsageLine
from .responses import Response, json_response

ROOT = "/v1/organizations"
_WIDTHS = {"1m": 60, "1h": 3600, "1d": 86_400}
# (default, maximum) buckets per page, as the reference documents `limit`.
_USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
_COST_LIMITS = (7, 31)
USAGE_GROUP_BY = (
    "api_key_id",
    "workspace_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
    "account_id",
    "service_account_id",
)
COST_GROUP_BY = ("workspace_id", "description")
SERVICE_TIERS = ("standard", "batch", "priority", "priority_on_demand", "flex", "flex_discount")


def handles(path: str) -> bool:
    return path == ROOT or path.startswith(ROOT + "/")


def answer(
    books: AnthropicBooks,
    workspace_of_key: Callable[[str], str | None],
    method: str,
    path: str,
    raw_query: str,
    headers: dict[str, str],
    now: float,
    request_id: str,
) -> Response:
    """The response to a request under ROOT."""

    def error(status: int, kind: str, message: str) -> Response:
        return json_response(status, error_body(kind, message, request_id))

    key = key_of(headers)
    if not key:
        return error(401, "authentication_error", "x-api-key header is required")
    if key not in books.admin_keys:
        if workspace_of_key(key) is not None:
            return error(
                403,
                "permission_error",
                "This endpoint requires an Admin API key (sk-ant-admin...); workspace API keys cannot use it.",
            )
        return error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version"):
        return error(400, "invalid_request_error", "anthropic-version: header is required")
    routes: dict[str, Callable[[AnthropicBooks, _Query, float], dict[str, Any]]] = {
        ROOT + "/workspaces": _workspaces,
        ROOT + "/api_keys": _api_keys,
        ROOT + "/usage_report/messages": _usage,
        ROOT + "/cost_report": _costs,
    }
    handler = routes.get(path.rstrip("/")) if method == "GET" else None
    if handler is None:
        return error(404, "not_found_error", f"Not found: {method} {path}")
    try:
        return json_response(200, handler(books, _Query(raw_query), now))
    except _BadRequest as e:
        return error(400, "invalid_request_error", e.message)


# ---------------------------------------------------------------------- lists
def _listed(records: list[dict[str, Any]], q: _Query) -> dict[str, Any]:
    limit = q.integer("limit", default=20, minimum=1, maximum=1000)
    assert limit is not None
    ids = [r["id"] for r in records]
    after, before = q.text("after_id"), q.text("before_id")
    if after and before:
        raise _BadRequest("Only one of after_id and before_id may be given", None, None)
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(0, end - limit)
        data, more = records[start:end], start > 0
    else:
        start = 0 if after is None else (ids.index(after) + 1 if after in ids else len(records))
        data, more = records[start : start + limit], start + limit < len(records)
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def _workspaces(books: AnthropicBooks, q: _Query, now: float) -> dict[str, Any]:
    return _listed(books.workspaces(), q)


def _api_keys(books: AnthropicBooks, q: _Query, now: float) -> dict[str, Any]:
    keys = books.api_keys()
    workspace, status = q.text("workspace_id"), q.text("status")
    keys = [k for k in keys if (workspace is None or k["workspace_id"] == workspace)]
    return _listed([k for k in keys if status is None or k["status"] == status], q)


# ---------------------------------------------------------------------- reports
def _instant(q: _Query, name: str, *, required: bool) -> int | None:
    raw = q.text(name)
    if raw is None:
        if required:
            raise _BadRequest(f"{name}: Field required", name, None)
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _BadRequest(f"{name}: Input should be a valid datetime (RFC 3339), got '{raw}'", name, None) from None
    if parsed.tzinfo is None:
        raise _BadRequest(f"{name}: timezone required in an RFC 3339 datetime, got '{raw}'", name, None)
    return int(parsed.timestamp())


def _window(q: _Query, now: float, width: int, limits: tuple[int, int]) -> tuple[list[int], str | None]:
    """The bucket starts of this page and the next page's cursor (None on the last page)."""
    start = _instant(q, "starting_at", required=True)
    assert start is not None
    end = _instant(q, "ending_at", required=False)
    default, maximum = limits
    limit = q.integer("limit", default=default, minimum=1, maximum=maximum)
    assert limit is not None
    first = start // width * width
    page = q.text("page")
    if page is not None:
        first = _decode_page(page, width, first)

    def exists(b: int) -> bool:
        return b <= now and (end is None or b + width <= end)

    starts = [b for b in range(first, first + limit * width, width) if exists(b)]
    after = first + limit * width
    return starts, (_encode_page(after, width) if len(starts) == limit and exists(after) else None)


def _repeat(books: AnthropicBooks, q: _Query, starts: list[int], width: int) -> list[int]:
    """The page's buckets, after the previous page's last ones again when the books say so."""
    if not (books.repeated_buckets and starts and q.text("page") is not None):
        return starts
    start = _instant(q, "starting_at", required=True) or 0
    again = range(starts[0] - books.repeated_buckets * width, starts[0], width)
    return [s for s in again if s >= start // width * width] + starts


def _report(buckets: list[dict[str, Any]], next_page: str | None) -> dict[str, Any]:
    return {"data": buckets, "has_more": next_page is not None, "next_page": next_page}


def _usage(books: AnthropicBooks, q: _Query, now: float) -> dict[str, Any]:
    width_name = q.choice("bucket_width", _WIDTHS, "1d")
    width = _WIDTHS[width_name]
    group_by = q.array("group_by", USAGE_GROUP_BY)
    workspaces, models = set(q.array("workspace_ids")), set(q.array("models"))
    tiers = set(q.array("service_tiers", SERVICE_TIERS))
    attributed = q.array("api_key_ids") or q.array("account_ids")
    starts, next_page = _window(q, now, width, _USAGE_LIMITS[width_name])
    starts = _repeat(books, q, starts, width)
    lines: list[UsageLine] = []
    if starts and not attributed and not books.empty_usage:
        lines = [
            u
            for u in books.usage(min(starts), max(starts) + width, now)
            if (not workspaces or u.workspace_id in workspaces)
            and (not models or u.model in models)
            and (not tiers or u.service_tier in tiers)
        ]
    grouped: dict[int, dict[tuple[Any, ...], list[int]]] = {s: {} for s in starts}
    for u in lines:
        key = (
            u.workspace_id if "workspace_id" in group_by else None,
            u.model if "model" in group_by else None,
            u.service_tier if "service_tier" in group_by else None,
        )
        sums = grouped[u.at // width * width].setdefault(key, [0] * len(TOKEN_TYPES))
        for i, n in enumerate(u.tokens):
            sums[i] += n
    buckets = [
        _bucket(s, width, [_usage_result(k, v) for k, v in sorted(grouped[s].items(), key=_order)]) for s in starts
    ]
    return _report(buckets, next_page)


def _usage_result(key: tuple[Any, ...], sums: list[int]) -> dict[str, Any]:
    workspace_id, model, tier = key
    return {
        "uncached_input_tokens": sums[0],
        "cache_read_input_tokens": sums[1],
        "cache_creation": {"ephemeral_5m_input_tokens": sums[2], "ephemeral_1h_input_tokens": sums[3]},
        "output_tokens": sums[4],
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": None,
        "workspace_id": workspace_id,
        "model": model,
        "service_tier": tier,
        "context_window": None,
        "inference_geo": None,
    }


def _costs(books: AnthropicBooks, q: _Query, now: float) -> dict[str, Any]:
    q.choice("bucket_width", ("1d",), "1d")
    group_by = q.array("group_by", COST_GROUP_BY)
    width = _WIDTHS["1d"]
    starts, next_page = _window(q, now, width, _COST_LIMITS)
    starts = _repeat(books, q, starts, width)
    grouped: dict[int, dict[tuple[Any, ...], Decimal]] = {s: {} for s in starts}
    if starts:
        for c in books.costs(min(starts), max(starts) + width, now):
            by_description = "description" in group_by
            key = (
                c.workspace_id if "workspace_id" in group_by else None,
                *((c.description, c.model, c.service_tier, c.token_type) if by_description else (None,) * 4),
            )
            bucket = grouped[c.at // width * width]
            bucket[key] = bucket.get(key, Decimal(0)) + c.cents
    buckets = []
    for s in starts:
        results = [_cost_result(k, v) for k, v in sorted(grouped[s].items(), key=_order)]
        buckets.append(_bucket(s, width, results + books.extra_costs(s)))
    return _report(buckets, next_page)


def _cost_result(key: tuple[Any, ...], amount: Decimal) -> dict[str, Any]:
    workspace_id, description, model, tier, token_type = key
    return {
        "amount": _decimal_text(amount),
        "currency": "USD",
        "cost_type": "tokens" if description else None,
        "description": description,
        "model": model,
        "service_tier": tier,
        "token_type": token_type,
        "context_window": "0-200k" if description else None,
        "inference_geo": None,
        "workspace_id": workspace_id,
    }


def _decimal_text(amount: Decimal) -> str:
    """An exact decimal as the API writes amounts: plain notation, no exponent, no trailing zeros."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _bucket(start: int, width: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"starting_at": _at(start), "ending_at": _at(start + width), "results": results}


def _at(t: int) -> str:
    """A bucket bound in RFC 3339, whole seconds (`2025-08-01T00:00:00Z`)."""
    return rfc3339(t).replace(".000000Z", "Z")


def _order(item: tuple[tuple[Any, ...], Any]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in item[0])


__all__ = ["ROOT", "answer", "handles"]
