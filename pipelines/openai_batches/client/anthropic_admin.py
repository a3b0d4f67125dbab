"""HTTP access to Anthropic's Admin API with an Admin API key (`sk-ant-admin01-...`): the workspaces, the
API keys (as hints), the messages usage report and the cost report.

The same machinery as every client (transport.py) and the one Admin API paging loop (admin_pages.py):
lists follow `after_id` (the last item's id, which is the page's `last_id`), reports `page` = `next_page`.
Sends what the reference documents: `x-api-key` and `anthropic-version: 2023-06-01`; the base URL is the
API root without `/v1` (`ANTHROPIC_BASE_URL`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import settings
from .admin_pages import AdminPages
from .anthropic import ADMIN_KEY_PREFIX, API_VERSION, DEFAULT_BASE_URL, KEY_PREFIX
from .errors import ApiError
from .retry import RetryPolicy
from .urls import check_api_key

WORKSPACES_PATH = "/v1/organizations/workspaces"
API_KEYS_PATH = "/v1/organizations/api_keys"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COSTS_PATH = "/v1/organizations/cost_report"
# Items per list page and daily buckets per report page: the documented maxima (lists 1000; 1d usage 31,
# costs 31), so a cron run's re-read days take one request per report.
LIST_PAGE = 1000
REPORT_PAGE_DAYS = 31

_REFUSED_HINT = (
    " (the Anthropic Admin API refused the key: ANTHROPIC_ADMIN_KEY / anthropic_admin_key must be an Admin API "
    f"key, {ADMIN_KEY_PREFIX}..., from the Console's Admin keys page; a workspace API key cannot read it)"
)


def admin_key_problem(key: str, *, setting: str) -> str | None:
    """Why ``key`` is not an Anthropic Admin API key, judged by its documented prefix, else None. Only the
    prefix is named, never the key; a key of another shape (a gateway's) is left to the API's refusal."""
    if key.startswith(ADMIN_KEY_PREFIX):
        return None
    if key.startswith(KEY_PREFIX):
        return (
            f"{setting} is an Anthropic workspace API key ({KEY_PREFIX}api...), not an Admin API key "
            f"({ADMIN_KEY_PREFIX}...): the Admin API refuses it; create an Admin key in the Console, or unset "
            f"{setting} to load batches only"
        )
    if key.startswith("sk-"):
        return (
            f"{setting} looks like an OpenAI key (sk-..., not {ADMIN_KEY_PREFIX}...): put an Anthropic Admin API key "
            "there (and an OpenAI admin key in OPENAI_ADMIN_KEY)"
        )
    return None


class AnthropicAdminClient(AdminPages):
    """`GET /v1/organizations/workspaces`, `/api_keys`, `/usage_report/messages` and `/cost_report`."""

    REQUEST_ID_HEADER = "request-id"
    LIST_AFTER = "after_id"
    REFUSED_HINT = _REFUSED_HINT

    def __init__(
        self,
        *,
        admin_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = settings.READ_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        other_secrets: tuple[str, ...] = (),
        setting: str = "ANTHROPIC_ADMIN_KEY",
    ) -> None:
        if not admin_key:
            raise ApiError(f"no Anthropic Admin API key configured (set {setting})")
        admin_key, problem = check_api_key(admin_key)
        if problem:
            raise ApiError(f"{setting}: {problem}")
        if problem := admin_key_problem(admin_key, setting=setting):
            raise ApiError(problem)
        headers = {"x-api-key": admin_key, "anthropic-version": API_VERSION}
        super().__init__(
            base_url=base_url, headers=headers, secrets=(admin_key, *other_secrets), timeout=timeout, retry=retry
        )

    def __enter__(self) -> AnthropicAdminClient:
        return self

    def workspaces(self) -> Iterator[dict[str, Any]]:
        """Every workspace of the organisation, archived ones included."""
        for body in self._pages(WORKSPACES_PATH, {"limit": LIST_PAGE, "include_archived": "true"}, expect="list"):
            yield from body["data"]

    def api_keys(self) -> Iterator[dict[str, Any]]:
        """Every API key of the organisation (the API shows each as a `partial_key_hint` only)."""
        for body in self._pages(API_KEYS_PATH, {"limit": LIST_PAGE}, expect="list"):
            yield from body["data"]

    def buckets(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every bucket of a usage or cost report from `starting_at` to now, in order."""
        for body in self._pages(path, params, expect="report"):
            yield from body["data"]


__all__ = ["COSTS_PATH", "USAGE_PATH", "AnthropicAdminClient", "admin_key_problem"]
