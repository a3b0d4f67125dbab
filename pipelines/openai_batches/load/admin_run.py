"""The organisation's part of a `load`: one dlt run of `openai_organization` after the projects' runs.

Its own dlt run, so that a failure here (a refused admin key, an Admin API outage) leaves the batches
just loaded in place, and a failed batch project does not stop it. Once per load, whatever the number
of projects: the Admin API answers for the whole organisation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from .. import settings
from ..sources.admin.source import AdminCounts, openai_organization

if TYPE_CHECKING:
    import dlt

    from ..analysis.findings import Findings
    from ..client.retry import RetryPolicy
    from ..config import RunConfig
    from ..storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class AdminOutcome:
    stats: AdminCounts = field(default_factory=AdminCounts)
    error: str | None = None
    findings: Findings | None = None  # what the reconciliation found, once the run succeeded

    @property
    def changed(self) -> bool:
        """The organisation's tables appeared (or were read again from the start): the views that read
        them must be rebuilt. Later runs only re-read the last days, which views need not follow."""
        return self.error is None and self.stats.first_run


def first_batch_day(pipeline: dlt.Pipeline, batches_table: str = settings.BATCHES_TABLE) -> date | None:
    """The UTC day of the oldest batch in the database (the organisation's first run starts there)."""
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(batches_table)
            # A created_at below any real batch's (0, a broken value) must not send the first run back years.
            rows = client.execute_sql(
                f"SELECT min(created_at) FROM {table} WHERE created_at >= to_timestamp({settings.MIN_CREATED_AT})"
            )
    except Exception as e:  # no batches table yet (no project has a batch): from the earliest day
        log.info("no first batch day: %s", e)
        return None
    first = rows[0][0] if rows else None
    if not isinstance(first, datetime):
        return None
    return (first.astimezone(UTC) if first.tzinfo else first.replace(tzinfo=UTC)).date()


def run_admin(
    pipeline: dlt.Pipeline,
    db_path: Store | str,
    config: RunConfig,
    *,
    retry: RetryPolicy,
    full_refresh: bool,
) -> AdminOutcome:
    """Load projects, usage and costs; then read what the reconciliation finds. Raises nothing but
    interruptions: a failure is the outcome's one-line `error`."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    from .failures import cause, reraise_interruption

    org = config.admin
    assert org is not None
    outcome = AdminOutcome()
    source = openai_organization(
        admin_key=org.admin_key,
        other_keys=config.every_key(),
        base_url=org.base_url,
        organization=org.organization,
        first_day=first_batch_day(pipeline),
        full_refresh=full_refresh,
        timeout=config.timeout,
        retry=retry,
        stats=outcome.stats,
    )
    try:
        pipeline.run(source, loader_file_format="parquet")
    except PipelineStepFailed as e:
        reraise_interruption(e)
        outcome.error = cause(e)
        return outcome
    outcome.findings = findings_after_load(db_path)
    return outcome


def findings_after_load(db_path: Store | str) -> Findings | None:
    """What the reconciliation views say now; None (with a warning) when they cannot be read, which
    must not fail a load that committed."""
    from ..analysis.findings import read_findings

    try:
        return read_findings(db_path, in_load=True)
    except Exception as e:  # noqa: BLE001 -- the data is committed; the summary just lacks the verdicts
        log.warning("could not read the reconciliation from %s: %s", db_path, e)
        return None


def summary_lines(outcome: AdminOutcome, label: str = "load") -> list[str]:
    """The load summary's lines for the organisation: what was read, then what the reconciliation found."""
    stats = outcome.stats
    if outcome.error:
        return [f"{label} [organization] FAILED after {stats.api_calls} requests: nothing loaded"]
    since = f" from {stats.usage_from.isoformat()}" if stats.usage_from else ""
    lines = [
        f"{label} [organization] ok: {stats.api_calls} requests, {stats.projects} projects, "
        f"usage and costs{since}: {stats.usage_rows} usage rows, {stats.cost_rows} cost rows"
    ]
    if outcome.findings is not None:
        lines.append(outcome.findings.summary())
    return lines


__all__ = ["AdminOutcome", "findings_after_load", "first_batch_day", "run_admin", "summary_lines"]
