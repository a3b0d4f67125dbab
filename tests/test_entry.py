"""The `openai-batches` console script exits fast (no interpreter teardown) without losing output or codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.workload import KEY_A, PROJECT_A

ENTRY = [sys.executable, "-c", "from openai_batches.cli.main import entry; entry()"]


def run_entry(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")} | env
    return subprocess.run([*ENTRY, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_console_script_keeps_output_and_exit_codes(
    tmp_path: Path, db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(300, project=PROJECT_A, days=30, open_fraction=0.0)
    ok = run_entry("load", "--db", db, cwd=tmp_path, OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url)
    assert ok.returncode == 0, ok.stderr
    assert "300 new" in ok.stdout.splitlines()[-1]  # the last line, printed just before the fast exit

    no_key = run_entry("load", "--db", db, cwd=tmp_path)
    assert no_key.returncode == 2
    assert "no API key configured" in no_key.stderr

    unreachable = run_entry(
        "load",
        "--db",
        db,
        cwd=tmp_path,
        OPENAI_API_KEY=KEY_A,
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS="1",
    )
    assert unreachable.returncode == 1
    assert "error:" in unreachable.stderr
