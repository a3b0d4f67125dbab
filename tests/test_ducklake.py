"""The DuckLake destination for teams (a PostgreSQL catalog plus Parquet files; SQLite and DuckDB
catalogs too), through the real CLI against the simulator and a throwaway PostgreSQL. Every report, the
status and the notebook work on it the same as on a DuckDB file; readers read while a load writes; a load
from a second machine waits or exits 75; state travels with the data."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from openai_batches.analysis.report import collect
from openai_batches.simulator import SimulatedOrg, SimulatorServer
from openai_batches.storage.store import DuckLake, Store

from .support.cli import cli_env, run_cli, spawn_cli
from .support.workload import KEY_A, KEY_B, PROJECT_A


def lake_env(catalog: str, storage: Path, server: SimulatorServer, data_dir: Path, **extra: str) -> dict[str, str]:
    """What a user sets for `--destination ducklake`: dlt's own configuration names."""
    return cli_env(
        OPENAI_API_KEY=KEY_A,
        OPENAI_BASE_URL=server.base_url,
        DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG=catalog,
        DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE=str(storage),
        DLT_DATA_DIR=str(data_dir),
        **extra,
    )


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return str(result.stdout)


def report_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    return json.loads(ok(run_cli("report", *args, "--format", "json", env=env)))


def test_a_ducklake_on_postgres_loads_incrementally_and_reports_exactly_like_a_duckdb_file(
    postgres_dsn: str, tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """The catalog recommended for teams, in full: loads, the incremental plan, every report, `status`."""
    org.generate_history(500, project=PROJECT_A, days=500, open_fraction=0.02)
    env = lake_env(postgres_dsn, tmp_path / "lake", server, tmp_path / "dlt")
    lake, file = ["--destination", "ducklake"], ["--db", str(tmp_path / "file.duckdb")]
    for where in (lake, file):
        ok(run_cli("load", *where, env=env))
    assert_settled_alike(env, org, server, lake=lake, file=file)


def assert_settled_alike(
    env: dict[str, str], org: SimulatedOrg, server: SimulatorServer, *, lake: list[str], file: list[str]
) -> None:
    """A lake and a DuckDB file loaded from the same simulator (`env` reaches both) hold the same: once
    everything has settled, the next load of each finds nothing new with the same requests (the state came
    back from the lake), and every report and `status` read the same. Also for a lake on S3
    (test_ducklake_s3.py)."""
    org.advance(3 * 86_400)  # everything settles: nothing is open, so no figure depends on the hour it is read
    requests = []
    for where in (lake, file):
        server.reset_requests()
        summary = ok(run_cli("load", *where, env=env))
        requests.append(len(server.requests))
        assert "0 new" in summary
    assert requests[0] == requests[1] >= 1  # the same incremental plan on both: state came back from the lake

    assert report_json(env, *lake) == report_json(env, *file)
    lake_printed = ok(run_cli("status", *lake, env=env))
    lake_status = lake_printed.splitlines()[1:]
    file_status = ok(run_cli("status", *file, env=env)).splitlines()[1:]
    assert [line.split()[0] for line in lake_status] == [line.split()[0] for line in file_status]
    assert [line.split()[-5:] for line in lake_status[1:]] == [line.split()[-5:] for line in file_status[1:]]
    assert "password" not in lake_printed


def test_sqlite_and_duckdb_catalogs_load_incrementally_and_report_exactly_like_a_duckdb_file(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """The two single-machine catalogs, against one DuckDB file loaded from the same simulated API."""
    org.generate_history(500, project=PROJECT_A, days=500, open_fraction=0.02)
    file = ["--db", str(tmp_path / "file.duckdb")]
    envs = {
        kind: lake_env(f"{kind}:///{tmp_path / 'catalog'}.{kind}", tmp_path / f"lake-{kind}", server, tmp_path / kind)
        for kind in ("sqlite", "duckdb")
    }
    runs = [(env, ["--destination", "ducklake"]) for env in envs.values()] + [(envs["sqlite"], file)]
    for env, where in runs:
        ok(run_cli("load", *where, env=env))
    org.advance(3 * 86_400)
    requests = []
    for env, where in runs:
        server.reset_requests()
        assert "0 new" in ok(run_cli("load", *where, env=env))
        requests.append(len(server.requests))
    assert requests[0] == requests[1] == requests[2] >= 1
    reports = [report_json(env, *where) for env, where in runs]
    assert reports[0] == reports[2] and reports[1] == reports[2]


def test_readers_read_while_a_load_writes_and_a_second_machine_waits_or_exits_75(
    tmp_path: Path, postgres_dsn: str
) -> None:
    def machines(server: SimulatorServer) -> tuple[dict[str, str], dict[str, str]]:
        machine_a = lake_env(postgres_dsn, tmp_path / "lake", server, tmp_path / "machine-a")
        return machine_a, dict(machine_a, DLT_DATA_DIR=str(tmp_path / "machine-b"))

    assert_readers_read_while_a_load_writes(
        machines, lambda machine_b: DuckLake(catalog=postgres_dsn, storage=str(tmp_path / "lake"))
    )


# The backfill the readers run during (20 pages), and how long each of its pages takes while they run.
BACKFILL = 2_000
HOLD_S = 5.0


def assert_readers_read_while_a_load_writes(
    machines: Callable[[SimulatorServer], tuple[dict[str, str], dict[str, str]]],
    notebook: Callable[[dict[str, str]], Store],
) -> None:
    """While a backfill writes the lake from machine A (the environments `machines` gives for the simulator),
    machine B's load exits 75 naming the holder, B's report and status and the notebook's queries (the store
    `notebook` opens from B's environment, in this process) read a snapshot from before or after it, and B
    then takes over with one request. Also for a lake on S3 (test_ducklake_s3.py)."""
    from openai_batches.simulator import SimClock

    org = SimulatedOrg(projects={KEY_A: PROJECT_A, KEY_B: "proj_bravo"}, clock=SimClock(start=1_793_491_200.0), seed=3)
    org.generate_history(300, project="proj_bravo", days=30)
    org.generate_history(BACKFILL, project=PROJECT_A, days=300)
    # Pages take HOLD_S until every reader has run during the backfill, then none: the backfill (20 pages)
    # outlasts the readers however busy the machine, and is not waited for once they are done.
    with SimulatorServer(org) as server:
        machine_a, machine_b = machines(server)
        # A first, small load so readers have something to read.
        ok(run_cli("load", "--destination", "ducklake", env=dict(machine_a, OPENAI_API_KEY=KEY_B)))
        server.reset_requests()
        server.latency = HOLD_S
        backfill = spawn_cli("load", "--destination", "ducklake", "--wait", "0", env=machine_a)
        try:
            deadline = time.monotonic() + 60
            while not server.requests and time.monotonic() < deadline:
                time.sleep(0.05)  # its first request is made with the lock held
            # A load on another machine (its own working directory) exits 75 naming the holder ...
            busy = run_cli("load", "--destination", "ducklake", "--wait", "0", env=machine_b)
            assert busy.returncode == 75, busy.stderr
            assert "another load is using" in busy.stderr and "openai-batches load, pid" in busy.stderr
            # ... while readers neither wait nor fail: a report and status from the other machine ...
            assert report_json(machine_b, "--destination", "ducklake", "--only", "cost_summary")["cost_summary"]
            ok(run_cli("status", "--destination", "ducklake", env=machine_b))
            # ... and a notebook's query (in this process), again and again until the load is done.
            store = notebook(machine_b)
            seen: list[int] = []
            while len(seen) < 3:
                seen.append(collect(store, only=["cost_summary"])[0].records()[0]["batches"])
            assert backfill.poll() is None, "the backfill ended before the readers ran"
            server.latency = 0.0
            while backfill.poll() is None:
                seen.append(collect(store, only=["cost_summary"])[0].records()[0]["batches"])
        finally:
            server.latency = 0.0
            out, err = backfill.communicate(timeout=300)
        assert backfill.returncode == 0, out + err
        assert f"{BACKFILL} new" in out.replace(",", "")
        # Each read saw the lake before the load or after it, never half of it; and after it, all of it.
        seen.append(collect(store, only=["cost_summary"])[0].records()[0]["batches"])
        assert seen[:3] == [300] * 3 and set(seen) <= {300, 300 + BACKFILL} and seen[-1] == 300 + BACKFILL, seen
        # With the load done, the other machine takes over: the state travelled with the data (1 request).
        server.reset_requests()
        takeover = ok(run_cli("load", "--destination", "ducklake", "--wait", "30", env=machine_b))
        assert "ok: 1 requests, 0 new" in takeover
        assert len(server.requests) == 1


def test_the_notebook_explores_a_ducklake(tmp_path: Path, org: SimulatedOrg, server: SimulatorServer) -> None:
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    org.generate_history(300, project=PROJECT_A, days=200)
    catalog = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    env = lake_env(catalog, tmp_path / "lake", server, tmp_path / "dlt", OPENAI_BATCHES_DESTINATION="ducklake")
    ok(run_cli("load", env=env))  # OPENAI_BATCHES_DESTINATION chooses the lake, as for every command
    notebook = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb", as_version=4)
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        nbclient.NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "reports from DuckLake openai_batches_lake" in printed


def test_a_ducklake_without_a_catalog_or_storage_is_a_clear_configuration_error(
    tmp_path: Path, server: SimulatorServer
) -> None:
    env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url)
    result = run_cli("load", "--destination", "ducklake", env=env)
    assert result.returncode == 2 and "DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG" in result.stderr
    env["DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG"] = "postgres://u:secretpw@127.0.0.1:1/db"
    result = run_cli("load", "--destination", "ducklake", env=env)
    assert result.returncode == 2 and "storage" in result.stderr
    env["DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE"] = str(tmp_path / "lake")
    result = run_cli("load", "--destination", "ducklake", env=env)  # an unreachable catalog
    assert result.returncode == 1 and "cannot reach the catalog" in result.stderr
    assert "secretpw" not in result.stdout + result.stderr
    result = run_cli("load", "--destination", "ducklake", "--db", "x.duckdb", env=env)
    assert result.returncode == 2 and "--db names a DuckDB file" in result.stderr


def test_the_queries_run_on_a_ducklake_in_the_duckdb_cli(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    import shutil
    import subprocess
    import sys

    duckdb_cli = Path(sys.executable).parent / "duckdb"
    if not duckdb_cli.exists() and not shutil.which("duckdb"):
        pytest.skip("the DuckDB CLI (PyPI package duckdb-cli) is not installed in this environment")
    org.generate_history(200, project=PROJECT_A, days=200)
    env = lake_env(f"sqlite:///{tmp_path / 'c.sqlite'}", tmp_path / "lake", server, tmp_path / "dlt")
    ok(run_cli("load", "--destination", "ducklake", env=env))
    setup = ok(run_cli("sql-setup", "--destination", "ducklake", env=env)).strip()
    assert "http" not in setup.lower().replace("autoinstall", "")  # extensions from their packages only
    query = (Path(__file__).resolve().parents[1] / "queries" / "01_cost_summary.sql").read_text()
    result = subprocess.run(
        [str(duckdb_cli if duckdb_cli.exists() else "duckdb"), "-csv", "-cmd", setup],
        input=query,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("200,"), result.stdout


def test_the_postgres_lock_holder_names_pid_host_and_start_time_even_on_a_long_host_name(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 (9): PostgreSQL keeps 63 bytes of an application_name; on a long host name the README's
    `started ...` was cut off. The start time comes from the holder's session, the host is cut to fit."""
    import re
    import socket

    from openai_batches.storage.lock import DatabaseBusy, postgres_lock

    host = "build-worker-0042.eu-west-1.compute.internal.example.com"  # as long as cloud host names get
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    holding = postgres_lock(postgres_dsn, key=16, wait=0, shown="the lake")
    waiting = postgres_lock(postgres_dsn, key=16, wait=0, shown="the lake")
    with holding, pytest.raises(DatabaseBusy) as busy, waiting:
        pass
    message = str(busy.value)
    holder = re.search(r"\((openai-batches load, pid (\d+) on ([^,]+), started (\S+))\)", message)
    assert holder, message
    assert int(holder.group(2)) == os.getpid()
    assert host.startswith(holder.group(3).removesuffix("...")) and len(holder.group(3)) >= 20
    started = time.strptime(holder.group(4), "%Y-%m-%dT%H:%M:%SZ")
    assert abs(time.mktime(started) - time.mktime(time.gmtime())) < 120


def _sessions(dsn: str) -> int:
    """Connections the catalog's database has seen (PostgreSQL counts a session when it ends), this one not
    included."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(dsn)) as con, con.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def test_a_load_on_a_postgres_lake_attaches_the_catalog_once(
    postgres_dsn: str, tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """A run opens one DuckDB instance with the lake attached, for dlt's steps and ours: each of dlt's
    connections used to load the extensions and attach the lake again (~0.5 s each, 6 in a run with nothing
    new, 2 s more than a file), and each attach is a session of the catalog's database."""
    org.generate_history(30, project=PROJECT_A, days=30, open_fraction=0.1)
    env = lake_env(postgres_dsn, tmp_path / "lake", server, tmp_path / "dlt")
    ok(run_cli("load", "--destination", "ducklake", env=env))
    for _ in range(2):
        before = _sessions(postgres_dsn)
        assert "0 new" in ok(run_cli("load", "--destination", "ducklake", env=env))
        time.sleep(0.2)  # the sessions' ends are counted as their backends exit
        seen = _sessions(postgres_dsn) - before - 1  # our own query's session counted when it ended
        # The load's lock (one session) and the one instance's (its catalog connections: one per transaction
        # open at once, 3 measured). An instance per dlt connection made 17.
        assert seen <= 5, f"{seen} sessions of the catalog's database for a run with nothing new"
