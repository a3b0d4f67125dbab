"""Fixed values of the simulated workloads: a "now", keys, projects, endpoints; a load against the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import LoadOutcome, run_load
from openai_batches.simulator import (
    SimulatorServer,
)

# A fixed "now" so that workloads and lifecycles are the same on every run: 2026-11-01T00:00:00Z.
NOW = 1_793_491_200.0


KEY_A, KEY_B = "sk-test-alpha-0123456789", "sk-test-bravo-9876543210"


PROJECT_A, PROJECT_B = "proj_alpha", "proj_bravo"


# The organisation's Anthropic workspaces (the shared `org` fixture has them beside PROJECT_A and PROJECT_B).
ANTHROPIC_KEY_A, ANTHROPIC_KEY_B = "sk-ant-api03-test-alpha-0123456789", "sk-ant-api03-test-bravo-9876543210"
WORKSPACE_A, WORKSPACE_B = "wrkspc_alpha", "wrkspc_bravo"
ANTHROPIC_WORKSPACES = {ANTHROPIC_KEY_A: WORKSPACE_A, ANTHROPIC_KEY_B: WORKSPACE_B}


# A real recorded list page (2025-08-21, before `usage`/`model` existed), copied from shared/fixtures.
FIXTURE_PAGE = Path(__file__).resolve().parents[1] / "fixtures" / "real-list-batches-2025-08-21.json"


def config_for(server_url: str, *keys: str, names: tuple[str | None, ...] | None = None, **kw: Any) -> RunConfig:
    names = names or tuple(None for _ in keys)
    projects = tuple(ProjectConfig(name=n, api_key=k, base_url=server_url) for k, n in zip(keys, names, strict=True))
    return RunConfig(projects=projects, **kw)


def load(db: str, server: SimulatorServer, *keys: str, **kw: Any) -> LoadOutcome:
    return run_load(db, config_for(server.base_url, *(keys or (KEY_A,))), **kw)


DAY = 86_400


CHAT, RESPONSES, COMPLETIONS, EMBEDDINGS, MODERATIONS = (
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/moderations",
)


ENDPOINTS = (CHAT, RESPONSES, COMPLETIONS, EMBEDDINGS, MODERATIONS)


MODEL_OF = {
    CHAT: "gpt-4o-mini-2024-07-18",
    RESPONSES: "o4-mini-2025-04-16",
    COMPLETIONS: "gpt-4.1-mini-2025-04-14",
    EMBEDDINGS: "text-embedding-3-small",
    MODERATIONS: "omni-moderation-latest",
}


NO_QUIRKS = {"missing_requests": 0, "zero_status_requests": 0, "output_error_requests": 0}
