"""A stateful property test of the incremental load: Hypothesis drives a small in-process
model of the Batches API through random histories and checks the pipeline against it.

Rules create batches (in bursts within one second, with id stamps a second off their created_at, late:
visible only after newer ones, or with an odd created_at), move them through their lifecycle, delete
open ones, inject faults (5xx, truncated bodies, empty pages that claim more, 404s, answers without the
project header), and run loads that may fail or stop between extract and load. The one invariant:
after a clean run, the database holds every batch the API holds, exactly as the API shows it now, with
no duplicates and no rows the API never had.

`make test` runs a modest number of examples; `make soak` many (OPENAI_BATCHES_STATE_EXAMPLES).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import make_pipeline, run_load
from openai_batches.sources.batches.source import openai_batches

from .support.fake_api import Reply, ScriptedApi, envelope, json_reply

pytestmark = pytest.mark.slow  # random histories of the incremental load

EXAMPLES = int(os.environ.get("OPENAI_BATCHES_STATE_EXAMPLES", "4"))
STEPS = int(os.environ.get("OPENAI_BATCHES_STATE_STEPS", "16"))
START = 1_780_000_000  # 2026-05-28: the model's clock, sent as the API's `Date`
PAGE = 100


@dataclass
class Batch:
    id: str
    created: Any  # epoch seconds, or an odd value (null, text, milliseconds, the future)
    stamp: int  # the creation stamp in the id: what the list is ordered by
    status: str = "in_progress"
    version: int = 0
    completes_at: float | None = None
    deleted: bool = False

    def api(self) -> dict[str, Any]:
        done = self.status == "completed"
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "model": "gpt-4o-mini-2024-07-18",
            "errors": None,
            "input_file_id": "file-in",
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": "file-out" if done else None,
            "error_file_id": None,
            "created_at": self.created,
            "in_progress_at": None,
            "expires_at": None,
            "finalizing_at": None,
            "completed_at": int(self.completes_at) if done and self.completes_at else None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 10, "completed": 10 if done else self.version, "failed": 0},
            "metadata": {"v": str(self.version)},
        }


class ApiModel:
    def __init__(self) -> None:
        self.now = float(START)
        self.batches: dict[str, Batch] = {}
        self.serial = 0
        self.faults: list[str] = []  # for the next requests, whatever they are
        self.get_404s = 0  # 404s owed to the next requests for one batch by id

    def listed(self) -> list[Batch]:
        live = [b for b in self.batches.values() if not b.deleted]
        return sorted(live, key=lambda b: (b.stamp, b.id), reverse=True)

    def new_id(self, stamp: int) -> str:
        self.serial += 1
        return f"batch_{stamp:08x}{self.serial:04x}8190{self.serial * 7919:016x}"

    def add(self, created: Any, stamp: int, lifetime: float) -> None:
        batch = Batch(self.new_id(stamp), created, stamp, completes_at=self.now + lifetime)
        self.batches[batch.id] = batch

    def route(self, path: str, query: dict[str, str], number: int) -> Reply:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "500":
            return json_reply({"error": {"message": "boom", "type": "server_error"}}, 500)
        if fault == "truncated":
            return Reply(200, b'{"object": "list", "da')
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


class IncrementalLoad(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="openai-batches-sm-")
        self.db = os.path.join(self.tmp, "batches.duckdb")
        self.model = ApiModel()
        self.api = ScriptedApi(self.model.route, clock=lambda: self.model.now).__enter__()
        self.config = RunConfig(
            projects=(ProjectConfig(name=None, api_key="sk-state-machine-0123456789", base_url=self.api.base_url),),
            max_attempts=3,
        )
        self.loaded_once = False
        self.get_404s_since_clean = 0

    def teardown(self) -> None:
        self.api.__exit__()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(history=st.integers(0, 400), still_open=st.lists(st.integers(0, 399), max_size=4))
    def a_history(self, history: int, still_open: list[int]) -> None:
        """Settled batches a minute apart, and a few still running (long ones, deep in the list)."""
        for i in range(history):
            created = START - 86_400 + 60 * i
            self.model.add(created, created, lifetime=2 * 86_400 if i in still_open else 0)
            if i not in still_open:
                self.model.batches[next(reversed(self.model.batches))].status = "completed"

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
            self.model.add(int(self.model.now), int(self.model.now), lifetime=0)
            self.model.batches[next(reversed(self.model.batches))].status = "completed"
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

    # --- loads ---------------------------------------------------------------------------------
    @rule()
    def a_load_that_may_fail(self) -> None:
        result = run_load(self.db, self.config)
        self.loaded_once |= result.ok

    @rule()
    def a_load_stopped_between_extract_and_load(self) -> None:
        """What a kill after dlt's normalize step leaves: a package on disk that no load committed."""
        pipeline = make_pipeline(self.db)
        project = self.config.projects[0]
        source = openai_batches(api_key=project.api_key, base_url=project.base_url, timeout=5)
        try:
            pipeline.extract(source)
            pipeline.normalize(loader_file_format="parquet")
        except Exception:
            pass  # a fault during extract: nothing to load later either

    @rule()
    def a_clean_load(self) -> None:
        self.model.faults.clear()
        self.model.get_404s = 0
        self.get_404s_since_clean = 0
        result = run_load(self.db, self.config)
        assert result.ok, [o.error for o in result.outcomes]
        self.loaded_once = True
        self.check_database_equals_api()

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

    @invariant()
    def never_a_duplicate_row(self) -> None:
        if not self.loaded_once or not os.path.exists(self.db):
            return
        with duckdb.connect(self.db, read_only=True) as con:
            if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'batches'").fetchone()[0]:
                return
            row = con.execute("SELECT count(*), count(DISTINCT id) FROM openai_batches.batches").fetchone()
        assert row is not None and row[0] == row[1]


IncrementalLoad.TestCase.settings = settings(
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
