"""The careless operator: what a user does without reading twice, through the real CLI.

Each test is named after what it protects: the default database (and every file name) loads and the
README's commands work verbatim; a key or base URL pasted badly never leaks and never costs a request;
another application's DuckDB file is never touched; Ctrl-C and SIGTERM stop a run promptly at any
point; a failing load step is one line; nothing phones home; bad demo numbers are usage errors.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from openai_batches.load.interrupt import GRACE_S
from openai_batches.load.runner import working_dir
from openai_batches.settings import is_open
from openai_batches.simulator import Fault, SimClock, SimulatedOrg, SimulatorServer
from openai_batches.storage.lock import lock_path

from .support.assertions import assert_matches_simulator, ids_and_duplicates, paths_now
from .support.cli import CLI, REPO, assert_one_clear_error, cli_env, error_lines, run_cli, spawn_cli
from .support.workload import KEY_A, KEY_B, NOW, PROJECT_A, PROJECT_B

# A key shaped like a real project key (`sk-proj-` and 48 characters) that the simulator accepts.
REAL_KEY = "sk-proj-Op8rAtorQw3rtyUi0pAsdfGhjK1zXcvBnm2LkJhGf4Ds"
OTHER_KEY = "sk-proj-N0tRegisteredZx9Cv8Bn7Mq6Wl5Ek4Rt3Yu2Io1Pa"  # rejected by the simulator (401)
PROJECT = "proj_operator"
HISTORY = 150
DEFAULT_DB = "openai-batches.duckdb"


def windows(secret: str, size: int = 8) -> list[str]:
    """Every run of `size` characters of `secret`: none may appear anywhere."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def assert_no_part_of(secret: str, where: str, data: bytes | str) -> None:
    raw = data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data
    for part in windows(secret):
        at = raw.find(part.encode())
        assert at < 0, f"{part!r} of the key is in {where}: ...{raw[max(0, at - 80) : at + 40]!r}..."


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user who followed the README: no DLT_PROJECT_DIR and no telemetry switch
    (the program must turn telemetry off by itself); dlt's data directory stays the test's own."""
    env = cli_env(**extra)
    env.pop("DLT_PROJECT_DIR", None)
    env.pop("RUNTIME__DLTHUB_TELEMETRY", None)
    return env


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.fixture(scope="module")
def operator_org() -> SimulatedOrg:
    org = SimulatedOrg(projects={REAL_KEY: PROJECT}, clock=SimClock(start=NOW), seed=8)
    org.generate_history(HISTORY, project=PROJECT, days=20, open_fraction=0.05)
    return org


@pytest.fixture(scope="module")
def operator_api(operator_org: SimulatedOrg) -> Iterator[SimulatorServer]:
    """One simulator for the tests that only read from it (the org's clock never moves here)."""
    with SimulatorServer(operator_org) as server:
        yield server


def batch_count(db: Path) -> int:
    with duckdb.connect(":memory:") as con:  # attached under an alias: any file name works
        quoted = str(db).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS f (READ_ONLY)")
        row = con.execute("SELECT count(DISTINCT id) FROM f.openai_batches.batches").fetchone()
    assert row is not None
    return int(row[0])


# --- 1. the default database, every file name, the README verbatim ----------------------------------


def test_load_without_db_from_another_directory_writes_openai_batches_duckdb_there(
    tmp_path: Path, operator_api: SimulatorServer
) -> None:
    elsewhere = tmp_path / "elsewhere"  # not the project directory: no .dlt/ here
    elsewhere.mkdir()
    env = user_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    result = run_cli("load", env=env, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{HISTORY} new" in result.stdout and f"-> {DEFAULT_DB}" in result.stdout
    assert warning_lines(result.stderr) == []
    assert batch_count(elsewhere / DEFAULT_DB) == HISTORY
    again = run_cli("load", env=env, cwd=elsewhere)
    assert again.returncode == 0 and "1 requests, 0 new" in again.stdout, again.stdout + again.stderr


@pytest.mark.parametrize("name", ["openai_batches.duckdb", "openai_batches_staging.duckdb"])
def test_a_file_named_like_our_schemas_loads_incrementally_with_one_warning(
    tmp_path: Path, operator_api: SimulatorServer, name: str
) -> None:
    """DuckDB names the file's catalog after it; it used to collide with the dataset and every load failed."""
    db = tmp_path / name
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    for expected in (f"{HISTORY} new", "1 requests, 0 new"):
        result = run_cli("load", "--db", str(db), env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert expected in result.stdout
        assert error_lines(result.stderr) == []
        warnings = warning_lines(result.stderr)
        assert len(warnings) == 1, result.stderr
        assert "rename the file" in warnings[0] and DEFAULT_DB in warnings[0], warnings[0]
    assert batch_count(db) == HISTORY
    status = run_cli("status", "--db", str(db), env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert PROJECT in status.stdout and f" {HISTORY} " in status.stdout
    report = run_cli("report", "--db", str(db), "--only", "cost_by_project", "--format", "csv", env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert f"{PROJECT},{HISTORY}," in report.stdout


@pytest.mark.parametrize("name", ["memory.duckdb", 'o\'b "x".db'])
def test_odd_file_names_load(tmp_path: Path, operator_api: SimulatorServer, name: str) -> None:
    """`memory.duckdb` keeps the catalog name `memory` (a CatalogException on every first load);
    quotes must survive every SQL literal and identifier the file name ends up in."""
    db = tmp_path / name
    result = run_cli(
        "load", "--db", str(db), env=cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{HISTORY} new" in result.stdout and error_lines(result.stderr) == []
    assert batch_count(db) == HISTORY


@pytest.mark.parametrize("name", [":memory:", "sqlite:batches.duckdb", "md:batches"])
def test_a_relative_db_path_that_duckdb_would_read_as_a_uri_is_a_file_there(
    tmp_path: Path, operator_api: SimulatorServer, name: str
) -> None:
    """Given to ATTACH as typed, `:memory:` is an in-memory database (a load said ok and kept nothing) and
    `sqlite:`/`md:` an extension to download; `--db` names a file: the load writes it, `status` reads it."""
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    for expected in (f"{HISTORY} new", "1 requests, 0 new"):
        result = run_cli("load", "--db", name, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert expected in result.stdout and error_lines(result.stderr) == [], result.stdout + result.stderr
    assert batch_count(tmp_path / name) == HISTORY
    status = run_cli("status", "--db", name, env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert PROJECT in status.stdout and f" {HISTORY} " in status.stdout


@pytest.mark.parametrize("name", ["Temp.duckdb", "Main.duckdb"])
def test_file_names_duckdb_confuses_with_its_own_catalogs_are_refused_up_front(
    tmp_path: Path, operator_api: SimulatorServer, name: str
) -> None:
    db = tmp_path / name
    before = len(operator_api.requests)
    result = run_cli(
        "load", "--db", str(db), env=cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    )
    assert "choose another name" in assert_one_clear_error(result, 2)
    assert len(operator_api.requests) == before
    assert list(tmp_path.glob(f"{name}*")) == []


def readme_sh_blocks(readme: Path = REPO / "README.md") -> list[str]:
    """The README's ```sh blocks, as written: the tests run what a user would copy."""
    return re.findall(r"```sh\n(.*?)```", readme.read_text(), flags=re.DOTALL)


def readme_commands(containing: str) -> list[str]:
    return [line for block in readme_sh_blocks() for line in block.splitlines() if containing in line]


def duckdb_cli() -> str | None:
    venv_bin = Path(sys.executable).parent
    return shutil.which("duckdb", path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")


def test_readme_sql_examples_run_verbatim_in_the_duckdb_cli(tmp_path: Path, operator_api: SimulatorServer) -> None:
    binary = duckdb_cli()
    if binary is None:
        pytest.skip("the DuckDB CLI (PyPI package duckdb-cli) is not installed in this environment")
    examples = readme_commands(f"duckdb {DEFAULT_DB}")
    assert len(examples) >= 2, "the README's DuckDB CLI examples moved: update this test"
    assert any("SET VARIABLE since" in line for line in examples)
    workdir = tmp_path / "srv"
    workdir.mkdir()
    (workdir / "queries").symlink_to(REPO / "queries")
    loaded = run_cli("load", env=user_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url), cwd=workdir)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    env = {**os.environ, "PATH": f"{Path(binary).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for line in examples:
        command = line.split("  #", 1)[0].strip()  # the README's trailing comment, if any
        result = subprocess.run(
            ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and result.stderr == "", (command, result.stdout, result.stderr)
        assert "Error" not in result.stdout, (command, result.stdout)
        assert "cost_usd" in result.stdout and "batches" in result.stdout, (command, result.stdout)


def test_make_run_from_a_fresh_clone_exactly_as_the_readme_says(tmp_path: Path, operator_api: SimulatorServer) -> None:
    """`export OPENAI_API_KEY=...` and `make run`, verbatim, in a fresh clone of the committed HEAD:
    a real `make install` (from the registry / pip's cache), then a load and the terminal report."""
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("needs git and make")
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    block = next(b for b in readme_sh_blocks(clone / "README.md") if "export OPENAI_API_KEY=sk-..." in b)
    script = block.replace("sk-...", REAL_KEY)
    assert "make run" in script and "--db" not in script
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=clone,
        env=user_env(OPENAI_BASE_URL=operator_api.base_url),
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.monotonic() - started
    print(f"\nfresh clone: `make run` (make install included) took {elapsed:.0f}s")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert f"load [{PROJECT}] ok: 2 requests, {HISTORY} new" in result.stdout, result.stdout[-3000:]
    assert f"-> {DEFAULT_DB}" in result.stdout
    assert "cost_by_project" in result.stdout  # the terminal report follows the load
    assert "Traceback" not in output and error_lines(result.stderr) == []
    assert batch_count(clone / DEFAULT_DB) == HISTORY
    assert_no_part_of(REAL_KEY, "the output of make run", output)


# --- 5. keys pasted badly ----------------------------------------------------------------------------


def toml_escaped(text: str) -> str:
    """`text` as the inside of a TOML basic string, every character outside printable ASCII escaped."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)


def _secrets_toml(project_dir: Path, key_literal: str, base_url: str) -> None:
    (project_dir / ".dlt").mkdir(parents=True, exist_ok=True)
    (project_dir / ".dlt" / "secrets.toml").write_text(
        f'[sources.openai_batches]\napi_key = "{key_literal}"\nbase_url = "{base_url}"\n'
    )


@pytest.mark.parametrize(
    "where, value",
    [
        ("env", f"{REAL_KEY}\r\n"),
        ("secrets.toml", f"{REAL_KEY}\\n"),  # TOML escape: the value ends with a newline
        ("secrets.toml", f"{REAL_KEY}\\r\\n "),
    ],
)
def test_a_key_with_surrounding_whitespace_is_stripped_and_works(
    tmp_path: Path, operator_api: SimulatorServer, where: str, value: str
) -> None:
    db = tmp_path / "ws.duckdb"
    before = len(operator_api.requests)
    if where == "env":
        env = cli_env(OPENAI_API_KEY=value, OPENAI_BASE_URL=operator_api.base_url)
    else:
        _secrets_toml(tmp_path / "project", value, operator_api.base_url)
        env = cli_env()
    result = run_cli("load", "--db", str(db), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{HISTORY} new" in result.stdout
    seen = operator_api.requests[before:]
    assert seen and all(r.headers.get("authorization") == f"Bearer {REAL_KEY}" for r in seen)
    assert_no_part_of(REAL_KEY, "the output", result.stdout + result.stderr)


BAD_INNER = ["\x01", "\n", "\r", " ", "\t", "é", "\u200b", "\u2028", "\x7f", "\x1b[2K", "\ufeff"]


@pytest.mark.parametrize("inner", BAD_INNER)
def test_every_unsendable_key_character_is_a_config_error_that_shows_no_part_of_the_key(
    monkeypatch: pytest.MonkeyPatch, inner: str
) -> None:
    """The configuration's own check, in process, for many characters (the CLI tests below run a few,
    from the environment and from secrets.toml; dlt reads .dlt files once per process)."""
    from openai_batches.config import ConfigError, configured_projects

    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY[:20] + inner + REAL_KEY[20:])
    with pytest.raises(ConfigError) as refused:
        configured_projects()
    assert "API key" in str(refused.value)
    assert_no_part_of(REAL_KEY, "the message", str(refused.value))


@pytest.mark.parametrize(("where", "inner"), [("env", "\x01"), ("env", "é"), ("secrets.toml", "\n")])
def test_a_key_with_an_inner_bad_character_is_refused_in_one_line_that_shows_no_part_of_it(
    tmp_path: Path, operator_api: SimulatorServer, inner: str, where: str
) -> None:
    key = REAL_KEY[:20] + inner + REAL_KEY[20:]
    db = tmp_path / "bad.duckdb"
    before = len(operator_api.requests)
    if where == "env":
        env = cli_env(OPENAI_API_KEY=key, OPENAI_BASE_URL=operator_api.base_url)
    else:
        literal = toml_escaped(key)
        _secrets_toml(tmp_path / "project", literal, operator_api.base_url)
        env = cli_env()
    result = run_cli("load", "--db", str(db), env=env)
    line = assert_one_clear_error(result, 2)
    assert "API key" in line and ("OPENAI_API_KEY" in line if where == "env" else "api_key" in line), line
    assert_no_part_of(REAL_KEY, "the output", result.stdout + result.stderr)
    assert len(operator_api.requests) == before, "a request was made with an unusable key"
    assert not db.exists()


@pytest.mark.parametrize("variable", ["OPENAI_ORG_ID", "OPENAI_PROJECT_ID"])
def test_an_organization_or_project_id_is_stripped_and_one_that_cannot_be_sent_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    from openai_batches.config import ConfigError, configured_projects

    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    monkeypatch.setenv(variable, " org-or-proj_1\r\n")
    (project,) = configured_projects()
    assert (project.organization if variable == "OPENAI_ORG_ID" else project.project_id) == "org-or-proj_1"
    for bad in ("org\x01x", "proj é", "a\nb"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(ConfigError, match=variable):
            configured_projects()


def test_an_unsendable_project_header_exits_2_before_any_request(tmp_path: Path, operator_api: SimulatorServer) -> None:
    before = len(operator_api.requests)
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url, OPENAI_PROJECT_ID="proj_\x1b[31m")
    line = assert_one_clear_error(run_cli("load", "--db", str(tmp_path / "h.duckdb"), env=env), 2)
    assert "OPENAI_PROJECT_ID" in line
    assert len(operator_api.requests) == before
    assert not (tmp_path / "h.duckdb").exists()


def _files_and_dirs(root: Path) -> list[Path]:
    return [root, *root.rglob("*")] if root.exists() else []


def test_after_good_and_failing_runs_no_part_of_the_key_is_anywhere_and_nothing_is_readable_by_others(
    tmp_path: Path, operator_org: SimulatedOrg, operator_api: SimulatorServer
) -> None:
    db = tmp_path / "private.duckdb"
    dlt_dir = Path(os.environ["DLT_DATA_DIR"])
    outputs: list[str] = []
    good = cli_env(OPENAI_API_KEY=f"{REAL_KEY}\r\n", OPENAI_BASE_URL=operator_api.base_url)
    runs: list[tuple[dict[str, str], int, Callable[[], None] | None]] = [
        (good, 0, None),
        # the API keeps failing: retry warnings, then the error line (verbose: every log line too)
        (
            {**good, "SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS": "2"},
            1,
            lambda: operator_api.inject(Fault("500", count=2)),
        ),
        # a key the API rejects: its 401 message echoes the key, masked the way OpenAI masks it
        (cli_env(OPENAI_API_KEY=OTHER_KEY, OPENAI_BASE_URL=operator_api.base_url), 1, None),
    ]
    for env, code, before in runs:
        if before:
            before()
        result = run_cli("-v", "load", "--db", str(db), env=env)
        assert result.returncode == code, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    operator_api.clear_faults()
    assert "HTTP 401" in outputs[2]
    lock = Path(f"{db}.lock")
    stored = [db, lock, *dlt_dir.rglob("*")]
    assert any(p.name == "trace.pickle" for p in stored)
    for secret in (REAL_KEY, OTHER_KEY):
        for i, output in enumerate(outputs):
            assert_no_part_of(secret, f"the output of run {i + 1}", output)
        for path in stored:
            if path.is_file():
                assert_no_part_of(secret, str(path), path.read_bytes())
    created = [db, Path(f"{db}.wal"), lock, *_files_and_dirs(dlt_dir)]
    readable = [f"{p} {p.stat().st_mode & 0o777:o}" for p in created if p.exists() and p.stat().st_mode & 0o077]
    assert readable == [], "readable by group or others"


# --- 6. credentials in the base URL --------------------------------------------------------------------

USER, PASSWORD = "alice-operator", "pw-S3cr3t-8x"


URL_TEMPLATES = [
    "http://{user}:{password}@{hostport}/v1",
    "http://{user}@{hostport}/v1",
    "http://:{password}@{hostport}/v1",
    "HTTP://{user}:{password}@{hostport}/v1/",
    " http://{user}:{password}@{hostport}/v1\n",
    "{user}:{password}@{hostport}/v1",  # no scheme: parses as scheme `alice-operator`
    "http:/{user}:{password}@{hostport}/v1",
    "http://{user}:pa?ss{password}@{hostport}/v1",
    "http://{user}:{password}@[::1/v1",  # not even a valid URL
    "http://{hostport}/v1?api-key={user}{password}",
    "http://{hostport}/v1#{user}{password}",
]
URL_SOURCES = ["env", "config.toml", "project table"]


def _base_url_configured(where: str, url: str, project: Path) -> dict[str, str]:
    """Configure `url` as the base URL the way `where` says; the environment a CLI run needs for it."""
    (project / ".dlt").mkdir(parents=True, exist_ok=True)
    if where == "env":
        return {"OPENAI_API_KEY": REAL_KEY, "OPENAI_BASE_URL": url}
    if where == "config.toml":
        (project / ".dlt" / "config.toml").write_text(f'[sources.openai_batches]\nbase_url = "{toml_escaped(url)}"\n')
        return {"OPENAI_API_KEY": REAL_KEY}
    (project / ".dlt" / "secrets.toml").write_text(
        f'[sources.openai_batches.projects.main]\napi_key = "{REAL_KEY}"\nbase_url = "{toml_escaped(url)}"\n'
    )
    return {}


@pytest.mark.parametrize("template", URL_TEMPLATES)
def test_every_base_url_with_credentials_is_a_config_error_that_shows_none_of_them(
    monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    """The configuration's own check, in process, for every form (the CLI tests below run them from
    the environment, config.toml and a project table; dlt reads .dlt files once per process)."""
    from openai_batches.config import ConfigError, configured_projects

    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", template.format(user=USER, password=PASSWORD, hostport="127.0.0.1:9"))
    with pytest.raises(ConfigError) as refused:
        configured_projects()
    assert "base URL" in str(refused.value)
    for secret in (USER, PASSWORD, "S3cr3t"):
        assert secret not in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    ("where", "template"), [(URL_SOURCES[i % len(URL_SOURCES)], t) for i, t in enumerate(URL_TEMPLATES[:6])]
)
def test_credentials_in_the_base_url_are_refused_before_any_request_and_never_shown(
    tmp_path: Path, operator_api: SimulatorServer, template: str, where: str
) -> None:
    hostport = operator_api.base_url.split("//", 1)[1].split("/", 1)[0]
    url = template.format(user=USER, password=PASSWORD, hostport=hostport)
    db = tmp_path / "url.duckdb"
    env = cli_env(**_base_url_configured(where, url, tmp_path / "project"))
    before = len(operator_api.requests)
    result = run_cli("load", "--db", str(db), env=env)
    line = assert_one_clear_error(result, 2)
    assert "base URL" in line
    output = result.stdout + result.stderr
    for secret in (USER, PASSWORD, "S3cr3t"):
        assert secret not in output, output
    assert len(operator_api.requests) == before
    assert not db.exists()


# --- 12. another application's DuckDB file ----------------------------------------------------------------


FOREIGN_FILES: dict[str, list[str]] = {
    "our table of another shape": [
        "CREATE SCHEMA openai_batches",
        "CREATE TABLE openai_batches.batches (id INTEGER, owner VARCHAR, amount DECIMAL(10, 2))",
        "INSERT INTO openai_batches.batches VALUES (1, 'finance', 12.50)",
    ],
    "our table of the same shape, no dlt state": [
        "CREATE SCHEMA openai_batches",
        "CREATE TABLE openai_batches.batches (id VARCHAR, status VARCHAR, created_at TIMESTAMPTZ)",
        "INSERT INTO openai_batches.batches VALUES ('batch_1', 'completed', now())",
    ],
    "another table and a view in our schema": [
        "CREATE SCHEMA openai_batches",
        "CREATE TABLE openai_batches.invoices (n INT)",
        "CREATE VIEW openai_batches.v AS SELECT 42 AS answer",
    ],
    "a table in our staging schema": [
        "CREATE SCHEMA openai_batches_staging",
        "CREATE TABLE openai_batches_staging.batches (x INTEGER PRIMARY KEY)",
    ],
    "our schema in another letter case": ["CREATE SCHEMA OpenAI_Batches", "CREATE TABLE OpenAI_Batches.stuff (a INT)"],
    "dlt state of another pipeline": [
        "CREATE SCHEMA openai_batches",
        "CREATE TABLE openai_batches._dlt_version (version BIGINT, engine_version BIGINT, inserted_at TIMESTAMPTZ,"
        " schema_name VARCHAR, version_hash VARCHAR, schema VARCHAR)",
        "INSERT INTO openai_batches._dlt_version VALUES (1, 11, now(), 'github_issues', 'h', '{}')",
        "CREATE TABLE openai_batches._dlt_pipeline_state (version BIGINT, engine_version BIGINT, pipeline_name"
        " VARCHAR, state VARCHAR, created_at TIMESTAMPTZ, version_hash VARCHAR, _dlt_load_id VARCHAR, _dlt_id VARCHAR)",
        "INSERT INTO openai_batches._dlt_pipeline_state VALUES (1, 4, 'github_issues', 's', now(), 'h', '1', 'x')",
        "CREATE TABLE openai_batches._dlt_loads (load_id VARCHAR, schema_name VARCHAR, status BIGINT)",
    ],
}


@pytest.mark.parametrize("kind", list(FOREIGN_FILES))
def test_another_applications_duckdb_file_is_refused_and_left_byte_for_byte_unchanged(
    tmp_path: Path, operator_api: SimulatorServer, kind: str
) -> None:
    db = tmp_path / "theirs.duckdb"
    with duckdb.connect(str(db)) as con:
        for sql in FOREIGN_FILES[kind]:
            con.execute(sql)
    time.sleep(0.01)  # so that any write would show in the modification time
    before_bytes, before_mtime = db.read_bytes(), db.stat().st_mtime_ns
    before_requests = len(operator_api.requests)
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    for _ in range(2):  # the next run refuses the same way: nothing half-done to replay
        line = assert_one_clear_error(run_cli("load", "--db", str(db), env=env), 2)
        assert "was not created by openai-batches" in line and "nothing was written" in line, line
        assert db.read_bytes() == before_bytes and db.stat().st_mtime_ns == before_mtime
        assert not Path(f"{db}.wal").exists()
    assert len(operator_api.requests) == before_requests


def test_a_file_with_only_other_schemas_is_shared_not_refused(tmp_path: Path, operator_api: SimulatorServer) -> None:
    """The line between ours and theirs: tables in other schemas are left alone and the load goes on."""
    db = tmp_path / "shared.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE main.invoices AS SELECT 7 AS n")
    result = run_cli(
        "load", "--db", str(db), env=cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT n FROM main.invoices").fetchall() == [(7,)]
    assert batch_count(db) == HISTORY


# --- 13. Ctrl-C and SIGTERM -------------------------------------------------------------------------------


def _two_projects(tmp_path: Path, server: SimulatorServer) -> dict[str, str]:
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True, exist_ok=True)
    (project / ".dlt" / "secrets.toml").write_text(
        f'[sources.openai_batches.projects.{PROJECT_A}]\napi_key = "{KEY_A}"\nbase_url = "{server.base_url}"\n'
        f'[sources.openai_batches.projects.{PROJECT_B}]\napi_key = "{KEY_B}"\nbase_url = "{server.base_url}"\n'
    )
    return cli_env(DLT_PROJECT_DIR=str(project))


def _holds_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["listing", "load step", "waiting for the lock"])
def test_a_signal_stops_the_run_promptly_with_one_line_and_the_next_run_converges(
    tmp_path: Path, moment: str, signum: int
) -> None:
    org = SimulatedOrg(projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B}, clock=SimClock(start=NOW), seed=13)
    # The load step needs a first project big enough that its DuckDB merge is caught while it runs.
    org.generate_history(2500 if moment == "load step" else 600, project=PROJECT_A, days=30, open_fraction=0.05)
    org.generate_history(120, project=PROJECT_B, days=30)
    db = tmp_path / "signal.duckdb"
    lock = lock_path(str(db))
    package = Path(working_dir(str(db))) / "openai_batches" / "load" / "normalized"
    with SimulatorServer(org, latency=0.05) as server:
        env = _two_projects(tmp_path, server)
        holder = None
        if moment == "waiting for the lock":
            holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(holder, fcntl.LOCK_EX)
        process = spawn_cli("load", "--db", str(db), "--wait", "60", env=env)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if moment == "listing" and any(r.project == PROJECT_A for r in server.requests[1:]):
                break
            if moment == "load step" and paths_now(package, "*/started_jobs/*"):
                assert not any(r.project == PROJECT_B for r in server.requests), "missed the first load step"
                break
            if moment == "waiting for the lock" and _holds_open(process.pid, lock):
                time.sleep(0.3)  # inside the wait loop, past start-up
                break
            time.sleep(0.002)
        assert process.poll() is None, "the run ended before the moment to interrupt it"
        requests_at_signal = len(server.requests)
        process.send_signal(signum)
        signalled = time.monotonic()
        try:
            out, err = process.communicate(timeout=GRACE_S + 20)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"still running {GRACE_S + 20:.0f}s after {signal.Signals(signum).name}: {out}{err}")
        took = time.monotonic() - signalled
        if holder is not None:
            os.close(holder)

        assert process.returncode == 128 + signum, (process.returncode, out, err)
        assert took < GRACE_S + 3, f"took {took:.1f}s to stop"
        assert "Traceback" not in out + err, err
        errors = error_lines(err)
        assert len(errors) == 1 and ("interrupted" in errors[0] or "terminated" in errors[0]), err
        assert [r for r in server.requests if r.project == PROJECT_B] == [], "the next project started"
        assert len(server.requests) - requests_at_signal <= 1, "requests went on after the signal"  # one in flight
        if moment == "waiting for the lock":
            assert server.requests == []

        server.latency = 0.0
        converged = run_cli("load", "--db", str(db), "--wait", "0", env=env)  # gets the lock at once
        assert converged.returncode == 0, converged.stdout + converged.stderr
        assert_matches_simulator(str(db), org, PROJECT_A)
        assert_matches_simulator(str(db), org, PROJECT_B)
        total, distinct = ids_and_duplicates(str(db))
        assert total == distinct == org.count()


# --- 14. a failing load step -----------------------------------------------------------------------------

# Runs the CLI with a maximum file size: DuckDB's write-ahead log outgrows it in dlt's load step (a
# disk that fills up, as the kernel reports it: EFBIG), while dlt's small working files still fit.
_FSIZE_WRAPPER = (
    "import os, resource, signal, sys;"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
    "limit = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit));"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def test_a_failing_load_step_is_one_error_line_without_traceback_unless_verbose(
    tmp_path: Path, operator_org: SimulatedOrg, operator_api: SimulatorServer
) -> None:
    db = tmp_path / "full.duckdb"
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)

    def load_on_a_full_disk(*verbose: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", _FSIZE_WRAPPER, str(64 * 1024), *CLI[1:], *verbose, "load", "--db", str(db)]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)

    quiet = load_on_a_full_disk()
    line = assert_one_clear_error(quiet, 1)
    assert "loading into" in line and "File too large" in line, line
    assert f"load [{PROJECT}] FAILED" in quiet.stdout and "nothing loaded" in quiet.stdout

    verbose = load_on_a_full_disk("-v")  # the pending package is retried, and fails the same way
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr
    assert len(error_lines(verbose.stderr)) == 1, verbose.stderr

    fixed = run_cli("load", "--db", str(db), env=env)  # space again: the next run converges
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert_matches_simulator(str(db), operator_org, PROJECT)


def load_runs(db: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT project, requests, new, updated, full_refresh FROM openai_batches._load_runs ORDER BY finished_at"
        ).fetchall()


def test_a_full_refresh_counts_the_batches_it_reread_as_updated_not_new(
    tmp_path: Path, operator_org: SimulatedOrg, operator_api: SimulatorServer
) -> None:
    """Issue 16 (8): `load --full-refresh` said every batch it re-read was "new", and `_load_runs` recorded
    it. "new" is a batch that was not in the database before; a batch written again is "updated"."""
    db = tmp_path / "refresh.duckdb"
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    first = run_cli("load", "--db", str(db), env=env)
    again = run_cli("load", "--db", str(db), "--full-refresh", env=env)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert f"load [{PROJECT}] ok: 2 requests, {HISTORY} new, 0 updated" in first.stdout, first.stdout
    assert f"load [{PROJECT}] ok: 2 requests, 0 new, {HISTORY} updated" in again.stdout, again.stdout
    assert f"load: 2 requests, 0 new, {HISTORY} updated" in again.stdout
    assert load_runs(db) == [(PROJECT, 2, HISTORY, 0, False), (PROJECT, 2, 0, HISTORY, True)]


def test_a_run_that_completes_a_failed_runs_load_reports_and_records_what_it_committed(
    tmp_path: Path, operator_org: SimulatedOrg, operator_api: SimulatorServer
) -> None:
    """Issue 16 (8): the run after a load step that failed (a full disk) committed the rows the failed run
    had extracted but said `0 new`, and `_load_runs` never recorded them."""
    db = tmp_path / "full.duckdb"
    # A database that already holds a load (of a project with no batches yet): the package the failed run
    # leaves is then always taken up. (Where the failed run was the database's very first, how far its load
    # step got decides whether dlt's state reached the file; when it did not, the next run starts afresh,
    # with the same, exact, outcome: every batch new.)
    with SimulatorServer(SimulatedOrg(projects={REAL_KEY: PROJECT}, clock=SimClock(start=NOW), seed=8)) as empty:
        first = run_cli("load", "--db", str(db), env=cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=empty.base_url))
        assert first.returncode == 0, first.stdout + first.stderr
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    command = [sys.executable, "-c", _FSIZE_WRAPPER, str(64 * 1024), *CLI[1:], "load", "--db", str(db)]
    failed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert failed.returncode == 1 and "File too large" in failed.stderr, failed.stdout + failed.stderr
    fixed = run_cli("load", "--db", str(db), env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"load [{PROJECT}] finished the load a failed run left: {HISTORY} new, 0 updated" in fixed.stdout
    open_now = sum(1 for b in operator_org.batches(PROJECT) if is_open(b["status"]))  # read again
    assert f"load [{PROJECT}] ok: 1 requests, 0 new, {open_now} updated" in fixed.stdout, fixed.stdout
    assert f"load: 1 requests, {HISTORY} new, {open_now} updated" in fixed.stdout
    assert load_runs(db)[1:] == [(PROJECT, 0, HISTORY, 0, False), (PROJECT, 1, 0, open_now, False)]
    assert_matches_simulator(str(db), operator_org, PROJECT)


# --- 15. telemetry ----------------------------------------------------------------------------------------


def test_from_another_directory_no_host_but_loopback_is_looked_up_or_contacted(
    tmp_path: Path, operator_api: SimulatorServer
) -> None:
    elsewhere = tmp_path / "cron-cwd"  # cron without `cd`: no .dlt/config.toml to turn telemetry off
    elsewhere.mkdir()
    log = tmp_path / "hosts.log"
    probe = Path(__file__).resolve().parent / "sitecustomize_probe"
    env = user_env(
        OPENAI_API_KEY=REAL_KEY,
        OPENAI_BASE_URL=operator_api.base_url,
        NET_PROBE_LOG=str(log),
        PYTHONPATH=os.pathsep.join(p for p in (str(probe), os.environ.get("PYTHONPATH", "")) if p),
    )
    for command in (("load",), ("status",), ("report", "--only", "cost_summary")):
        result = run_cli(*command, "--db", "cron.duckdb", env=env, cwd=elsewhere)
        assert result.returncode == 0, result.stdout + result.stderr
    lines = log.read_text().splitlines()
    assert any(line.endswith("127.0.0.1") for line in lines), "the probe recorded nothing: is it loaded?"
    hosts = {line.split(" ", 1)[1] for line in lines}
    assert hosts <= {"127.0.0.1", "localhost", "::1"}, hosts


# --- 16. smaller ones -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, says",
    [
        (("--batches", "-5"), "argument --batches: must be"),
        (("--batches", "0"), "argument --batches: must be"),
        (("--batches", "many"), "argument --batches:"),
        (("--batches", "100000000000"), "argument --batches: must be from 1 to 1,000,000"),
        (("--seed", "-1"), "argument --seed: must be"),
    ],
)
def test_demo_with_a_bad_number_is_a_usage_error(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    db = tmp_path / "demo.duckdb"
    result = run_cli("demo", "--db", str(db), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("usage: openai-batches demo"), result.stderr
    assert says in result.stderr and "unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert not db.exists()


def test_a_failed_projects_summary_says_nothing_was_loaded(tmp_path: Path, operator_api: SimulatorServer) -> None:
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True, exist_ok=True)
    (project / ".dlt" / "secrets.toml").write_text(
        f'[sources.openai_batches.projects.good]\napi_key = "{REAL_KEY}"\nbase_url = "{operator_api.base_url}"\n'
        f'[sources.openai_batches.projects.revoked]\napi_key = "{OTHER_KEY}"\nbase_url = "{operator_api.base_url}"\n'
    )
    result = run_cli("load", "--db", str(tmp_path / "two.duckdb"), env=cli_env())
    line = assert_one_clear_error(result, 1)
    assert line.startswith("error: project revoked:") and "HTTP 401" in line, line
    failed = next(s for s in result.stdout.splitlines() if s.startswith("load [revoked]"))
    assert "FAILED" in failed and "nothing loaded" in failed and not re.search(r"\d+ (new|updated)", failed), failed
    assert f"load [good] ok: 2 requests, {HISTORY} new" in result.stdout
    total = next(s for s in result.stdout.splitlines() if s.startswith("load: "))
    assert f" {HISTORY} new, 0 updated" in total, total


def test_output_into_a_closed_pipe_ends_quietly_and_keeps_what_was_loaded(
    tmp_path: Path, operator_api: SimulatorServer
) -> None:
    """`openai-batches status | head -1`: the reader is gone before the output is; no error, no
    traceback, the status a process killed by SIGPIPE has (also for the report's rich tables, whose
    library would exit 1 by itself: 1 means the database could not be read)."""
    db = tmp_path / "piped.duckdb"
    env = cli_env(OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url)
    for command in (("load",), ("status",), ("report",), ("report", "--format", "csv")):
        process = spawn_cli(*command, "--db", str(db), env=env)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # long before the program prints anything
        err = process.stderr.read()
        assert process.wait(timeout=120) == 128 + signal.SIGPIPE, err
        assert err == "", err
    assert batch_count(db) == HISTORY


def test_a_database_path_from_a_crlf_environment_file_loses_its_line_ending(
    tmp_path: Path, operator_api: SimulatorServer
) -> None:
    env = cli_env(
        OPENAI_API_KEY=REAL_KEY, OPENAI_BASE_URL=operator_api.base_url, OPENAI_BATCHES_DB=f"{tmp_path}/crlf.duckdb\r\n"
    )
    result = run_cli("load", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch_count(tmp_path / "crlf.duckdb") == HISTORY
    assert not any("\r" in p.name for p in tmp_path.iterdir())
