"""`openai-batches status`: is the database fresh, and what did the last successful load do?

`status` reads the run log (load/run_log.py) and each provider's table of batches (`batches`,
`anthropic_batches`: one line per project, naming its provider) through a read-only connection, under
the shared side of the load lock, so it never makes a running load fail on DuckDB's file lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import settings
from ..client.errors import error_line

if TYPE_CHECKING:
    from ..analysis.findings import Findings
    from ..storage.store import Store

# --- reading --------------------------------------------------------------------------------------


@dataclass
class ProjectStatus:
    project: str
    provider: str = settings.DEFAULT_PROVIDER  # whose batch API (settings.PROVIDERS)
    last_success: datetime | None = None  # end of the last run that loaded
    requests: int | None = None  # of that run
    new: int | None = None
    updated: int | None = None
    batches: int = 0  # rows in the table now
    open_now: int = 0  # batches not in a terminal status now
    oldest_open: datetime | None = None  # created_at of the oldest of them
    gone: int = 0  # batches the API stopped returning while they were open


@dataclass
class StatusReport:
    db_path: str
    last_load: datetime | None = None  # dlt's last completed load, whatever the project
    projects: list[ProjectStatus] = field(default_factory=list)
    # With an admin key: missing projects and months that differ (None: the Admin API's tables were never loaded).
    reconciliation: Findings | None = None
    reconciliation_error: str | None = None
    # The request ledger's files by state (`read`, `pending`, `gone`); None: the ledger never ran.
    ledger_files: dict[str, int] | None = None
    ledger_pending_bytes: int = 0

    def stale(self, max_age: timedelta, now: datetime) -> list[str]:
        """One reason per project (or for the database) whose last success is older than max_age."""
        if not self.projects:
            return [f"no successful load recorded in {self.db_path}"]
        reasons = []
        for p in self.projects:
            if p.last_success is None:
                reasons.append(f"project {p.project}: no successful load recorded")
            elif now - p.last_success > max_age:
                reasons.append(
                    f"project {p.project}: last successful load {format_age(now - p.last_success)} ago, "
                    f"older than {format_age(max_age)}"
                )
        return reasons


def read_status(where: Store | str) -> StatusReport:
    """Everything `status` shows, from a read-only connection (raises duckdb.Error as it comes)."""
    from ..storage.duckdb_file import tables_in
    from ..storage.store import DuckDBFile, as_store, connected

    store = as_store(where)
    shown = str(Path(store.path).resolve()) if isinstance(store, DuckDBFile) else store.shown()
    report = StatusReport(db_path=shown)
    schema = settings.DATASET_NAME
    with connected(store, read_only=True) as con:
        tables = set(tables_in(con, schema))
        projects: dict[tuple[str, str], ProjectStatus] = {}  # (provider, project) -> its line

        def line(provider: str, project: str) -> ProjectStatus:
            return projects.setdefault((provider, project), ProjectStatus(project, provider))

        if "_dlt_loads" in tables:
            row = con.execute(f"SELECT max(inserted_at) FROM {schema}._dlt_loads WHERE status = 0").fetchone()
            report.last_load = _utc(row[0]) if row else None
        if settings.RUN_LOG_TABLE in tables:
            # A run log written before there were providers has no `provider` column: its rows are OpenAI's.
            columns = {r[0] for r in con.execute(f"DESCRIBE {schema}.{settings.RUN_LOG_TABLE}").fetchall()}
            provider = "coalesce(provider, 'openai')" if "provider" in columns else "'openai'"
            for project, run_provider, finished, requests, new, updated in con.execute(
                f"""SELECT project, p, finished_at, requests, new, updated FROM (
                        SELECT *, {provider} AS p,
                               row_number() OVER (PARTITION BY project, {provider} ORDER BY finished_at DESC) AS n
                        FROM {schema}.{settings.RUN_LOG_TABLE}) WHERE n = 1"""
            ).fetchall():
                projects[(run_provider, project)] = ProjectStatus(
                    project, run_provider, _utc(finished), requests, new, updated
                )
        gone_table = f"{schema}.{settings.GONE_TABLE}" if settings.GONE_TABLE in tables else None
        for provider_name, table in settings.BATCH_TABLES.items():
            if table not in tables:
                continue
            is_open = _open_sql(provider_name, gone_table)
            for project, batches, open_now, oldest in con.execute(
                f"""SELECT coalesce(project, ''), count(*), count(*) FILTER (WHERE {is_open}),
                           min(created_at) FILTER (WHERE {is_open})
                    FROM {schema}.{table} GROUP BY 1"""
            ).fetchall():
                status = line(provider_name, project)
                status.batches, status.open_now, status.oldest_open = batches, open_now, _utc(oldest)
        if gone_table:
            # Whose a gone id is: the provider whose table holds it (ids of two providers do not collide), else OpenAI.
            owner = " ".join(
                f"WHEN g.id IN (SELECT id FROM {schema}.{table}) THEN '{provider_name}'"
                for provider_name, table in settings.BATCH_TABLES.items()
                if provider_name != settings.DEFAULT_PROVIDER and table in tables
            )
            whose = (
                f"CASE {owner} ELSE '{settings.DEFAULT_PROVIDER}' END" if owner else f"'{settings.DEFAULT_PROVIDER}'"
            )
            query = f"SELECT coalesce(g.project, ''), {whose}, count(*) FROM {gone_table} g GROUP BY 1, 2"
            for project, provider_name, gone in con.execute(query).fetchall():
                line(str(provider_name), project).gone = gone
        report.projects = sorted(projects.values(), key=lambda p: (p.project, p.provider))
        if settings.FILES_TABLE in tables:
            report.ledger_files = {"read": 0, "pending": 0, "gone": 0}
            query = f"SELECT state, count(*), coalesce(sum(bytes), 0) FROM {schema}.{settings.FILES_TABLE} GROUP BY 1"
            for state, count, size in con.execute(query).fetchall():
                report.ledger_files[str(state)] = int(count)
                if state == "pending":
                    report.ledger_pending_bytes = int(size)
    _read_reconciliation(report, store)
    return report


# What "open" means in each provider's table: the status column and its terminal values.
def _open_sql(provider: str, gone_table: str | None) -> str:
    """`is_open` of a provider's batch rows: Anthropic's `processing_status`; every other provider's `status` in
    OpenAI's words (any casing, Mistral's and Together's synonyms: settings.openai_status_sql), OpenAI's as sent."""
    if provider == "anthropic":
        return settings.is_open_sql(
            "processing_status", gone_table=gone_table, terminal=settings.ANTHROPIC_TERMINAL_STATUSES
        )
    column = "status" if provider == settings.DEFAULT_PROVIDER else settings.openai_status_sql("status")
    return settings.is_open_sql(column, gone_table=gone_table)


def _read_reconciliation(report: StatusReport, store: Store) -> None:
    """What the reconciliation views find; a failure there is a line of the output, not a failed status."""
    from ..analysis.findings import read_findings

    try:
        report.reconciliation = read_findings(store)
    except Exception as e:  # noqa: BLE001 -- freshness is status's job; this part must not take it down
        report.reconciliation_error = error_line(e, with_type=True)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# --- durations ------------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """`90m`, `2h`, `1d`, `1h30m`, `45s`, `1w`: a unit is required, so `60` cannot be misread."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 90m, 2h, 1d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be more than zero")
    return timedelta(seconds=seconds)


def format_age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            smaller = {"d": ("h", 3600), "h": ("m", 60), "m": ("s", 1)}[unit]
            tail = rest // smaller[1]
            return f"{whole}{unit}{tail}{smaller[0]}" if tail else f"{whole}{unit}"
    return f"{seconds}s"


# --- output ---------------------------------------------------------------------------------------


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    return f"{value:%Y-%m-%d %H:%M:%S} UTC ({format_age(now - value)} ago)"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render(report: StatusReport, now: datetime) -> list[str]:
    lines = [f"database {report.db_path}: last load {_when(report.last_load, now)}"]
    if not report.projects:
        lines.append("no batches loaded yet")
        return lines + _reconciliation_lines(report)
    # The provider last: scripts that read the columns before it read the same columns as before providers.
    header = (
        "project",
        "last successful load",
        "requests",
        "new",
        "updated",
        "batches",
        "open",
        "oldest open",
        "gone",
        "provider",
    )
    rows = [
        (
            p.project or "(none)",
            _when(p.last_success, now),
            _count(p.requests),
            _count(p.new),
            _count(p.updated),
            _count(p.batches),
            _count(p.open_now),
            _when(p.oldest_open, now) if p.open_now else "-",
            _count(p.gone),
            p.provider,
        )
        for p in report.projects
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        cells = [
            c.ljust(w) if i in (0, 1, 7, 9) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines + _ledger_lines(report) + _reconciliation_lines(report)


def _ledger_lines(report: StatusReport) -> list[str]:
    files = report.ledger_files
    if files is None:
        return []
    return [
        f"request ledger: {files['read']:,} files read, {files['pending']:,} pending "
        f"({report.ledger_pending_bytes / 1e6:,.1f} MB, read by the next loads), {files['gone']:,} gone"
    ]


def _reconciliation_lines(report: StatusReport) -> list[str]:
    if report.reconciliation_error:
        return [f"reconciliation with the Admin API could not be read: {report.reconciliation_error}"]
    return report.reconciliation.lines() if report.reconciliation is not None else []
