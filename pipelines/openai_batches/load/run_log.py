"""The run log: after every project run that loaded successfully, the runner appends one row to
`openai_batches._load_runs` (project, start and end time, requests, batches new / updated / still
open / gone, dlt load id, provider). Failed runs write nothing, so a failure never touches the database; their
story is in the cron log. The row is written after dlt committed the data, in its own statement: a
process killed between the two loses one log row (the next run writes its own), never data.
`openai-batches status` (cli/status.py) reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .. import settings
from ..storage.sql import quote_identifier

if TYPE_CHECKING:
    import dlt

    from .. import ProjectCounts

log = logging.getLogger(__name__)

# The one column list of the run log: DDL, insert and reads all follow it.
RUN_LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("project", "VARCHAR"),
    ("started_at", "TIMESTAMP WITH TIME ZONE"),
    ("finished_at", "TIMESTAMP WITH TIME ZONE"),
    ("requests", "BIGINT"),
    ("new", "BIGINT"),
    ("updated", "BIGINT"),
    ("still_open", "BIGINT"),
    ("gone", "BIGINT"),
    ("full_refresh", "BOOLEAN"),
    ("load_id", "VARCHAR"),
    # Whose batch API the project's key read (settings.PROVIDERS). Last: a run log written before there was
    # a choice gains it as its last column (NULL on its rows, which were OpenAI's).
    ("provider", "VARCHAR"),
)


def record_run(
    pipeline: dlt.Pipeline,
    stats: ProjectCounts,
    *,
    started: datetime,
    finished: datetime,
    full_refresh: bool,
    load_ids: Sequence[str],
    provider: str = settings.DEFAULT_PROVIDER,
) -> None:
    """Append one row for a project run that loaded; never raises (the data is already committed)."""
    counts = stats.counts
    values = (
        stats.project or "default",
        started,
        finished,
        stats.api_calls,
        counts.new,
        counts.updated,
        counts.still_open,
        counts.gone,
        full_refresh,
        load_ids[-1] if load_ids else None,
        provider,
    )
    columns = ", ".join(f"{quote_identifier(name)} {sql_type}" for name, sql_type in RUN_LOG_COLUMNS)
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(settings.RUN_LOG_TABLE)
            client.execute_sql(f"CREATE SCHEMA IF NOT EXISTS {client.fully_qualified_dataset_name()}")
            client.execute_sql(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
            for name, sql_type in RUN_LOG_COLUMNS[-1:]:  # added after the first release of the table
                client.execute_sql(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote_identifier(name)} {sql_type}")
            names = ", ".join(quote_identifier(name) for name, _ in RUN_LOG_COLUMNS)
            placeholders = ", ".join("?" for _ in RUN_LOG_COLUMNS)
            client.execute_sql(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", *values)
    except Exception as e:
        log.warning("could not append to the run log %s: %s", settings.RUN_LOG_TABLE, e)


__all__ = ["RUN_LOG_COLUMNS", "record_run"]
