"""Hostile pass s24: the first load's append into an empty table, the merge only where rows were staged, the
destination's configuration resolved once, the stored views' fingerprint, the head start's first wait."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openai_batches.simulator import SimulatorServer

from .support.cli import cli_env, run_cli
from .support.providers import World

INJECT = str(Path(__file__).resolve().parent / "kill_inject")


def cli_load(db: str, env: dict[str, str], kill_at: str | None = None) -> int:
    env = cli_env(**env)
    if kill_at:
        env["KILL_AT"] = kill_at
        env["PYTHONPATH"] = INJECT + os.pathsep + env.get("PYTHONPATH", "")
    result = run_cli("load", "--db", db, env=env, timeout=180)
    if not kill_at:
        assert result.returncode == 0, result.stderr
    return result.returncode


@pytest.mark.parametrize("point", ["after_copy", "before_merge", "after_merge"])
def test_a_load_killed_in_its_load_step_then_a_clean_run_converges(
    db: str, world: World, server: SimulatorServer, point: str
) -> None:
    """Killed right after a file's rows went in (the job not yet recorded done), before and after the merge; of
    the first load (the append into the new table) and of a later one (staged and merged). The next run finishes
    the package and holds exactly the API's batches, each once. After the first load's append was killed, the
    resumed package staged its file into a staging table that load never created: every later run failed."""
    world.generate_history(400, project=world.a, days=30, open_fraction=0.3)
    env = world.env(server)
    killed = []
    for _ in range(2):  # the first load, then a later one (the first merges nothing: no kill before or after a merge)
        killed.append(cli_load(db, env, kill_at=f"{point}:{world.table}"))
        cli_load(db, env)
        world.assert_matches_simulator(db, world.a)
        rows, ids = world.ids_and_duplicates(db)
        assert rows == ids > 0
        world.advance(6 * 3600)
    cli_load(db, env)
    world.assert_matches_simulator(db, world.a)
    assert killed == ([9, 9] if point == "after_copy" else [0, 9])
