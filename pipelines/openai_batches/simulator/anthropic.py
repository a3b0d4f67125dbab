"""Anthropic's Message Batches API, served from the simulated organisation's Anthropic workspaces.

`GET /v1/messages/batches` (newest first; `after_id`/`before_id`, `limit` 1..1000, `first_id`/`last_id`/
`has_more`), `GET /v1/messages/batches/{id}`, `GET /v1/messages/batches/{id}/results` (JSONL, one line
per request, in no particular order), `POST .../{id}/cancel` and `DELETE .../{id}`, with Anthropic's
error envelope. A key is accepted as `x-api-key` or `Authorization: Bearer` (recent SDKs send the
latter); any `anthropic-version` is accepted, but one must be sent.

Each batch is a small record of drawn numbers; its status, counts and results are derived from the
clock when read. Lifecycle: `in_progress` until it ends (most within the hour, a few at the 24-hour
expiry with requests `expired`), `canceling` for a few minutes after a cancel, then `ended`; counts
other than `processing` stay 0 until then; `results_url` once ended; `archived_at` (results gone: 404)
29 days after creation. No message content beyond CONTENT_MARKER is ever generated.

`request_truth(batch_id)` says what happened to each request of an ended batch as the request ledger must
record it (outcome, ids, model, tokens, error), computed from what the results say, for tests to compare
with every row.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson

from .batch_requests import CONTENT_MARKER
from .clock import SimClock
from .files import Streamed
from .responses import Response, json_response

PREFIX = "/v1/messages/batches"
EXPIRY_S = 24 * 3600  # a batch that has not ended 24 h after creation expires
RETENTION_S = 29 * 86_400  # results can be downloaded for 29 days after creation
LIST_LIMIT_MAX = 1000
LIST_LIMIT_DEFAULT = 20
# Models the workload submits, with the id a message reports (the API answers with the dated snapshot).
MODELS = (
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 0.40),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001", 0.30),
    ("claude-opus-4-1", "claude-opus-4-1-20250805", 0.08),
    ("claude-sonnet-4-0", "claude-sonnet-4-20250514", 0.12),
    ("claude-3-5-haiku", "claude-3-5-haiku-20241022", 0.10),
)
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass
class _Batch:
    """What a batch is made of; everything the API shows derives from it and the clock."""

    id: str
    created: float
    ends: float  # when processing ends if nothing intervenes (>= created + EXPIRY_S: it expires)
    total: int
    errored: int  # requests that fail (among those processed)
    model: int  # index into MODELS
    seed: int
    cancel_at: float | None = None
    canceled_end: float | None = None
    deleted: bool = False


def rfc3339(t: float) -> str:
    """The API's timestamps: UTC, microseconds, `Z`."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


@dataclass(frozen=True)
class MessageTruth:
    """What happened to one request of an Anthropic batch, as the request ledger must record it (the
    ledger's names; never content): `input_tokens` is all the input (uncached, cache reads and writes)."""

    custom_id: str
    outcome: str  # succeeded, failed, cancelled or expired
    response_id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    service_tier: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    status_code: int | None = None  # never: Anthropic's lines carry no status


_OUTCOMES = {"succeeded": "succeeded", "errored": "failed", "canceled": "cancelled", "expired": "expired"}


def truth_of(custom_id: str, result: dict[str, Any]) -> MessageTruth:
    """The truth of one results line (`result` as the line carries it)."""
    kind = result["type"]
    if kind == "succeeded":
        message = result["message"]
        usage = message["usage"]
        read, written = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
        details = usage.get("output_tokens_details")
        return MessageTruth(
            custom_id,
            "succeeded",
            response_id=message["id"],
            model=message["model"],
            input_tokens=usage["input_tokens"] + read + written,
            cached_tokens=read,
            cache_write_tokens=written,
            cache_write_1h_tokens=usage["cache_creation"]["ephemeral_1h_input_tokens"],
            output_tokens=usage["output_tokens"],
            reasoning_tokens=details["thinking_tokens"] if details else None,
            service_tier=usage["service_tier"],
        )
    if kind == "errored":
        envelope = result["error"]
        return MessageTruth(
            custom_id,
            "failed",
            request_id=envelope["request_id"],
            error_code=envelope["error"]["type"],
            error_message=envelope["error"]["message"],
        )
    return MessageTruth(custom_id, _OUTCOMES[kind])


class AnthropicBatches:
    """The Message Batches of every Anthropic workspace of a simulated organisation (`workspaces`: API key
    -> workspace id). Thread safe; deterministic from the seed."""

    def __init__(self, workspaces: dict[str, str], clock: SimClock, seed: int) -> None:
        self.workspaces = dict(workspaces)
        self.clock = clock
        self._rng = random.Random(f"anthropic:{seed}")
        self._lock = threading.RLock()
        self._batches: dict[str, list[_Batch]] = {w: [] for w in dict.fromkeys(self.workspaces.values())}
        self._by_id: dict[str, tuple[str, _Batch]] = {}
        # Test knobs (defaults: the real API's shape). The number of requests of a new batch is drawn from
        # lognormal(*requests_lognormal), ~240 on average: a test of lists rather than results may set
        # smaller ones (e.g. (2.0, 1.0)). `page_max`: the most batches one page holds whatever `limit` asks
        # (the API's 1000), so that a test pages through a short history.
        self.requests_lognormal: tuple[float, float] = (4.5, 1.4)
        self.page_max = LIST_LIMIT_MAX

    def workspace_of_key(self, key: str) -> str | None:
        return self.workspaces.get(key)

    # ------------------------------------------------------------------ populating
    def generate_history(self, n: int, *, workspace: str | None = None, days: float = 60.0) -> None:
        """`n` batches created over the `days` before now (split over the workspaces unless one is named)."""
        now = self.clock.now()
        targets = [workspace] if workspace is not None else list(self._batches)
        created = sorted(now - self._rng.random() * days * 86_400 for _ in range(n))
        for i, t in enumerate(created):
            self.create_batch(workspace=targets[i % len(targets)], created_at=t)

    def create_batch(  # noqa: PLR0913 -- each override is one drawn quantity a test may pin
        self,
        *,
        workspace: str | None = None,
        created_at: float | None = None,
        total_requests: int | None = None,
        processing_seconds: float | None = None,
        errored: int | None = None,
        model: str | None = None,
    ) -> str:
        """One batch (in progress when created now) and its id. `processing_seconds` >= 86400: it expires."""
        with self._lock:
            rng = self._rng
            w = workspace if workspace is not None else next(iter(self._batches))
            if w not in self._batches:
                raise ValueError(f"unknown Anthropic workspace {w!r}")
            created = self.clock.now() if created_at is None else created_at
            total = total_requests or max(1, min(5000, int(rng.lognormvariate(*self.requests_lognormal))))
            if processing_seconds is None:
                processing_seconds = (
                    EXPIRY_S + 1 if rng.random() < 0.03 else 60 + rng.expovariate(1 / 1800) + total * 0.2
                )
            if errored is None:
                errored = sum(1 for _ in range(min(total, 50)) if rng.random() < 0.02) * max(1, total // 50)
            names = [m[0] for m in MODELS]
            midx = names.index(model) if model in names else rng.choices(range(len(MODELS)), [m[2] for m in MODELS])[0]
            bits = rng.getrandbits(128)
            bid = "msgbatch_01" + "".join(_BASE58[(bits >> (6 * k)) % 58] for k in range(22))
            batch = _Batch(bid, created, created + processing_seconds, total, min(errored, total), midx, bits)
            if created_at is not None and rng.random() < 0.04:  # history: the user cancelled it part way
                batch.cancel_at = created + rng.random() * min(processing_seconds, EXPIRY_S)
                batch.canceled_end = batch.cancel_at + 10 + rng.random() * 290
            bisect.insort(self._batches[w], batch, key=lambda b: (b.created, b.id))
            self._by_id[bid] = (w, batch)
            return bid

    def cancel(self, batch_id: str) -> None:
        """Cancel a batch in progress: `canceling` now, `ended` (the rest `canceled`) 10 s to 5 min later.
        Cancelling a batch that is canceling or ended changes nothing."""
        with self._lock:
            found = self._by_id.get(batch_id)
            if found is None:
                raise KeyError(batch_id)
            b, now = found[1], self.clock.now()
            if self._status(b, now) == "in_progress":
                b.cancel_at = now
                b.canceled_end = now + 10 + b.seed % 290

    def delete(self, batch_id: str) -> str | None:
        """Delete an ended batch; None when done, else why not ("not_found", "not_ended")."""
        with self._lock:
            found = self._by_id.get(batch_id)
            if found is None or found[1].deleted:
                return "not_found"
            if self._status(found[1], self.clock.now()) != "ended":
                return "not_ended"
            found[1].deleted = True
            return None

    # ------------------------------------------------------------------ reading
    def _listed(self, workspace: str) -> list[_Batch]:
        """The workspace's batches newest first, deleted ones gone."""
        return [b for b in reversed(self._batches[workspace]) if not b.deleted]

    def batches(self, workspace: str, root: str = "http://simulator") -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock.now()
            return [self.render(b, now, root) for b in self._listed(workspace)]

    def get(self, batch_id: str, workspace: str | None = None) -> _Batch | None:
        with self._lock:
            found = self._by_id.get(batch_id)
            if found is None or found[1].deleted or (workspace is not None and found[0] != workspace):
                return None
            return found[1]

    def list_page(
        self, workspace: str, root: str, *, limit: int, after_id: str | None, before_id: str | None
    ) -> dict[str, Any]:
        """One page, newest first. An `after_id`/`before_id` that is not one of the workspace's batches
        gives an empty page with `has_more` false (never another workspace's data, never a loop)."""
        with self._lock:
            listed = self._listed(workspace)
            now = self.clock.now()
            limit = min(limit, self.page_max)
            ids = [b.id for b in listed]
            if before_id:
                if before_id not in ids:
                    return _page([], False)
                end = ids.index(before_id)
                start = max(0, end - limit)
                return _page([self.render(b, now, root) for b in listed[start:end]], start > 0)
            start = 0
            if after_id:
                if after_id not in ids:
                    return _page([], False)
                start = ids.index(after_id) + 1
            chunk = listed[start : start + limit]
            return _page([self.render(b, now, root) for b in chunk], start + limit < len(listed))

    def _status(self, b: _Batch, now: float) -> str:
        if now >= self._end(b):
            return "ended"
        return "canceling" if self._cancelled(b) and now >= (b.cancel_at or 0) else "in_progress"

    @staticmethod
    def _cancelled(b: _Batch) -> bool:
        """Whether a cancel came before processing ended (a later one changes nothing)."""
        return b.cancel_at is not None and b.cancel_at < min(b.ends, b.created + EXPIRY_S)

    def _end(self, b: _Batch) -> float:
        """When the batch ends: processing done, its cancellation done, or its expiry, whichever is first."""
        end = min(b.ends, b.created + EXPIRY_S)
        return min(b.canceled_end or end, b.created + EXPIRY_S) if self._cancelled(b) else end

    def outcomes(self, b: _Batch) -> dict[str, int]:
        """The final request counts: requests processed before a cancel or the expiry succeed or fail (in
        proportion to the time processing had), the rest are canceled or expired."""
        cancelled = self._cancelled(b)
        stop = (b.cancel_at or 0.0) if cancelled else min(b.ends, b.created + EXPIRY_S)
        processed = b.total
        if stop < b.ends:
            processed = min(b.total, int(b.total * (stop - b.created) / max(1.0, b.ends - b.created)))
        errored = min(b.errored, processed)
        rest = b.total - processed
        return {
            "processing": 0,
            "succeeded": processed - errored,
            "errored": errored,
            "canceled": rest if cancelled else 0,
            "expired": 0 if cancelled else rest,
        }

    def render(self, b: _Batch, now: float, root: str) -> dict[str, Any]:
        status = self._status(b, now)
        ended = status == "ended"
        counts = self.outcomes(b) if ended else dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
        if not ended:
            counts = {"processing": b.total, **counts}
        archived = b.created + RETENTION_S
        return {
            "id": b.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": rfc3339(self._end(b)) if ended else None,
            "created_at": rfc3339(b.created),
            "expires_at": rfc3339(b.created + EXPIRY_S),
            "archived_at": rfc3339(archived) if now >= archived else None,
            "cancel_initiated_at": rfc3339(b.cancel_at) if b.cancel_at is not None and b.cancel_at <= now else None,
            "results_url": f"{root}{PREFIX}/{b.id}/results" if ended else None,
        }

    # ------------------------------------------------------------------ results
    def results(self, b: _Batch) -> Iterator[tuple[str, dict[str, Any]]]:
        """(custom id, result) of each request of the batch, in a shuffled (not request) order: the one truth of
        every request's outcome and usage, which `results_lines` serves and Anthropic's books
        (anthropic_books.py) add up."""
        counts = self.outcomes(b)
        kinds = [k for k in ("succeeded", "errored", "canceled", "expired") for _ in range(counts[k])]
        rng = random.Random(b.seed)
        order = list(range(b.total))
        rng.shuffle(order)
        for i, kind in zip(order, kinds, strict=True):
            yield f"request-{i:06d}", _result(kind, b, i, rng)

    def results_lines(self, b: _Batch) -> Iterator[bytes]:
        """The batch's JSONL results, one line per request, in a shuffled (not request) order."""
        for custom_id, result in self.results(b):
            yield orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"

    def request_truth(self, batch_id: str) -> list[MessageTruth]:
        """What happened to each request of an ended batch (see MessageTruth), in its results' order."""
        found = self.get(batch_id)
        if found is None or self._status(found, self.clock.now()) != "ended":
            raise KeyError(f"{batch_id}: no such ended Anthropic batch")
        return [truth_of(custom_id, result) for custom_id, result in self.results(found)]

    def ended(self, workspace: str, now: float) -> list[tuple[_Batch, float]]:
        """The workspace's batches that have ended by `now`, deleted ones included (their usage was billed),
        each with the instant it ended."""
        with self._lock:
            return [(b, self._end(b)) for b in self._batches[workspace] if self._end(b) <= now]

    def results_body(self, b: _Batch) -> bytes:
        return b"".join(self.results_lines(b))


def _page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def usage_of(rng: random.Random) -> dict[str, Any]:
    """One request's usage as a batch message reports it (service tier `batch`, the cache-write split, and
    for requests with extended thinking the `output_tokens_details` breakdown)."""
    cached = rng.random() < 0.4
    five = rng.randint(500, 4000) if cached and rng.random() < 0.3 else 0
    hour = rng.randint(500, 4000) if cached and rng.random() < 0.1 else 0
    output = rng.randint(1, 3000)
    usage: dict[str, Any] = {
        "input_tokens": rng.randint(20, 6000),
        "cache_creation_input_tokens": five + hour,
        "cache_read_input_tokens": rng.randint(1000, 20000) if cached else 0,
        "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
        "output_tokens": output,
        "server_tool_use": None,
        "service_tier": "batch",
    }
    if rng.random() < 0.2:  # extended thinking: part of the output was reasoning
        usage["output_tokens_details"] = {"thinking_tokens": rng.randint(0, output)}
    return usage


# Why requests of a batch fail (`errored`), with their weights: mostly requests the API refuses.
_ERRORS = (
    ("invalid_request_error", "max_tokens: Field required", 0.7),
    ("invalid_request_error", "prompt is too long: 215302 tokens > 200000 maximum", 0.2),
    ("api_error", "Internal server error", 0.1),
)


def _result(kind: str, b: _Batch, i: int, rng: random.Random) -> dict[str, Any]:
    if kind == "succeeded":
        msg_bits = hashlib.blake2b(f"{b.id}:{i}".encode(), digest_size=24).digest()
        return {
            "type": "succeeded",
            "message": {
                "id": "msg_01" + "".join(_BASE58[c % 58] for c in msg_bits),
                "type": "message",
                "role": "assistant",
                "model": MODELS[b.model][1],
                "content": [{"type": "text", "text": f"{CONTENT_MARKER} simulated answer", "citations": None}],
                "stop_reason": "end_turn" if rng.random() < 0.9 else "max_tokens",
                "stop_sequence": None,
                "usage": usage_of(rng),
            },
        }
    if kind == "errored":
        error_type, message, _ = rng.choices(_ERRORS, [e[2] for e in _ERRORS])[0]
        return {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": error_type, "message": message},
                "request_id": "req_011" + "".join(_BASE58[rng.randrange(58)] for _ in range(21)),
            },
        }
    return {"type": kind}


# ---------------------------------------------------------------------- HTTP
def handles(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def key_of(headers: dict[str, str]) -> str:
    """The key of a request: `x-api-key`, or a Bearer token (what recent SDKs send)."""
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return headers.get("x-api-key", "").strip() or bearer


def answer(  # noqa: PLR0911 -- one answer per route and refusal, in the order the API checks them
    api: AnthropicBatches,
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    root: str,
    request_id: str,
) -> Response:
    """The response to a request under PREFIX (`root`: the server's API root, for `results_url`)."""

    def error(status: int, kind: str, message: str) -> Response:
        return json_response(status, error_body(kind, message, request_id))

    key = key_of(headers)
    if not key:
        return error(401, "authentication_error", "x-api-key header is required")
    workspace = api.workspace_of_key(key)
    if workspace is None:
        return error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version"):
        return error(400, "invalid_request_error", "anthropic-version: header is required")
    asked = headers.get("anthropic-workspace-id")
    if asked and asked != workspace:
        return error(403, "permission_error", "This API key does not have access to the requested workspace")
    parts = [unquote(p) for p in path[len(PREFIX) :].split("/")][1:]
    if not parts:
        if method != "GET":
            return error(405, "invalid_request_error", f"Method {method} not allowed")
        return _list(api, workspace, query, root, error)
    found = api.get(parts[0], workspace)
    if found is None:
        return error(404, "not_found_error", f"No message batch found with id '{parts[0]}'")
    return _on_batch(api, found, method, parts[1:], root, error) or error(
        404, "not_found_error", f"Not found: {method} {path}"
    )


def _on_batch(
    api: AnthropicBatches,
    found: _Batch,
    method: str,
    rest: list[str],
    root: str,
    error: Callable[[int, str, str], Response],
) -> Response | None:
    """Retrieve, delete, cancel or the results of one batch (None: no such route)."""
    if not rest and method == "GET":
        return json_response(200, api.render(found, api.clock.now(), root))
    if not rest and method == "DELETE":
        if api.delete(found.id) is not None:
            return error(400, "invalid_request_error", "Batch must be ended before it can be deleted.")
        return json_response(200, {"id": found.id, "type": "message_batch_deleted"})
    if rest == ["cancel"] and method == "POST":
        api.cancel(found.id)
        return json_response(200, api.render(found, api.clock.now(), root))
    if rest == ["results"] and method == "GET":
        batch = api.render(found, api.clock.now(), root)
        if batch["processing_status"] != "ended":
            return error(400, "invalid_request_error", f"Message batch {found.id} has not finished processing")
        if batch["archived_at"] is not None:
            return error(404, "not_found_error", f"Results for message batch {found.id} are no longer available")
        body = api.results_body(found)
        chunks = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        return Response(200, b"", "application/binary", {}, stream=Streamed(len(body), chunks, f"{found.id}.jsonl"))
    return None


def _list(
    api: AnthropicBatches,
    workspace: str,
    query: dict[str, str],
    root: str,
    error: Callable[[int, str, str], Response],
) -> Response:
    raw = query.get("limit")
    limit = LIST_LIMIT_DEFAULT
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            return error(400, "invalid_request_error", "limit: Input should be a valid integer")
        if not 1 <= limit <= LIST_LIMIT_MAX:
            return error(
                400, "invalid_request_error", f"limit: Input should be between 1 and {LIST_LIMIT_MAX} (got {limit})"
            )
    after, before = query.get("after_id") or None, query.get("before_id") or None
    if after and before:
        return error(400, "invalid_request_error", "Only one of after_id and before_id may be given")
    return json_response(200, api.list_page(workspace, root, limit=limit, after_id=after, before_id=before))
