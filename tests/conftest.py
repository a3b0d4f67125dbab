"""Shared fixtures: every test gets its own dlt working directory, database and simulator."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.workload import FIXTURE_PAGE, KEY_A, KEY_B, NOW, PROJECT_A, PROJECT_B

# A throwaway PostgreSQL (`postgres_server`, `postgres_dsn`) for the tests that need one.
pytest_plugins = ["tests.support.postgres"]

# Markers (registered in pyproject.toml) that follow from what a test uses, so that no test can forget them:
# `postgres` for the throwaway cluster's fixtures, `subprocess` for a test that starts the CLI, the simulator
# or Python in a process of its own, `slow` for one that runs a dlt load (seconds each); modules of long
# campaigns mark themselves `slow` too.
_POSTGRES_FIXTURES = {"postgres_server", "postgres_dsn"}
_STARTS_A_PROCESS = ("run_cli(", "spawn_cli(", "simulate_command(", "subprocess.", "Popen(")
_RUNS_A_LOAD = ("load(", "pipeline.run(", "_database(")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
        function = getattr(item, "function", None)
        try:
            source = inspect.getsource(function) if function is not None else ""
        except (OSError, TypeError):
            source = ""
        if any(call in source for call in _STARTS_A_PROCESS):
            item.add_marker(pytest.mark.subprocess)
        if any(call in source for call in _RUNS_A_LOAD):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's keys, `.dlt` files or dlt working directories."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_ADMIN_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_BATCHES_DB",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path / "project"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    (tmp_path / "project").mkdir()
    return tmp_path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "batches.duckdb")


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B}, clock=SimClock(start=NOW), seed=7)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org) as srv:
        yield srv


@pytest.fixture
def fixture_page() -> dict[str, Any]:
    return json.loads(FIXTURE_PAGE.read_text())
