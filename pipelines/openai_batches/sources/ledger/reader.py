"""The request ledger: every request of every finished batch, what happened to it, never its content.

For each batch the run saw finish (and each one an earlier run left pending), the batch's output and
error files are streamed (`GET /files/{id}/content`) and parsed line by line (sources/ledger/parse.py); when
their lines do not account for `request_counts.total`, the input file is streamed too and only its
custom ids are taken: those in neither file are `missing`. A batch is the unit of work: its rows are
written together (merge key `batch_id`), so a batch is never half in the ledger.

Files expire (30 days after a batch ends by default, as early as an hour with `output_expires_after`),
so each run reads soon: `GET /files/{id}` first gives every file's size and expiry; batches are read in
the order their files expire, within a per-run budget of bytes (the first batch always, however large),
up to `DOWNLOADS_AT_ONCE` files at a time. The rest, and batches whose download failed after the run's
retries, stay pending in the resource state (committed with the data) for the next run. A file the
API answers 404 for is taken as gone by the rule batches follow (`GONE_AFTER_MISSES` runs in a row), or
at once when it is past the expiry the API gave for it; until then its batch waits, so a gateway's
transient 404 loses nothing. 401 and 403 fail the run, as for the list.

Together's and Mistral's batches name files of OpenAI's files API (OpenAI-shaped JSONL) and go through it as
OpenAI's do (their candidates: candidate.py); their files are kept as long as the provider keeps them, so no age
stops a read (`files_kept_s` None): the API's 404 decides. OpenRouter's results come from its own endpoint
(`GET /batches/{id}/results`, cursor pages: OpenRouterClient.stream_results) as one "file" of kind `results`, like
Anthropic's, whose lines are OpenAI's (`parse_results(openai_results=True)`).

Anthropic's message batches go through the same machinery with one "file" each, their results
(`results_url`, kind `results`; sources/ledger/parse.py reads its lines): nothing describes them before
they are read, so their order is their archive date (29 days after creation, results closest to it
first) and the budget counts the bytes their downloads read (`budget.py`). Results that are archived (the
batch says `archived_at`, or 29 days have passed) are recorded `gone` without a request; a 404 follows the
rule of files. Results cannot name the requests they lack (there is no input file): `batch_files.lines`
against the batch's request counts shows a shortfall, and the run says it in a warning.

A batch whose ledger was written short (a file gone, or one its counts call for that it does not name:
completed requests but no `output_file_id`) is watched until its files expire: the next
`GONE_AFTER_MISSES` runs ask for it (`GET /batches/{id}`), and a `--full-refresh` that lists it looks
again; when its file ids changed, or a gone file may be back, its files are read again and its rows
replaced as a whole.

State kept per project, next to the batches' own (`sources/batches/plan.py`):
    {"version": 1, "synced": digest of the batches state it last ran with,
     "pending": {batch_id: {"total": n, "ended": t, "files": {kind: id}, "sizes": {...}, "expiries": {...},
                            "gone": [kinds], "misses": {kind: n}, "awaits": [kinds], "announced": bool}},
     "watch": {batch_id: {"files": {kind: id}, "ended": t, "gone": [kinds], "misses": {kind: n},
                          "awaits": [kinds], "checks": n}}}
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import pyarrow as pa

from ... import settings
from ...client.anthropic import AnthropicClient
from ...client.batches import FilesApi
from ...client.errors import ApiError
from ...client.others import OpenRouterClient
from ...tables.batches import exact_int
from ...tables.ledger import POOL, REQUEST_COLUMN_NAMES, files_to_arrow, identifier, requests_to_arrow
from ..progress import ProgressSink
from .budget import ReadBudget
from .candidate import Candidate
from .counts import LedgerCounts
from .parse import RESULT_FIELDS, RESULT_TYPES, RESULTS, ParsedFile, parse_input, parse_results
from .workers import as_done, in_order

log = logging.getLogger(__name__)

STATE_VERSION = 1
# Files answered 404 named in the run's one warning about them (the rest counted).
_MISSING_SHOWN = 3
# Failures that no later run fixes by itself: the key may not read files. They fail the run, as for the list.
_FATAL_STATUSES = frozenset({401, 403})

FileRow = tuple[str, str, str | None, str, int | None, int | None, float | None]
# What reads the files: the files API (OpenAI's, Together's, Mistral's), or the results of Anthropic's and
# OpenRouter's batches (`stream_results`).
LedgerClient = FilesApi | AnthropicClient | OpenRouterClient


def state_digest(batches_state: Mapping[str, Any] | None) -> str | None:
    """A fingerprint of a project's batches state: the ledger ran with it, or batches were loaded without it."""
    if not batches_state:
        return None
    return hashlib.sha256(json.dumps(batches_state, sort_keys=True).encode()).hexdigest()[:16]


def in_sync(ledger_state: Mapping[str, Any], batches_state: Mapping[str, Any] | None) -> bool:
    """Whether a project's ledger state last ran with its batches state (`Ledger.in_sync_with`), read from the
    states alone (a provider's client may need it before the ledger exists: Mistral's `created_after` floor)."""
    return batches_state is None or ledger_state.get("synced") == state_digest(batches_state)


@dataclass
class _Result:
    """What reading one batch gave: its rows and file rows, or why it stays pending."""

    candidate: Candidate
    columns: dict[str, list[pa.Array]] | None = None  # RESULT_FIELDS -> arrow arrays
    files: list[FileRow] = field(default_factory=list)
    failure: str | None = None
    not_yet_gone: bool = False  # the failure is a 404 not yet taken as gone (said once for the run: Ledger._missing)
    bytes_read: int = 0


class Ledger:
    """One project's ledger in one run: collect candidates while the batches load, then `read()`."""

    def __init__(
        self,
        state: dict[str, Any],
        client: LedgerClient,
        *,
        project: str,
        max_mb: float,
        now: float,
        counts: LedgerCounts,
        progress: ProgressSink | None = None,
        provider: str | None = None,
        files_kept_s: float | None = settings.FILES_KEPT_AT_MOST_S,
    ) -> None:
        """`provider`: whose batch objects are offered (`Candidate.of`; None: OpenAI's and Anthropic's);
        `files_kept_s`: how long after a batch ended its files can exist at most (None: unknown, always asked for)."""
        self.provider = provider
        self.files_kept_s = files_kept_s
        self.state = state
        self.progress = progress or ProgressSink()
        self.client = client
        self.project = project
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.now = now
        self.counts = counts
        self.candidates: dict[str, Candidate] = {}
        # Batches whose ledger was written short: see the module docstring.
        self.watch: dict[str, dict[str, Any]] = {}
        self._looked_at: set[str] = set()  # watched batches this run saw already
        self._gone: list[FileRow] = []
        # Files the API answered 404 for in this run, not yet taken as gone: one warning for all of them (a history
        # with many expired files printed a line per batch, every run, three runs long).
        self._missing: list[str] = []  # Anthropic results found archived when offered: written by read()
        if state.get("version") == STATE_VERSION:
            for batch_id, raw in (state.get("pending") or {}).items():
                self.candidates[batch_id] = Candidate.load(batch_id, raw)
            self.watch = {str(k): dict(v) for k, v in (state.get("watch") or {}).items()}
        self._stop = threading.Event()
        self._clean_code = _cached(lambda text: client.redactor.clean(text, 100))
        self._clean_message = _cached(lambda text: client.redactor.clean(text, settings.ERROR_MESSAGE_MAX_CHARS))

    # --- which batches ------------------------------------------------------------------------
    def in_sync_with(self, batches_state: Mapping[str, Any] | None) -> bool:
        """Whether the batches state is the one this ledger last ran with. If not, batches were loaded
        while the ledger was off (or never on): the run lists the whole history once so that batches that
        finished meanwhile are read while their files exist. A first run (no state at all) lists it anyway."""
        return in_sync(self.state, batches_state)

    def offer(self, batch: Mapping[str, Any]) -> None:
        """A batch this run loaded: a candidate when it is finished and its files can still exist."""
        candidate = Candidate.of(batch, self.provider)
        if candidate is None:
            return
        # A file id or results_url in which the server sent a configured key back is kept masked: the ledger's
        # state is written to dlt's working directory and the database. Masked, it cannot be fetched: the API's
        # 404 (or the refusal of another host) then takes its course like any file that cannot be read.
        candidate.files = {kind: str(self.client.redactor.mask(ref)) for kind, ref in candidate.files.items()}
        if candidate.results_gone(self.now):  # archived: recorded gone, never asked for
            self.candidates.pop(candidate.batch_id, None)
            self._gone.append(self._row(candidate, RESULTS, "gone"))
            self.counts.files_gone += 1
            return
        if self._files_deleted(candidate):
            self.counts.too_old += 1
            return
        watched = self.watch.get(candidate.batch_id)
        if watched is not None:
            # 404s counted before still count for the same file: one more confirms it gone.
            old = watched.get("files") or {}
            misses = watched.get("misses") or {}
            candidate.misses = {k: int(n) for k, n in misses.items() if old.get(k) == candidate.files.get(k)}
        self._looked_at.add(candidate.batch_id)
        self.candidates[candidate.batch_id] = candidate

    def wants_again(self, batch: Mapping[str, Any]) -> bool:
        """Whether a batch a full refresh lists must be read again: its ledger was written short and its
        file ids changed since, or a file taken as gone may be back (it is asked for once more)."""
        watched = self.watch.get(str(batch.get("id")))
        candidate = Candidate.of(batch, self.provider)
        if watched is None or candidate is None or self._files_deleted(candidate) or candidate.results_gone(self.now):
            return False
        self._looked_at.add(candidate.batch_id)
        if candidate.files != watched.get("files") or watched.get("gone"):
            return True
        watched["checks"] = int(watched.get("checks") or 0) + 1
        return False

    def rechecks(self) -> list[str]:
        """Watched batches to ask for (`GET /batches/{id}`) in this run: those still awaiting a file the
        counts call for, on `GONE_AFTER_MISSES` runs at most, that the run did not list already."""
        return [
            batch_id
            for batch_id, watched in sorted(self.watch.items())
            if watched.get("awaits")
            and int(watched.get("checks") or 0) < settings.GONE_AFTER_MISSES
            and batch_id not in self._looked_at
            and batch_id not in self.candidates
        ]

    def recheck(self, batch_id: str, batch: Mapping[str, Any] | None) -> bool:
        """A watched batch as the API returns it now (None: 404). True when its file ids changed: it is
        then a candidate again (and the caller loads the batch object too)."""
        watched = self.watch[batch_id]
        self._looked_at.add(batch_id)
        candidate = Candidate.of(batch, self.provider) if batch is not None else None
        if candidate is not None and candidate.files != watched.get("files"):
            self.offer(batch)  # type: ignore[arg-type]  # not None: it has a candidate
            return True
        watched["checks"] = int(watched.get("checks") or 0) + 1
        return False

    def _files_deleted(self, candidate: Candidate) -> bool:
        """Whether the batch ended longer ago than the API keeps files: asking for them is a 404 at best.
        (Anthropic results are kept from the batch's creation, not its end: `Candidate.results_gone`.)"""
        if RESULTS in candidate.files or self.files_kept_s is None:
            return False
        return candidate.ended is not None and candidate.ended < self.now - self.files_kept_s

    # --- reading ------------------------------------------------------------------------------
    def read(self, batches_state: Mapping[str, Any]) -> Iterator[tuple[str, pa.Table]]:
        """Read what the budget allows; yields ("requests" | "files", table). The state (what is left
        pending, and which batches state this ran with) is updated before the last table is yielded."""
        started = time.monotonic()
        requests = _Rows()
        files: list[FileRow] = []
        pool = concurrent.futures.ThreadPoolExecutor(
            settings.DOWNLOADS_AT_ONCE, thread_name_prefix="openai-batches-ledger"
        )
        try:
            files.extend(self._gone)
            files.extend(self._give_up_deleted())
            self._describe(pool)
            admitted, waiting = self._within_budget(sorted(self.candidates.values(), key=_read_order))
            planned = [(c, k) for c in admitted if not c.unsized() for k in c.first_kinds() if k not in c.gone]
            self.progress.files_planned(self.project, len(planned), sum(c.sizes.get(k) or 0 for c, k in planned))
            budget = ReadBudget(self.max_bytes, sum(c.size() for c in admitted))
            begun: set[str] = set()

            def may_start(candidate: Candidate) -> bool:
                if candidate.unsized() and not budget.may_start(candidate.total, first=not begun):
                    return False
                if candidate.unsized():  # planned as it starts: its size is known once read
                    self.progress.files_planned(self.project, 1, 0)
                begun.add(candidate.batch_id)
                return True

            batches = as_done(
                pool,
                self._read_batch,
                admitted,
                at_once=settings.DOWNLOADS_AT_ONCE,
                weight=_requests,
                max_weight=settings.LEDGER_REQUESTS_AT_ONCE,
                may_start=may_start,
            )
            for result in batches:
                if result.candidate.unsized():
                    budget.read(result.candidate.total, result.bytes_read)
                self._take(result, requests, files)
                if len(requests) >= settings.LEDGER_ARROW_ROWS:
                    yield from _slices(requests.table(self))
                    requests = _Rows()
            # Left for the next run: beyond the budget (by size, or by the bytes read: those never started).
            for candidate in [*waiting, *(c for c in admitted if c.batch_id not in begun)]:
                self.counts.batches_pending += 1
                self.counts.bytes_pending += candidate.size()
                if not candidate.announced:
                    files.extend(self._pending_rows(candidate))
                    candidate.announced = True
        finally:
            self._stop.set()
            # Downloads under way stop at their next chunk; none is waited for, none not begun begins.
            pool.shutdown(wait=False, cancel_futures=True)
            self.counts.seconds = time.monotonic() - started
        if self._missing:
            shown = "; ".join(self._missing[:_MISSING_SHOWN]) + ("; ..." if len(self._missing) > _MISSING_SHOWN else "")
            log.warning("%d file(s) left for the next run: %s", len(self._missing), shown)
        self.state.clear()
        # Watched batches are kept while their files can exist: afterwards nothing can be read again.
        horizon = self.now - settings.FILES_KEPT_AT_MOST_S
        self.state.update(
            version=STATE_VERSION,
            synced=state_digest(batches_state),
            pending={c.batch_id: c.dump() for c in sorted(self.candidates.values(), key=lambda c: c.batch_id)},
            watch={k: w for k, w in sorted(self.watch.items()) if w.get("ended") is None or w["ended"] >= horizon},
        )
        if len(requests):
            yield from _slices(requests.table(self))
        if files:
            yield "files", files_to_arrow(files, self.project)

    def _give_up_deleted(self) -> list[FileRow]:
        """Batches left pending by earlier runs whose files the API has deleted by now: recorded `gone` and
        not asked for again (a file that failed for good would otherwise be retried on every run, forever)."""
        rows = []
        gone = [c for c in self.candidates.values() if self._files_deleted(c) or c.results_gone(self.now)]
        for candidate in gone:
            del self.candidates[candidate.batch_id]
            for kind in candidate.first_kinds():
                rows.append(self._row(candidate, kind, "gone"))
                self.counts.files_gone += 1
        return rows

    def _describe(self, pool: concurrent.futures.Executor) -> None:
        """`GET /files/{id}` for the files read first of every candidate not described yet: size, expiry."""
        wanted = [(c, kind) for c in self.candidates.values() for kind in c.undescribed()]
        client = self.client
        if not wanted or not isinstance(client, FilesApi):  # results: nothing describes them
            return

        def describe(item: tuple[Candidate, str]) -> dict[str, Any] | None:
            candidate, kind = item
            return client.file_info(candidate.files[kind])

        for (candidate, kind), info in zip(wanted, in_order(pool, describe, wanted), strict=True):
            if isinstance(info, BaseException):
                self._fail(candidate, kind, info)
            elif info is None:
                if not self._missed(candidate, kind):
                    self.counts.files_failed += 1
                    self._missing.append(f"batch {candidate.batch_id}: {self._not_yet_gone(candidate, kind)}")
            else:
                candidate.misses.pop(kind, None)  # it answered: misses count in a row
                size = exact_int(info.get("bytes"))
                candidate.sizes[kind] = size if size is not None and size >= 0 else None
                candidate.expiries[kind] = exact_int(info.get("expires_at"))

    def _within_budget(self, ordered: list[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
        """Batches to read this run, in expiry order, and those left for later. The first batch with bytes
        to read is always taken, so one larger than the budget is not put off forever."""
        admitted: list[Candidate] = []
        waiting: list[Candidate] = []
        used = 0
        for candidate in ordered:
            if candidate.undescribed():  # describing failed, or answered 404 not yet taken as gone: next run
                waiting.append(candidate)
                continue
            size = candidate.size()
            if used == 0 or used + size <= self.max_bytes:
                admitted.append(candidate)
                used += size
            else:
                waiting.append(candidate)
        return admitted, waiting

    def _read_batch(self, candidate: Candidate) -> _Result:
        """Runs in a download thread: every file the batch needs, in order, parsed as it streams."""
        result = _Result(candidate)
        parsed: list[ParsedFile] = []
        seen: set[str] = set()
        complete = True  # output and error (those it has) read, so missing requests can be told
        try:
            for kind in ("output", "error", RESULTS):
                if kind not in candidate.files:
                    continue
                # Anthropic's results: one line per request; a stream without end is cut (RESULTS_EXTRA_LINES).
                limit = 2 * candidate.total + settings.RESULTS_EXTRA_LINES if kind == RESULTS else None
                file = self._stream(candidate, kind, partial(self._parse, kind=kind, seen=seen, max_lines=limit))
                if file is None and not self._missed(candidate, kind):
                    result.failure, result.not_yet_gone = self._not_yet_gone(candidate, kind), True
                    return result
                if file is None:
                    complete = False
                    result.files.append(self._row(candidate, kind, "gone"))
                    continue
                if file.bad_lines and not file.rows and not file.duplicates:
                    result.failure = _not_a_batch_file(candidate, kind, file.lines)
                    return result
                self._report_odd_lines(candidate, kind, file)
                parsed.append(file)
                seen |= file.seen
                result.bytes_read += file.bytes
                result.files.append(self._row(candidate, kind, "read", file.bytes, file.lines))
                self.progress.file_read(self.project, file.bytes)
                if kind == RESULTS and len(file.seen) < candidate.total:
                    log.warning(
                        "batch %s: its results account for %d of its %d requests (the rest are in no line)",
                        candidate.batch_id,
                        len(file.seen),
                        candidate.total,
                    )
            missing: list[str] = []
            only_input = candidate.first_kinds() == ("input",)
            wanted = len(seen) < candidate.total or only_input or candidate.uncounted
            if complete and "input" in candidate.files and wanted:
                if not only_input:  # read beyond the plan: counted in as it starts
                    self.progress.files_planned(self.project, 1, candidate.sizes.get("input") or 0)
                ids = self._stream(candidate, "input", lambda chunks: parse_input(chunks, self._stop))
                if ids is None and not self._missed(candidate, "input"):
                    result.failure, result.not_yet_gone = self._not_yet_gone(candidate, "input"), True
                    return result
                if ids is None:
                    result.files.append(self._row(candidate, "input", "gone"))
                elif ids.bad_lines and not ids.custom_ids:
                    result.failure = _not_a_batch_file(candidate, "input", ids.lines)
                    return result
                else:
                    if ids.bad_lines:
                        log.warning(
                            "batch %s: %d line(s) of input file %s have no custom_id (first: %s)",
                            candidate.batch_id,
                            ids.bad_lines,
                            candidate.files["input"],
                            ids.first_bad,
                        )
                    missing = [custom_id for custom_id in ids.custom_ids if custom_id not in seen]
                    result.bytes_read += ids.bytes
                    result.files.append(self._row(candidate, "input", "read", ids.bytes, ids.lines))
                    self.progress.file_read(self.project, ids.bytes)
        except ApiError as e:
            if e.status in _FATAL_STATUSES:
                raise
            result.failure = str(e)
            return result
        result.columns = _columns(parsed, missing)
        return result

    def _missed(self, candidate: Candidate, kind: str) -> bool:
        """The API answered 404 for a file (or it was taken as gone before): whether it is gone now. The
        rule of batches: `GONE_AFTER_MISSES` runs in a row (a run counts once), or at once when the file
        is past the expiry the API gave for it."""
        if kind in candidate.gone:
            return True
        if kind not in candidate.missed_now:
            candidate.missed_now.add(kind)
            candidate.misses[kind] = candidate.misses.get(kind, 0) + 1
        expiry = candidate.expiries.get(kind)
        if candidate.misses[kind] >= settings.GONE_AFTER_MISSES or (expiry is not None and expiry <= self.now):
            candidate.gone.add(kind)
            return True
        return False

    def _not_yet_gone(self, candidate: Candidate, kind: str) -> str:
        return (
            f"{_what(candidate, kind)}: the API answered 404 (run {candidate.misses[kind]} of "
            f"{settings.GONE_AFTER_MISSES} in a row before it is taken as gone)"
        )

    def _stream(self, candidate: Candidate, kind: str, consume: Callable[[Iterator[bytes]], Any]) -> Any:
        if kind in candidate.gone:
            return None
        if kind == RESULTS and isinstance(self.client, AnthropicClient | OpenRouterClient):
            return self.client.stream_results(candidate.files[kind], consume)
        assert isinstance(self.client, FilesApi)
        return self.client.stream_file(candidate.files[kind], consume, size=candidate.sizes.get(kind))

    def _parse(self, chunks: Iterable[bytes], kind: str, seen: set[str], max_lines: int | None = None) -> ParsedFile:
        return parse_results(
            chunks,
            kind,
            seen_before=seen,
            clean_code=self._clean_code,
            clean_message=self._clean_message,
            stop=self._stop,
            max_lines=max_lines,
            openai_results=isinstance(self.client, OpenRouterClient),
        )

    def _report_odd_lines(self, candidate: Candidate, kind: str, file: ParsedFile) -> None:
        # Only counts and line numbers: a line's text is content and never shown.
        if file.bad_lines:
            log.warning(
                "batch %s: %d line(s) of %s could not be read (first: %s); their requests are not in the ledger",
                candidate.batch_id,
                file.bad_lines,
                _what(candidate, kind),
                file.first_bad,
            )
        if file.duplicates:
            log.warning(
                "batch %s: %d line(s) of %s repeat a custom_id already read; the first line of each is kept",
                candidate.batch_id,
                file.duplicates,
                _what(candidate, kind),
            )

    def _take(self, result: _Result, requests: _Rows, files: list[FileRow]) -> None:
        candidate = result.candidate
        if result.failure is not None:
            self.counts.files_failed += 1
            self.counts.batches_pending += 1
            self.counts.bytes_pending += candidate.size()
            if result.not_yet_gone:
                self._missing.append(f"batch {candidate.batch_id}: {result.failure}")
            else:
                log.warning("batch %s: left for the next run: %s", candidate.batch_id, result.failure)
            if not candidate.announced:
                files.extend(self._pending_rows(candidate))
                candidate.announced = True
            return
        del self.candidates[candidate.batch_id]
        assert result.columns is not None
        requests.add(candidate.batch_id, result.columns)
        files.extend(result.files)
        gone = sorted(row[1] for row in result.files if row[3] == "gone")
        if gone or candidate.awaits:
            self.watch[candidate.batch_id] = {
                "files": candidate.files,
                "ended": candidate.ended,
                "gone": gone,
                "misses": dict(sorted(candidate.misses.items())),
                "awaits": candidate.awaits,
                "checks": 0,
            }
        else:
            self.watch.pop(candidate.batch_id, None)
        self.counts.batches_read += 1
        self.counts.requests += _rows(result.columns)
        self.counts.bytes_read += result.bytes_read
        self.counts.files_read += sum(1 for row in result.files if row[3] == "read")
        self.counts.files_gone += sum(1 for row in result.files if row[3] == "gone")

    def _fail(self, candidate: Candidate, kind: str, error: BaseException) -> None:
        """A file that could not be described: its batch waits for the next run (401/403 and anything
        that is not an API failure end the run)."""
        if not isinstance(error, ApiError) or error.status in _FATAL_STATUSES:
            raise error
        self.counts.files_failed += 1
        log.warning("batch %s: left for the next run (%s file): %s", candidate.batch_id, kind, error)

    def _row(
        self, candidate: Candidate, kind: str, state: str, size: int | None = None, lines: int | None = None
    ) -> FileRow:
        return (candidate.batch_id, kind, _file_id(candidate, kind), state, size, lines, time.time())

    def _pending_rows(self, candidate: Candidate) -> list[FileRow]:
        """Rows saying what a batch left for later is waiting for (what is already gone, says so)."""
        rows = []
        for kind in candidate.first_kinds():
            if kind in candidate.gone:
                rows.append(self._row(candidate, kind, "gone"))
            else:
                size = candidate.sizes.get(kind)
                rows.append((candidate.batch_id, kind, _file_id(candidate, kind), "pending", size, None, None))
        return rows


def _not_a_batch_file(candidate: Candidate, kind: str, lines: int) -> str:
    """Why a file none of whose lines could be read is not taken: an HTML page or any other document served
    in its place (a proxy's error page with status 200) would otherwise be recorded `read`, and every
    request of the batch called missing, for good."""
    return (
        f"{_what(candidate, kind)}: none of its {lines} line(s) is a request of the batch (an error "
        "page or another document instead of the file?)"
    )


def _what(candidate: Candidate, kind: str) -> str:
    """A file as a log line names it: `output file file-...`, or `the results` of an Anthropic batch."""
    return "the results" if kind == RESULTS else f"{kind} file {candidate.files[kind]}"


def _file_id(candidate: Candidate, kind: str) -> str | None:
    """`batch_files.file_id`: NULL for Anthropic results, which are no file (their URL is the batch's)."""
    return None if kind == RESULTS else candidate.files[kind]


def _requests(candidate: Candidate) -> int:
    return candidate.total


def _slices(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """A table of request rows in pieces of LEDGER_ARROW_ROWS (views, no copy): dlt's extract and DuckDB's
    staging copy then work on small row groups (a 50,000-request batch at once: ~15 MB more at peak)."""
    for start in range(0, table.num_rows, settings.LEDGER_ARROW_ROWS):
        yield "requests", table.slice(start, settings.LEDGER_ARROW_ROWS)


def _read_order(candidate: Candidate) -> tuple[float, int, str]:
    """Files that expire first are read first; then older batches first."""
    return candidate.expiry(), candidate.ended or 0, candidate.batch_id


def _columns(parsed: list[ParsedFile], missing: list[str]) -> dict[str, list[pa.Array]]:
    """A batch's request rows, column by column: its files' lines, then the custom ids in neither."""
    columns: dict[str, list[pa.Array]] = {name: [] for name in RESULT_FIELDS}
    for file in parsed:
        for name, arrays in file.columns().items():
            columns[name].extend(arrays)
    if missing:
        for name in RESULT_FIELDS:
            columns[name].append(pa.nulls(len(missing), RESULT_TYPES[name], memory_pool=POOL))
        columns["custom_id"][-1] = pa.array(missing, pa.string(), memory_pool=POOL)
        columns["outcome"][-1] = pa.repeat(pa.scalar("missing"), len(missing), memory_pool=POOL)
    return columns


def _rows(columns: dict[str, list[pa.Array]]) -> int:
    return sum(len(a) for a in columns["custom_id"])


class _Rows:
    """Request rows of several batches waiting to be handed to dlt as one arrow table."""

    def __init__(self) -> None:
        self.columns: dict[str, list[pa.Array]] = {name: [] for name in REQUEST_COLUMN_NAMES}
        self.rows = 0

    def __len__(self) -> int:
        return self.rows

    def add(self, batch_id: str, columns: dict[str, list[pa.Array]]) -> None:
        n = _rows(columns)
        self.columns["batch_id"].append(pa.repeat(pa.scalar(batch_id), n, memory_pool=POOL))
        for name, arrays in columns.items():
            self.columns[name].extend(arrays)
        self.rows += n

    def table(self, ledger: Ledger) -> pa.Table:
        self.columns["project"] = [pa.repeat(pa.scalar(ledger.project), self.rows, memory_pool=POOL)]
        redactor = ledger.client.redactor
        return requests_to_arrow(self.columns, redactor.key_regex(), identifier(redactor))


def _cached(clean: Callable[[str], str]) -> Callable[[Any], str | None]:
    """`clean` for server text, remembered: an error file repeats a handful of messages thousands of times."""
    remembered = lru_cache(maxsize=4096)(clean)

    def cleaned(value: Any) -> str | None:
        if value is None:
            return None
        return remembered(value if isinstance(value, str) else json.dumps(value))

    return cleaned


__all__ = ["Ledger", "in_sync", "state_digest"]
