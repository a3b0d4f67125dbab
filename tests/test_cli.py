"""The `openai-batches` command as a user (or cron) runs it: exit codes, messages, no key leaks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.assertions import table
from .support.providers import PROVIDERS, World, make_world
from .support.workload import ANTHROPIC_KEY_A, KEY_A, PROJECT_A, WORKSPACE_A

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "openai_batches.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=240,
    )


def test_load_with_env_configuration_like_the_sdks(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(150, project=PROJECT_A, days=10)
    env = {"OPENAI_API_KEY": KEY_A, "OPENAI_BASE_URL": server.base_url}
    first = cli("load", "--db", db, env=env)
    assert first.returncode == 0, first.stderr
    assert "2 requests, 150 new" in first.stdout
    second = cli("load", "--db", db, env=env)
    assert second.returncode == 0, second.stderr
    assert "1 requests, 0 new" in second.stdout
    assert KEY_A not in first.stdout + first.stderr + second.stdout + second.stderr
    assert table(db, "SELECT count(*) FROM openai_batches.batches") == [(150,)]
    # A load leaves the report views in the file, so queries/ run in any DuckDB client right away.
    assert table(db, "SELECT count(*) FROM openai_batches.batch_costs") == [(150,)]


def test_wrong_key_exits_non_zero_prints_no_key_and_leaves_the_database_untouched(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(50, project=PROJECT_A, days=10)
    good = cli("load", "--db", db, env={"OPENAI_API_KEY": KEY_A, "OPENAI_BASE_URL": server.base_url})
    assert good.returncode == 0
    before = hashlib.sha256(Path(db).read_bytes()).hexdigest()
    wrong = "sk-wrong-secret-key-abcdef123456"
    bad = cli("load", "--db", db, env={"OPENAI_API_KEY": wrong, "OPENAI_BASE_URL": server.base_url})
    assert bad.returncode == 1
    output = bad.stdout + bad.stderr
    assert wrong not in output and "abcdef123456" not in output
    assert "HTTP 401" in bad.stderr and "x-request-id" in bad.stderr
    assert "Traceback" not in output
    assert hashlib.sha256(Path(db).read_bytes()).hexdigest() == before


def test_missing_key_is_a_configuration_error(db: str) -> None:
    result = cli("load", "--db", db)
    assert result.returncode == 2
    assert "no API key configured" in result.stderr
    assert not Path(db).exists()


def test_db_path_from_config_and_cli_wins(tmp_path: Path, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(20, project=PROJECT_A, days=10)
    project = tmp_path / "proj"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "config.toml").write_text(
        f'[sources.openai_batches]\ndb_path = "from_config.duckdb"\nbase_url = "{server.base_url}"\n'
    )
    (project / ".dlt" / "secrets.toml").write_text(f'[sources.openai_batches]\napi_key = "{KEY_A}"\n')
    env = {"DLT_PROJECT_DIR": str(project)}
    assert cli("load", env=env, cwd=project).returncode == 0
    assert (project / "from_config.duckdb").exists()
    assert cli("load", "--db", "from_cli.duckdb", env=env, cwd=project).returncode == 0
    assert table(str(project / "from_cli.duckdb"), "SELECT count(*) FROM openai_batches.batches") == [(20,)]


def test_projects_table_in_secrets_loads_each_project(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(30, project=PROJECT_A, days=10)
    project = tmp_path / "proj"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "secrets.toml").write_text(
        f'[sources.openai_batches.projects.research]\napi_key = "{KEY_A}"\nbase_url = "{server.base_url}"\n'
    )
    result = cli("load", "--db", str(tmp_path / "p.duckdb"), env={"DLT_PROJECT_DIR": str(project)}, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "load [research] ok" in result.stdout
    assert table(str(tmp_path / "p.duckdb"), "SELECT DISTINCT project FROM openai_batches.batches") == [("research",)]


def test_run_without_a_key_runs_the_demo(tmp_path: Path) -> None:
    demo_db = tmp_path / "demo.duckdb"
    result = cli("run", "--db", str(demo_db), env={"DLT_PROJECT_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "running the demo" in result.stdout
    assert "backfill:" in result.stdout and "incremental:" in result.stdout
    assert table(str(demo_db), "SELECT count(DISTINCT project) FROM openai_batches.batches") == [(2,)]
    # Issue 19: every provider of the demo's organisation loads, and the report `run` ends with shows each.
    providers = ("openai", "anthropic", "azure", "groq", "mistral", "openrouter")
    assert table(
        str(demo_db), "SELECT provider FROM openai_batches.batch_jobs GROUP BY 1 HAVING count(*) >= 75 ORDER BY 1"
    ) == [(p,) for p in sorted(providers)]
    cost_by_provider = result.stdout.split("cost_by_provider")[-1]
    assert all(f"\n{p} " in cost_by_provider or f" {p} " in cost_by_provider for p in providers), cost_by_provider
    # The demo reads the request ledger, a budget's worth a run, and says what is left for the next runs.
    out = result.stdout
    assert "backfill [proj_research] ledger:" in out and "incremental [proj_production] ledger:" in out
    assert "Request ledger:" in out and "wait for the next runs" in out
    assert table(
        str(demo_db), "SELECT count(*) > 0 FROM openai_batches.batch_requests WHERE outcome = 'succeeded'"
    ) == [(True,)]


def test_demo_stores_the_report_views_so_the_queries_run_directly_on_its_file(tmp_path: Path) -> None:
    demo_db = tmp_path / "demo.duckdb"
    result = cli("demo", "--db", str(demo_db), "--batches", "60", env={"DLT_PROJECT_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # What `make demo` then suggests: the SQL in queries/ on the file, with no report run in between.
    (count,) = table(str(demo_db), "SELECT count(*) FROM openai_batches.batch_costs")[0]
    assert count == table(str(demo_db), "SELECT count(*) FROM openai_batches.batches")[0][0] > 0
    assert "queries/01_cost_summary.sql" in result.stdout


def test_simulate_refuses_a_negative_history_with_a_usage_line(tmp_path: Path) -> None:
    result = cli("simulate", "--batches", "-5", cwd=tmp_path)
    assert result.returncode == 2
    assert "must be 0 or more" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("provider", PROVIDERS)
def test_two_configured_projects_with_keys_of_one_project_load_it_once_and_fail_naming_both(
    tmp_path: Path, provider: str
) -> None:
    """Issue 16 (7): `research` and `production` both held keys of one project; every row was relabelled
    `production`, the summary said "4 new" for 2 batches and `status` showed `research` without batches.
    Anthropic: two keys of one workspace (no response names the workspace: the batches both list say it)."""
    anthropic = provider == "anthropic"
    other_key = "sk-ant-api03-alpha-second-key-4567" if anthropic else "sk-test-alpha-second-key-4567"
    org = SimulatedOrg(
        projects={KEY_A: PROJECT_A, **({} if anthropic else {other_key: PROJECT_A})},
        anthropic_workspaces={ANTHROPIC_KEY_A: WORKSPACE_A, other_key: WORKSPACE_A} if anthropic else None,
        seed=16,
    )
    world = make_world(provider, org)
    world.generate_history(2, project=world.a, days=3)
    with SimulatorServer(org) as server:
        _load_two_names_of_one_project(tmp_path, server, world, other_key)


def _load_two_names_of_one_project(tmp_path: Path, server: SimulatorServer, world: World, other_key: str) -> None:
    project = tmp_path / "proj"
    (project / ".dlt").mkdir(parents=True)
    provider = 'provider = "anthropic"\n' if world.anthropic else ""
    base = world.base_url(server)
    (project / ".dlt" / "secrets.toml").write_text(
        f'[sources.openai_batches.projects.research]\napi_key = "{world.key_a}"\nbase_url = "{base}"\n{provider}'
        f'[sources.openai_batches.projects.production]\napi_key = "{other_key}"\nbase_url = "{base}"\n{provider}'
    )
    db = str(tmp_path / "p.duckdb")
    result = cli("load", "--db", db, env={"DLT_PROJECT_DIR": str(project)}, cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "'research'" in errors[0] and "'production'" in errors[0]
    assert ("one Anthropic workspace" if world.anthropic else PROJECT_A) in errors[0], errors[0]
    assert "load [research] ok" in result.stdout and "2 new" in result.stdout
    assert "load: " in result.stdout and ", 2 new," in result.stdout.split("load: ")[-1]
    assert table(db, f"SELECT project, count(*) FROM openai_batches.{world.table} GROUP BY ALL") == [("research", 2)]
    assert table(db, "SELECT DISTINCT project FROM openai_batches._load_runs") == [("research",)]
