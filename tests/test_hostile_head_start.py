"""Hostile tests of the head start (load/head_start.py): whatever a server does while the list is read ahead,
a run gives the outcome, the requests and the one-line error of a run without it (one with `.dlt/config.toml`
present, which turns the head start off)."""

from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from openai_batches.cli.main import main
from openai_batches.load import head_start

from .support.assertions import table
from .support.cli import cli_env, error_lines, spawn_cli
from .support.fake_api import Reply, Route, ScriptedApi, count_requests, envelope, json_reply, newest_first

KEY = "sk-test-alpha-0123456789"
BATCHES = newest_first(7)  # pages of 3 (the server's limit): 3 pages


def _by_cursor(answer: Callable[[str | None, int], Reply]) -> Route:
    """A list route answering by cursor and the how-many-th request for that cursor this is (from 1):
    the same answers whatever the timing, head start or not. `GET /batches/{id}` from BATCHES."""
    seen: dict[str | None, int] = {}

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path.startswith("/v1/batches/"):
            found = [b for b in BATCHES if b["id"] == path.rsplit("/", 1)[1]]
            return json_reply(found[0]) if found else json_reply({"error": {"message": "No batch found"}}, 404)
        after = query.get("after")
        seen[after] = seen.get(after, 0) + 1
        return answer(after, seen[after])

    return route


def _page(after: str | None, size: int = 3) -> tuple[list[dict[str, Any]], bool]:
    ids = [b["id"] for b in BATCHES]
    start = ids.index(after) + 1 if after else 0
    return BATCHES[start : start + size], start + size < len(BATCHES)


def _list(after: str | None, attempt: int) -> Reply:
    data, more = _page(after)
    return json_reply(envelope(data, more))


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: Route, *, head: bool, **env: str
) -> tuple[int, list[str], list[tuple[str, str | None]], list[tuple[Any, ...]], bool]:
    """One first run (into a new database) against `route`: exit code, error lines (request ids masked), the
    list requests the server saw, the rows loaded, and whether the head start began."""
    where = tmp_path / ("head" if head else "plain")
    where.mkdir()
    project = where / "project"
    (project / ".dlt").mkdir(parents=True)
    if not head:  # any .dlt file turns the head start off
        (project / ".dlt" / "config.toml").write_text("[unrelated]\nvalue = 1\n")
    monkeypatch.setenv("DLT_PROJECT_DIR", str(project))
    monkeypatch.setenv("DLT_DATA_DIR", str(where / "dlt"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SOURCES__OPENAI_BATCHES__REQUESTS", "false")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    began: list[bool] = []
    real_begin = head_start.begin

    def begin(*args: Any) -> Any:
        started = real_begin(*args)
        began.append(started is not None)
        return started

    monkeypatch.setattr(head_start, "begin", begin)
    db = str(where / "batches.duckdb")
    with ScriptedApi(route) as api:
        monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["load", "--db", db])
        time.sleep(0.2)  # nothing more arrives later from a thread left behind
        lists = [(p, q.get("after")) for p, q in api.requests if p == "/v1/batches"]
    stderr = err.getvalue()
    assert KEY not in stderr
    # the server's port and request numbers aside
    errors = [re.sub(r"127\.0\.0\.1:\d+|req_scripted_\d+", "*", line) for line in error_lines(stderr)]
    rows = table(db, "SELECT id FROM openai_batches.batches ORDER BY id") if Path(db).exists() and code == 0 else []
    return code, errors, lists, rows, began == [True]


def _same_with_and_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_route: Callable[[], Route], **env: str
):  # type: ignore[no-untyped-def]
    with_head = _run(tmp_path, monkeypatch, make_route(), head=True, **env)
    without = _run(tmp_path, monkeypatch, make_route(), head=False, **env)
    assert with_head[4] and not without[4]  # the head start ran in the first only
    assert with_head[:4] == without[:4]
    return with_head


def test_a_page_that_repeats_what_was_listed_stops_the_read_ahead_where_paging_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """has_more true, and every page after the first the same batches in another order (a new last id each
    time): paging refuses the second page; the head start went on to request pages no run would."""

    def answer(after: str | None, attempt: int) -> Reply:
        head = BATCHES[:5]
        if after is None:
            return json_reply(envelope(head, True))
        turn = ([b["id"] for b in head].index(after) + 2) % len(head)  # a new last id, 5 times
        return json_reply(envelope(head[turn:] + head[:turn], True))

    code, errors, lists, _, _ = _same_with_and_without(tmp_path, monkeypatch, lambda: _by_cursor(answer))
    assert code == 1 and len(errors) == 1 and "repeats batches already listed" in errors[0], errors
    assert len(lists) == 2, lists


def test_retries_and_compressed_pages_end_as_without_the_head_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 then an HTML 503 on the second page, then its answer; gzip bodies: every batch, the page once more
    per failure, as without the head start."""

    def answer(after: str | None, attempt: int) -> Reply:
        data, more = _page(after)
        if after == BATCHES[2]["id"] and attempt == 1:
            return json_reply({"error": {"message": "slow down"}}, 429, **{"retry-after-ms": "10"})
        if after == BATCHES[2]["id"] and attempt == 2:
            return Reply(503, b"<html>busy</html>", "text/html", {"retry-after-ms": "10"})
        body = gzip.compress(json.dumps(envelope(data, more)).encode())
        return Reply(200, body, headers={"content-encoding": "gzip"})

    code, errors, lists, rows, _ = _same_with_and_without(tmp_path, monkeypatch, lambda: _by_cursor(answer))
    assert (code, errors) == (0, [])
    assert len(rows) == len(BATCHES) and len(lists) == 5, lists  # 3 pages, 2 retries


def test_the_retry_budget_and_timeout_from_the_environment_hold_for_the_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS=2: the second page's 500s end the run after two attempts, in the
    same line, as without the head start."""

    def answer(after: str | None, attempt: int) -> Reply:
        if after is not None:
            return json_reply({"error": {"message": f"internal error for key {KEY}"}}, 500, **{"retry-after-ms": "5"})
        return _list(after, attempt)

    code, errors, lists, _, _ = _same_with_and_without(
        tmp_path,
        monkeypatch,
        lambda: _by_cursor(answer),
        SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS="2",
        SOURCES__OPENAI_BATCHES__REQUEST_TIMEOUT="5",
    )
    assert code == 1 and len(errors) == 1 and "500" in errors[0], errors
    assert len(lists) == 3, lists


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_read_ahead_hangs_stops_the_run_in_one_line_and_frees_the_lock(
    tmp_path: Path, signum: int
) -> None:
    hang = 60.0

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        time.sleep(hang)
        return _list(None, 1)

    db = str(tmp_path / "new.duckdb")
    with ScriptedApi(route) as api:
        env = cli_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=api.base_url, DLT_PROJECT_DIR=str(tmp_path / "project"))
        process = spawn_cli("load", "--db", db, env=env)
        deadline = time.monotonic() + 30
        while not api.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert api.requests, "the head start made no request"
        time.sleep(1.5)  # dlt imported meanwhile: the run now waits on the page read ahead
        process.send_signal(signum)
        started = time.monotonic()
        out, err = process.communicate(timeout=20)
        assert time.monotonic() - started < 10
        assert process.returncode == 128 + signum, (process.returncode, err)
        assert "Traceback" not in out + err and KEY not in out + err, err
        assert len(error_lines(err)) == 1, err
        from openai_batches.storage.lock import database_lock

        with database_lock(db, wait=0):  # released
            pass


@pytest.mark.parametrize("where", ["config folder", "temporary directory"])
def test_a_dlt_file_in_dlts_global_directory_turns_the_head_start_off(tmp_path: Path, where: str) -> None:
    """dlt's global directory (a user who is not root) is ~/$DLT_CONFIG_FOLDER, or $TMPDIR/dlt when the home
    directory cannot be written: a secrets.toml there naming the project's server configures the run, and the
    head start, blind to it, sent OPENAI_API_KEY to OPENAI_BASE_URL, a server the run never uses."""
    env_only = ScriptedApi(_by_cursor(_list))
    configured = ScriptedApi(_by_cursor(_list))
    with env_only, configured:
        env = cli_env(
            OPENAI_API_KEY=KEY,
            OPENAI_BASE_URL=env_only.base_url,
            SOURCES__OPENAI_BATCHES__REQUESTS="false",
            DLT_PROJECT_DIR=str(tmp_path / "project"),
        )
        env.pop("XDG_DATA_HOME", None)
        if where == "config folder":
            env.update(HOME=str(tmp_path / "home"), DLT_CONFIG_FOLDER=".cfg")
            folder = tmp_path / "home" / ".cfg"
        else:
            env.update(HOME=str(tmp_path / "no-home"), TMPDIR=str(tmp_path / "tmp"))
            folder = tmp_path / "tmp" / "dlt"
        folder.mkdir(parents=True)
        (folder / "secrets.toml").write_text(
            f'[sources.openai_batches.projects.main]\napi_key = "{KEY}"\nbase_url = "{configured.base_url}"\n'
        )
        db = tmp_path / "new.duckdb"
        # as a user who is not root (dlt's global directory is /var/dlt for root)
        program = (
            "import os, sys; os.geteuid = lambda: 1000\n"
            "from openai_batches.cli.main import main\n"
            f"sys.exit(main(['load', '--db', {str(db)!r}]))\n"
        )
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert count_requests(configured) >= 3
        assert env_only.requests == [], env_only.requests
    assert table(str(db), "SELECT count(*) FROM openai_batches.batches") == [(len(BATCHES),)]
