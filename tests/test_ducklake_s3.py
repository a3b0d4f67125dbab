"""A DuckLake whose Parquet files are on S3: moto's server as the S3-compatible endpoint (a local process on a
free port, signatures checked: tests/support/s3.py), the catalog in the throwaway PostgreSQL, DuckDB's httpfs
from its package. Configured the dlt way (`..__STORAGE__BUCKET_URL`, the usual AWS names or dlt's own), and
held to what a lake on a folder is held to (test_ducklake.py): every report as a DuckDB file's, readers during
a write, a second machine waiting or exiting 75, a load killed mid-way then an exact next run; the secret
key nowhere. Skipped (one line) where moto is not installed; the configuration's own tests, which need no
endpoint, are in test_ducklake_s3_config.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto", reason="moto[server] is not installed (a dev dependency): no S3 endpoint to test on")

from openai_batches.config import configured_store
from openai_batches.simulator import SimulatedOrg, SimulatorServer

from .support.assertions import files_containing, paths_now
from .support.cli import assert_one_clear_error, cli_env, run_cli, spawn_cli
from .support.s3 import MotoS3, moto_s3
from .support.workload import KEY_A, PROJECT_A
from .test_ducklake import assert_readers_read_while_a_load_writes, assert_settled_alike, ok

LAKE = ["--destination", "ducklake"]
# dlt's names of the bucket's settings (DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__CREDENTIALS__<NAME>)
DLT_S3 = "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__CREDENTIALS__"


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[MotoS3]:
    """moto's S3 server with one bucket, for one test; stopped after it."""
    with moto_s3(tmp_path / "moto") as server:
        yield server


def s3_lake_env(
    catalog: str, s3: MotoS3, server: SimulatorServer, data_dir: Path, *, dlt_names: bool = False, **extra: str
) -> dict[str, str]:
    """What a team sets for a lake on S3: the catalog, the bucket URL and the keys, by the usual AWS names or
    (`dlt_names`) by dlt's."""
    if dlt_names:
        keys = {
            f"{DLT_S3}AWS_ACCESS_KEY_ID": s3.key_id,
            f"{DLT_S3}AWS_SECRET_ACCESS_KEY": s3.secret,
            f"{DLT_S3}ENDPOINT_URL": s3.endpoint,
        }
    else:
        keys = s3.env()
    env = {k: v for k, v in cli_env().items() if not k.startswith("AWS_")}  # none of the developer's own
    return env | {
        "OPENAI_API_KEY": KEY_A,
        "OPENAI_BASE_URL": server.base_url,
        "DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG": catalog,
        "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL": s3.url("teams/batches"),
        "DLT_DATA_DIR": str(data_dir),
        **keys,
        **extra,
    }


def store_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The store as the notebook opens it: `configured_store()` from the same environment."""
    with monkeypatch.context() as m:
        for name in [n for n in env if n.startswith(("AWS_", "DESTINATION__"))]:
            m.setenv(name, env[name])
        return configured_store(cli_destination="ducklake")


def kill_mid_load(process: subprocess.Popen[str], data_dir: Path) -> str:
    """SIGKILL `process` once dlt has completed a job of the package it is loading into the lake (some of
    the package's Parquet files are on S3, the rest and the merge are not): where it died."""
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if paths_now(data_dir, "pipelines/*/openai_batches/load/normalized/*/completed_jobs/*"):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the load ended before the kill point: {out}{err}"
    left = paths_now(data_dir, "pipelines/*/openai_batches/load/normalized/*/*_jobs/*")
    assert left, "nothing of the killed load was left to resume"
    return out + err


def assert_no_secret(secret: str, *, outputs: list[str], folder: Path, s3: MotoS3, catalog: str) -> None:
    """The secret key is in no output, no file under `folder` (dlt's working directories and traces, the
    DuckDB file), no object in the bucket and no row of the catalog."""
    import psycopg2

    for text in outputs:
        assert secret not in text, f"the secret key was printed: {text[:300]}"
    server_log = str(s3.log)  # the fake server's own, which handed the key out
    leaked = [p for p in files_containing(folder, secret.encode()) if p != server_log]
    assert leaked == [], f"the secret key is in {leaked}"
    assert [k for k, v in s3.objects().items() if secret.encode() in v] == []
    rows = 0
    with psycopg2.connect(catalog) as con, con.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        for schema, table in cur.fetchall():
            cur.execute(f'SELECT t::text FROM "{schema}"."{table}" AS t')
            for (row,) in cur.fetchall():
                rows += 1
                assert secret not in row, f"the secret key is in the catalog's {schema}.{table}"
    assert rows > 0  # the catalog was read, not an empty database


def test_a_ducklake_on_s3_reports_like_a_duckdb_file_and_a_load_killed_mid_way_is_followed_by_an_exact_run(
    postgres_dsn: str,
    s3: MotoS3,
    tmp_path: Path,
    org: SimulatedOrg,
    server: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org.generate_history(500, project=PROJECT_A, days=500, open_fraction=0.02)
    env = s3_lake_env(postgres_dsn, s3, server, tmp_path / "dlt")
    file = ["--db", str(tmp_path / "file.duckdb")]
    outputs = [printed(run_cli("-v", "load", *LAKE, env=env)), printed(run_cli("load", *file, env=env))]
    assert any(key.endswith(".parquet") for key in s3.objects("teams/batches/"))  # the data is in the bucket
    # Every report and status the same as the file's, once everything has settled (test_ducklake.py).
    assert_settled_alike(env, org, server, lake=LAKE, file=file)

    # The API moves on; a load of the lake is killed while dlt copies its files into the lake.
    org.advance(3600)
    for _ in range(120):
        org.create_batch(project=PROJECT_A)
    outputs.append(kill_mid_load(spawn_cli("load", *LAKE, env=env), tmp_path / "dlt"))
    # The next run takes up the killed one's package and ends with exactly the API's data: the rows the file
    # loaded from the same API hold (the lake was refused by every load after a kill: `RETURNING` on a
    # DuckLake table, storage/destination.py).
    outputs += [printed(run_cli("-v", "load", *LAKE, env=env)), printed(run_cli("load", *file, env=env))]
    assert "loading what an interrupted run had already extracted" in outputs[-2]
    with store_from(env, monkeypatch).connect(read_only=True) as con:
        assert rows_not_in_both(con, tmp_path / "file.duckdb") == (0, 0, 620, 620) and org.count() == 620

    # The DuckDB CLI reads the lake with `sql-setup`, the keys from the shell's AWS names (not in the setup).
    setup = ok(run_cli("sql-setup", *LAKE, env=env)).strip()
    cli = Path(sys.executable).parent / "duckdb"
    if cli.exists():
        query = subprocess.run(
            [str(cli), "-csv", "-cmd", setup],
            input="SELECT count(*) AS n FROM openai_batches.batches;",
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert query.returncode == 0 and query.stdout.split() == ["n", "620"], query.stderr
    # A wrong secret key fails as AWS would (403), in one line that shows no key.
    wrong = dict(env, AWS_SECRET_ACCESS_KEY="wrong-" + s3.secret[6:])
    denied = run_cli("-v", "report", *LAKE, "--only", "cost_summary", env=wrong)
    assert "403" in assert_one_clear_error(denied, 1, "openai_batches_lake") and "wrong-" not in denied.stderr

    outputs += [setup, denied.stdout + denied.stderr]
    assert_no_secret(s3.secret, outputs=outputs, folder=tmp_path, s3=s3, catalog=postgres_dsn)


def printed(result: subprocess.CompletedProcess[str]) -> str:
    """A successful run's stdout and stderr (the log lines of `-v` are on stderr)."""
    ok(result)
    return result.stdout + result.stderr


def rows_not_in_both(con: Any, file: Path) -> tuple[int, int, int, int]:
    """(rows of the lake's `batches` not in the file's, the other way round, the lake's rows, its distinct ids):
    every column compared but dlt's load and row ids."""
    con.execute(f"ATTACH '{file}' AS loaded_file (READ_ONLY)")
    columns = ", ".join(
        f'"{name}"'
        for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'loaded_file' "
            "AND table_schema = 'openai_batches' AND table_name = 'batches' AND column_name NOT LIKE '_dlt_%' "
            "ORDER BY ordinal_position"
        ).fetchall()
    )
    lake, other = "openai_batches.batches", "loaded_file.openai_batches.batches"
    only_lake = con.execute(
        f"SELECT count(*) FROM (SELECT {columns} FROM {lake} EXCEPT ALL SELECT {columns} FROM {other})"
    )
    counts = [only_lake.fetchone()[0]]
    counts += con.execute(
        f"SELECT count(*) FROM (SELECT {columns} FROM {other} EXCEPT ALL SELECT {columns} FROM {lake})"
    ).fetchone()
    counts += con.execute(f"SELECT count(*), count(DISTINCT id) FROM {lake}").fetchone()
    return tuple(counts)  # type: ignore[return-value]


def test_readers_read_a_ducklake_on_s3_while_a_load_writes_and_a_second_machine_waits_or_exits_75(
    postgres_dsn: str, s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A has the keys by the usual AWS names, machine B by dlt's; the notebook opens the lake from
    B's configuration."""

    def machines(server: SimulatorServer) -> tuple[dict[str, str], dict[str, str]]:
        machine_a = s3_lake_env(postgres_dsn, s3, server, tmp_path / "machine-a")
        machine_b = s3_lake_env(postgres_dsn, s3, server, tmp_path / "machine-b", dlt_names=True)
        assert not any(name.startswith("AWS_") for name in machine_b)
        return machine_a, machine_b

    assert_readers_read_while_a_load_writes(machines, lambda machine_b: store_from(machine_b, monkeypatch))
