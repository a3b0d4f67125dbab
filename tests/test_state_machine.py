"""A stateful property test of the incremental load: Hypothesis drives a small in-process
model of the Batches API through random histories and checks the pipeline against it.

Rules create batches (in bursts within one second, with id stamps a second off their created_at, late:
visible only after newer ones, or with an odd created_at), move them through their lifecycle, delete
open ones, inject faults (5xx, truncated bodies, empty pages that claim more, 404s, answers without the
project header), and run loads that may fail or stop between extract and load. The one invariant:
after a clean run, the database holds every batch the API holds, exactly as the API shows it now, with
no duplicates and no rows the API never had.

The request ledger and the Admin API run too (issue 16). Finished batches have input, output and error
files of a few requests each (succeeded and failed lines in the batch output format), served at
`/files/{id}` and `/files/{id}/content`, gzip-encoded when a rule says so. Rules finish batches whose
files appear late (listed with `output_file_id: null`, named on a later step), make a file answer 404
for a run or two (fewer than the gone rule's GONE_AFTER_MISSES in a row), revise a day's usage, and
repeat a usage bucket on the next page with changed values. Invariants after a clean run: every
request of every finished batch is in `batch_requests` once, as its files say now (README, "Late
files": a batch whose file was named within 3 runs of its ledger being written short is read again;
one named later may still read `missing` until a `--full-refresh`, which repairs it); `usage_daily`
and `costs_daily` hold the distinct buckets committed runs were served, the copy served last per day
(README, "Buckets are days, counted once"), and `admin_days_read` every day served.

`make test` runs a modest number of examples; `make soak` many (OPENAI_BATCHES_STATE_EXAMPLES).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from openai_batches import settings
from openai_batches.config import AdminConfig, ProjectConfig, RunConfig
from openai_batches.load.runner import make_pipeline, run_load
from openai_batches.sources.batches.source import openai_batches

from .support.fake_api import Reply, ScriptedApi, envelope, json_reply
from .support.providers import NEW_PROVIDERS, PAGING_PROVIDERS, PROVIDERS, provider_params

pytestmark = pytest.mark.slow  # random histories of the incremental load

EXAMPLES = int(os.environ.get("OPENAI_BATCHES_STATE_EXAMPLES", "4"))
STEPS = int(os.environ.get("OPENAI_BATCHES_STATE_STEPS", "16"))
START = 1_780_000_000  # 2026-05-28: the model's clock, sent as the API's `Date`
PAGE = 100
DAY = 86_400
MODEL = "gpt-4o-mini-2024-07-18"
PROJECT = "proj_scripted"
# A batch whose file was named within this many loads after it finished without it must be read again
# (README, "Late files": the next 3 runs ask; the run that writes its ledger short is one more).
LATE_FILE_RUNS = settings.GONE_AFTER_MISSES + 1


@dataclass
class Batch:
    id: str
    serial: int
    created: Any  # epoch seconds, or an odd value (null, text, milliseconds, the future)
    stamp: int  # the creation stamp in the id: what the list is ordered by
    status: str = "in_progress"
    version: int = 0
    completes_at: float | None = None
    deleted: bool = False
    requests: int = 2  # custom ids req-0 ... req-{n-1}
    failing: frozenset[int] = frozenset()  # requests in the error file; the others succeed
    files_named: bool = True  # False: finished, but its output and error files are not named yet
    finished_at_load: int | None = None  # the model's load count when it finished without its files
    stale_allowed: bool = False  # named too late for a plain run to read again (README, "Late files")

    def file_id(self, kind: str) -> str:
        return f"file-{kind}-{self.serial}"

    def named(self, kind: str) -> str | None:
        """The file id the batch object names for `kind` now, or None."""
        if kind == "input":
            return self.file_id("input")
        if self.status != "completed" or not self.files_named:
            return None
        has = len(self.failing) < self.requests if kind == "output" else bool(self.failing)
        return self.file_id(kind) if has else None

    def api(self) -> dict[str, Any]:
        done = self.status == "completed"
        succeeded = self.requests - len(self.failing)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "model": MODEL,
            "errors": None,
            "input_file_id": self.named("input"),
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.named("output"),
            "error_file_id": self.named("error"),
            "created_at": self.created,
            "in_progress_at": None,
            "expires_at": None,
            "finalizing_at": None,
            "completed_at": self.ended() if done else None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {
                "total": self.requests,
                "completed": succeeded if done else min(self.version, succeeded),
                "failed": len(self.failing) if done else 0,
            },
            "metadata": {"v": str(self.version)},
        }

    def ended(self) -> int | None:
        return int(self.completes_at) if self.completes_at else None

    def content(self, kind: str) -> bytes:
        """The file's JSONL, in OpenAI's batch formats (output lines not in input order)."""
        lines: list[dict[str, Any]] = []
        if kind == "input":
            for i in range(self.requests):
                request = {"model": MODEL, "messages": [{"role": "user", "content": f"question {i}"}]}
                lines.append(
                    {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": request}
                )
        for i in reversed(range(self.requests)):
            line: dict[str, Any] = {"id": f"batch_req_{self.serial}_{i}", "custom_id": f"req-{i}", "error": None}
            if kind == "output" and i not in self.failing:
                usage = {
                    "prompt_tokens": 20 + i,
                    "completion_tokens": 1 + i,
                    "total_tokens": 21 + 2 * i,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                }
                body: dict[str, Any] = {
                    "id": f"chatcmpl-{self.serial}-{i}",
                    "object": "chat.completion",
                    "created": self.ended(),
                    "model": MODEL,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "an answer"}}],
                    "usage": usage,
                }
                line["response"] = {"status_code": 200, "request_id": f"req_{self.serial}_{i}", "body": body}
                lines.append(line)
            elif kind == "error" and i in self.failing:
                error = {"message": "bad request", "type": "invalid_request_error", "param": None, "code": "bad"}
                line["response"] = {
                    "status_code": 400,
                    "request_id": f"req_{self.serial}_{i}",
                    "body": {"error": error},
                }
                lines.append(line)
        return b"".join(json.dumps(line).encode() + b"\n" for line in lines)

    def ledger_rows(self) -> Counter[tuple[Any, ...]]:
        """`batch_requests` of this batch as its files say now: (custom id, outcome, status, in, out)."""
        rows: Counter[tuple[Any, ...]] = Counter()
        for i in range(self.requests):
            if i in self.failing and self.named("error"):
                rows[(f"req-{i}", "failed", 400, None, None)] += 1
            elif i not in self.failing and self.named("output"):
                rows[(f"req-{i}", "succeeded", 200, 20 + i, 1 + i)] += 1
            else:
                rows[(f"req-{i}", "missing", None, None, None)] += 1
        return rows

    def missing_rows(self) -> Counter[tuple[Any, ...]]:
        return Counter({(f"req-{i}", "missing", None, None, None): 1 for i in range(self.requests)})


def day_of(epoch: float) -> int:
    return int(epoch) // DAY * DAY


class Books:
    """The Admin API's side: one project, and daily usage and cost buckets from the day before START,
    each day's results a function of its revision (revised days change, as OpenAI fills days late)."""

    ENDPOINTS = {"/v1/organization/usage/completions": "usage", "/v1/organization/costs": "costs"}

    def __init__(self) -> None:
        self.revision: dict[int, int] = {}  # day -> times revised
        self.page_days = 31  # buckets a page holds (at most the `limit` asked for)
        self.repeat = False  # a page after the first starts with the page before's last bucket, revised
        self.served: dict[tuple[str, int], list[dict[str, Any]]] = {}  # this run's, the last copy per day
        self.committed: dict[tuple[str, int], list[dict[str, Any]]] = {}  # of runs whose Admin part committed

    def results(self, endpoint: str, day: int) -> list[dict[str, Any]]:
        if day < day_of(START) - DAY:
            return []
        rev = self.revision.get(day, 0)
        count = (day // DAY + rev) % 3  # 0, 1 or 2 results; an empty day is a day with no usage
        results: list[dict[str, Any]] = []
        for n in range(count):
            # The second result of a day has the first one's key on odd revisions (a split by service
            # tier, added up) and another model's on even ones.
            model = MODEL if n == 0 or rev % 2 else "gpt-4o-2024-08-06"
            tokens = 1000 * (rev + 1) + day // DAY % 97 + 10 * n
            if endpoint == "usage":
                results.append(
                    {
                        "object": "organization.usage.completions.result",
                        "input_tokens": tokens,
                        "output_tokens": tokens // 10,
                        "input_cached_tokens": tokens // 100,
                        "num_model_requests": 3 + n,
                        "project_id": PROJECT,
                        "user_id": None,
                        "api_key_id": None,
                        "model": model,
                        "batch": True,
                        "service_tier": None,
                    }
                )
            else:
                results.append(
                    {
                        "object": "organization.costs.result",
                        "amount": {"value": tokens * 0.25, "currency": "usd"},
                        "line_item": f"{model}, input_tokens",
                        "project_id": PROJECT,
                        "quantity": float(tokens),
                    }
                )
        return results

    def page(self, endpoint: str, query: dict[str, str], now: float) -> Reply:
        first = day_of(int(query["start_time"]))
        cursor = query.get("page")
        start = int(cursor.removeprefix("page_")) if cursor else first
        days = [d for d in range(start, start + DAY * min(self.page_days, int(query["limit"])), DAY) if d <= now]
        if cursor and self.repeat and start - DAY >= first:
            self.revision[start - DAY] = self.revision.get(start - DAY, 0) + 1  # filled meanwhile
            days.insert(0, start - DAY)
        buckets = []
        for day in days:
            results = self.results(endpoint, day)
            self.served[(endpoint, day)] = results
            buckets.append({"object": "bucket", "start_time": day, "end_time": day + DAY, "results": results})
        more = bool(days) and days[-1] + DAY <= now
        next_page = f"page_{days[-1] + DAY}" if more else None
        return json_reply({"object": "page", "data": buckets, "has_more": more, "next_page": next_page})

    def expected(self, endpoint: str) -> Counter[tuple[Any, ...]]:
        """Rows of `usage_daily` / `costs_daily` as committed runs were served them: one per day and key,
        results of one key added up."""
        sums: dict[tuple[Any, ...], list[float]] = {}
        for (served_endpoint, day), results in self.committed.items():
            if served_endpoint != endpoint:
                continue
            when = datetime.fromtimestamp(day, UTC).date()
            for r in results:
                if endpoint == "usage":
                    key: tuple[Any, ...] = (when, r["project_id"], r["model"], r["batch"])
                    values = [r["input_tokens"], r["input_cached_tokens"], r["output_tokens"], r["num_model_requests"]]
                else:
                    key, values = (when, r["project_id"], r["line_item"]), [r["amount"]["value"]]
                total = sums.setdefault(key, [0] * len(values))
                for i, v in enumerate(values):
                    total[i] += v
        return Counter({(*k, *v): 1 for k, v in sums.items()})

    def days_read(self) -> Counter[tuple[Any, ...]]:
        name = {"usage": "usage/completions", "costs": "costs"}
        return Counter(
            {
                (name[e], datetime.fromtimestamp(day, UTC).date(), len(results)): 1
                for (e, day), results in self.committed.items()
            }
        )


class ApiModel:
    def __init__(self) -> None:
        self.now = float(START)
        self.batches: dict[str, Batch] = {}
        self.by_serial: dict[int, Batch] = {}
        self.serial = 0
        self.faults: list[str] = []  # for the next requests, whatever they are
        self.get_404s = 0  # 404s owed to the next requests for one batch by id
        self.flapping: set[str] = set()  # file ids answered 404 for now
        self.gzip = False  # every answer gzip-encoded, as a gateway compresses
        self.books = Books()
        self.lock = threading.Lock()  # the ledger downloads several files at once

    def listed(self) -> list[Batch]:
        live = [b for b in self.batches.values() if not b.deleted]
        return sorted(live, key=lambda b: (b.stamp, b.id), reverse=True)

    def new_id(self, stamp: int) -> str:
        self.serial += 1
        return f"batch_{stamp:08x}{self.serial:04x}8190{self.serial * 7919:016x}"

    def add(self, created: Any, stamp: int, lifetime: float) -> Batch:
        batch_id = self.new_id(stamp)
        # A few requests each, some of them failing: files of one, two or three kinds.
        requests = 1 + self.serial % 3
        failing = frozenset(i for i in range(requests) if (self.serial + 2 * i) % 7 == 0)
        batch = Batch(batch_id, self.serial, created, stamp, completes_at=self.now + lifetime, requests=requests)
        batch.failing = failing
        self.batches[batch.id] = batch
        self.by_serial[batch.serial] = batch
        return batch

    def route(self, path: str, query: dict[str, str], number: int) -> Reply:
        with self.lock:
            reply = self._route(path, query)
        if self.gzip and reply.status == 200:
            reply.body = gzip.compress(reply.body)
            reply.headers["content-encoding"] = "gzip"
        return reply

    def _route(self, path: str, query: dict[str, str]) -> Reply:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "500":
            return json_reply({"error": {"message": "boom", "type": "server_error"}}, 500)
        if fault == "truncated":
            return Reply(200, b'{"object": "list", "da')
        if path.startswith("/v1/files/"):
            return self.file(path.removeprefix("/v1/files/"))
        if path == "/v1/organization/projects":
            project = {"id": PROJECT, "object": "organization.project", "name": "scripted", "created_at": START - DAY}
            project |= {"archived_at": None, "status": "active"}
            return json_reply(envelope([project], False))
        if path in Books.ENDPOINTS:
            return self.books.page(Books.ENDPOINTS[path], query, self.now)
        if path.startswith("/v1/batches/"):
            batch = self.batches.get(path.rsplit("/", 1)[1])
            glitch = self.get_404s > 0
            self.get_404s = max(0, self.get_404s - 1)
            if batch is None or batch.deleted or glitch:
                return json_reply({"error": {"message": "No batch found"}}, 404)
            return json_reply(batch.api())
        listed = self.listed()
        start = 0
        if after := query.get("after"):
            ids = [b.id for b in listed]
            if after not in ids:
                return json_reply(envelope([], False))
            start = ids.index(after) + 1
        page = listed[start : start + int(query.get("limit", 20))]
        has_more = start + len(page) < len(listed)
        if fault == "empty_has_more" and has_more:
            return json_reply(envelope([], True))
        return json_reply(envelope([b.api() for b in page], has_more))

    def file(self, rest: str) -> Reply:
        file_id, _, content = rest.partition("/")
        _, kind, serial = (file_id.split("-") + ["", "", ""])[:3]
        batch = self.by_serial.get(int(serial)) if serial.isdigit() else None
        if batch is None or batch.named(kind) != file_id or file_id in self.flapping:
            return json_reply(
                {"error": {"message": f"No such File object: {file_id}", "type": "invalid_request_error"}}, 404
            )
        body = batch.content(kind)
        if content == "content":
            return Reply(200, body, content_type="application/octet-stream")
        ended = batch.ended() or int(self.now)
        return json_reply(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(body),
                "created_at": ended,
                "expires_at": ended + 30 * DAY if kind != "input" else None,
                "filename": f"{kind}.jsonl",
                "purpose": "batch" if kind == "input" else "batch_output",
                "status": "processed",
            }
        )


class IncrementalLoad(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="openai-batches-sm-")
        self.db = os.path.join(self.tmp, "batches.duckdb")
        self.model = ApiModel()
        self.api = ScriptedApi(self.model.route, clock=lambda: self.model.now, keep_alive=True).__enter__()
        self.config = RunConfig(
            projects=(ProjectConfig(name=None, api_key="sk-state-machine-0123456789", base_url=self.api.base_url),),
            max_attempts=3,
            admin=AdminConfig(admin_key="sk-admin-state-machine-0123456789", base_url=self.api.base_url),
            requests=True,
        )
        self.loaded_once = False
        self.get_404s_since_clean = 0
        self.steps_since_clean = 0  # steps since the last clean load's checks (teardown runs one if any)
        self.loads = 0  # loads started (a stopped one included): each may count a late file's check
        self.names_due: dict[str, int] = {}  # batch id -> the load count after which its files are named
        self.flaps: dict[str, int] = {}  # file id -> loads left that it answers 404 to
        self.file_404_loads: dict[str, int] = {}  # file id -> loads it answered 404 to since the last clean one

    def teardown(self) -> None:
        try:
            # Every history ends with a clean load and its checks (unless a step failed: that is reported).
            if sys.exc_info()[1] is None and self.steps_since_clean:
                self.a_clean_load(full_refresh=False)
        finally:
            self.api.__exit__()
            shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(history=st.integers(0, 400), still_open=st.lists(st.integers(0, 399), max_size=4))
    def a_history(self, history: int, still_open: list[int]) -> None:
        """Settled batches a minute apart, and a few still running (long ones, deep in the list)."""
        for i in range(history):
            created = START - 86_400 + 60 * i
            batch = self.model.add(created, created, lifetime=2 * 86_400 if i in still_open else 0)
            if i not in still_open:
                batch.status = "completed"

    # --- the API changes ----------------------------------------------------------------------
    @rule(count=st.one_of(st.integers(1, 40), st.integers(100, 160)), same_second=st.booleans(), skewed=st.booleans())
    def new_batches(self, count: int, same_second: bool, skewed: bool) -> None:
        for _ in range(count):
            created = int(self.model.now)
            # Real ids carry a creation stamp up to a second below created_at.
            self.model.add(created, created - 1 if skewed else created, lifetime=120 * (1 + self.model.serial % 7))
            if not same_second:
                self.model.now += 1 + self.model.serial % 3

    @rule(count=st.integers(1, 3))
    def long_running_batches(self, count: int) -> None:
        """Open for days: with new batches on top they end up pages deep, read by id or by paging."""
        for _ in range(count):
            self.model.add(int(self.model.now), int(self.model.now), lifetime=3 * 86_400)
            self.model.now += 1

    @rule(count=st.integers(120, 260))
    def a_busy_day(self, count: int) -> None:
        """Many short batches a minute apart: whatever was open before ends up pages deep."""
        for _ in range(count):
            self.model.add(int(self.model.now), int(self.model.now), lifetime=0).status = "completed"
            self.model.now += 60

    @precondition(lambda self: any(isinstance(b.created, int) for b in self.model.batches.values()))
    @rule(age=st.integers(1, 600))
    def a_batch_visible_late(self, age: int) -> None:
        newest = max(b.stamp for b in self.model.batches.values())
        self.model.add(newest - age, newest - age, lifetime=300)

    @rule(kind=st.sampled_from(["null", "text", "milliseconds", "future"]))
    def a_batch_with_an_odd_created_at(self, kind: str) -> None:
        stamp = int(self.model.now)
        odd = {"null": None, "text": "soon", "milliseconds": stamp * 1000, "future": stamp + 40 * 86_400}[kind]
        self.model.add(odd, stamp, lifetime=600)

    @rule(seconds=st.sampled_from([5, 200, 1000, 3600, 86_400]))
    def time_passes(self, seconds: int) -> None:
        self.model.now += seconds
        for batch in self.model.batches.values():
            if batch.status != "completed" and not batch.deleted:
                batch.version += 1
                if batch.completes_at is not None and batch.completes_at <= self.model.now:
                    batch.status = "completed"

    @precondition(lambda self: any(b.status != "completed" and not b.deleted for b in self.model.batches.values()))
    @rule(data=st.data())
    def an_open_batch_is_deleted(self, data: st.DataObject) -> None:
        open_ = [b for b in self.model.batches.values() if b.status != "completed" and not b.deleted]
        data.draw(st.sampled_from(open_)).deleted = True

    @rule(kind=st.sampled_from(["500", "truncated", "empty_has_more"]), count=st.integers(1, 4))
    def faults(self, kind: str, count: int) -> None:
        self.model.faults.extend([kind] * count)

    # Three 404s in a row for a batch that exists would (by design) record it gone: at most two between
    # clean loads, whose successful read resets the count.
    @precondition(lambda self: self.model.get_404s == 0 and self.get_404s_since_clean < 2)
    @rule()
    def a_404_for_a_batch_that_exists(self) -> None:
        self.model.get_404s = 1
        self.get_404s_since_clean += 1

    @rule(missing=st.booleans())
    def project_header(self, missing: bool) -> None:
        self.api.project = None if missing else "proj_scripted"

    # --- the ledger's files -------------------------------------------------------------------
    @rule(count=st.integers(1, 3), named_after=st.integers(1, 2))
    def batches_finish_before_their_files_are_named(self, count: int, named_after: int) -> None:
        """Completed, counts and all, with `output_file_id` and `error_file_id` null: the ledger records
        their requests `missing` (from the input file) until the files are named, `named_after` loads
        later (or earlier, by the rule below)."""
        for _ in range(count):
            batch = self.model.add(int(self.model.now), int(self.model.now), lifetime=1)
            batch.status, batch.files_named, batch.finished_at_load = "completed", False, self.loads
            self.names_due[batch.id] = self.loads + named_after
            self.model.now += 1

    @precondition(lambda self: any(not b.files_named for b in self.model.batches.values()))
    @rule(data=st.data())
    def a_late_file_is_named(self, data: st.DataObject) -> None:
        late = [b for b in self.model.batches.values() if not b.files_named]
        self.name_files(data.draw(st.sampled_from(late)))

    def name_files(self, batch: Batch) -> None:
        self.names_due.pop(batch.id, None)
        batch.files_named = True
        assert batch.finished_at_load is not None
        # Named after the runs that ask again (README, "Late files"): until a full refresh, a plain run
        # may keep the ledger it wrote short.
        batch.stale_allowed = self.loads - batch.finished_at_load >= LATE_FILE_RUNS

    def file_ids(self) -> list[str]:
        """Files of finished batches (the newest first: those the ledger may not have read yet)."""
        done = sorted((b for b in self.model.batches.values() if b.status == "completed"), key=lambda b: -b.serial)
        ids = [fid for b in done[:12] for kind in ("output", "error", "input") if (fid := b.named(kind))]
        return [fid for fid in ids if self.file_404_loads.get(fid, 0) < settings.GONE_AFTER_MISSES - 1]

    # A file that answers 404 for fewer loads in a row than the gone rule needs is a gateway's flap:
    # nothing is lost (at most GONE_AFTER_MISSES - 1 between clean loads, which read it).
    @precondition(lambda self: bool(self.file_ids()))
    @rule(data=st.data(), loads=st.integers(1, settings.GONE_AFTER_MISSES - 1))
    def a_file_answers_404_for_a_while(self, data: st.DataObject, loads: int) -> None:
        file_id = data.draw(st.sampled_from(self.file_ids()))
        left = settings.GONE_AFTER_MISSES - 1 - self.file_404_loads.get(file_id, 0)
        self.flaps[file_id] = min(loads, left)
        self.model.flapping.add(file_id)

    @rule(on=st.booleans())
    def gzip_answers(self, on: bool) -> None:
        self.model.gzip = on

    # --- the Admin API ------------------------------------------------------------------------
    @rule(days_back=st.integers(0, 3))
    def usage_and_costs_revised(self, days_back: int) -> None:
        day = day_of(self.model.now) - days_back * DAY
        self.model.books.revision[day] = self.model.books.revision.get(day, 0) + 1

    @rule(repeat=st.booleans(), page_days=st.sampled_from([4, 31]))
    def usage_pages(self, repeat: bool, page_days: int) -> None:
        """Pages of fewer days than asked for; with `repeat`, each page after the first starts with the
        page before's last bucket again, with other values."""
        self.model.books.repeat, self.model.books.page_days = repeat, page_days

    # --- loads ---------------------------------------------------------------------------------
    def load(self, full_refresh: bool = False, admin: bool = True) -> Any:
        self.before_load()
        self.model.books.served = {}
        config = self.config if admin else replace(self.config, admin=None)
        result = run_load(self.db, config, full_refresh=full_refresh)
        if result.admin is not None and result.admin.error is None:
            self.model.books.committed.update(self.model.books.served)
        self.after_load()
        return result

    def before_load(self) -> None:
        for batch_id, due in list(self.names_due.items()):
            if due <= self.loads:  # `named_after` loads ran since it finished
                self.name_files(self.model.batches[batch_id])
        self.loads += 1

    def after_load(self) -> None:
        for file_id in list(self.flaps):
            self.file_404_loads[file_id] = self.file_404_loads.get(file_id, 0) + 1
            self.flaps[file_id] -= 1
            if not self.flaps[file_id]:
                del self.flaps[file_id]
                self.model.flapping.discard(file_id)

    @rule(admin=st.booleans())
    def a_load_that_may_fail(self, admin: bool) -> None:
        """With or without the admin key (added or removed between runs)."""
        result = self.load(admin=admin)
        self.loaded_once |= result.ok

    @rule()
    def a_load_stopped_between_extract_and_load(self) -> None:
        """What a kill after dlt's normalize step leaves: a package on disk that no load committed."""
        pipeline = make_pipeline(self.db)
        project = self.config.projects[0]
        source = openai_batches(api_key=project.api_key, base_url=project.base_url, timeout=5, requests=True)
        self.before_load()
        try:
            pipeline.extract(source)
            pipeline.normalize(loader_file_format="parquet")
        except Exception:
            pass  # a fault during extract: nothing to load later either
        self.after_load()

    @rule(full_refresh=st.sampled_from([False, False, False, True]))
    def a_clean_load(self, full_refresh: bool) -> None:
        self.model.faults.clear()
        self.model.get_404s = 0
        self.get_404s_since_clean = 0
        self.flaps.clear()
        self.model.flapping.clear()
        self.file_404_loads.clear()
        result = self.load(full_refresh)
        assert result.ok, ([o.error for o in result.outcomes], result.admin and result.admin.error)
        self.loaded_once = True
        if full_refresh:  # it looks at every batch whose ledger was written short
            for batch in self.model.batches.values():
                batch.stale_allowed = batch.stale_allowed and not batch.files_named
        self.check_database_equals_api()
        self.check_ledger_equals_files()
        self.check_books_equal_buckets_served()
        self.steps_since_clean = -1  # the invariants' call after this step counts it

    def check_database_equals_api(self) -> None:
        rows: list[Any] = []
        if os.path.exists(self.db):
            with duckdb.connect(self.db, read_only=True) as con:
                if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'batches'").fetchone()[0]:
                    rows = con.execute(
                        "SELECT id, status, metadata->>'$.v', request_counts__completed FROM openai_batches.batches"
                    ).fetchall()
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids)), "duplicate rows"
        stored = {r[0]: (r[1], int(r[2]), r[3]) for r in rows}
        live = {b.id: b for b in self.model.batches.values() if not b.deleted}
        missing = set(live) - set(stored)
        assert not missing, f"{len(missing)} batches of the API not loaded: {sorted(missing)[:3]}"
        for batch_id, batch in live.items():
            api = batch.api()
            want = (api["status"], batch.version, api["request_counts"]["completed"])
            assert stored[batch_id] == want, (batch_id, stored[batch_id], want)
        unknown = set(stored) - set(self.model.batches)
        assert not unknown, f"rows the API never had: {sorted(unknown)[:3]}"

    def stored(self, table: str, columns: str) -> list[tuple[Any, ...]]:
        """The rows of a table (none while it does not exist: nothing was ever written to it)."""
        with duckdb.connect(self.db, read_only=True) as con:
            exists = "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'openai_batches' AND table_name = ?"
            if not con.execute(exists, [table]).fetchone()[0]:  # type: ignore[index]
                return []
            return con.execute(f"SELECT {columns} FROM openai_batches.{table}").fetchall()

    def check_ledger_equals_files(self) -> None:
        """Every request of every finished batch is in `batch_requests` once, as its files say now."""
        rows = self.stored("batch_requests", "batch_id, custom_id, outcome, status_code, input_tokens, output_tokens")
        keys = Counter((r[0], r[1]) for r in rows)
        assert not [k for k, n in keys.items() if n > 1], "a request twice in the ledger"
        got: dict[str, Counter[tuple[Any, ...]]] = {}
        for r in rows:
            got.setdefault(r[0], Counter())[r[1:]] += 1
        for batch in self.model.batches.values():
            if batch.deleted or batch.status != "completed":
                assert batch.id not in got, f"ledger rows for batch {batch.id}, which has not finished"
                continue
            want = batch.ledger_rows()
            have = got.get(batch.id, Counter())
            if batch.stale_allowed and have == batch.missing_rows():
                continue
            assert have == want, (batch.id, batch.files_named, sorted(have.elements()), sorted(want.elements()))
        unknown = set(got) - set(self.model.batches)
        assert not unknown, f"ledger rows of batches the API never had: {sorted(unknown)[:3]}"

    def check_books_equal_buckets_served(self) -> None:
        """`usage_daily` and `costs_daily` hold each day once, as last served to a run that committed; every
        day served is in `admin_days_read` with its number of results."""
        books = self.model.books
        usage = self.stored(
            "usage_daily",
            "day, project_id, model, batch, input_tokens, input_cached_tokens, output_tokens, num_model_requests",
        )
        costs = self.stored("costs_daily", "day, project_id, line_item, amount_usd")
        read = self.stored("admin_days_read", "endpoint, day, results")
        assert Counter(usage) == books.expected("usage"), diff(Counter(usage), books.expected("usage"))
        assert Counter(costs) == books.expected("costs"), diff(Counter(costs), books.expected("costs"))
        assert Counter(read) == books.days_read(), diff(Counter(read), books.days_read())

    @invariant()
    def never_a_duplicate_row(self) -> None:
        self.steps_since_clean += 1
        if not self.loaded_once or not os.path.exists(self.db):
            return
        with duckdb.connect(self.db, read_only=True) as con:
            if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'batches'").fetchone()[0]:
                return
            row = con.execute("SELECT count(*), count(DISTINCT id) FROM openai_batches.batches").fetchone()
        assert row is not None and row[0] == row[1]


def diff(got: Counter[tuple[Any, ...]], want: Counter[tuple[Any, ...]]) -> str:
    extra, lacking = sorted((got - want).elements())[:4], sorted((want - got).elements())[:4]
    return f"stored, not served: {extra}; served, not stored: {lacking}"


IncrementalLoad.TestCase.settings = hypothesis_settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    # Fixed examples in `make test`; new random ones in `make soak`. A failure prints its steps and a
    # @reproduce_failure blob that replays it exactly.
    derandomize=os.environ.get("OPENAI_BATCHES_STATE_SEED") is None,
    print_blob=True,
    database=None,
    # Shrinking re-runs dozens of loads; `make test` reports the failing steps as found, `make soak` shrinks.
    phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("OPENAI_BATCHES_STATE_SHRINK") else []),
)
TestIncrementalLoad = IncrementalLoad.TestCase


# --- every provider's list over the simulator ---------------------------------------------------------------
# The same incremental load over each provider's projects in the real simulator (tests/support/providers.py):
# batches arrive (a page's worth at times), time passes, batches are cancelled and (Anthropic) deleted, faults
# hit any request, loads fail or stop between extract and load. Invariants after a clean load: every batch the
# simulator has is in the provider's table exactly once, as the API shows it now; a batch deleted on the
# provider's side is there as last served (one of the versions a load was served) when a load saw it, and
# absent when none did; `batches_gone` names deleted batches only.
# Few examples in `make test` (each step may be a load of seconds; OpenAI's richer machine above runs too),
# many in `make soak` (OPENAI_BATCHES_PROVIDER_STATE_EXAMPLES).
# Issue 19's providers whose list pages differently (PAGING_PROVIDERS: Azure's v1 with UUID ids, Groq without
# has_more, Together's bare array, Mistral's page numbers) run one example each; the others' lists are OpenAI's.
PROVIDER_EXAMPLES = {
    "openai": int(os.environ.get("OPENAI_BATCHES_PROVIDER_STATE_EXAMPLES", "1")),
    "anthropic": int(os.environ.get("OPENAI_BATCHES_PROVIDER_STATE_EXAMPLES", "2")),
} | dict.fromkeys(PAGING_PROVIDERS, int(os.environ.get("OPENAI_BATCHES_PROVIDER_STATE_EXAMPLES", "1")))
PROVIDER_STEPS = int(os.environ.get("OPENAI_BATCHES_PROVIDER_STATE_STEPS", "10"))
_FAULTS = {
    "openai": ("500", "503", "429", "truncated-json", "non-json"),
    "anthropic": ("500", "529", "429", "truncated-json", "empty-body"),
}
# Together's list has no pages (one answer holds everything): its histories and arrivals count in pages of this.
_TOGETHER_PAGE = 100


class ProviderLoad(RuleBasedStateMachine):
    def __init__(self, provider: str) -> None:
        super().__init__()
        from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

        from .support.providers import make_world
        from .support.workload import ANTHROPIC_WORKSPACES, KEY_A, KEY_B, NOW, PROJECT_A, PROJECT_B

        self.tmp = tempfile.mkdtemp(prefix="openai-batches-psm-")
        self.db = os.path.join(self.tmp, "batches.duckdb")
        org = SimulatedOrg(
            projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B},
            clock=SimClock(start=NOW),
            seed=5,
            anthropic_workspaces=ANTHROPIC_WORKSPACES,
        )
        # Anthropic batches of ~10 requests rather than ~240: the list is what this machine checks; each ended
        # batch's results are still downloaded (the ledger is on), just short.
        org.anthropic.requests_lognormal = (2.0, 1.0)
        self.world = make_world(provider, org)
        self.page = _TOGETHER_PAGE if provider == "together" else self.world.page_size
        self.server = SimulatorServer(org).start()
        self.config = self.world.config(self.server, self.world.a, self.world.b, max_attempts=3)
        self.versions: dict[str, list[dict[str, Any]]] = {}  # batch id -> every version a load was served
        self.seen_ok: set[str] = set()  # batches a successful load read while they existed
        self.deleted: set[str] = set()
        self.steps_since_clean = 0

    def teardown(self) -> None:
        try:
            if sys.exc_info()[1] is None and self.steps_since_clean:
                self.a_clean_load()
        finally:
            self.server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def live(self) -> dict[str, dict[str, Any]]:
        return {**self.world.truth(self.world.a), **self.world.truth(self.world.b)}

    @initialize(pages=st.sampled_from([0.0, 0.5, 2.3]), still_open=st.sampled_from([0.0, 0.05, 0.3]))
    def a_history(self, pages: float, still_open: float) -> None:
        """Up to a few list pages (the provider's: 100 or 1000 batches, Groq's 20) of history, some of it still
        open."""
        history = int(pages * self.page)
        self.world.generate_history(history, project=self.world.a, days=8, open_fraction=still_open)
        self.world.generate_history(history // 10, project=self.world.b, days=8)

    # --- the API changes ---------------------------------------------------------------------------------
    @rule(count=st.one_of(st.integers(1, 30), st.floats(0.9, 1.1)), on_b=st.booleans())
    def new_batches(self, count: float, on_b: bool) -> None:
        """A few, or about a list page of them (a fraction: of the provider's page)."""
        if isinstance(count, float):
            count = int(count * self.page)
        for _ in range(int(count)):
            self.world.create_batch(self.world.b if on_b else self.world.a)

    @rule(seconds=st.sampled_from([5, 600, 3600, 6 * 3600, 86_400]))
    def time_passes(self, seconds: int) -> None:
        self.world.advance(seconds)

    @rule(data=st.data())
    def an_open_batch_is_cancelled(self, data: st.DataObject) -> None:
        open_ = sorted(i for i, b in self.live().items() if self.world.is_open(b))
        if open_:
            self.world.cancel(data.draw(st.sampled_from(open_)))

    @precondition(lambda self: self.world.anthropic)
    @rule(data=st.data(), count=st.integers(1, 5))
    def ended_batches_are_deleted(self, data: st.DataObject, count: int) -> None:
        ended = sorted(i for i, b in self.live().items() if not self.world.is_open(b))
        for batch_id in data.draw(st.lists(st.sampled_from(ended), max_size=count, unique=True)) if ended else []:
            assert self.world.delete(batch_id)
            self.deleted.add(batch_id)

    @rule(kind=st.sampled_from(range(5)), count=st.integers(1, 4))
    def faults(self, kind: int, count: int) -> None:
        from openai_batches.simulator import Fault

        # retry-after 0: the client's retries come at once (Anthropic's hints are whole seconds).
        kinds = _FAULTS.get(self.world.provider, _FAULTS["openai"])
        self.server.inject(Fault(kinds[kind], count=count, path_prefix=self.world.api_prefix, retry_after=0))

    # --- loads ---------------------------------------------------------------------------------------------
    def served(self) -> dict[str, dict[str, Any]]:
        """What a load about to start is served: the API as it is now (the clock stands still in a load)."""
        live = self.live()
        for batch_id, batch in live.items():
            versions = self.versions.setdefault(batch_id, [])
            if not versions or versions[-1] != batch:
                versions.append(batch)
        return live

    def load(self) -> bool:
        live = self.served()
        result = run_load(self.db, self.config)
        if result.ok:
            self.seen_ok |= set(live)
        return result.ok

    @rule()
    def a_load_that_may_fail(self) -> None:
        self.load()

    @rule()
    def a_load_stopped_between_extract_and_load(self) -> None:
        """What a kill after dlt's normalize step leaves: a package on disk that no load committed."""
        from openai_batches.client.retry import RetryPolicy
        from openai_batches.load.runner import _source
        from openai_batches.sources.stats import ProjectCounts

        self.served()
        project = self.config.projects[0]
        pipeline = make_pipeline(self.db)
        source = _source(
            project,
            self.config,
            retry=RetryPolicy(max_attempts=3),
            full_refresh=False,
            stats=ProjectCounts(),
            progress=None,
            claimed={},
            pipeline=pipeline,
        )
        try:
            pipeline.extract(source)
            pipeline.normalize(loader_file_format="parquet")
        except Exception:
            pass  # a fault during extract: nothing to load later either

    @rule()
    def a_clean_load(self) -> None:
        self.server.clear_faults()
        assert self.load(), "a load without faults failed"
        self.check_table_equals_api()
        self.steps_since_clean = -1

    def check_table_equals_api(self) -> None:
        world = self.world
        rows = world.rows(self.db)
        total, distinct = world.ids_and_duplicates(self.db)
        assert total == distinct, "duplicate rows"
        live = self.live()
        for project in (world.a, world.b):
            mine = {i for i, r in rows.items() if r["project"] == project}
            truth = world.truth(project)
            missing = set(truth) - mine
            assert not missing, f"{len(missing)} batches of the API not loaded: {sorted(missing)[:3]}"
            for batch_id, batch in truth.items():
                assert (wrong := world.mismatch(rows[batch_id], batch)) is None, (batch_id, wrong)
        for batch_id in set(rows) - set(live):
            assert batch_id in self.deleted, f"a row the API never had: {batch_id}"
            served = self.versions.get(batch_id, [])
            assert any(world.mismatch(rows[batch_id], v) is None for v in served), (batch_id, "not as last served")
        lost = (self.deleted & self.seen_ok) - set(rows)
        assert not lost, f"deleted batches a load had read are no longer in the table: {sorted(lost)[:3]}"
        unseen = (self.deleted - set(self.versions)) & set(rows)
        assert not unseen, f"rows of batches no load was served: {sorted(unseen)[:3]}"
        gone = {r[0] for r in self.gone_ids()}
        assert gone <= self.deleted, f"live batches recorded gone: {sorted(gone - self.deleted)[:3]}"

    def gone_ids(self) -> list[tuple[Any, ...]]:
        with duckdb.connect(self.db, read_only=True) as con:
            found = "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'openai_batches' AND table_name = ?"
            if not con.execute(found, ["batches_gone"]).fetchone()[0]:  # type: ignore[index]
                return []
            return con.execute("SELECT id FROM openai_batches.batches_gone").fetchall()

    @invariant()
    def never_a_duplicate_row(self) -> None:
        self.steps_since_clean += 1
        if os.path.exists(self.db):
            total, distinct = self.world.ids_and_duplicates(self.db)
            assert total == distinct


@pytest.mark.parametrize(
    "provider",
    provider_params(
        (*PROVIDERS, *NEW_PROVIDERS),
        skip={
            "openai-compatible": "its list is OpenAI's, paged by the same client (the openai run covers it)",
            "openrouter": "its list is OpenAI's envelope and cursor, paged by the same client (the openai run "
            "covers the paging; its object's columns are test_odd_values' and the fault campaign's)",
        },
    ),
)
def test_every_providers_list_loads_exactly_through_random_histories(provider: str) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        lambda: ProviderLoad(provider),
        settings=hypothesis_settings(
            IncrementalLoad.TestCase.settings,
            max_examples=PROVIDER_EXAMPLES[provider],
            stateful_step_count=PROVIDER_STEPS,
        ),
    )
