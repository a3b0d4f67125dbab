"""Together's, Mistral's and OpenRouter's batch APIs over the simulated organisation's OpenAI-shaped projects, each in
its provider's shape (sections 7, 9 and 11 of the provider facts), mounted under a prefix of its own so that their
paths cannot collide with OpenAI's: `{root}/together/v1`, `{root}/mistral/v1`, `{root}/openrouter/api/v1` are the
base URLs. The key is a project key of the organisation, as `Authorization: Bearer`.

- Together: `GET /batches` is a bare JSON array of every batch of the key, ignoring any query; UUID ids, upper-case
  statuses, RFC 3339 times with microseconds, `progress` (0-100), no request counts or tokens. The order is
  undocumented: `SimulatorServer.together_order` chooses ("newest" first, "oldest" first, "shuffled").
- Mistral: `GET /batch/jobs` with `page` (0-based), `page_size` (default 100), `order_by` (`created` or the default
  `-created`), `created_after` (ISO 8601; strictly after), answering `{data, object: "list", total}`; UUID ids, its
  statuses, request counts on the job. `SimulatorServer.mistral_arrivals` new jobs are created in the project after
  each list page is served: jobs arriving while a client pages.
- OpenRouter: `GET /batches` in OpenAI's envelope (`after`, `limit` 1-100, default 20, `has_more`), its own batch
  object with `usage` (tokens and `cost` in USD) and `provider`, models named `vendor/model`; a batch read by id
  carries its `results` inline (content: RESULT_TEXT marks it, which nothing may store).

Results, for the request ledger: Together's and Mistral's batches name files of the organisation (files.py), served
at `{base}/files/{id}` (the provider's file object: no `expires_at`, Mistral's `sample_type` and `source`) and
`{base}/files/{id}/content` (the OpenAI-shaped JSONL the facts describe, content included); OpenRouter serves a
finished batch's results at `GET /batches/{id}/results` (`limit` 1-1000, default 100; `cursor`, the page before's
`next_cursor`), `{data, has_more, next_cursor, object: "list"}`, each row an OpenAI-shaped line of the batch's output
or error file (`{id, custom_id, response: {status_code, request_id, body}, error}`); 404 while the batch is open or
once its results are gone.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from .responses import Response, error_response, json_response

TOGETHER, MISTRAL, OPENROUTER = "together", "mistral", "openrouter"
PREFIXES = {TOGETHER: "/together/v1", MISTRAL: "/mistral/v1", OPENROUTER: "/openrouter/api/v1"}
TOGETHER_ORDERS = ("newest", "oldest", "shuffled")
# The content of every result OpenRouter returns inline: a test asserts it is stored nowhere.
RESULT_TEXT = "SIMULATED-RESULT-CONTENT do not store"

_END_FIELDS = ("completed_at", "failed_at", "expired_at", "cancelled_at")
_TOGETHER_STATUS = {
    "validating": "VALIDATING",
    "in_progress": "IN_PROGRESS",
    "finalizing": "IN_PROGRESS",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "expired": "EXPIRED",
    "cancelling": "CANCELING",
    "cancelled": "CANCELLED",
}
_MISTRAL_STATUS = {
    "validating": "QUEUED",
    "in_progress": "RUNNING",
    "finalizing": "RUNNING",
    "completed": "SUCCESS",
    "failed": "FAILED",
    "expired": "TIMEOUT_EXCEEDED",
    "cancelling": "CANCELLATION_REQUESTED",
    "cancelled": "CANCELLED",
}


def provider_of(path: str) -> str | None:
    for provider, prefix in PREFIXES.items():
        if path.startswith(prefix + "/"):
            return provider
    return None


class UuidMap:
    """UUIDs for the organisation's batch ids, both ways, stable (derived from the id)."""

    def __init__(self) -> None:
        self._back: dict[str, str] = {}
        self._lock = threading.Lock()

    def out(self, batch_id: str) -> str:
        found = str(uuid.UUID(bytes=hashlib.sha256(batch_id.encode()).digest()[:16], version=4))
        with self._lock:
            self._back[found] = batch_id
        return found

    def original(self, provider_id: str) -> str | None:
        with self._lock:
            return self._back.get(provider_id)


def _end(batch: dict[str, Any]) -> int | None:
    return next((batch[f] for f in _END_FIELDS if batch.get(f) is not None), None)


def _rfc3339(seconds: int | None, batch_id: str, field: str) -> str | None:
    if seconds is None:
        return None
    micro = int.from_bytes(hashlib.sha256(f"{batch_id}:{field}".encode()).digest()[:4], "big") % 1_000_000
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micro:06d}Z"


def together_batch(batch: dict[str, Any], ids: UuidMap) -> dict[str, Any]:
    counts = batch.get("request_counts") or {}
    total, done = counts.get("total") or 0, (counts.get("completed") or 0) + (counts.get("failed") or 0)
    errors = (batch.get("errors") or {}).get("data") or []
    bid = batch["id"]
    return {
        "id": ids.out(bid),
        "user_id": "user_" + hashlib.sha256(str(batch.get("metadata")).encode()).hexdigest()[:12],
        "input_file_id": batch.get("input_file_id"),
        "file_size_bytes": 1000 + total * 217,
        "endpoint": batch.get("endpoint"),
        "model_id": batch.get("model"),
        "status": _TOGETHER_STATUS.get(batch.get("status") or "", batch.get("status")),
        "progress": round(100.0 * done / total, 4) if total else 0.0,
        "created_at": _rfc3339(batch.get("created_at"), bid, "created_at"),
        "completed_at": _rfc3339(_end(batch), bid, "completed_at"),
        "job_deadline": _rfc3339(batch.get("expires_at"), bid, "job_deadline"),
        "output_file_id": batch.get("output_file_id"),
        "error_file_id": batch.get("error_file_id"),
        "error": errors[0].get("message") if errors and batch.get("status") == "failed" else None,
    }


def mistral_job(batch: dict[str, Any], ids: UuidMap) -> dict[str, Any]:
    counts = batch.get("request_counts") or {}
    completed, failed = counts.get("completed") or 0, counts.get("failed") or 0
    errors = (batch.get("errors") or {}).get("data") or []
    return {
        "id": ids.out(batch["id"]),
        "object": "batch",
        "input_files": [batch.get("input_file_id")],
        "endpoint": batch.get("endpoint"),
        "model": batch.get("model"),
        "agent_id": None,
        "metadata": batch.get("metadata"),
        "output_file": batch.get("output_file_id"),
        "error_file": batch.get("error_file_id"),
        "errors": [{"message": e.get("message"), "count": 1} for e in errors],
        "outputs": None,
        "status": _MISTRAL_STATUS.get(batch.get("status") or "", batch.get("status")),
        "created_at": batch.get("created_at"),
        "started_at": batch.get("in_progress_at"),
        "completed_at": _end(batch),
        "total_requests": counts.get("total"),
        "completed_requests": completed + failed,
        "succeeded_requests": completed,
        "failed_requests": failed,
    }


def openrouter_model(model: Any) -> Any:
    """OpenRouter names a model `vendor/model` (`openai/gpt-4o-mini`): the organisation's OpenAI model names under
    `openai/`, a name that has a vendor as it is."""
    return f"openai/{model}" if isinstance(model, str) and "/" not in model else model


def openrouter_batch(batch: dict[str, Any], *, results: bool = False) -> dict[str, Any]:
    counts = batch.get("request_counts") or {}
    usage = batch.get("usage") or {}
    prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    errors = (batch.get("errors") or {}).get("data") or []
    digest = hashlib.sha256(batch["id"].encode()).digest()
    # A cost of OpenRouter's own, with the digits a float carries (not a rounded figure).
    cost = (prompt * 0.075 + completion * 0.3) / 1_000_000 * (1 + digest[0] / 2550)
    return {
        "id": batch["id"],
        "object": "batch",
        "endpoint": batch.get("endpoint"),
        "model": openrouter_model(batch.get("model")),
        "provider": ("OpenAI", "Google Vertex", "Anthropic")[digest[1] % 3],
        "status": batch.get("status"),
        "completion_window": batch.get("completion_window"),
        "created_at": batch.get("created_at"),
        "finalized_at": _end(batch),
        "expires_at": batch.get("expires_at"),
        "request_counts": {
            "total": counts.get("total"),
            "completed": counts.get("completed"),
            "failed": counts.get("failed"),
        },
        "error": {"message": errors[0].get("message")} if errors and batch.get("status") == "failed" else None,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost": cost,
            "cost_details": {"upstream_inference_cost": cost * 0.95},
            "prompt_tokens_details": {"cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens")},
            "completion_tokens_details": {
                "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
            },
            "is_byok": digest[2] % 5 == 0,
            "service_tier": "batch",
        },
        "results": (
            [{"custom_id": "r-0", "response": {"status_code": 200, "body": {"content": RESULT_TEXT}}}]
            if results and batch.get("status") == "completed"
            else None
        ),
    }


def answer(
    provider: str,
    method: str,
    path: str,
    query: dict[str, str],
    project: str | None,
    *,
    every_batch: Callable[[str], list[dict[str, Any]]],
    get: Callable[[str, str], dict[str, Any] | None],
    list_page: Callable[[str, int, str | None], dict[str, Any]],
    ids: UuidMap,
    options: dict[str, Any],
    files: Callable[[list[str]], Response | None] | None = None,
    results: Callable[[str], list[dict[str, Any]] | None] | None = None,
) -> Response:
    """The provider's answer to one request (`project`: the key's, None for an unknown key). `files`: the
    organisation's files API answer for the path segments after `/files/`; `results`: a batch's result rows."""
    if project is None:
        return error_response(401, "Invalid API key provided.", code="invalid_api_key")
    rest = path[len(PREFIXES[provider]) :]
    if method != "GET":
        return error_response(405, f"{method} is not simulated here")
    collection = "/batch/jobs" if provider == MISTRAL else "/batches"
    if provider != OPENROUTER and rest.startswith("/files/") and files is not None:
        resp = files(rest[len("/files/") :].split("/"))
        if resp is not None:
            return _file_object(provider, resp)
    if provider == OPENROUTER and rest.startswith("/batches/") and rest.endswith("/results") and results is not None:
        return _openrouter_results(rest[len("/batches/") : -len("/results")], query, results)
    if rest == collection:
        if provider == TOGETHER:
            return _together_list(every_batch(project), ids, options.get("together_order", "newest"))
        if provider == MISTRAL:
            resp = _mistral_list(every_batch(project), ids, query)
            if resp.status == 200 and (arrivals := int(options.get("mistral_arrivals") or 0)):
                options["arrive"](project, arrivals)
            return resp
        return _openrouter_list(list_page, project, query)
    if rest.startswith(collection + "/") and "/" not in rest[len(collection) + 1 :]:
        wanted = rest[len(collection) + 1 :]
        original = wanted if provider == OPENROUTER else ids.original(wanted)
        batch = get(original, project) if original else None
        if batch is None:
            return error_response(404, f"Batch {wanted} not found")
        if provider == TOGETHER:
            return json_response(200, together_batch(batch, ids))
        if provider == MISTRAL:
            return json_response(200, mistral_job(batch, ids))
        return json_response(200, openrouter_batch(batch, results=True))
    return error_response(404, f"Not found: GET {path}")


def _file_object(provider: str, resp: Response) -> Response:
    """A file object of OpenAI's (files.py) as Together or Mistral describe one; content and errors as they are."""
    if resp.status != 200 or resp.stream is not None:
        return resp
    obj = orjson.loads(resp.body)
    for name in ("expires_at", "status", "status_details"):
        obj.pop(name, None)
    if provider == MISTRAL:
        obj["sample_type"] = {"batch": "batch_request", "batch_output": "batch_result"}.get(obj.get("purpose"), "")
        obj["source"] = "upload" if obj.get("purpose") == "batch" else "mistral"
        obj["purpose"] = "batch"
    else:
        obj["purpose"] = "batch-api"
    return json_response(200, obj, resp.headers)


# Result rows per page of OpenRouter's results when no `limit` is asked for (its maximum is 1000).
OPENROUTER_RESULTS_DEFAULT_LIMIT = 100


def _openrouter_results(
    batch_id: str, query: dict[str, str], results: Callable[[str], list[dict[str, Any]] | None]
) -> Response:
    try:
        limit = int(query.get("limit", str(OPENROUTER_RESULTS_DEFAULT_LIMIT)))
    except ValueError:
        return error_response(400, "limit must be an integer")
    if not 1 <= limit <= 1000:
        return error_response(400, "limit must be between 1 and 1000")
    start = 0
    if cursor := query.get("cursor"):
        try:
            owner, _, offset = base64.urlsafe_b64decode(cursor.encode()).decode().rpartition(":")
            start = int(offset)
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "invalid cursor")
        if owner != batch_id or start < 0:
            return error_response(400, "invalid cursor")
    rows = results(batch_id)
    if rows is None:
        return error_response(404, f"Results of batch {batch_id} not found")
    page = rows[start : start + limit]
    end = start + len(page)
    following = base64.urlsafe_b64encode(f"{batch_id}:{end}".encode()).decode() if end < len(rows) else None
    return json_response(
        200, {"data": page, "has_more": following is not None, "next_cursor": following, "object": "list"}
    )


def _together_list(batches: list[dict[str, Any]], ids: UuidMap, order: str) -> Response:
    items = [together_batch(b, ids) for b in batches]  # newest first, as the organisation lists them
    if order == "oldest":
        items.reverse()
    elif order == "shuffled":
        random.Random(len(items)).shuffle(items)
    return json_response(200, items)


def _mistral_list(batches: list[dict[str, Any]], ids: UuidMap, query: dict[str, str]) -> Response:
    try:
        page = int(query.get("page", "0"))
        size = int(query.get("page_size", "100"))
    except ValueError:
        return error_response(422, "page and page_size must be integers")
    if page < 0 or not 1 <= size <= 1000:
        return error_response(422, "page must be >= 0 and page_size between 1 and 1000")
    order = query.get("order_by", "-created")
    if order not in ("created", "-created"):
        return error_response(422, f"order_by must be created or -created, got {order!r}")
    jobs = [b for b in batches if isinstance(b.get("created_at"), int)]
    if after := query.get("created_after"):
        try:
            bound = datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return error_response(422, f"created_after is not a datetime: {after!r}")
        jobs = [b for b in jobs if b["created_at"] > bound]
    jobs.sort(key=lambda b: (b["created_at"], b["id"]), reverse=order == "-created")
    chosen = jobs[page * size : (page + 1) * size]
    return json_response(200, {"data": [mistral_job(b, ids) for b in chosen], "object": "list", "total": len(jobs)})


def _openrouter_list(
    list_page: Callable[[str, int, str | None], dict[str, Any]], project: str, query: dict[str, str]
) -> Response:
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        return error_response(400, "limit must be an integer")
    if not 1 <= limit <= 100:
        return error_response(400, "limit must be between 1 and 100")
    page = list_page(project, limit, query.get("after") or None)
    page["data"] = [openrouter_batch(b) for b in page["data"]]
    return json_response(200, page)


__all__ = [
    "MISTRAL",
    "OPENROUTER",
    "PREFIXES",
    "RESULT_TEXT",
    "TOGETHER",
    "TOGETHER_ORDERS",
    "UuidMap",
    "answer",
    "mistral_job",
    "openrouter_batch",
    "openrouter_model",
    "provider_of",
    "together_batch",
]
