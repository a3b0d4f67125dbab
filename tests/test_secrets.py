"""The API key never appears in output, logs, exceptions, dlt traces, the database or dlt's working
directory: after loads that succeed and loads that fail (verbose ones included), every byte is
searched for it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openai_batches.load.runner import make_pipeline, working_dir
from openai_batches.simulator import Fault, SimClock, SimulatedOrg, SimulatorServer

from .support.assertions import files_containing
from .support.cli import REPO, cli_env, run_cli
from .support.fake_api import Reply, ScriptedApi, json_reply
from .support.workload import NOW, PROJECT_A

KEY = "sk-proj-CanaryLeakCheck-7Q9xZ2mV4bN8kL1pR6tY3wE5"
# Long pieces too: a server may echo the key masked at both ends, and an excerpt may cut it short.
NEEDLES = (KEY.encode(), KEY[:20].encode(), KEY[8:-4].encode(), KEY[14:34].encode())


@pytest.fixture
def canary_org() -> SimulatedOrg:
    org = SimulatedOrg(projects={KEY: PROJECT_A}, clock=SimClock(start=NOW), seed=3)
    org.generate_history(250, project=PROJECT_A, days=10, open_fraction=0.05)
    return org


@pytest.fixture
def canary_server(canary_org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(canary_org) as server:
        yield server


def assert_no_key(where: str, data: bytes) -> None:
    for needle in NEEDLES:
        at = data.find(needle)
        assert at < 0, f"the key leaked into {where}: ...{data[max(0, at - 200) : at + 100]!r}..."


def assert_nowhere(tmp_path: Path, db: Path, results: list[subprocess.CompletedProcess[str]]) -> None:
    """Output of every run, the database file, dlt's working directories and every other file the
    test's runs wrote, except the .dlt files the test itself put the key in."""
    for result in results:
        assert_no_key(f"the output of {result.args[3:]}", (result.stdout + result.stderr).encode())
    assert db.exists()
    for needle in NEEDLES:
        leaked = [p for p in files_containing(tmp_path, needle) if "/.dlt/" not in p]
        assert leaked == [], f"the key leaked into {leaked}"


def test_the_key_is_nowhere_after_successful_and_failing_loads(
    tmp_path: Path, canary_org: SimulatedOrg, canary_server: SimulatorServer
) -> None:
    db = tmp_path / "secret.duckdb"
    results: list[subprocess.CompletedProcess[str]] = []

    def load(*args: str, env: dict[str, str], cwd: Path | None = None, code: int) -> None:
        result = run_cli("-v", *args, env=env, cwd=cwd)
        assert result.returncode == code, result.stdout + result.stderr
        results.append(result)
        assert_nowhere(tmp_path, db, results)  # after every run: later runs overwrite the trace

    by_env = cli_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=canary_server.base_url)
    load("load", "--db", str(db), env=by_env, code=0)

    # Key in secrets.toml, base_url in config.toml (the documented split).
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "secrets.toml").write_text(f'[sources.openai_batches.projects.main]\napi_key = "{KEY}"\n')
    (project / ".dlt" / "config.toml").write_text(
        f'[sources.openai_batches.projects.main]\nbase_url = "{canary_server.base_url}"\n'
    )
    canary_org.advance(3600)
    canary_org.create_batch(project=PROJECT_A)
    load("load", "--db", str(db), env=cli_env(DLT_PROJECT_DIR=str(project)), cwd=project, code=0)

    # Key put in config.toml by mistake: dlt would trace it in clear if it resolved it itself.
    wrong = tmp_path / "wrong-place"
    (wrong / ".dlt").mkdir(parents=True)
    (wrong / ".dlt" / "config.toml").write_text(
        f'[sources.openai_batches]\napi_key = "{KEY}"\nbase_url = "{canary_server.base_url}"\nproject_name = "main"\n'
    )
    load("load", "--db", str(db), env=cli_env(DLT_PROJECT_DIR=str(wrong)), cwd=wrong, code=0)

    # Failing loads, verbose: retries logged, then given up; a rejected key.
    retries = {**by_env, "SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS": "2"}
    canary_server.inject(Fault("500", count=2))
    load("load", "--db", str(db), env=retries, code=1)
    canary_server.inject(Fault("401", count=1))
    load("load", "--db", str(db), env=retries, code=1)
    load("status", "--db", str(db), env=by_env, code=0)

    # dlt's own record of the last run, as the pipeline object reports it.
    trace = make_pipeline(str(db)).last_trace
    assert trace is not None and trace.resolved_config_values is not None
    assert_no_key("pipeline.last_trace", (str(trace) + repr(trace.resolved_config_values)).encode())
    assert any(v.key == "log_level" for v in trace.resolved_config_values)  # the trace does record values
    assert Path(working_dir(str(db))).exists()


def test_a_server_that_echoes_the_key_back_does_not_make_us_print_it(tmp_path: Path) -> None:
    db = tmp_path / "echo.duckdb"

    def echo(path: str, query: dict[str, str], number: int) -> Reply:
        auth = api.headers[-1].get("authorization", "")
        if number == 1:  # retried, so logged as a warning; the 120-char excerpt would cut the key short
            page = f"<html><body>{'.' * 60} bad gateway for {auth}</body></html>"
            return Reply(502, page.encode(), "text/html")
        return json_reply({"error": {"message": f"Invalid header {auth}", "code": "invalid_request"}}, 400)

    with ScriptedApi(echo) as api:
        result = run_cli("-v", "load", "--db", str(db), env=cli_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=api.base_url))
    assert api.headers[0]["authorization"] == f"Bearer {KEY}"  # it was sent, and echoed back twice
    assert result.returncode == 1
    assert_no_key("the output", (result.stdout + result.stderr).encode())
    assert "HTTP 400: Invalid header Bearer ***" in result.stderr
    assert "bad gateway for Bearer ***" in result.stderr
    for needle in NEEDLES:
        assert files_containing(tmp_path, needle) == []


def test_secrets_toml_is_git_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".dlt/secrets.toml"], cwd=REPO, capture_output=True, check=False
    )
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0, ".dlt/secrets.toml must be listed in .gitignore"


def test_a_key_echoed_in_batch_metadata_is_masked_everywhere_and_named_in_caveats(tmp_path: Path) -> None:
    """Issue 16 (6): a metadata value equal to the key was stored verbatim in `batches.metadata` and printed
    by every report. Any configured key (here the other project's too) is masked wherever a server sends it,
    and the caveats report names the batch and the field; what holds no key is stored as sent."""
    other = "sk-proj-OtherProjectCanary-3Hk8Vt2Qw9Lm5Zp"
    org = SimulatedOrg(projects={KEY: PROJECT_A, other: "proj_bravo"}, clock=SimClock(start=NOW), seed=5)
    org.generate_history(20, project=PROJECT_A, days=5)
    crossed = org.create_batch(project=PROJECT_A, metadata={"note": f"key={other}", "team": "search"})
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    db = tmp_path / "echo.duckdb"
    with SimulatorServer(org, echo_key_in_metadata=True) as server:
        (project / ".dlt" / "secrets.toml").write_text(
            f'[sources.openai_batches.projects.research]\napi_key = "{KEY}"\nbase_url = "{server.base_url}"\n'
            f'[sources.openai_batches.projects.bravo]\napi_key = "{other}"\nbase_url = "{server.base_url}"\n'
        )
        env = cli_env(DLT_PROJECT_DIR=str(project))
        results = [run_cli("load", "--db", str(db), env=env, cwd=project)]
    assert results[0].returncode == 0, results[0].stdout + results[0].stderr
    html = tmp_path / "report.html"
    for args in (["--format", "table"], ["--format", "csv"], ["--format", "markdown"], ["--format", "json"]):
        results.append(run_cli("report", "--db", str(db), *args, env=env, cwd=project))
    results.append(run_cli("report", "--db", str(db), "--html", str(html), env=env, cwd=project))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    needles = (*NEEDLES, other.encode(), other[10:30].encode())
    for result in results:
        for needle in needles:
            assert needle not in (result.stdout + result.stderr).encode(), result.args
    for needle in needles:
        assert [p for p in files_containing(tmp_path, needle) if "/.dlt/" not in p] == []
    # What held no key is as sent; the masked values say so, per batch and field.
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        (metadata, redacted) = con.execute(
            "SELECT metadata, redacted_fields FROM openai_batches.batches WHERE id = ?", [crossed]
        ).fetchone()
    assert json.loads(metadata) == {"note": "key=***", "team": "search", "echoed_key": "***"}
    assert sorted(json.loads(redacted)) == ["metadata.echoed_key", "metadata.note"]
    caveats = json.loads(results[4].stdout)["caveats"]
    named = {r["caveat"]: r for r in caveats if "API key" in r["caveat"]}
    assert set(named) == {
        "a configured API key the server sent back was masked (***) in metadata.echoed_key",
        "a configured API key the server sent back was masked (***) in metadata.note",
    }
    assert named["a configured API key the server sent back was masked (***) in metadata.note"]["example_id"] == crossed
    assert "masked (***) in metadata.note" in results[1].stdout and "masked (***) in metadata.note" in html.read_text()
