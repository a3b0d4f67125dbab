"""Bad input from the user, through the CLI as cron runs it: one clear `error:` line each, a non-zero
exit, no traceback, and nothing half-written (no database file appears, an existing one is unchanged).

| input                               | exit | the line says                                               |
|-------------------------------------|------|-------------------------------------------------------------|
| no key anywhere                     | 2    | no API key configured: set OPENAI_API_KEY, or api_key ...   |
| malformed base URL                  | 2    | <setting>: base URL '...' must start with http(s):// ...    |
| unreachable host                    | 1    | GET <url>: connection failed: ... (gave up after N attempts)|
| database directory missing          | 2    | cannot create the lock file ...: No such file or directory  |
| database path is a directory        | 2    | database path ... is a directory, not a file                |
| database path is a FIFO or a device | 2    | database path ... is not a regular file (a named pipe, ...) |
| database parent is a file           | 2    | cannot create the lock file ...: Not a directory            |
| database held by another program    | 75   | database ... is open in another program ... (PID n)         |
| corrupted database file             | 1    | database ...: ... not a valid DuckDB database file          |
| malformed .dlt/config.toml          | 2    | cannot read .dlt configuration: ... at line L col C         |
| wrong type / value in .dlt          | 2    | sources.openai_batches.<setting> must be ...                |
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.cli import assert_one_clear_error, cli_env, run_cli
from .support.workload import KEY_A, PROJECT_A


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_key(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    result = run_cli("load", "--db", str(db))
    assert_one_clear_error(result, 2, "no API key configured", "OPENAI_API_KEY")
    assert not db.exists() and not Path(str(db) + ".lock").exists()


@pytest.mark.parametrize(
    "url, says",
    [
        ("not a url", "must start with http:// or https://"),
        ("api.openai.com/v1", "must start with http:// or https://"),
        ("ftp://example.com/v1", "must start with http:// or https://"),
        ("https://", "must start with http:// or https://"),
        ("http://example.com:99999/v1", "invalid host or port"),
        ("http://[::1/v1", "is not a valid URL"),
    ],
)
def test_malformed_base_url(tmp_path: Path, url: str, says: str) -> None:
    db = tmp_path / "x.duckdb"
    result = run_cli("load", "--db", str(db), env=cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=url))
    assert_one_clear_error(result, 2, "OPENAI_BASE_URL: base URL", repr(url), says)
    assert not db.exists()


def test_unreachable_host(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    url = f"http://127.0.0.1:{closed_port()}/v1"
    env = cli_env(
        OPENAI_API_KEY=KEY_A,
        OPENAI_BASE_URL=url,
        SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS="2",
        SOURCES__OPENAI_BATCHES__REQUEST_TIMEOUT="2",
    )
    result = run_cli("load", "--db", str(db), env=env)
    line = assert_one_clear_error(result, 1, f"GET {url}/batches: connection failed", "gave up after 2 attempts")
    assert "Connection refused" in line
    assert not db.exists()  # a first run that loaded nothing leaves no empty database behind


@pytest.mark.parametrize(
    "case", ["missing-directory", "path-is-a-directory", "parent-is-a-file", "path-is-a-fifo", "path-is-a-device"]
)
def test_unusable_database_path(tmp_path: Path, org: SimulatedOrg, server: SimulatorServer, case: str) -> None:
    org.generate_history(5, project=PROJECT_A, days=1)
    if case == "missing-directory":
        db, says = tmp_path / "no" / "such" / "x.duckdb", "No such file or directory"
    elif case == "path-is-a-directory":
        db, says = tmp_path / "dir.duckdb", "is a directory, not a file"
        db.mkdir()
    elif case == "path-is-a-fifo":  # once hung the load for good, holding the lock: opening a FIFO blocks
        db, says = tmp_path / "fifo.duckdb", "is not a regular file"
        os.mkfifo(db)
    elif case == "path-is-a-device":  # once an IOException after the run had started
        db, says = tmp_path / "null.duckdb", "is not a regular file"
        db.symlink_to(os.devnull)
    else:
        (tmp_path / "file").write_text("")
        db, says = tmp_path / "file" / "x.duckdb", "Not a directory"
    result = run_cli(
        "load", "--db", str(db), env=cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url), timeout=30
    )
    assert_one_clear_error(result, 2, str(db), says)
    assert server.requests == []  # refused before asking the API anything


@pytest.mark.skipif(sys.platform != "linux" or __import__("os").geteuid() == 0, reason="root ignores permissions")
def test_read_only_directory(tmp_path: Path, org: SimulatedOrg, server: SimulatorServer) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    db = locked / "x.duckdb"
    result = run_cli("load", "--db", str(db), env=cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url))
    assert_one_clear_error(result, 2, "Permission denied")


def test_database_held_by_another_program(tmp_path: Path, org: SimulatedOrg, server: SimulatorServer) -> None:
    org.generate_history(20, project=PROJECT_A, days=1)
    db = tmp_path / "held.duckdb"
    env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url)
    assert run_cli("load", "--db", str(db), env=env).returncode == 0
    before = digest(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(db)!r}); print('ready', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        server.reset_requests()
        result = run_cli("load", "--db", str(db), "--wait", "1", env=env)
        assert_one_clear_error(result, 75, "is open in another program", f"(PID {holder.pid})")
        assert server.requests == []
        status = run_cli("status", "--db", str(db), "--wait", "0.5", env=env)
        assert_one_clear_error(status, 75, "is open in another program")
    finally:
        holder.communicate("", timeout=30)
    assert digest(db) == before
    assert run_cli("load", "--db", str(db), env=env).returncode == 0  # and it works once released


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_database_file(tmp_path: Path, org: SimulatedOrg, server: SimulatorServer, damage: str) -> None:
    org.generate_history(300, project=PROJECT_A, days=10)
    db = tmp_path / "x.duckdb"
    env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url)
    if damage == "garbage":
        db.write_bytes(b"these bytes were never a DuckDB database\n" * 100)
        says = "not a valid DuckDB database file"
    else:
        assert run_cli("load", "--db", str(db), env=env).returncode == 0
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
        says = "Could not read enough bytes"
    before = digest(db)
    server.reset_requests()
    result = run_cli("load", "--db", str(db), env=env)
    assert_one_clear_error(result, 1, f"database {db}", says)
    assert digest(db) == before  # never "repaired" by overwriting what is left
    assert server.requests == []
    status = run_cli("status", "--db", str(db), env=env)
    assert_one_clear_error(status, 1, f"cannot read {db}", says)


@pytest.mark.parametrize(
    "config, says",
    [
        ("[sources.openai_batches\nmax_attempts = 2\n", "cannot read .dlt configuration"),
        ('[sources.openai_batches]\nmax_attempts = "many"\n', "sources.openai_batches.max_attempts must be a number"),
        ("[sources.openai_batches]\nmax_attempts = true\n", "sources.openai_batches.max_attempts must be a number"),
        ("[sources.openai_batches]\nrequest_timeout = -1\n", "request_timeout must be at least 0.01, got -1"),
        ("[sources.openai_batches]\nrequest_timeout = [1, 2]\n", "request_timeout must be a number"),
        # once an OverflowError after the first request (no socket waits that long)
        ('[sources.openai_batches]\napi_key = "k"\nrequest_timeout = 1e308\n', "request_timeout must be at most 86400"),
        ("[sources.openai_batches]\napi_key = 123\n", "sources.openai_batches.api_key must be a string, got int"),
        ('[sources.openai_batches]\nprojects = "research"\n', "projects must be a table"),
        ("[sources.openai_batches.projects.research]\nbase_url = 'x'\n", "projects.research.api_key is missing"),
        ('[sources.openai_batches]\napi_key = "k"\nbase_url = "localhost:8000"\n', "base_url: base URL"),
        ("[sources.openai_batches]\ndb_path = 5\n", "db_path must be a string"),
    ],
    ids=[
        "bad-toml",
        "string-for-int",
        "bool-for-int",
        "negative",
        "list-for-number",
        "timeout-beyond-any-clock",
        "int-key",
        "projects-not-a-table",
        "project-without-key",
        "base-url",
        "db-path-type",
    ],
)
def test_invalid_dlt_config(tmp_path: Path, config: str, says: str) -> None:
    project = tmp_path / "proj"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "config.toml").write_text(config)
    result = run_cli("load", env=cli_env(DLT_PROJECT_DIR=str(project)), cwd=project)
    assert_one_clear_error(result, 2, says)
    assert sorted(p.name for p in project.iterdir()) == [".dlt"]  # no database, no lock file


def test_bad_command_line_values(tmp_path: Path) -> None:
    db = str(tmp_path / "x.duckdb")
    for args in (("load", "--db", db, "--wait", "-1"), ("status", "--db", db, "--max-age", "60")):
        result = run_cli(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("openai-batches")  # argparse's one-line error
