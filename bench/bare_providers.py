"""Baseline: the bare paging loop of one provider's batch list, plain httpx + json, nothing else.

What any client pays to read the whole list, in that provider's own paging (section 1 and 3-11 of the provider
facts): no retries, no state, no rows written. Usage: `python bench/bare_providers.py PROVIDER BASE_URL` with the key
in BARE_API_KEY; BASE_URL is the API root with its version path, as the loader's `base_url`.

- azure, openai-compatible, openrouter: OpenAI's envelope, `limit=100` and `after` = the last id, until `has_more`
  is false (Azure's key in an `api-key` header);
- groq: no `has_more`: `after` = the last id (no `limit`, as Groq's SDK) until a page brings nothing new;
- mistral: page numbers over `order_by=created`, `page_size=100`, until `total` is reached;
- together: one request, a bare array of every batch.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import httpx


def pages(provider: str, base: str, client: httpx.Client) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if provider == "together":
        response = client.get(f"{base}/batches")
        response.raise_for_status()
        return list(json.loads(response.content))
    if provider == "mistral":
        number = 0
        while True:
            params = {"page": number, "page_size": 100, "order_by": "created"}
            response = client.get(f"{base}/batch/jobs", params=params)
            response.raise_for_status()
            page = json.loads(response.content)
            rows.extend(page["data"])
            if not page["data"] or len(rows) >= page["total"]:
                return rows
            number += 1
    seen: set[str] = set()
    after: str | None = None
    while True:
        params: dict[str, Any] = {} if provider == "groq" else {"limit": 100}
        if after:
            params["after"] = after
        response = client.get(f"{base}/batches", params=params)
        response.raise_for_status()
        page = json.loads(response.content)
        new = [b for b in page["data"] if b["id"] not in seen]
        seen.update(b["id"] for b in new)
        rows.extend(new)
        if not new or (provider != "groq" and not page.get("has_more")):
            return rows
        after = page["data"][-1]["id"]


def main(provider: str, base: str) -> int:
    key = os.environ["BARE_API_KEY"]
    headers = {"api-key": key} if provider == "azure" else {"Authorization": f"Bearer {key}"}
    with httpx.Client(headers=headers, timeout=60) as client:
        rows = pages(provider, base.rstrip("/"), client)
    print(f"bare paging loop ({provider}): {len(rows)} batches")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
