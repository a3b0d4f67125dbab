"""One `load`: a dlt pipeline per place the data lives (a DuckDB file, a DuckLake), one pipeline run
per project, with its provider's source (OpenAI's `batches`, Anthropic's `anthropic_batches`: one schema).

Each project is its own dlt run so that a failing project cannot take the others' data with it:
what loaded stays loaded, the failure is reported, and the exit code says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from .. import settings
from ..client.retry import RetryPolicy
from ..config import ProjectConfig, RunConfig
from ..sources.batches.counts import BatchCounts
from ..sources.batches.source import openai_batches
from ..sources.ledger.counts import LedgerCounts
from ..sources.progress import ProgressSink
from ..sources.stats import ProjectCounts
from ..storage.destination import allow_null_file_ids, ledger_files_by_project, remove_duplicates_after_resume
from ..storage.extensions import ExtensionUnavailable
from ..storage.foreign import ForeignDatabase, check_catalog_not_foreign, check_not_foreign
from ..storage.lock import DatabaseUnavailable
from ..storage.store import DuckDBFile, Store, as_store, connected
from .failures import cause, reraise_interruption
from .interrupt import raise_if_stopping
from .memory import release_free_memory
from .run_log import record_run

if TYPE_CHECKING:
    from .admin_run import AdminOutcome
    from .anthropic_admin_run import AnthropicBooksOutcome
    from .head_start import HeadStart

log = logging.getLogger(__name__)


@dataclass
class ProjectOutcome:
    name: str
    stats: ProjectCounts
    error: str | None = None
    provider: str = settings.DEFAULT_PROVIDER  # whose batch API the project's key reads


@dataclass
class LoadOutcome:
    db_path: str  # where the data went, as it may be shown (a file path, or a DuckLake without its password)
    outcomes: list[ProjectOutcome] = field(default_factory=list)
    elapsed: float = 0.0
    error: str | None = None  # a failure outside any one project (database, working directory)
    admin: AdminOutcome | None = None  # the Admin API's tables, when an admin key is configured
    # What this load committed of a package a failed run left (a full disk): loaded before any project runs.
    resumed: ProjectOutcome | None = None
    anthropic_admin: AnthropicBooksOutcome | None = None  # Anthropic's books, when its Admin API key is set

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and all(o.error is None for o in self.outcomes)
            and (self.admin is None or self.admin.error is None)
            and (self.anthropic_admin is None or self.anthropic_admin.error is None)
        )

    @property
    def changed(self) -> bool:
        """Whether a project that succeeded loaded or dropped a batch or request-ledger rows, or the Admin
        API's tables appeared (what derived tables must follow)."""
        return any(
            o.error is None
            and (
                o.stats.counts.new
                or o.stats.counts.updated
                or o.stats.counts.gone
                or (o.stats.ledger is not None and o.stats.ledger.wrote_rows)
            )
            for o in self.loaded()
        ) or any(books is not None and books.changed for books in (self.admin, self.anthropic_admin))

    def loaded(self) -> list[ProjectOutcome]:
        """The project runs whose rows this load committed: the package a failed run left, then each project."""
        return [o for o in ([self.resumed] if self.resumed else []) + self.outcomes if o.error is None]

    @property
    def api_calls(self) -> int:
        admin = sum(books.stats.api_calls for books in (self.admin, self.anthropic_admin) if books is not None)
        return sum(o.stats.api_calls for o in self.outcomes) + admin


def working_dir(where: Store | str) -> str:
    """dlt's working directory for one database file or lake.

    Keyed by the place (a file's absolute path, a lake's catalog and name) so that two databases on
    one machine never share local state (which would make one of them skip history); the pipeline name
    stays the same so that a database copied elsewhere still carries the state dlt restores from it."""
    digest = hashlib.sha256(as_store(where).identity().encode()).hexdigest()[:16]
    return os.path.join(dlt.current.run_context().data_dir, "pipelines", f"openai_batches-{digest}")


def make_pipeline(where: Store | str) -> dlt.Pipeline:
    """Our dlt pipeline for `where`: its own working directory, and its own runtime settings (nothing
    process-wide; the load settings dlt only reads from configuration are `load_settings()`)."""
    store = as_store(where)
    pipeline = dlt.pipeline(
        pipeline_name=settings.PIPELINE_NAME,
        pipelines_dir=working_dir(store),
        destination=store.dlt_destination(),
        dataset_name=settings.DATASET_NAME,
    )
    # dlt's signal interception delays Ctrl-C and SIGTERM to a few check points (none while loading);
    # the CLI stops at once instead (see load/interrupt.py). Set on this pipeline's own runtime config.
    pipeline.config.runtime.intercept_signals = False
    return pipeline


# What a load sets of dlt's load step, which dlt reads only from its configuration (no argument of
# `dlt.pipeline` or `pipeline.run` carries them). Values a user set in the environment still win.
_LOAD_SETTINGS = {
    # dlt keeps every loaded package's parquet files forever; an hourly cron job would fill the disk
    # over months. Package folders (and their state) stay, only the loaded job files go.
    "load.delete_completed_jobs": True,
    # dlt runs a package's load jobs in parallel threads (20 by default): the staging copies and merges
    # of `batches` and of its errors table then overlap in DuckDB and their memory adds up, so a
    # million-batch backfill peaked anywhere from 390 to 460 MB depending on timing, instead of 380 MB.
    # In sequence they take ~50 ms longer.
    "load.workers": settings.LOAD_WORKERS,
    # A backfill's rows are staged in a copy inside the database before the merge; emptied after the
    # load, so the file does not keep a second copy of the largest package it ever loaded.
    "load.truncate_staging_dataset": True,
}


def load_settings() -> contextlib.AbstractContextManager[None]:
    """`_LOAD_SETTINGS` for the duration of a block (a load), the previous values back when it ends.

    dlt has no per-pipeline form of these (its load step resolves them from configuration), so they are
    written where `dlt.config[...] = ...` writes, only while our load runs: an embedding program's own
    pipelines, before and after, see its configuration unchanged."""
    return dlt.config.values(_LOAD_SETTINGS)


def destination_state_version(where: Store | str) -> int | None:
    """Version of the pipeline state stored in the database, None when there is none."""
    store = as_store(where)
    if not store.exists():
        return None
    import duckdb

    from ..storage.duckdb_file import table_exists

    with connected(store, read_only=True, in_load=True) as con:
        if not table_exists(con, settings.DATASET_NAME, "_dlt_pipeline_state"):
            return None
        try:
            row = con.execute(
                f"SELECT max(version) FROM {settings.DATASET_NAME}._dlt_pipeline_state WHERE pipeline_name = ?",
                [settings.PIPELINE_NAME],
            ).fetchone()
        except duckdb.CatalogException:
            return None
    return None if row is None or row[0] is None else int(row[0])


def reconcile_local_state(pipeline: dlt.Pipeline, where: Store | str) -> dlt.Pipeline:
    """Make sure local state never claims more than the database holds.

    Local state may run ahead of the database only while a pending load package carries the
    difference. A deleted or replaced database, or a package that was dropped, leaves local state that
    would skip batches; it is discarded so dlt restores state from the database (or, for an empty one,
    starts a full backfill)."""
    local_dir = Path(pipeline.working_dir)
    if not (local_dir / "state.json").exists():
        return pipeline
    remote = destination_state_version(where)
    local = pipeline.state.get("_state_version", 0)
    if remote is None or (local > remote and not pipeline.has_pending_data):
        why = "the database has no pipeline state" if remote is None else "local state is ahead of the database"
        log.info("discarding local dlt state in %s: %s", local_dir, why)
        shutil.rmtree(local_dir, ignore_errors=True)
        return make_pipeline(where)
    return pipeline


def finish_interrupted_commits(pipeline: dlt.Pipeline) -> None:
    """Complete what a killed run left half done in dlt's working directory (we hold the load lock,
    so nothing else is using it).

    dlt's normalize step commits a package by renaming it into `load/normalized` and then deletes
    the extracted copy, file by file. A process killed in between leaves that copy behind, whole or
    in part: the next normalize would then fail on it forever (its schema.json already deleted) or
    normalize and load it a second time, over newer data. Once the package exists further on, the
    copy is redundant: finish deleting it. Extracts that were still being written when their process
    died were never committed and never will be: remove them, or they pile up with every kill."""
    root = Path(pipeline.working_dir)
    committed = {p.name for stage in ("load/normalized", "load/loaded") for p in (root / stage).glob("*")}
    for package in (root / "normalize" / "extracted").glob("*"):
        if package.name in committed:
            log.info("removing the leftover extracted copy of committed package %s", package.name)
            shutil.rmtree(package, ignore_errors=True)
    for folder in (root / "normalize").glob("*"):
        if folder.is_dir() and folder.name != "extracted":
            log.info("removing extract %s of a run that did not finish", folder.name)
            shutil.rmtree(folder, ignore_errors=True)


def run_load(
    where: Store | str,
    config: RunConfig,
    *,
    full_refresh: bool = False,
    progress: ProgressSink | None = None,
    wait: float = 0.0,
    head_start: HeadStart | None = None,
    after_load: Callable[[LoadOutcome], object] | None = None,
) -> LoadOutcome:
    """Load every configured project into `where` (a Store, or a DuckDB file's path), each in its own
    dlt run. The caller holds `where`'s load lock. `after_load` runs once every project ran, still in the load's
    one instance (the CLI refreshes the report views there: a lake is not attached a second time).

    Raises ForeignDatabase (before anything is written) for a database another program made,
    ExtensionUnavailable when the database's DuckDB extensions do not load from their packages,
    DatabaseBusy when another program holds the file for longer than `wait` seconds, and
    KeyboardInterrupt / Terminated when the run is interrupted (no further project starts). `head_start`: the
    first project's list as the CLI began reading it (load/head_start.py; it matches `config` and `where`)."""
    store = as_store(where)
    db_path = store.shown()
    started = time.monotonic()
    result = LoadOutcome(db_path=db_path)
    # One retry policy, and budget, for every request of the run: the head start's requests were its first.
    retry = head_start.retry if head_start is not None else RetryPolicy(max_attempts=config.max_attempts)
    new_database = isinstance(store, DuckDBFile) and not store.exists()
    opened = contextlib.ExitStack()
    try:
        if store.opening_writes:  # a file: checked on a connection of its own, before it is opened writable
            check_not_foreign(store)
        check_catalog_not_foreign(store)  # a lake's catalog file: before the ATTACH that would write into it
        # Open from here to the end of the load, once (nothing is written before this point).
        opened.enter_context(store.one_instance(wait=wait))
        if not store.opening_writes:  # a lake: checked on the load's instance (attaching it wrote nothing)
            check_not_foreign(store)
        opened.enter_context(load_settings())
    except BaseException as e:
        with contextlib.suppress(Exception):
            opened.close()  # a lake found foreign: detached again
        # A missing or damaged extension package is the user's to fix (a configuration error), not a failed load.
        if isinstance(e, ForeignDatabase | DatabaseUnavailable | ExtensionUnavailable) or not isinstance(e, Exception):
            raise
        reraise_interruption(e)
        result.error = f"database {db_path}: {cause(e)}"
        result.elapsed = time.monotonic() - started
        return result
    try:
        _load_projects(
            store, config, result, retry=retry, full_refresh=full_refresh, progress=progress, head_start=head_start
        )
        if after_load is not None:
            after_load(result)
    except BaseException:
        opened.close()
        raise
    try:
        opened.close()
    except Exception as e:  # the last checkpoint of the file failed: what was committed is in its WAL
        reraise_interruption(e)
        result.error = result.error or f"database {db_path}: {cause(e)}"
    if new_database and all(o.error for o in result.outcomes):
        _remove_if_empty(store.shown())
    result.elapsed = time.monotonic() - started
    return result


def _load_projects(
    store: Store,
    config: RunConfig,
    result: LoadOutcome,
    *,
    retry: RetryPolicy,
    full_refresh: bool,
    progress: ProgressSink | None,
    head_start: HeadStart | None = None,
) -> None:
    """`run_load` once the database is known to be ours: each project, then the Admin API's tables."""
    db_path = result.db_path
    try:
        pipeline = make_pipeline(store)
        finish_interrupted_commits(pipeline)
        pipeline = reconcile_local_state(pipeline, store)
        # What `pipeline.run` does first: restore state and schema from the database when the working
        # directory has none (a database copied or moved here), so the first extract is incremental.
        pipeline.sync_destination()
        allow_null_file_ids(pipeline)  # a file an older version loaded: Anthropic results have no file id
        ledger_files_by_project(pipeline)  # ... and `batch_files` had no project (the ledger's merge key)
        if pipeline.has_pending_data:
            log.info("loading what an interrupted run had already extracted")
            left = _pending_rows(pipeline, {p.name: p.provider for p in config.projects if p.name})
            before = stored_batches(pipeline, left.table if left is not None else settings.BATCHES_TABLE)
            started = datetime.now(UTC)
            info = pipeline.run()
            with pipeline.sql_client() as client:
                if removed := remove_duplicates_after_resume(client):
                    log.info("removed %d rows a resumed load had staged twice", removed)
            if left is not None:
                result.resumed = _resumed(pipeline, left, before, started, list(info.loads_ids))
    except Exception as e:
        reraise_interruption(e)
        result.error = f"database {db_path}: {cause(e)}"
        return
    # OpenAI project id (Anthropic: batch id of a head page) -> the configured name that loaded it (SameProject)
    claimed: dict[str, str] = {}
    for project in config.projects:
        raise_if_stopping()  # no project starts after a signal, even one dlt swallowed
        stats = ProjectCounts(project=project.name)
        outcome = ProjectOutcome(name=project.name or "default", stats=stats, provider=project.provider)
        result.outcomes.append(outcome)
        source = _source(
            project,
            config,
            retry=retry,
            full_refresh=full_refresh,
            stats=stats,
            progress=progress,
            claimed=claimed,
            pipeline=pipeline,
            head_start=head_start if project is config.projects[0] else None,
        )
        table = settings.BATCH_TABLES[project.provider]
        project_started = datetime.now(UTC)
        try:
            before = stored_batches(pipeline, table)
            info = _extract_normalize_load(pipeline, source)
            committed(stats.counts, stats.counts.new + stats.counts.updated, before, stored_batches(pipeline, table))
            record_run(
                pipeline,
                stats,
                started=project_started,
                finished=datetime.now(UTC),
                full_refresh=full_refresh,
                load_ids=list(info.loads_ids),
                provider=project.provider,
            )
        except PipelineStepFailed as e:
            reraise_interruption(e)
            raise_if_stopping()
            outcome.error = cause(e)
            if e.step != "extract":
                # The database refused the data: later projects would fail the same way, and
                # dlt keeps the package to retry on the next run. One message, in the project's line.
                outcome.error = f"loading into {db_path} failed: {outcome.error}"
                break
        finally:
            outcome.name = stats.project or outcome.name
    raise_if_stopping()
    if config.admin is not None and result.error is None:
        # Once per load, after the batches (its first run starts at the first batch day), in its own dlt run.
        from .admin_run import run_admin

        result.admin = run_admin(pipeline, store, config, retry=retry, full_refresh=full_refresh)
    if config.anthropic_admin is not None and result.error is None:
        # Anthropic's books likewise: once per load, after the batches, in its own dlt run.
        from .anthropic_admin_run import run_anthropic_admin

        result.anthropic_admin = run_anthropic_admin(pipeline, store, config, retry=retry, full_refresh=full_refresh)


def _source(
    project: ProjectConfig,
    config: RunConfig,
    *,
    retry: RetryPolicy,
    full_refresh: bool,
    stats: ProjectCounts,
    progress: ProgressSink | None,
    claimed: dict[str, str],
    pipeline: dlt.Pipeline,
    head_start: HeadStart | None = None,
) -> Any:
    """The dlt source of one project, by its provider (each its own resource and table, one schema); with
    `head_start`, on its client and the pages it read ahead."""
    client: Any = head_start.client() if head_start is not None else None  # the provider's: head_start.open_client
    pages = head_start.pages() if head_start is not None else None
    # What every provider's source takes alike: the run's settings, its retry budget, counts and claims.
    common: dict[str, Any] = {
        "api_key": project.api_key,
        "base_url": project.base_url,
        "full_refresh": full_refresh,
        "lookback_seconds": config.lookback_seconds,
        "timeout": config.timeout,
        "retry": retry,
        "stats": stats,
        "progress": progress,
        "other_keys": config.every_key(),
        "claimed": claimed,
    }
    if project.provider == "anthropic":
        from ..sources.anthropic.source import anthropic_batches

        name = project.name or settings.ANTHROPIC_PROJECT_NAME
        return anthropic_batches(
            **common,
            project_name=name,
            # The ledger runs for Anthropic unless turned off explicitly: its results are the only source of
            # model, tokens and cost.
            requests=config.requests is not False,
            requests_max_mb_per_run=config.requests_max_mb_per_run,
            known_ids=stored_ids(pipeline, settings.ANTHROPIC_BATCHES_TABLE, name) if full_refresh else None,
            client=client,
            pages=pages,
        )
    if project.provider in settings.OPENAI_LIKE_PROVIDERS:
        from ..sources.compatible.source import compatible_batches

        name = project.name or project.provider
        return compatible_batches(
            project.provider,
            **common,
            project_name=name,
            api_version=project.api_version,
            requests=settings.DEFAULT_REQUESTS if config.requests is None else config.requests,
            requests_max_mb_per_run=config.requests_max_mb_per_run,
            known_ids=stored_ids(pipeline, settings.BATCH_TABLES[project.provider], name) if full_refresh else None,
        )
    if project.provider in settings.OTHER_PROVIDERS:
        from ..sources.others.source import other_batches

        name = project.name or project.provider
        return other_batches(
            project.provider,
            **common,
            project_name=name,
            known_ids=stored_ids(pipeline, settings.BATCH_TABLES[project.provider], name) if full_refresh else None,
            # None: the provider's default (REQUESTS_DEFAULTS: on for Together and Mistral, their only tokens)
            requests=config.requests,
            requests_max_mb_per_run=config.requests_max_mb_per_run,
        )
    return openai_batches(
        **common,
        organization=project.organization,
        project=project.project_id,
        project_name=project.name,
        requests=settings.DEFAULT_REQUESTS if config.requests is None else config.requests,
        requests_max_mb_per_run=config.requests_max_mb_per_run,
        client=client,
        pages=pages,
    )


def stored_ids(pipeline: dlt.Pipeline, table: str, project: str) -> list[str]:
    """Ids of the project's rows in `table` that are not recorded gone (none before the first load)."""
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    with pipeline.sql_client() as client:
        rows = client.make_qualified_table_name(table)
        gone = client.make_qualified_table_name(settings.GONE_TABLE)
        try:
            query = f"SELECT id FROM {rows} WHERE project = %s AND id NOT IN (SELECT id FROM {gone})"
            with client.execute_query(query, project) as cursor:
                return [str(r[0]) for r in cursor.fetchall()]
        except DatabaseUndefinedRelation:
            pass
        try:
            with client.execute_query(f"SELECT id FROM {rows} WHERE project = %s", project) as cursor:
                return [str(r[0]) for r in cursor.fetchall()]
        except DatabaseUndefinedRelation:
            return []


def stored_batches(pipeline: dlt.Pipeline, table: str = settings.BATCHES_TABLE) -> int:
    """Rows of a provider's batches `table` in the database now (0 before the first load). Batch rows are
    merged by id and never deleted, so what a load adds to this count is exactly the batches it found that
    were not there before: a `count(*)` before and after, whatever the size of the load (no ids held in Python)."""
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    try:
        with pipeline.sql_client() as client:
            qualified = client.make_qualified_table_name(table)
            with client.execute_query(f"SELECT count(*) FROM {qualified}") as cursor:
                row = cursor.fetchone()
    except DatabaseUndefinedRelation:
        return 0
    return int(row[0]) if row else 0


def committed(counts: BatchCounts, written: int, before: int, after: int) -> None:
    """`counts.new` and `counts.updated` as the database saw them: of the `written` batch rows a load
    committed, `new` were not in the database before (`after - before` rows more), the rest were there
    and were written again (`updated`: open batches brought up to date, or every batch a
    `--full-refresh` or the ledger's first run re-read). The plan's own counts only say what it read."""
    counts.new = max(0, min(written, after - before))
    counts.updated = written - counts.new


@dataclass
class _Leftover:
    project: str
    batches: int  # rows of the provider's batches table in the package
    requests: int  # rows of the request ledger (`batch_requests`) in the package
    provider: str = settings.DEFAULT_PROVIDER

    @property
    def table(self) -> str:
        return settings.BATCH_TABLES[self.provider]


def _pending_rows(pipeline: dlt.Pipeline, providers: dict[str, str] | None = None) -> _Leftover | None:
    """Whose rows, and how many, the packages a failed run left hold (None: no batch or ledger rows, only
    state, or not readable): read from the parquet files' footers, no rows loaded into memory. The provider
    is the table the batch rows are in, else the configured project's (`providers`: name -> provider)."""
    import pyarrow.parquet as pq

    counts = {**dict.fromkeys(settings.BATCH_TABLES.values(), 0), settings.REQUESTS_TABLE: 0}
    project: str | None = None
    try:
        for load_id in [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]:
            for jobs in pipeline.get_load_package_info(load_id).jobs.values():
                for job in jobs:
                    table = job.job_file_info.table_name
                    if table not in counts or not job.file_path.endswith(".parquet"):
                        continue
                    parquet = pq.ParquetFile(job.file_path)
                    counts[table] += parquet.metadata.num_rows
                    if project is None and parquet.metadata.num_rows:
                        project = str(parquet.read_row_group(0, columns=["project"]).column(0)[0])
    except Exception as e:  # noqa: BLE001 -- only the summary's counts depend on it, never the load
        log.warning("could not count the rows a failed run left: %s", e)
        return None
    if project is None:
        return None
    provider = next(
        (name for name, table in settings.BATCH_TABLES.items() if counts[table]),
        (providers or {}).get(project, settings.DEFAULT_PROVIDER),
    )
    return _Leftover(project, counts[settings.BATCH_TABLES[provider]], counts[settings.REQUESTS_TABLE], provider)


def _resumed(
    pipeline: dlt.Pipeline, left: _Leftover, before: int, started: datetime, load_ids: list[str]
) -> ProjectOutcome:
    """The outcome of loading what a failed run left, counted and recorded in `_load_runs` like a project run
    (0 requests: the API was read by the run that failed)."""
    stats = ProjectCounts(project=left.project)
    committed(stats.counts, left.batches, before, stored_batches(pipeline, left.table))
    if left.requests:
        stats.ledger = LedgerCounts(requests=left.requests)
    record_run(
        pipeline,
        stats,
        started=started,
        finished=datetime.now(UTC),
        full_refresh=False,
        load_ids=load_ids,
        provider=left.provider,
    )
    return ProjectOutcome(name=left.project, stats=stats, provider=left.provider)


def _extract_normalize_load(pipeline: dlt.Pipeline, source: Any) -> Any:
    """`pipeline.run`, step by step: the extract of a backfill leaves tens of MB freed but kept in the
    heap, handed back before the load step needs room for DuckDB."""
    pipeline.extract(source, loader_file_format="parquet")
    pipeline.normalize()
    release_free_memory()
    return pipeline.load()


def _remove_if_empty(db_path: str) -> None:
    """dlt creates the database file when a run starts; a first run that loaded nothing (a wrong key,
    an unreachable host) should not leave an empty file that looks like a database."""
    import duckdb

    from ..storage.duckdb_file import connect, has_tables

    try:
        with connect(db_path, read_only=True) as con:
            empty = not has_tables(con)
    except duckdb.Error:
        return
    if empty:
        for path in (db_path, db_path + ".wal"):
            Path(path).unlink(missing_ok=True)
