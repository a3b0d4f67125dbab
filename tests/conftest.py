"""Shared fixtures: every test gets its own dlt working directory, database and simulator."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import LoadResult, run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

# A throwaway PostgreSQL (`postgres_server`, `postgres_dsn`) for the tests that need one.
pytest_plugins = ["tests.support.postgres"]

# A fixed "now" so that workloads and lifecycles are the same on every run: 2026-11-01T00:00:00Z.
NOW = 1_793_491_200.0
KEY_A, KEY_B = "sk-test-alpha-0123456789", "sk-test-bravo-9876543210"
PROJECT_A, PROJECT_B = "proj_alpha", "proj_bravo"
# A real recorded list page (2025-08-21, before `usage`/`model` existed), copied from shared/fixtures.
FIXTURE_PAGE = Path(__file__).resolve().parent / "fixtures" / "real-list-batches-2025-08-21.json"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's keys, `.dlt` files or dlt working directories."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_ADMIN_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_BATCHES_DB",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path / "project"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    (tmp_path / "project").mkdir()
    return tmp_path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "batches.duckdb")


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B}, clock=SimClock(start=NOW), seed=7)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org) as srv:
        yield srv


def config_for(server_url: str, *keys: str, names: tuple[str | None, ...] | None = None, **kw: Any) -> RunConfig:
    names = names or tuple(None for _ in keys)
    projects = tuple(ProjectConfig(name=n, api_key=k, base_url=server_url) for k, n in zip(keys, names, strict=True))
    return RunConfig(projects=projects, **kw)


def load(db: str, server: SimulatorServer, *keys: str, **kw: Any) -> LoadResult:
    return run_load(db, config_for(server.base_url, *(keys or (KEY_A,))), **kw)


def list_requests(server: SimulatorServer) -> list[Any]:
    return [r for r in server.requests if r.path.rstrip("/").endswith("/batches")]


def table(db: str, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql).fetchall()


def rows_by_id(db: str) -> dict[str, dict[str, Any]]:
    with duckdb.connect(db, read_only=True) as con:
        cur = con.execute("SELECT * FROM openai_batches.batches")
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


class StaticApi:
    """A list endpoint over a fixed list of batch objects, for recorded pages and odd payloads
    the simulator would never produce. Pages exactly like the API: newest first, `after` = id."""

    def __init__(self, batches: list[dict[str, Any]], project: str = "proj_static") -> None:
        self.batches = batches
        self.project = project
        self.paths: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                api.paths.append(self.path)
                query = parse_qs(url.query)
                ids = [b["id"] for b in api.batches]
                if url.path.startswith("/v1/batches/"):
                    wanted = url.path.rsplit("/", 1)[1]
                    found = [b for b in api.batches if b["id"] == wanted]
                    self._send(200 if found else 404, found[0] if found else {"error": {"message": "nope"}})
                    return
                limit = int(query.get("limit", ["20"])[0])
                start = ids.index(query["after"][0]) + 1 if "after" in query else 0
                data = api.batches[start : start + limit]
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                        "has_more": start + limit < len(api.batches),
                    },
                )

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("openai-project", api.project)
                self.send_header("x-request-id", "req_static")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}/v1"

    def __enter__(self) -> StaticApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def fixture_page() -> dict[str, Any]:
    return json.loads(FIXTURE_PAGE.read_text())
