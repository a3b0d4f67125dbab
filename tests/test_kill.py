"""SIGKILL campaign: `load` killed at chosen and random points of extract, normalize and load, many
times in a row while the API keeps changing, then one clean run must hold exactly the API's data.

Kill points are found from the outside: the simulator's request log (during paging) and the files
dlt moves through its working directory (package being extracted, extracted, being normalized,
normalized, jobs completed one by one, package loaded). Nothing in the pipeline knows it is being
tested. `make test` runs a few iterations; `make soak` runs many (OPENAI_BATCHES_KILL_ITERATIONS).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from openai_batches.load.runner import working_dir
from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.assertions import assert_matches_simulator, paths_now
from .support.cli import cli_env, run_cli, spawn_cli
from .support.providers import NEW_PROVIDERS, World, make_world, provider_params
from .support.workload import ANTHROPIC_WORKSPACES, KEY_A, KEY_B, PROJECT_A, PROJECT_B

pytestmark = pytest.mark.slow  # SIGKILL campaigns

ITERATIONS = int(os.environ.get("OPENAI_BATCHES_KILL_ITERATIONS", "8"))
# Issue 19's providers (NEW_PROVIDERS) run fewer, each from its own kill point on, so that together they are
# killed at every point (six providers, two runs each, seven points), at a fraction of the cost.
NEW_ITERATIONS = int(os.environ.get("OPENAI_BATCHES_KILL_ITERATIONS", "2"))
SEED = int(os.environ.get("OPENAI_BATCHES_KILL_SEED", "20261101"))
POLL_S = 0.001

# Where to kill, as a condition on the dlt working directory (`wd`) or the simulator's request log.
Trigger = Callable[[Path, int], bool]


def _any(wd: Path, pattern: str) -> bool:
    return bool(paths_now(wd, pattern))


TRIGGERS: dict[str, Callable[[random.Random], Trigger]] = {
    # while paging: after k list/GET requests of this run
    "extract: paging": lambda rng: lambda wd, requests, k=rng.randint(1, 3): requests >= k,
    # extract writing its job files, not yet an extracted package
    "extract: writing package": lambda rng: (
        lambda wd, requests: any(
            p.parent.parent.parent.name != "extracted" for p in paths_now(wd, "normalize/*/*/new_jobs/*")
        )
    ),
    "extracted, before normalize": lambda rng: lambda wd, requests: _any(wd, "normalize/extracted/*/new_jobs/*"),
    "normalize": lambda rng: lambda wd, requests: _any(wd, "load/new/*"),
    "normalized, before load": lambda rng: lambda wd, requests: _any(wd, "load/normalized/*/new_jobs/*"),
    "load: some jobs done": lambda rng: lambda wd, requests: _any(wd, "load/normalized/*/completed_jobs/*"),
    "load: merge running": lambda rng: lambda wd, requests: _any(wd, "load/normalized/*/started_jobs/*.sql"),
}


def where_it_died(wd: Path, loaded_before: set[str]) -> str:
    """What the killed run left behind: the kill point as the next run will find it."""
    if completed := list(wd.glob("load/normalized/*/completed_jobs/*")):
        total = len(list(wd.glob("load/normalized/*/*_jobs/*")))
        return f"load: {len(completed)} of {total} jobs done"
    if _any(wd, "load/normalized/*"):
        return "normalized, before load"
    if _any(wd, "load/new/*"):
        return "normalize"
    if _any(wd, "normalize/extracted/*"):
        return "extracted, before normalize"
    if any(p.parent.parent.parent.name != "extracted" for p in wd.glob("normalize/*/*/new_jobs/*")):
        return "extract: writing package"
    loaded = {p.name for p in wd.glob("load/loaded/*")}
    if loaded - loaded_before:
        return "after a package was loaded"
    return "extract: paging"


def kill_when(process: subprocess.Popen[str], wd: Path, server: SimulatorServer, trigger: Trigger) -> tuple[bool, str]:
    """SIGKILL `process` once `trigger` holds: (killed, its output). Not killed when it finished first."""
    killed = False
    while process.poll() is None:
        if trigger(wd, len(server.requests)):
            process.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(POLL_S)
    out, err = process.communicate(timeout=60)
    return killed, out + err


def change_the_world(world: World, rng: random.Random) -> None:
    """Between runs the API moves on: time passes, batches finish, new ones arrive, some are cancelled."""
    world.advance(rng.uniform(0, 3 * 3600))
    for _ in range(rng.randint(0, 25)):
        world.create_batch(rng.choice((world.a, world.b)))
    for batch in list(world.truth(world.a).values())[:40]:
        # open and not yet finishing or cancelling, in the provider's words (Azure's capitalised, Together's and
        # Mistral's upper case)
        if (
            str(batch[world.status]).lower() in ("validating", "in_progress", "queued", "running")
            and rng.random() < 0.1
        ):
            world.cancel(batch["id"])


def assert_database_readable(db: Path) -> None:
    if db.exists():
        with duckdb.connect(str(db), read_only=True) as con:
            con.execute("SELECT count(*) FROM information_schema.tables").fetchall()


@pytest.mark.parametrize("provider", provider_params())
def test_sigkill_at_every_stage_then_a_clean_run_converges(tmp_path: Path, provider: str) -> None:
    from openai_batches.simulator import SimClock

    from .support.workload import NOW

    rng = random.Random(SEED)
    org = SimulatedOrg(
        projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B},
        clock=SimClock(start=NOW),
        seed=SEED % 1000,
        anthropic_workspaces=ANTHROPIC_WORKSPACES,
    )
    world = make_world(provider, org)
    # Issue 19's providers: a shorter history (a backfill of a few pages) and fewer runs (NEW_ITERATIONS).
    world.generate_history(300 if world.new else 2500, project=world.a, days=60, open_fraction=0.05)
    world.generate_history(50 if world.new else 400, project=world.b, days=60)
    iterations, first = (
        (NEW_ITERATIONS, NEW_ITERATIONS * NEW_PROVIDERS.index(provider)) if world.new else (ITERATIONS, 0)
    )
    db = tmp_path / "killed.duckdb"
    wd = Path(working_dir(str(db))) / "openai_batches"
    points: Counter[str] = Counter()
    with SimulatorServer(org, latency=0.003) as server:
        project_dir = tmp_path / "proj"
        (project_dir / ".dlt").mkdir(parents=True)
        (project_dir / ".dlt" / "secrets.toml").write_text(world.secrets_toml(server))
        # The list only: results under kills are test_anthropic_load's campaign (both providers in one load).
        env = cli_env(DLT_PROJECT_DIR=str(project_dir), SOURCES__OPENAI_BATCHES__REQUESTS="false")
        names = list(TRIGGERS)
        for i in range(iterations):
            change_the_world(world, rng)
            name = names[(first + i) % len(names)] if i < 2 * len(names) else rng.choice(names)
            loaded_before = {p.name for p in wd.glob("load/loaded/*")}
            server.reset_requests()
            process = spawn_cli("load", "--db", str(db), "--wait", "30", env=env, cwd=project_dir)
            killed, output = kill_when(process, wd, server, TRIGGERS[name](rng))
            if killed:
                assert process.returncode == -signal.SIGKILL, output
                points[where_it_died(wd, loaded_before)] += 1
            else:
                assert process.returncode == 0, output
                points[f"finished before the kill point ({name})"] += 1
            assert_database_readable(db)

        change_the_world(world, rng)
        clean = run_cli("load", "--db", str(db), env=env, cwd=project_dir)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        world.assert_matches_simulator(str(db), world.a)
        world.assert_matches_simulator(str(db), world.b)
        total, distinct = world.ids_and_duplicates(str(db))
        assert total == distinct == world.count()
        # The state committed with the data is right too: another run finds nothing new.
        again = run_cli("load", "--db", str(db), env=env, cwd=project_dir)
        assert again.returncode == 0 and "load: " in again.stdout and " 0 new" in again.stdout, again.stdout
    print(f"\nkill campaign ({provider}): {iterations} runs, seed {SEED}, kill points: {dict(sorted(points.items()))}")


def test_an_interrupted_normalize_commit_is_finished_not_replayed(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """The narrowest window the campaign found: dlt's normalize has committed a package and is
    deleting the extracted copy when the process dies. Left as is, the copy either breaks every later
    run (its schema.json already gone) or is normalized and loaded again, over newer data."""
    import shutil

    from openai_batches import openai_batches
    from openai_batches.load.runner import make_pipeline

    org.generate_history(300, project=PROJECT_A, days=3, open_fraction=0.3)
    env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url)
    for whole in (False, True):
        db = tmp_path / f"commit-{whole}.duckdb"
        pipeline = make_pipeline(str(db))
        pipeline.extract(openai_batches(api_key=KEY_A, base_url=server.base_url), loader_file_format="parquet")
        extracted = next((Path(pipeline.working_dir) / "normalize" / "extracted").glob("*"))
        shutil.copytree(extracted, tmp_path / "copy")
        pipeline.normalize()
        pipeline.load()
        shutil.copytree(tmp_path / "copy", extracted)  # what the interrupted delete left behind
        shutil.rmtree(tmp_path / "copy")
        if not whole:
            (extracted / "schema.json").unlink()
        org.advance(2 * 86400)  # every batch of that old snapshot has moved on since
        result = run_cli("load", "--db", str(db), env=env)
        assert result.returncode == 0, result.stderr
        assert not extracted.exists()
        assert_matches_simulator(str(db), org, PROJECT_A)
