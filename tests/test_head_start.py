"""The head start (load/head_start.py): the first project's list read while the program starts, used only when
the real configuration is the one assumed, with no request more than a run makes without it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from openai_batches.cli.main import main
from openai_batches.load import head_start
from openai_batches.simulator import SimulatorServer
from openai_batches.storage.store import DuckDBFile

from .support.assertions import table
from .support.cli import cli_env, error_lines, run_cli
from .support.providers import World

PAGES = 3


def _history(world: World) -> int:
    """A history of `PAGES` list pages, everything ended (a no-change run then re-reads nothing)."""
    n = (PAGES - 1) * world.page_size + 50
    world.generate_history(n, project=world.a, days=10, open_fraction=0.0)
    world.advance(3 * 86_400)
    return n


def _lists(world: World, server: SimulatorServer) -> list[str | None]:
    """The cursor of every list request the server saw, in order."""
    return [r.query.get(world.cursor) for r in server.requests if r.path.endswith("/batches")]


def _env(world: World, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in world.env(server).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOURCES__OPENAI_BATCHES__REQUESTS", "false")  # the list is what this is about


def test_a_backfill_reads_the_list_ahead_and_loads_exactly_what_paging_alone_would(
    db: str, world: World, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = _history(world)
    _env(world, server, monkeypatch)
    monkeypatch.setattr(head_start, "READ_AHEAD_PAGES", 1)  # the window fills and drains
    assert main(["load", "--db", db]) == 0
    cursors = _lists(world, server)
    assert len(cursors) == PAGES and cursors[0] is None and len(set(cursors)) == PAGES, cursors
    assert table(db, f"SELECT count(*) FROM openai_batches.{world.table}") == [(n,)]
    assert set(world.rows(db)) == set(world.truth(world.a))

    server.reset_requests()
    assert main(["load", "--db", db]) == 0
    assert _lists(world, server) == [None]  # a run with nothing new: its one request, the head page


def test_the_first_requests_leave_before_dlt_is_imported(tmp_path: Path, world: World, server: SimulatorServer) -> None:
    _history(world)
    program = textwrap.dedent(
        f"""
        import sys
        from openai_batches.load.head_start import begin
        head = begin({str(tmp_path / "new.duckdb")!r}, None)
        print("begun" if head is not None else "none", flush=True)
        sys.stdin.readline()
        print("dlt imported" if "dlt" in sys.modules else "no dlt", flush=True)
        """
    )
    env = cli_env(**world.env(server), SOURCES__OPENAI_BATCHES__REQUESTS="false")
    with subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        assert process.stdout.readline().strip() == "begun"
        deadline = time.monotonic() + 30
        while len(_lists(world, server)) < PAGES and time.monotonic() < deadline:
            time.sleep(0.02)
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "no dlt"
    # a database that does not exist yet: the whole list, once, in order
    cursors = _lists(world, server)
    assert len(cursors) == PAGES and cursors[0] is None and len(set(cursors)) == PAGES, cursors


def test_no_head_start_where_a_dlt_file_may_configure_the_run(
    tmp_path: Path, world: World, server: SimulatorServer
) -> None:
    (tmp_path / "project" / ".dlt").mkdir()
    (tmp_path / "project" / ".dlt" / "config.toml").write_text("[sources.openai_batches]\nlookback_seconds = 60\n")
    env = cli_env(**world.env(server), DLT_PROJECT_DIR=str(tmp_path / "project"))
    program = f"from openai_batches.load.head_start import begin; print(begin({str(tmp_path / 'x.duckdb')!r}, None))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == "None", done.stderr
    assert server.requests == []


def test_a_head_start_for_another_database_is_dropped_and_stops_reading(
    tmp_path: Path, world: World, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(world)
    _env(world, server, monkeypatch)
    monkeypatch.setattr(head_start, "READ_AHEAD_PAGES", 1)
    head = head_start.begin(str(tmp_path / "assumed.duckdb"), None)
    assert head is not None
    assert not head.matches(head.config, DuckDBFile(str(tmp_path / "other.duckdb")))
    head.discard()
    made = len(server.requests)
    time.sleep(0.5)
    assert len(server.requests) == made <= 2  # the head page and at most the one the window had room for


def test_a_run_into_an_existing_database_requests_nothing_before_it_starts(
    db: str, world: World, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(world)
    _env(world, server, monkeypatch)
    assert main(["load", "--db", db]) == 0
    assert head_start.begin(db, None) is None
    assert head_start.begin(str(Path(db).parent / "missing" / "x.duckdb"), None) is None  # cannot be created
    server.reset_requests()
    time.sleep(0.2)
    assert server.requests == []


def test_a_refused_key_is_one_request_and_one_line(tmp_path: Path, world: World, server: SimulatorServer) -> None:
    env = cli_env(**{**world.env(server), **{k: v + "x" for k, v in world.env(server).items() if k.endswith("KEY")}})
    env["DLT_PROJECT_DIR"] = str(tmp_path / "project")
    done = run_cli("load", "--db", str(tmp_path / "x.duckdb"), env=env)
    assert done.returncode == 1, done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and ("HTTP 401" in errors[0] or "authentication" in errors[0].lower()), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert len(server.requests) == 1, [(r.path, r.status) for r in server.requests]


def test_a_run_that_gives_up_on_the_lock_leaves_the_holders_name_for_the_next(tmp_path: Path) -> None:
    from openai_batches.storage.lock import DatabaseBusy, database_lock, lock_path

    db = str(tmp_path / "held.duckdb")
    program = textwrap.dedent(
        f"""
        import sys
        from openai_batches.storage.lock import database_lock
        with database_lock({db!r}, wait=0):
            print("holding", flush=True)
            sys.stdin.readline()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as p:
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline().strip() == "holding"
        holder = lock_path(db).read_text()
        assert holder.startswith(f"pid {p.pid}, load started")
        for _ in range(2):  # each attempt names the holder; the first gave up without erasing it
            with pytest.raises(DatabaseBusy, match=f"pid {p.pid}, load started"), database_lock(db, wait=0):
                pass
        assert lock_path(db).read_text() == holder
        p.stdin.write("\n")
        p.stdin.flush()
