"""dlt source `anthropic_organization`: the organisation's Anthropic workspaces, the daily messages usage
report and the daily cost report from Anthropic's Admin API (an Admin API key), for reconciling the loaded
Message Batches with Anthropic's books; and which workspace each configured Anthropic project's key belongs to.

Resources (tables in the same dataset as the batches):

* `anthropic_workspaces`: every workspace, archived ones included, re-listed on every run.
* `anthropic_project_workspaces`: each configured project -> the workspace of its key, found by matching
  the key against the `partial_key_hint` of every key in `GET /v1/organizations/api_keys` (no key or hint
  is ever stored or shown; a project whose key matches none says so). Replaced on every run; two requests
  (keys, workspace names), none without configured projects.
* `anthropic_usage_daily`: `GET /v1/organizations/usage_report/messages`, daily buckets grouped by
  workspace, model and `service_tier` (`batch`: Message Batches).
* `anthropic_costs_daily`: `GET /v1/organizations/cost_report`, daily buckets grouped by workspace and
  description (model, service tier, token type); amounts are decimal strings in cents.
* the days both reports read, in `admin_days_read`.

Days are read as OpenAI's (sources/admin/days.py): a day read again replaces its rows, an empty day is
zero usage, the last three days read are read again next run; the first run starts at `first_day` (the
runner passes the first day with Anthropic batches), never before `EARLIEST_DAY`. Usable in any pipeline:

    pipeline.run(anthropic_organization(admin_key="sk-ant-admin01-...", project_keys={"claude": "sk-ant-api03-..."}))
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dlt
from dlt.sources import DltResource

from ... import settings
from ...client.anthropic import DEFAULT_BASE_URL
from ...client.anthropic_admin import COSTS_PATH, REPORT_PAGE_DAYS, USAGE_PATH, AnthropicAdminClient
from ...client.redact import Redactor
from ...client.retry import RetryPolicy
from ...client.transport import report_bucket_day
from ...tables.anthropic_admin import (
    AMBIGUOUS,
    COSTS_ENDPOINT,
    COSTS_TABLE,
    MATCHED,
    NO_MATCH,
    PROJECT_WORKSPACES_TABLE,
    USAGE_ENDPOINT,
    USAGE_TABLE,
    WORKSPACES_TABLE,
    costs_hints,
    costs_to_arrow,
    project_workspaces_hints,
    project_workspaces_to_arrow,
    usage_hints,
    usage_to_arrow,
    workspaces_hints,
    workspaces_to_arrow,
)
from ..admin.days import DAY_KEYED, DailyRead, read_daily_buckets
from ..dlt_logging import expected_arrow_overrides

# Message Batches opened on 2024-10-08: no batch usage can be older.
EARLIEST_DAY = date(2024, 10, 8)
# A hint matches a key only when it shows at least this many characters of it (its start and end):
# a hint of fewer could match keys it does not belong to.
_HINT_MIN_SHOWN = 8
_MERGE: Any = {"disposition": "merge", "strategy": "delete-insert"}


@dataclass
class AnthropicBooksCounts:
    """What a run of the source did: API calls, rows, the days it read, the projects' workspaces."""

    api_calls: int = 0  # HTTP calls made (retries included)
    workspaces: int = 0
    usage_rows: int = 0
    cost_rows: int = 0
    usage_from: date | None = None
    first_run: bool = False
    project_workspaces: dict[str, str | None] = field(default_factory=dict)  # project -> workspace id or None


def hint_matches(hint: Any, key: str) -> bool:
    """Whether ``key`` is the key a `partial_key_hint` (`sk-ant-api03-R2D...igAA`: its start and end) shows."""
    if not isinstance(hint, str) or hint.count("...") != 1:
        return False
    start, end = hint.split("...")
    shown = len(start) + len(end)
    return bool(start) and shown >= _HINT_MIN_SHOWN and len(key) > shown and key.startswith(start) and key.endswith(end)


def project_workspaces(
    project_keys: Mapping[str, str], api_keys: Sequence[Mapping[str, Any]], names: Mapping[str, str | None]
) -> list[tuple[str, str | None, str | None, str]]:
    """(project, workspace id, workspace name, key_match) of each configured project."""
    rows: list[tuple[str, str | None, str | None, str]] = []
    for project, key in project_keys.items():
        found = {_workspace_of(k) for k in api_keys if hint_matches(k.get("partial_key_hint"), key)}
        found.discard(None)
        if len(found) == 1:
            workspace = found.pop()
            rows.append((project, workspace, names.get(workspace or ""), MATCHED))
        else:
            rows.append((project, None, None, AMBIGUOUS if found else NO_MATCH))
    return rows


def _workspace_of(api_key: Mapping[str, Any]) -> str | None:
    """An API key's workspace: `workspace_id` (the reference's), else `scope.workspace_id` (newer SDKs')."""
    workspace = api_key.get("workspace_id")
    scope = api_key.get("scope")
    if not workspace and isinstance(scope, Mapping):
        workspace = scope.get("workspace_id")
    return workspace if isinstance(workspace, str) and workspace else None


@dlt.source(name="anthropic_organization", max_table_nesting=0)
def anthropic_organization(
    admin_key: str = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    project_keys: Mapping[str, str] | None = None,
    first_day: date | None = None,
    full_refresh: bool = False,
    timeout: float = settings.READ_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: AnthropicBooksCounts | None = None,
    other_keys: Sequence[str] = (),
) -> tuple[DltResource, ...]:
    """The organisation's workspaces, daily messages usage and daily costs.

    Args:
        admin_key: Anthropic Admin API key (`sk-ant-admin01-...`); sent as `x-api-key`, never stored.
        base_url: API root without `/v1` (as ANTHROPIC_BASE_URL).
        project_keys: Each configured Anthropic project's name and API key: matched against the key hints
            of the Admin API's key list, never sent, never stored.
        first_day: First UTC day the first run reads (default and lower bound: 2024-10-08).
        full_refresh: Read everything from `first_day` again, as a first run would.
        timeout: Seconds one request may take in all before it is retried.
        retry: Retry policy shared with the rest of the run (its budget included).
        stats: Filled with requests made, rows loaded, the days read and the projects' workspaces.
        other_keys: The other configured keys: masked wherever a server sends one back.
    """
    stats = stats if stats is not None else AnthropicBooksCounts()
    projects = dict(project_keys or {})
    secrets = (admin_key, *projects.values(), *other_keys)
    client_args: dict[str, Any] = {
        "admin_key": admin_key,
        "base_url": base_url,
        "timeout": timeout,
        "retry": retry,
        "other_secrets": tuple(k for k in secrets[1:] if k),
    }
    redactor = Redactor(*secrets)

    def clean(text: str) -> str:
        return redactor.clean(text, settings.IDENTIFIER_MAX_CHARS) if redactor.contains_secret(text) else text

    def client() -> AnthropicAdminClient:
        return AnthropicAdminClient(**client_args)

    def workspaces() -> Iterator[Any]:
        with client() as c:
            try:
                listed = list(c.workspaces())
            finally:
                stats.api_calls += c.api_calls
        with expected_arrow_overrides():
            table = workspaces_to_arrow(listed, clean)
        stats.workspaces = table.num_rows
        yield table

    def workspaces_of_projects() -> Iterator[Any]:
        keys: list[dict[str, Any]] = []
        names: dict[str, str | None] = {}
        if projects:  # no key to match: no request
            with client() as c:
                try:
                    keys = list(c.api_keys())
                    listed = workspaces_to_arrow(list(c.workspaces()), clean)
                finally:
                    stats.api_calls += c.api_calls
            names = dict(zip(listed["id"].to_pylist(), listed["name"].to_pylist(), strict=True))
        rows = project_workspaces(projects, keys, names)
        stats.project_workspaces = {project: workspace for project, workspace, _, _ in rows}
        with expected_arrow_overrides():
            yield project_workspaces_to_arrow(rows)

    def fetch(path: str, params: dict[str, Any]) -> Any:
        def buckets(c: AnthropicAdminClient, day: date) -> Iterator[dict[str, Any]]:
            return c.buckets(path, {**params, "starting_at": f"{day.isoformat()}T00:00:00Z"})

        return buckets

    common: dict[str, Any] = {
        "start": max(first_day or EARLIEST_DAY, EARLIEST_DAY),
        "full_refresh": full_refresh,
        "clean": clean,
        "stats": stats,
    }

    def usage_daily() -> Iterator[Any]:
        group_by = ["workspace_id", "model", "service_tier"]
        params = {"bucket_width": "1d", "group_by[]": group_by, "limit": REPORT_PAGE_DAYS}
        convert = functools.partial(usage_to_arrow, day_of=report_bucket_day)
        read = DailyRead(USAGE_ENDPOINT, client, fetch(USAGE_PATH, params), report_bucket_day, convert)
        yield from read_daily_buckets(read, **common, counter="usage_rows", from_attr="usage_from")

    def costs_daily() -> Iterator[Any]:
        params = {"bucket_width": "1d", "group_by[]": ["workspace_id", "description"], "limit": REPORT_PAGE_DAYS}
        convert = functools.partial(costs_to_arrow, day_of=report_bucket_day)
        read = DailyRead(COSTS_ENDPOINT, client, fetch(COSTS_PATH, params), report_bucket_day, convert)
        yield from read_daily_buckets(read, **common, counter="cost_rows")

    workspace_columns: Any = workspaces_hints()
    usage_columns: Any = usage_hints()
    project_columns: Any = project_workspaces_hints()
    cost_columns: Any = costs_hints()
    return (
        dlt.resource(
            workspaces, name=WORKSPACES_TABLE, write_disposition=_MERGE, primary_key="id", columns=workspace_columns
        ),
        dlt.resource(
            workspaces_of_projects,
            name=PROJECT_WORKSPACES_TABLE,
            write_disposition="replace",
            primary_key="project",
            columns=project_columns,
        ),
        dlt.resource(usage_daily, name=USAGE_TABLE, columns=usage_columns, **DAY_KEYED),
        dlt.resource(costs_daily, name=COSTS_TABLE, columns=cost_columns, **DAY_KEYED),
    )


__all__ = ["EARLIEST_DAY", "AnthropicBooksCounts", "anthropic_organization", "hint_matches"]
