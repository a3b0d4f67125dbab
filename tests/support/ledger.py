"""The request ledger's test helpers: batches that finished, loads with the ledger on, the ledger and the
simulator's truth side by side."""

from __future__ import annotations

from typing import Any

from openai_batches.load.runner import LoadOutcome, run_load
from openai_batches.simulator import SimulatedOrg, SimulatorServer
from openai_batches.sources.ledger.parse import RESULT_FIELDS

from .assertions import table
from .workload import DAY, KEY_A, PROJECT_A, config_for

FIELDS = RESULT_FIELDS[1:-1]  # every ledger field but the custom id (which keys the rows) and redacted_fields


def finished(org: SimulatedOrg, *, days_ago: float = 2.0, **overrides: Any) -> str:
    """A batch of project A created `days_ago` and long finished (unless `outcome` says otherwise)."""
    timing = {"validating_seconds": 5, "processing_seconds": 900, "finalizing_seconds": 30}
    created = org.clock.now() - days_ago * DAY
    return org.create_batch(project=PROJECT_A, created_at=created, **{**timing, **overrides})


def just_finished(org: SimulatedOrg, **overrides: Any) -> str:
    """A batch that completed a few minutes ago: files with a short `output_expires_after` still exist."""
    timing = {"validating_seconds": 5, "processing_seconds": 600, "finalizing_seconds": 30}
    return org.create_batch(project=PROJECT_A, created_at=org.clock.now() - 1000, **{**timing, **overrides})


def load(db: str, server: SimulatorServer, **kw: Any) -> LoadOutcome:
    full_refresh = kw.pop("full_refresh", False)
    kw.setdefault("requests", True)
    result = run_load(db, config_for(server.base_url, KEY_A, **kw), full_refresh=full_refresh)
    assert result.ok, [o.error for o in result.outcomes]
    return result


def ledger(db: str, batch_id: str) -> dict[str, tuple[Any, ...]]:
    rows = table(
        db, f"SELECT custom_id, {', '.join(FIELDS)} FROM openai_batches.batch_requests WHERE batch_id = '{batch_id}'"
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def truth(org: SimulatedOrg, batch_id: str) -> dict[str, tuple[Any, ...]]:
    return {t.custom_id: tuple(getattr(t, f) for f in FIELDS) for t in org.request_truth(batch_id)}


def files(db: str, batch_id: str) -> dict[str, tuple[Any, ...]]:
    rows = table(db, f"SELECT kind, state, bytes, lines FROM openai_batches.batch_files WHERE batch_id = '{batch_id}'")
    return {row[0]: tuple(row[1:]) for row in rows}


def file_requests(server: SimulatorServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/v1/files/")]
