"""Shared fixtures: every test gets its own dlt working directory, database and simulator."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.workload import ANTHROPIC_WORKSPACES, FIXTURE_PAGE, KEY_A, KEY_B, NOW, PROJECT_A, PROJECT_B

# A throwaway PostgreSQL (`postgres_server`, `postgres_dsn`) for the tests that need one.
# `world`: one provider's side of a test, a run per provider (tests/support/providers.py).
pytest_plugins = ["tests.support.postgres", "tests.support.providers"]

# Markers (registered in pyproject.toml) that follow from what a test uses, so that no test can forget them:
# `postgres` for the throwaway cluster's fixtures, `subprocess` for a test that starts the CLI, the simulator
# or Python in a process of its own, `slow` for one that runs a dlt load (seconds each); modules of long
# campaigns mark themselves `slow` too.
_POSTGRES = ("postgres_server", "postgres_dsn", "throwaway_postgres(")
_STARTS_A_PROCESS = ("run_cli(", "spawn_cli(", "simulate_command(", "subprocess.", "Popen(")
# a dlt load, the CLI in-process (which loads or renders the report), a browser
_SLOW = ("load(", "pipeline.run(", "_database(", "main(", "_browser(")


def _source(function: Any) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def _sources_of(item: pytest.Item) -> str:
    """The test's own source and that of the fixtures it uses (a fixture that loads makes its tests slow)."""
    own = _source(getattr(item, "function", None))
    texts = [own]
    # and the helpers it calls (its module's or tests/support's), one level down: `cli(...)` running the CLI
    module = getattr(item, "module", None)
    for name in set(re.findall(r"\b(\w+)\(", own)):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper) and helper.__module__.startswith("tests."):
            texts.append(_source(helper))
    info = getattr(item, "_fixtureinfo", None)
    for name, defs in info.name2fixturedefs.items() if info is not None else ():
        if not name.startswith(("tmp_path", "monkeypatch", "request", "capsys", "isolated_env")):
            texts += [_source(d.func) for d in defs if "tests" in getattr(d, "baseid", "tests") or d.baseid == ""]
    return "\n".join(texts) + "\n" + " ".join(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        source = _sources_of(item)
        if any(word in source for word in _POSTGRES):
            item.add_marker(pytest.mark.postgres)
        if any(call in source for call in _STARTS_A_PROCESS):
            item.add_marker(pytest.mark.subprocess)
        if any(call in source for call in _SLOW):
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
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_ADMIN_KEY",
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
        "TOGETHER_API_KEY",
        "TOGETHER_BASE_URL",
        "MISTRAL_API_KEY",
        "MISTRAL_BASE_URL",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "OPENAI_API_VERSION",
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
    return SimulatedOrg(
        projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B},
        clock=SimClock(start=NOW),
        seed=7,
        anthropic_workspaces=ANTHROPIC_WORKSPACES,
    )


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org) as srv:
        yield srv


@pytest.fixture
def fixture_page() -> dict[str, Any]:
    return json.loads(FIXTURE_PAGE.read_text())
