"""One provider's side of a test, so that a hardening test runs against every provider's path unchanged.

A `World` is what a test needs to know about a provider: the simulated organisation's projects of that
provider (OpenAI projects, or Anthropic workspaces) and their keys, the environment the CLI takes them from,
a `RunConfig` for the runner, the table its batches land in, and the truth: the simulator's batch objects now,
to compare rows with. It creates batches, cancels and deletes them (Anthropic only: OpenAI has no delete) and
moves the shared clock.

`world` is a fixture over `PROVIDERS` (registered in conftest): a test that takes it runs once per provider,
on the shared `org` and `server` fixtures (whose organisation has both providers' projects).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.simulator import SimulatedOrg, SimulatorServer

from . import fake_api
from .fake_api import Reply, Route, json_reply
from .workload import ANTHROPIC_KEY_A, ANTHROPIC_KEY_B, KEY_A, KEY_B, PROJECT_A, PROJECT_B, WORKSPACE_A, WORKSPACE_B

PROVIDERS = ("openai", "anthropic")

# Anthropic histories are kept younger than this many days, so that no batch reaches its 29-day archival
# (`archived_at`, a change to an ended batch that an incremental load does not look for) while a test runs.
_ANTHROPIC_HISTORY_DAYS_MAX = 25.0


@dataclass
class World:
    """A provider's projects in a simulated organisation. `a` and `b` are the two projects' ids as the
    simulator knows them (and as the `project` column holds them: configured under those names)."""

    provider: str
    org: SimulatedOrg
    a: str
    b: str
    key_a: str
    key_b: str
    table: str  # in the `openai_batches` schema
    list_path: str  # the list endpoint's path: where a test aims faults at paging
    root: str = "http://simulator"  # the API root the truth's URLs are on (the last server configured)

    @property
    def anthropic(self) -> bool:
        return self.provider == "anthropic"

    @property
    def id_prefix(self) -> str:
        return "msgbatch_" if self.anthropic else "batch_"

    @property
    def cursor(self) -> str:
        """The list's cursor parameter (`after` / `after_id`)."""
        return "after_id" if self.anthropic else "after"

    @property
    def page_size(self) -> int:
        """Batches per list page as the loader asks for them."""
        return 1000 if self.anthropic else 100

    @property
    def status(self) -> str:
        """The status field (and column) of a batch object."""
        return "processing_status" if self.anthropic else "status"

    @property
    def ended(self) -> str:
        """The status value of a batch that finished normally."""
        return "ended" if self.anthropic else "completed"

    def opened(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A scripted `batch` (make_batch's) made still open: in progress, no end."""
        if self.anthropic:
            counts = dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
            batch.update(processing_status="in_progress", ended_at=None, results_url=None)
            batch["request_counts"] = {"processing": 10, **counts}
        else:
            batch.update(status="in_progress", completed_at=None)
        return batch

    def finished(self, batch: dict[str, Any], after: int = 99) -> dict[str, Any]:
        """An opened scripted `batch` finished `after` seconds after its creation."""
        fresh = self.make_batch(0)
        if self.anthropic:
            created = datetime.fromisoformat(batch["created_at"].replace("Z", "+00:00")).timestamp()
            batch.update(
                processing_status="ended", ended_at=rfc3339(created + after), request_counts=fresh["request_counts"]
            )
            batch["results_url"] = f"{self.list_path}/{batch['id']}/results"
        else:
            batch.update(status="completed", completed_at=batch["created_at"] + after)
        return batch

    def project_state(self, db: str, project: str) -> dict[str, Any]:
        """The project's incremental state as the last committed run left it (the resource is named after the
        table)."""
        from openai_batches.load.runner import make_pipeline

        resources = make_pipeline(db).state.get("sources", {}).get("openai_batches", {}).get("resources", {})
        return dict(resources.get(self.table, {}).get("projects", {}).get(project) or {})

    def key(self, project: str) -> str:
        return {self.a: self.key_a, self.b: self.key_b}[project]

    def base_url(self, server: SimulatorServer | fake_api.ScriptedApi) -> str:
        """The base URL as the provider's SDK takes it (Anthropic's: the root without `/v1`). The server is
        remembered: the truth's `results_url`s are on it."""
        self.root = server.base_url.removesuffix("/v1")
        return self.root if self.anthropic else server.base_url

    # ------------------------------------------------------------------ configuration
    def env(self, server: SimulatorServer | fake_api.ScriptedApi) -> dict[str, str]:
        """The single-key environment of project A (cron's `OPENAI_API_KEY`/`ANTHROPIC_API_KEY` and base URL);
        the Anthropic project is named after its workspace, as the `project` column then says."""
        if self.anthropic:
            return {
                "ANTHROPIC_API_KEY": self.key_a,
                "ANTHROPIC_BASE_URL": self.base_url(server),
                "SOURCES__OPENAI_BATCHES__ANTHROPIC_PROJECT_NAME": self.a,
            }
        return {"OPENAI_API_KEY": self.key_a, "OPENAI_BASE_URL": self.base_url(server)}

    def secrets_toml(self, server: SimulatorServer, *projects: str) -> str:
        """`.dlt/secrets.toml` naming `projects` (default both), each under its own id."""
        text = ""
        for project in projects or (self.a, self.b):
            text += f'[sources.openai_batches.projects.{project}]\napi_key = "{self.key(project)}"\n'
            text += f'base_url = "{self.base_url(server)}"\n'
            if self.anthropic:
                text += 'provider = "anthropic"\n'
        return text

    def _provider_field(self) -> dict[str, str]:
        # OpenAI is ProjectConfig's default provider: not named, as a configuration written before
        # providers existed does not name it.
        return {"provider": self.provider} if self.anthropic else {}

    def config(self, server: SimulatorServer, *projects: str, **kw: Any) -> RunConfig:
        """A RunConfig reading `projects` (default A), named after their ids."""
        configured = tuple(
            ProjectConfig(name=p, api_key=self.key(p), base_url=self.base_url(server), **self._provider_field())
            for p in projects or (self.a,)
        )
        return RunConfig(projects=configured, **kw)

    def source(self, server: SimulatorServer) -> Any:
        """The dlt source of project A, as `load` makes it from `env` (for a test that drives dlt's steps)."""
        if self.anthropic:
            from openai_batches.sources.anthropic.source import anthropic_batches

            return anthropic_batches(api_key=self.key_a, base_url=self.base_url(server), project_name=self.a)
        from openai_batches import openai_batches

        return openai_batches(api_key=self.key_a, base_url=self.base_url(server))

    # ------------------------------------------------------------------ the simulated API
    def generate_history(
        self, n: int, *, project: str, days: float = 60.0, open_fraction: float | None = None, seed: int = 0
    ) -> None:
        """`n` batches over the `days` before now; with `open_fraction`, that share still open."""
        if not self.anthropic:
            self.org.generate_history(n, project=project, days=days, open_fraction=open_fraction)
            return
        days = min(days, _ANTHROPIC_HISTORY_DAYS_MAX)
        still_open = round(n * (open_fraction or 0.0))
        self.org.anthropic.generate_history(n - still_open, workspace=project, days=days)
        rng = random.Random(f"{seed}:{project}:{n}")
        now = self.org.clock.now()
        for _ in range(still_open):  # submitted within the day, running past now
            age = rng.uniform(60, 20 * 3600)
            self.org.anthropic.create_batch(
                workspace=project, created_at=now - age, processing_seconds=age + rng.uniform(600, 4 * 3600)
            )

    def create_batch(self, project: str, *, created_at: float | None = None) -> str:
        if self.anthropic:
            return self.org.anthropic.create_batch(workspace=project, created_at=created_at)
        return self.org.create_batch(project=project, created_at=created_at)

    def cancel(self, batch_id: str) -> None:
        (self.org.anthropic.cancel if self.anthropic else self.org.cancel)(batch_id)

    def delete(self, batch_id: str) -> bool:
        """Delete an ended batch on the provider's side (Anthropic's DELETE); False when it cannot be."""
        return self.anthropic and self.org.anthropic.delete(batch_id) is None

    def advance(self, seconds: float) -> None:
        self.org.advance(seconds)

    def truth(self, project: str) -> dict[str, dict[str, Any]]:
        """The project's batch objects as the API shows them now, by id."""
        if self.anthropic:
            return {b["id"]: b for b in self.org.anthropic.batches(project, self.root)}
        return {b["id"]: b for b in self.org.batches(project)}

    def count(self) -> int:
        return sum(len(self.truth(p)) for p in (self.a, self.b))

    def is_open(self, batch: dict[str, Any]) -> bool:
        if self.anthropic:
            return bool(batch["processing_status"] != "ended")
        return batch["status"] not in ("completed", "failed", "expired", "cancelled")

    # ------------------------------------------------------------------ the database
    def _exists(self, con: duckdb.DuckDBPyConnection) -> bool:
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'openai_batches' AND table_name = ?", [self.table]
        ).fetchone()
        return bool(found and found[0])

    def rows(self, db: str) -> dict[str, dict[str, Any]]:
        """The provider's table by id (empty when it does not exist yet)."""
        with duckdb.connect(db, read_only=True) as con:
            if not self._exists(con):
                return {}
            cur = con.execute(f"SELECT * FROM openai_batches.{self.table}")
            names = [d[0] for d in cur.description]
            return {row[names.index("id")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}

    def ids_and_duplicates(self, db: str) -> tuple[int, int]:
        """Rows of the provider's table and distinct ids among them ((0, 0) before it exists)."""
        with duckdb.connect(db, read_only=True) as con:
            if not self._exists(con):
                return 0, 0
            row = con.execute(f"SELECT count(*), count(DISTINCT id) FROM openai_batches.{self.table}").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def assert_matches_simulator(self, db: str, project: str) -> None:
        """The project's rows are exactly the simulator's batches now, every field as the API sends it."""
        if not self.anthropic:
            from .assertions import assert_matches_simulator

            assert_matches_simulator(db, self.org, project)
            return
        expected = self.truth(project)
        rows = {k: v for k, v in self.rows(db).items() if v["project"] == project}
        assert set(rows) == set(expected), (len(set(expected) - set(rows)), len(set(rows) - set(expected)))
        for batch_id, batch in expected.items():
            row = rows[batch_id]
            assert (wrong := self.mismatch(row, batch)) is None, f"{batch_id}.{wrong}"
            assert json.loads(row["extra_fields"] or "null") in (None, {}), (batch_id, row["extra_fields"])

    def mismatch(self, row: dict[str, Any], batch: dict[str, Any]) -> str | None:
        """The first column of `row` that is not what `batch` (an API object) should become, else None."""
        from .assertions import expected_row

        for name, value in (expected_anthropic_row(batch) if self.anthropic else expected_row(batch)).items():
            got = row.get(name)
            if name == "metadata" and got is not None:
                got = json.loads(got)
            if got != value:
                return f"{name}: {got!r} != {value!r}"
        return None

    # ------------------------------------------------------------------ a scripted API (fake_api.ScriptedApi)
    def make_batch(self, n: int, **fields: Any) -> dict[str, Any]:
        """A complete, finished batch object as the provider sends it; newer for larger `n`."""
        return make_anthropic_batch(n, **fields) if self.anthropic else fake_api.make_batch(n, **fields)

    def newest_first(self, count: int, **fields: Any) -> list[dict[str, Any]]:
        return [self.make_batch(n, **fields) for n in range(count, 0, -1)]

    def envelope(self, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
        page = fake_api.envelope(data, has_more)
        if self.anthropic:
            del page["object"]  # Anthropic's list has none
        return page

    def paged(self, pages: list[tuple[list[dict[str, Any]], bool]]) -> Route:
        """`pages` (items, has_more) served by the provider's cursor, as fake_api.paged: page i+1 answers the
        cursor of page i's last item; retrieve answers from every item served; an unknown cursor gets an
        empty last page. Anthropic's results answer with one succeeded line per succeeded request."""
        by_cursor: dict[str | None, int] = {None: 0}
        for i, (items, _) in enumerate(pages[:-1]):
            if items:
                by_cursor.setdefault(items[-1]["id"], i + 1)
        by_id = {b["id"]: b for items, _ in pages for b in items if isinstance(b.get("id"), str)}
        prefix = self.list_path + "/"

        def route(path: str, query: dict[str, str], number: int) -> Reply:
            if path.startswith(prefix):
                batch_id, _, rest = path.removeprefix(prefix).partition("/")
                found = by_id.get(batch_id)
                if found is None:
                    return json_reply(self.not_found(batch_id), 404)
                if rest == "results":
                    return Reply(200, anthropic_results(found), "application/binary")
                return json_reply(found)
            index = by_cursor.get(query.get(self.cursor))
            if index is None:
                return json_reply(self.envelope([], False))
            items, has_more = pages[index]
            return json_reply(self.envelope(items, has_more))

        return route

    def serve_all(self, batches: list[dict[str, Any]], page_size: int | None = None) -> Route:
        """`batches` (newest first) paged like the API, `page_size` (default the loader's) a page."""
        size = page_size or self.page_size
        chunks = [batches[i : i + size] for i in range(0, len(batches), size)] or [[]]
        return self.paged([(chunk, i < len(chunks) - 1) for i, chunk in enumerate(chunks)])

    def not_found(self, batch_id: str) -> dict[str, Any]:
        if self.anthropic:
            message = f"No message batch found with id '{batch_id}'"
            return {"type": "error", "error": {"type": "not_found_error", "message": message}, "request_id": "req_x"}
        return {"error": {"message": "No batch found"}}

    def scripted_config(self, api: fake_api.ScriptedApi, **kw: Any) -> RunConfig:
        """A RunConfig reading the scripted API with project A's key, named `proj_scripted` (the project
        the scripted OpenAI API's header names)."""
        base = api.base_url.removesuffix("/v1") if self.anthropic else api.base_url
        project = ProjectConfig(name="proj_scripted", api_key=self.key_a, base_url=base, **self._provider_field())
        return RunConfig(projects=(project,), **kw)

    def count_requests(self, api: fake_api.ScriptedApi) -> int:
        """Requests the scripted API saw for the list and its batches (results downloads not counted)."""
        return sum(1 for path, _ in api.requests if path.startswith(self.list_path) and not path.endswith("/results"))


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_anthropic_batch(n: int, *, created: int = 1_790_000_000, **fields: Any) -> dict[str, Any]:
    """A finished Anthropic message batch (10 requests, 9 succeeded, 1 errored); newer for larger `n`."""
    created_at = created + n * 60
    batch_id = f"msgbatch_01{n:022d}"
    batch: dict[str, Any] = {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {"processing": 0, "succeeded": 9, "errored": 1, "canceled": 0, "expired": 0},
        "ended_at": rfc3339(created_at + 120),
        "created_at": rfc3339(created_at),
        "expires_at": rfc3339(created_at + 86_400),
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": f"/v1/messages/batches/{batch_id}/results",
    }
    batch.update(fields)
    return batch


def anthropic_results(batch: dict[str, Any]) -> bytes:
    """The JSONL results of a scripted batch: its succeeded and errored requests, small usage each."""
    counts = batch.get("request_counts") if isinstance(batch.get("request_counts"), dict) else {}

    def count(name: str) -> int:
        value = counts.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    lines: list[dict[str, Any]] = []
    for i in range(count("succeeded")):
        usage = {"input_tokens": 10 + i, "output_tokens": 1 + i, "cache_creation_input_tokens": 0}
        usage |= {"cache_read_input_tokens": 0, "service_tier": "batch"}
        message = {"id": f"msg_{i}", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001"}
        message |= {"content": [], "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
        lines.append({"custom_id": f"ok-{i}", "result": {"type": "succeeded", "message": message}})
    for i in range(count("errored")):
        error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}, "request_id": "req_e"}
        lines.append({"custom_id": f"err-{i}", "result": {"type": "errored", "error": error}})
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def expected_anthropic_row(batch: dict[str, Any]) -> dict[str, Any]:
    """The row an Anthropic batch object should become, written independently of the pipeline's code: counts
    flattened with `__`, RFC 3339 times as aware datetimes."""
    row: dict[str, Any] = {}
    for name, value in batch.items():
        if name == "request_counts":
            row.update({f"request_counts__{k}": v for k, v in value.items()})
        elif name.endswith("_at") and value is not None:
            row[name] = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        else:
            row[name] = value
    return row


def make_world(provider: str, org: SimulatedOrg) -> World:
    if provider == "anthropic":
        from openai_batches.settings import ANTHROPIC_BATCHES_TABLE

        # Batches of ~10 requests rather than the API's ~240: a world's tests hold the list to the truth; each
        # ended batch's results are still downloaded by a load with the ledger on, just short.
        org.anthropic.requests_lognormal = (2.0, 1.0)

        return World(
            provider,
            org,
            WORKSPACE_A,
            WORKSPACE_B,
            ANTHROPIC_KEY_A,
            ANTHROPIC_KEY_B,
            ANTHROPIC_BATCHES_TABLE,
            "/v1/messages/batches",
        )
    return World(provider, org, PROJECT_A, PROJECT_B, KEY_A, KEY_B, "batches", "/v1/batches")


@pytest.fixture(params=PROVIDERS)
def world(request: pytest.FixtureRequest, org: SimulatedOrg) -> World:
    """The test's provider (one run per provider) over the shared organisation."""
    return make_world(request.param, org)
