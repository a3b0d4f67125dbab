"""Groq's and Azure OpenAI's batch APIs over the simulated organisation's OpenAI-shaped projects, with their quirks.

A project is served as Groq's or Azure's by how it is asked for (its key is one of the organisation's project
keys; give those projects `gsk_...` or Azure-like keys):

- Groq: `GET /openai/v1/batches[/{id}]` with `Authorization: Bearer gsk_...`. The list envelope is
  `{"object": "list", "data": [...]}`: no `has_more`, `first_id`, `last_id` (section 8 of the provider facts).
  Whether Groq honours `limit`/`after` is unconfirmed: `SimulatorServer.groq_paging` chooses ("honours": pages as
  OpenAI's, default 20; "ignores": every batch of the project on every request, whatever the query).
- Azure OpenAI: the key in an `api-key` header; the v1 API `GET /openai/v1/batches` (OpenAI's envelope, `after`)
  and the classic one `GET /openai/batches?api-version=...` (400 without `api-version`, as Azure answers).
  `SimulatorServer.azure_quirks` adds what Azure's documentation shows besides OpenAI's shape: "capitalised"
  statuses (`Completed`), "iso-times" (`2024-07-19T10:45:17Z` for every `*_at`), "uuid-ids" (`batch_<uuid>`,
  random, not time-ordered: the server maps them to and from the organisation's ids).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from .responses import Response, error_response, json_response

GROQ = "groq"
AZURE = "azure"
AZURE_QUIRKS = frozenset({"capitalised", "iso-times", "uuid-ids"})
_V1 = "/openai/v1/"
_CLASSIC = "/openai/"


def flavor_of(path: str, headers: dict[str, str]) -> str | None:
    """Which provider a request is for (None: OpenAI's or Anthropic's own paths)."""
    if not path.startswith(_CLASSIC):
        return None
    return AZURE if "api-key" in headers else GROQ


def key_of(flavor: str, headers: dict[str, str]) -> str:
    if flavor == AZURE:
        return headers.get("api-key", "").strip()
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


class IdMap:
    """Azure-style ids (`batch_<uuid>`, random) for the organisation's ids, both ways, stable for a server."""

    def __init__(self) -> None:
        self._out: dict[str, str] = {}
        self._back: dict[str, str] = {}
        self._lock = threading.Lock()

    def azure(self, batch_id: str) -> str:
        with self._lock:
            if (found := self._out.get(batch_id)) is None:
                digest = hashlib.sha256(batch_id.encode()).digest()[:16]
                found = f"batch_{uuid.UUID(bytes=digest, version=4)}"
                self._out[batch_id], self._back[found] = found, batch_id
            return found

    def original(self, azure_id: str) -> str | None:
        with self._lock:
            return self._back.get(azure_id)


def rewrite(
    flavor: str, path: str, query: dict[str, str], quirks: frozenset[str], ids: IdMap
) -> tuple[str, dict[str, str]] | Response:
    """The OpenAI path and query a flavoured request stands for, or the provider's own error answer."""
    query = dict(query)
    if path.startswith(_V1):
        rest = path[len(_V1) :]
    elif flavor == AZURE:
        rest = path[len(_CLASSIC) :]
        if not query.pop("api-version", ""):
            return error_response(
                400, "Missing required query parameter: api-version", code="MissingApiVersionParameter"
            )
    else:
        return error_response(404, f"Unknown request URL: GET {path}. Please check the URL for typos.")
    query.pop("api-version", None)
    parts = rest.split("/")
    if flavor == AZURE and "uuid-ids" in quirks:
        if len(parts) >= 2 and parts[0] == "batches" and parts[1]:
            parts[1] = ids.original(parts[1]) or parts[1] + "-unknown"
        if query.get("after"):
            query["after"] = ids.original(query["after"]) or "unknown"
    return "/v1/" + "/".join(parts), query


def render(
    flavor: str, resp: Response, quirks: frozenset[str], ids: IdMap, everything: list[dict[str, Any]] | None
) -> Response:
    """The provider's answer made of OpenAI's (`everything`: Groq ignoring paging, every batch of the project)."""
    if resp.status != 200 or resp.stream is not None or not resp.body.startswith(b"{"):
        return resp
    payload = orjson.loads(resp.body)
    if not isinstance(payload, dict):
        return resp
    is_list = payload.get("object") == "list" and isinstance(payload.get("data"), list)
    if flavor == GROQ:
        if is_list:
            payload = {"object": "list", "data": everything if everything is not None else payload["data"]}
        return json_response(200, payload, resp.headers)
    if "object" in payload and payload.get("object") not in ("batch", "list"):
        return json_response(200, payload, resp.headers)  # a file object: as OpenAI's
    for batch in payload["data"] if is_list else [payload]:
        _azure_batch(batch, quirks, ids)
    if is_list and "uuid-ids" in quirks and payload["data"]:
        payload["first_id"], payload["last_id"] = payload["data"][0]["id"], payload["data"][-1]["id"]
    return json_response(200, payload, resp.headers)


def _azure_batch(batch: dict[str, Any], quirks: frozenset[str], ids: IdMap) -> None:
    if "uuid-ids" in quirks:
        batch["id"] = ids.azure(batch["id"])
    if "capitalised" in quirks and isinstance(batch.get("status"), str):
        batch["status"] = batch["status"][:1].upper() + batch["status"][1:]  # Completed, In_progress
    if "iso-times" in quirks:
        for name, value in list(batch.items()):
            if name.endswith("_at") and isinstance(value, int) and not isinstance(value, bool):
                batch[name] = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["AZURE", "AZURE_QUIRKS", "GROQ", "IdMap", "flavor_of", "key_of", "render", "rewrite"]
