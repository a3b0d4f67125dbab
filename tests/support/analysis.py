"""A simulated organisation with every odd value the API can send that the reports must survive, loaded
through the real loader from a scripted loopback API (never written with SQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from openai_batches.load.runner import run_load

from .fake_api import ScriptedApi, make_batch, serve_all
from .workload import config_for

ODD_KEY = "sk-test-odd-values-0123456789"
ODD_PROJECT = "proj_odd"
CLEAN_MODEL = "gpt-4o-mini-2024-07-18"
TIERED_MODEL = "gpt-5.4"  # genai-prices lists a long-context tier above 272k prompt tokens
LONG_MODEL = "m" * 300
# Names a spreadsheet would run as formulas, rich markup, matplotlib mathtext, a hidden legend label.
ODD_MODELS = ('=HYPERLINK("http://evil.example","x")', "@SUM(1+1)", "+cmd", "[/]", "$x^$", "_hidden", LONG_MODEL)
FORMULA_METADATA = {"formula": "=1+1", "at": "@SUM(A1)", "plus": "+1", "minus": "-1", "ansi": "\x1b[31mred\x1b[0m"}


def usage(inp: int, cached: int, out: int, reasoning: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def odd_batches() -> dict[str, dict[str, Any]]:
    """label -> batch object as the API would send it. `clean_*` batches are ordinary, for comparison."""
    made: dict[str, dict[str, Any]] = {}
    n = 0

    def add(label: str, **fields: Any) -> dict[str, Any]:
        nonlocal n
        n += 1
        made[label] = make_batch(n, **fields)
        return made[label]

    for i in range(3):
        add(f"clean_{i}", model=CLEAN_MODEL)
    add("no_end_time", completed_at=None)  # item 1: finished, no end time
    add("cached_above_input", usage=usage(100, 1000, 5))  # item 2
    add("negative_input", usage=usage(-100, 0, 5))
    add("negative_output", usage=usage(100, 0, -5))
    add("reasoning_above_output", usage=usage(100, 0, 5, reasoning=50))
    ended_early = add("ends_before_it_starts")  # item 3: completed an hour before it was created
    ended_early["completed_at"] = ended_early["created_at"] - 3600
    ended_early["finalizing_at"] = ended_early["created_at"] - 3700
    no_stage = add("no_in_progress_time", in_progress_at=None)  # turnaround known, a stage unknown
    assert no_stage["completed_at"]
    pre = add("pre_usage", created=1_750_000_000, model=None)  # item 5: before usage was reported
    del pre["usage"]
    add("tiny", usage=usage(10, 0, 1))  # item 12: a priced total far below a cent
    add("tiered", model=TIERED_MODEL)
    for i, model in enumerate(ODD_MODELS):
        add(f"odd_model_{i}", model=model)
    add("formula_metadata", metadata=FORMULA_METADATA)
    add("odd_metadata_types", metadata={"number": 5, "nested": {"a": 1}, "list": [1, 2], "empty": ""})
    add("null_status", status=None)  # a NULL status is open
    add("no_model_with_usage", model=None)
    add("created_in_milliseconds", created=1_790_000_000_000)  # year 58000
    add("no_created_at", created_at=None)
    add("no_expiry", expires_at=None)
    add(
        "failed",
        status="failed",
        failed_at=1_790_000_000 + 30,
        completed_at=None,
        finalizing_at=None,
        in_progress_at=None,
        output_file_id=None,
        request_counts={"total": 0, "completed": 0, "failed": 0},
        usage=usage(0, 0, 0),
        errors={"object": "list", "data": [{"code": "=bad", "message": "\x1b[2Jcleared", "line": 1, "param": None}]},
    )
    return made


def load_batches(db: str, batches: list[dict[str, Any]], project: str = ODD_PROJECT) -> None:
    """Serve ``batches`` (any order) newest first from a loopback API and load them with the real loader."""
    ordered = sorted(batches, key=lambda b: b.get("created_at") or 0, reverse=True)
    with ScriptedApi(serve_all(ordered), project=project) as api:
        result = run_load(db, config_for(api.base_url, ODD_KEY))
    assert result.ok, result.error or [o.error for o in result.outcomes]


def module_database(tmp_path_factory: pytest.TempPathFactory, name: str, batches: list[dict[str, Any]]) -> str:
    """A database `name`.duckdb holding ``batches`` as the real loader leaves them, for a module's tests."""
    root = tmp_path_factory.mktemp(name)
    db = str(root / f"{name}.duckdb")
    with dlt_dirs(root):
        load_batches(db, batches)
    return db


@contextmanager
def dlt_dirs(root: Path) -> Iterator[None]:
    """Module-scoped fixtures need the isolation `conftest.isolated_env` gives each test."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("OPENAI_"):
                mp.delenv(name, raising=False)
        mp.setenv("DLT_DATA_DIR", str(root / "dlt"))
        mp.setenv("DLT_PROJECT_DIR", str(root / "project"))
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        (root / "project").mkdir(exist_ok=True)
        yield
