"""A backfill larger than one load package: several dlt runs continue one listing (bounded memory)."""

from __future__ import annotations

import random

import pytest

from pipelines.openai_batches import ProgressSink, settings
from pipelines.openai_batches.runner import make_pipeline
from pipelines.openai_batches.simulator import Fault, SimulatedOrg, SimulatorServer
from pipelines.openai_batches.sync_plan import TakenIds

from .conftest import KEY_A, PROJECT_A, config_for, list_requests, load, table
from .test_load import assert_matches_simulator


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "ARROW_CHUNK_ROWS", 100)
    monkeypatch.setattr(settings, "LOAD_CHUNK_ROWS", 300)


def load_packages(db: str) -> int:
    return table(db, "SELECT count(*) FROM openai_batches._dlt_loads")[0][0]


def test_backfill_in_several_packages_is_the_same_backfill(
    db: str, org: SimulatedOrg, server: SimulatorServer, small_chunks: None
) -> None:
    org.generate_history(1234, project=PROJECT_A, days=200)
    result = load(db, server, KEY_A)
    assert result.ok
    assert result.requests == len(list_requests(server)) == 13
    assert result.outcomes[0].stats.counts.new == 1234
    assert_matches_simulator(db, org, PROJECT_A)
    assert load_packages(db) == 5  # 300 + 300 + 300 + 300 + 34 rows, the last with the sync state

    server.reset_requests()
    again = load(db, server, KEY_A)
    assert again.ok and again.requests == len(server.requests) == 1
    assert again.outcomes[0].stats.counts.new == 0


class FailAfter(ProgressSink):
    """Makes every request after the `pages`-th page fail for good."""

    def __init__(self, server: SimulatorServer, pages: int) -> None:
        self.server, self.pages, self.seen = server, pages, 0

    def page(self, project: str, items: int) -> None:
        self.seen += 1
        if self.seen == self.pages:
            self.server.inject(Fault("401", count=1000))


def test_a_failure_after_some_packages_keeps_them_and_the_previous_state(
    db: str, org: SimulatedOrg, server: SimulatorServer, small_chunks: None
) -> None:
    from pipelines.openai_batches.runner import run_load

    org.generate_history(1000, project=PROJECT_A, days=200)
    failed = run_load(db, config_for(server.base_url, KEY_A), progress=FailAfter(server, 7))
    assert not failed.ok and "HTTP 401" in (failed.outcomes[0].error or "")
    # What was loaded stays (whole packages), but no sync state was committed with it ...
    assert 0 < table(db, "SELECT count(*) FROM openai_batches.batches")[0][0] < 1000
    resources = make_pipeline(db).state.get("sources", {}).get("openai_batches", {}).get("resources", {})
    assert not resources.get("batches", {}).get("projects")
    # ... so the next run reads the whole history again and the result is complete.
    server.clear_faults()
    server.reset_requests()
    result = load(db, server, KEY_A)
    assert result.ok and result.requests == 10
    assert_matches_simulator(db, org, PROJECT_A)


def test_taken_ids_is_exact_whatever_the_order() -> None:
    rng = random.Random(5)
    created_of: dict[str, int] = {}
    items = sorted(((rng.randint(0, 60), f"batch_{rng.randint(0, 400):04d}") for _ in range(4000)), reverse=True)
    for i in range(0, len(items), 29):  # some out of order, as a misbehaving API might send them
        items[i] = (rng.randint(0, 60), f"batch_{rng.randint(0, 400):04d}")
    taken, reference = TakenIds(), set()
    for created, batch_id in items:
        created = created_of.setdefault(batch_id, created)  # an id keeps its creation time
        assert taken.taken(created, batch_id) == (batch_id in reference)
        if batch_id not in reference:
            taken.take(created, batch_id)
            reference.add(batch_id)
    assert len(taken) == len(reference)
