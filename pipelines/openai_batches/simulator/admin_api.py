"""The Admin API face of the simulator: projects, completions usage and costs, and admin-key auth.

Served from the same :class:`SimulatedOrg` as the batch endpoints (the numbers come from its
:class:`~.books.Books`). The server asks :func:`answer` first; ``None`` means "not an Admin API
matter", and the batch routes answer as before.

Shapes follow the pinned `openai` package (`types/admin/organization/`). Choices where the real API
is undocumented, each made once here:

* Buckets are aligned to their width in UTC (1d: midnight); a page holds up to ``limit`` buckets, empty
  ones included, from ``start_time`` to ``end_time`` (default: now), never past the bucket holding now.
  A bucket always covers its whole width, even when ``end_time`` falls inside it.
* ``page``/``next_page`` is an opaque cursor holding the next bucket's start (and its width).
* Grouping by ``user_id`` or ``api_key_id`` is accepted, but the simulator attributes no usage to users
  or keys: those fields stay null, and filtering by ``user_ids``/``api_key_ids`` matches nothing.
  Grouped by ``service_tier`` everything is "default"; by ``api_source``, "unlabeled".
* Projects are listed oldest first (``after`` = a project id; an unknown one gives an empty page).

Misbehaviour a test can ask for (:class:`~.books.Books`): usage pages that repeat the previous page's
last buckets (``books.repeat_usage_buckets``), usage buckets with no results
(``books.serve_empty_usage``), and cost results added as given (``books.add_cost_result``: no project,
another currency, an amount as a string or not a number).
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .books import DAY, CostLine, UsageRow

if TYPE_CHECKING:
    from .org import SimulatedOrg

Answer = tuple[int, dict[str, Any]]

ADMIN_ROOT = "/v1/organization"

_WIDTHS = {"1m": 60, "1h": 3600, "1d": DAY}
# (default, maximum) buckets per page, from the SDK's documentation of `limit`.
_USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
_COSTS_LIMITS = (7, 180)
USAGE_GROUP_BY = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "api_source")
COSTS_GROUP_BY = ("project_id", "user_id", "line_item", "api_key_id", "api_source")

# Refusals. The real API's answer to a key of the wrong kind is not documented; keys lacking a scope
# are reported (OpenAI community threads, 2024-2026) to get 401 with this message, type
# `invalid_request_error` and null param/code, so both directions answer that way: a project key on
# the Admin API lacks `api.usage.read` (usage, costs) or `api.management.read` (projects); an admin
# key outside it lacks the scope of what it asked for (`api.batch.read` for listing batches, ...).
_SCOPE_MESSAGE = (
    "You have insufficient permissions for this operation. Missing scopes: {scope}. Check that you have the "
    "correct role in your organization{roles}, and if you're using a restricted API key, that it has the "
    "necessary scopes."
)
_PROJECT_ROLES = " (Reader, Writer, Owner) and project (Member, Owner)"


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None, code: str | None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> Answer:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def answer(org: SimulatedOrg, method: str, path: str, raw_query: str, key: str) -> Answer | None:
    """The response to a request if it is the Admin API's business, else None.

    A missing or unknown key is left to the batch routes (same 401s everywhere).
    """
    on_admin = path == ADMIN_ROOT or path.startswith(ADMIN_ROOT + "/")
    if not key:
        return None
    if org.is_admin_key(key):
        if not on_admin:
            return _error(401, _SCOPE_MESSAGE.format(scope=_scope_outside(method, path), roles=_PROJECT_ROLES))
        return _serve(org, method, path, raw_query)
    if on_admin and org.project_of_key(key) is not None:
        scope = "api.management.read" if path.rstrip("/").endswith("/projects") else "api.usage.read"
        return _error(401, _SCOPE_MESSAGE.format(scope=scope, roles=""))
    return None


def _scope_outside(method: str, path: str) -> str:
    resource = (path.split("/") + ["", "", ""])[2]  # "", "v1", resource, ...
    access = "read" if method == "GET" else "write"
    if resource == "batches":
        return f"api.batch.{access}"
    if resource == "files":
        return f"api.files.{access}"
    return "model.request" if method == "POST" else "api.model.read"


def _serve(org: SimulatedOrg, method: str, path: str, raw_query: str) -> Answer:
    routes: dict[str, Callable[[SimulatedOrg, _Query], Answer]] = {
        ADMIN_ROOT + "/projects": _projects,
        ADMIN_ROOT + "/usage/completions": _usage_completions,
        ADMIN_ROOT + "/costs": _costs,
    }
    handler = routes.get(path.rstrip("/")) if method == "GET" else None
    if handler is None:
        return _error(404, f"Invalid URL ({method} {path})")
    try:
        return handler(org, _Query(raw_query))
    except _BadRequest as exc:
        return _error(400, exc.message, exc.param, exc.code)


# ---------------------------------------------------------------------- query parameters
class _Query:
    """Query parameters the way the API reads them: arrays as ``name[]=a&name[]=b`` (what the SDK
    sends), ``name=a,b`` or a repeated ``name=``; a repeated scalar takes its last value."""

    def __init__(self, raw: str) -> None:
        self._pairs = parse_qsl(raw, keep_blank_values=True)

    def _last(self, name: str) -> str | None:
        values = [v for k, v in self._pairs if k == name]
        return values[-1] if values else None

    def integer(
        self, name: str, *, default: int | None = None, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        raw = self._last(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _BadRequest(
                f"Invalid '{name}': expected an integer, but got '{raw}' instead.", name, "invalid_type"
            ) from None
        if minimum is not None and value < minimum:
            raise _BadRequest(
                f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, but got {value} "
                "instead.",
                name,
                "integer_below_min_value",
            )
        if maximum is not None and value > maximum:
            raise _BadRequest(
                f"Invalid '{name}': integer above maximum value. Expected a value <= {maximum}, but got {value} "
                "instead.",
                name,
                "integer_above_max_value",
            )
        return value

    def required_integer(self, name: str, *, minimum: int = 0) -> int:
        value = self.integer(name, minimum=minimum)
        if value is None:
            raise _BadRequest(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self._last(name)
        if raw is None or raw == "":
            return None
        low = raw.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise _BadRequest(f"Invalid '{name}': expected a boolean, but got '{raw}' instead.", name, "invalid_type")

    def choice(self, name: str, allowed: Iterable[str], default: str) -> str:
        raw = self._last(name)
        if raw is None or raw == "":
            return default
        allowed = tuple(allowed)
        if raw not in allowed:
            raise _BadRequest(_invalid_value(raw, allowed), name, "invalid_value")
        return raw

    def array(self, name: str, allowed: Iterable[str] | None = None, *, commas: bool = True) -> list[str]:
        """``commas=False`` for values that contain commas themselves (line items)."""
        values: list[str] = []
        for k, v in self._pairs:
            if k in (name, name + "[]"):
                parts = v.split(",") if commas else [v]
                values.extend(part.strip() for part in parts if part.strip())
        if allowed is not None:
            allowed = tuple(allowed)
            for v in values:
                if v not in allowed:
                    raise _BadRequest(_invalid_value(v, allowed), name, "invalid_value")
        return list(dict.fromkeys(values))

    def text(self, name: str) -> str | None:
        raw = self._last(name)
        return raw or None


def _invalid_value(raw: str, allowed: tuple[str, ...]) -> str:
    quoted = [f"'{a}'" for a in allowed]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    return f"Invalid value: '{raw}'. Supported values are: {listed}."


# ---------------------------------------------------------------------- buckets and pages
def _encode_page(start: int, width: int) -> str:
    return "page_" + base64.urlsafe_b64encode(struct.pack(">qq", start, width)).decode()


def _decode_page(page: str, width: int, first: int) -> int:
    bad = _BadRequest(f"Invalid 'page': '{page}' is not a valid page cursor for this query.", "page", "invalid_value")
    if not page.startswith("page_"):
        raise bad
    try:
        start, page_width = struct.unpack(">qq", base64.urlsafe_b64decode(page[5:].encode()))
    except (binascii.Error, struct.error, ValueError):
        raise bad from None
    if page_width != width or start % width or start < first:
        raise bad
    return int(start)


def _window(q: _Query, now: int, width: int, limit_bounds: tuple[int, int]) -> tuple[list[int], str | None]:
    """The bucket starts of this page and the cursor of the next one (None on the last page)."""
    start = q.required_integer("start_time")
    end = q.integer("end_time", minimum=0)
    if end is not None and end <= start:
        raise _BadRequest("Invalid 'end_time': it must be greater than 'start_time'.", "end_time", "invalid_value")
    default, maximum = limit_bounds
    limit = q.integer("limit", default=default, minimum=1, maximum=maximum)
    assert limit is not None
    first = start // width * width
    page = q.text("page")
    if page is not None:
        first = _decode_page(page, width, first)

    def exists(b: int) -> bool:
        # No bucket starts after now: the one holding now is the last, partly filled.
        return b <= now and (end is None or b < end)

    starts = [b for b in range(first, first + limit * width, width) if exists(b)]
    after = first + limit * width
    return starts, (_encode_page(after, width) if len(starts) == limit and exists(after) else None)


def _page(buckets: list[dict[str, Any]], next_page: str | None) -> Answer:
    return 200, {"object": "page", "data": buckets, "has_more": next_page is not None, "next_page": next_page}


def _grouped_page(
    grouped: Mapping[int, Mapping[tuple[Any, ...], Any]],
    starts: Sequence[int],
    width: int,
    result: Callable[[tuple[Any, ...], Any], dict[str, Any]],
    next_page: str | None,
) -> Answer:
    """A page of the buckets starting at `starts`: each group's sums as `result` renders them, in the
    API's order of groups."""
    buckets = [_bucket(s, width, [result(k, v) for k, v in sorted(grouped[s].items(), key=_sort_key)]) for s in starts]
    return _page(buckets, next_page)


def _bucket(start: int, width: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": start + width, "results": results}


def _now(org: SimulatedOrg) -> int:
    return math.floor(org.clock.now())


# ---------------------------------------------------------------------- endpoints
def _projects(org: SimulatedOrg, q: _Query) -> Answer:
    limit = q.integer("limit", default=20, minimum=1, maximum=100)
    assert limit is not None
    include_archived = bool(q.boolean("include_archived"))
    after = q.text("after")
    records = [r for r in org.project_records() if include_archived or r["status"] != "archived"]
    pos = 0
    if after is not None:
        ids = [r["id"] for r in records]
        pos = ids.index(after) + 1 if after in ids else len(records)
    data = records[pos : pos + limit]
    return 200, {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": pos + limit < len(records),
    }


def _usage_completions(org: SimulatedOrg, q: _Query) -> Answer:
    now = _now(org)
    width_name = q.choice("bucket_width", _WIDTHS, "1d")
    width = _WIDTHS[width_name]
    group_by = q.array("group_by", USAGE_GROUP_BY)
    project_ids = set(q.array("project_ids"))
    models = set(q.array("models"))
    attributed = q.array("user_ids") or q.array("api_key_ids")
    batch = q.boolean("batch")
    starts, next_page = _window(q, now, width, _USAGE_LIMITS[width_name])
    repeated = org.books.repeated_usage_buckets
    if repeated and starts and q.text("page") is not None:
        first = q.required_integer("start_time") // width * width
        starts = [s for s in range(starts[0] - repeated * width, starts[0], width) if s >= first] + starts

    rows: list[UsageRow] = []
    if starts and not attributed and not org.books.empty_usage:
        rows = [
            r
            for r in org.books.usage(width, starts[0], starts[-1], now)
            if r.kind == "completions"
            and (not project_ids or r.project_id in project_ids)
            and (not models or r.model in models)
            and (batch is None or r.batch == batch)
        ]
    grouped: dict[int, dict[tuple[Any, ...], list[int]]] = {s: {} for s in starts}
    for r in rows:
        key = (
            r.project_id if "project_id" in group_by else None,
            r.model if "model" in group_by else None,
            r.batch if "batch" in group_by else None,
        )
        sums = grouped[r.start_time].setdefault(key, [0, 0, 0, 0])
        sums[0] += r.input_tokens
        sums[1] += r.input_cached_tokens
        sums[2] += r.output_tokens
        sums[3] += r.num_model_requests
    return _grouped_page(grouped, starts, width, lambda k, v: _usage_result(k, v, group_by), next_page)


def _usage_result(key: tuple[Any, ...], sums: list[int], group_by: list[str]) -> dict[str, Any]:
    project_id, model, batch = key
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": sums[0],
        "output_tokens": sums[2],
        "input_cached_tokens": sums[1],
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": sums[3],
        "project_id": project_id,
        "user_id": None,
        "api_key_id": None,
        "model": model,
        "batch": batch,
        "service_tier": "default" if "service_tier" in group_by else None,
        "api_source": "unlabeled" if "api_source" in group_by else None,
    }


def _costs(org: SimulatedOrg, q: _Query) -> Answer:
    now = _now(org)
    q.choice("bucket_width", ("1d",), "1d")
    group_by = q.array("group_by", COSTS_GROUP_BY)
    project_ids = set(q.array("project_ids"))
    line_items = set(q.array("line_items", commas=False))
    attributed = q.array("api_key_ids")
    starts, next_page = _window(q, now, DAY, _COSTS_LIMITS)

    lines: list[CostLine] = []
    if starts and not attributed:
        lines = [
            c
            for c in org.books.costs(starts[0], starts[-1], now)
            if (not project_ids or c.project_id in project_ids) and (not line_items or c.line_item in line_items)
        ]
    grouped: dict[int, dict[tuple[Any, ...], list[float]]] = {s: {} for s in starts}
    for c in lines:
        key = (
            c.project_id if "project_id" in group_by else None,
            c.line_item if "line_item" in group_by else None,
        )
        sums = grouped[c.start_time].setdefault(key, [0.0, 0.0])
        sums[0] += c.amount_usd
        sums[1] += c.quantity
    status, page = _grouped_page(grouped, starts, DAY, lambda k, v: _cost_result(k, v, group_by), next_page)
    for bucket in page["data"]:
        extra = org.books.extra_costs(bucket["start_time"])
        bucket["results"] += [r for r in extra if not project_ids or r["project_id"] in project_ids]
    return status, page


def _cost_result(key: tuple[Any, ...], sums: list[float], group_by: list[str]) -> dict[str, Any]:
    project_id, line_item = key
    by_line = "line_item" in group_by
    return {
        "object": "organization.costs.result",
        "amount": {"value": sums[0], "currency": "usd"},
        "line_item": line_item,
        "project_id": project_id,
        "quantity": sums[1] if by_line else None,
        "quantity_unit": "tokens" if by_line else None,
        "api_key_id": None,
        "user_id": None,
        "api_source": "unlabeled" if "api_source" in group_by else None,
    }


def _sort_key(item: tuple[tuple[Any, ...], Any]) -> tuple[str, ...]:
    # Deterministic order inside a bucket: None first, then by value.
    return tuple("" if v is None else str(v) for v in item[0])
