"""HTTP access to OpenAI's Admin API (projects, completions usage, costs) with an admin key.

The same client machinery as the batch endpoints (client/batches.py): retry policy and run budget, a total
time bound per request, the key masked in everything shown. What differs is the paging: projects
page with `after` (the last id), usage and costs with the opaque `page`/`next_page` cursor; one loop
follows both (admin_pages.py, shared with Anthropic's Admin API).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .admin_pages import AdminPages
from .anthropic import ADMIN_KEY_PREFIX as ANTHROPIC_ADMIN_PREFIX
from .anthropic import KEY_PREFIX as ANTHROPIC_KEY_PREFIX
from .batches import BatchesClient

# Admin keys are made on the organisation's settings page; they start with this (project keys with
# `sk-proj-`, service accounts with `sk-svcacct-`).
ADMIN_KEY_PREFIX = "sk-admin-"

PROJECTS_PATH = "/organization/projects"
USAGE_PATH = "/organization/usage/completions"
COSTS_PATH = "/organization/costs"

# Buckets per page: the maximum for daily buckets (the SDK documents 31 for usage and 180 for costs),
# so a cron run's three re-read days take one request each.
USAGE_PAGE_DAYS = 31
COSTS_PAGE_DAYS = 180
PROJECTS_PAGE = 100

# Appended to a 401/403 of the Admin API: the usual cause is a project key given as the admin key.
_REFUSED_HINT = (
    " (the admin key was refused: OPENAI_ADMIN_KEY / admin_key must be an organization admin key, "
    f"{ADMIN_KEY_PREFIX}..., from the organization's Admin keys page; a project key cannot read the Admin API)"
)


class AdminClient(BatchesClient, AdminPages):
    """`GET /organization/projects`, `/organization/usage/completions` and `/organization/costs`."""

    REFUSED_HINT = _REFUSED_HINT

    def __enter__(self) -> AdminClient:
        return self

    def projects(self) -> Iterator[dict[str, Any]]:
        """Every project of the organisation, archived ones included."""
        params = {"limit": PROJECTS_PAGE, "include_archived": "true"}
        for body in self._pages(PROJECTS_PATH, params, expect="list"):
            yield from body["data"]

    def buckets(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every bucket of a usage or costs query from `start_time` to now, in order."""
        for body in self._pages(path, params, expect="page"):
            yield from body["data"]


def key_kind_problem(key: str, *, setting: str, want_admin: bool) -> str | None:
    """Why a key is of the wrong kind for ``setting``, judged by its documented prefix, else None.

    Only the prefix is named, never the key. A key of another shape (a gateway's) is not judged here:
    the API's refusal says it (with a hint, see `_REFUSED_HINT`). An Anthropic key (`sk-ant-...`) is never
    one of OpenAI's: OpenAI would refuse it with a 401 that does not say why."""
    if key.startswith(ANTHROPIC_KEY_PREFIX):  # also `sk-`: judged before OpenAI's own prefixes
        anthropic_admin = key.startswith(ANTHROPIC_ADMIN_PREFIX)
        kind = "an Anthropic Admin API key" if anthropic_admin else "an Anthropic key"
        where = (
            "ANTHROPIC_ADMIN_KEY" if anthropic_admin else 'ANTHROPIC_API_KEY (or a project with provider = "anthropic")'
        )
        return (
            f"{setting} is {kind} ({ANTHROPIC_KEY_PREFIX}...), which OpenAI refuses: put an OpenAI "
            f"{'admin key' if want_admin else 'key'} there and the Anthropic one in {where}"
        )
    if want_admin:
        if key.startswith("sk-") and not key.startswith(ADMIN_KEY_PREFIX):
            prefix = next((p for p in ("sk-proj-", "sk-svcacct-") if key.startswith(p)), "sk-")
            return (
                f"{setting} is not an admin key (it starts with {prefix}, not {ADMIN_KEY_PREFIX}): the Admin API "
                f"refuses project keys; create an admin key ({ADMIN_KEY_PREFIX}...) on the organization's Admin keys "
                "page, or unset it to load batches only"
            )
        return None
    if key.startswith(ADMIN_KEY_PREFIX):
        return (
            f"{setting} is an admin key ({ADMIN_KEY_PREFIX}...), which cannot list batches: put a project key there "
            "and the admin key in OPENAI_ADMIN_KEY (or admin_key in .dlt/secrets.toml)"
        )
    return None


__all__ = ["ADMIN_KEY_PREFIX", "AdminClient", "key_kind_problem"]
