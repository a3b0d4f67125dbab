"""One provider's side of a test, so that a hardening test runs against every provider's path unchanged.

A `World` is what a test needs to know about a provider: the simulated organisation's projects of that
provider (OpenAI projects, Anthropic workspaces, or the projects of issue 19's providers, which the world adds
to the organisation with keys of the provider's kind) and their keys, the environment the CLI takes them from,
a `RunConfig` for the runner, the table its batches land in, the list's path, cursor and page, and the truth:
the simulator's batch objects now, in the provider's shape, to compare rows with. It creates batches, cancels
and deletes them (Anthropic only: the simulator deletes no other provider's batches) and moves the shared clock.

`world` is a fixture over `PROVIDERS` (registered in conftest): a test that takes it runs once per provider,
on the shared `org` and `server` fixtures (whose organisation has both providers' projects). A test that also
runs over issue 19's providers says so with `over_worlds(...)` (the `world` fixture's parameters) or
`provider_params(...)` (a `provider` parameter), naming why a provider it leaves out does not apply.

Issue 19's providers are served by the simulator under their own paths (simulator/flavors.py, others.py):
Azure with every quirk its documentation shows (UUID ids, capitalised statuses, ISO times), Groq paging as its
SDK does (no `limit`, no `has_more`), Together's bare array, Mistral's page numbers, OpenRouter's own object.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.simulator import SimulatedOrg, SimulatorServer
from openai_batches.simulator.responses import json_response

from . import fake_api
from .fake_api import Reply, Route, json_reply
from .workload import ANTHROPIC_KEY_A, ANTHROPIC_KEY_B, KEY_A, KEY_B, PROJECT_A, PROJECT_B, WORKSPACE_A, WORKSPACE_B

PROVIDERS = ("openai", "anthropic")
# Issue 19's providers: a hardening test runs over them where it says so (`over_worlds`, `provider_params`).
NEW_PROVIDERS = ("azure", "groq", "openai-compatible", "together", "mistral", "openrouter")
ALL_PROVIDERS = PROVIDERS + NEW_PROVIDERS
# The providers whose list pages differently from OpenAI's (the state machine's subset): Azure's v1 API with
# UUID ids, Groq without has_more, Together's bare array, Mistral's page numbers.
PAGING_PROVIDERS = ("azure", "groq", "together", "mistral")

# What each of issue 19's providers' APIs is, as the simulator serves it from its root: the API root's path (the
# base_url a user configures, as the provider's SDK takes it), the list's path under it, the list's cursor
# parameter (None: no pages), its page size as the loader reads it, and keys of the provider's kind.
_ROOTS = {
    "azure": "/openai/v1",
    "groq": "/openai/v1",
    "openai-compatible": "/v1",
    "together": "/together/v1",
    "mistral": "/mistral/v1",
    "openrouter": "/openrouter/api/v1",
}
_LISTS = {"mistral": "/batch/jobs"}
_CURSORS = {"together": None, "mistral": "page"}
# Groq's list is asked for without a `limit` (as its SDK): the simulator's default page, 20; Together's is
# everything in one answer.
_PAGES = {"groq": 20, "together": 1_000_000}
# Keys of each provider's kind, none a run of one character (the loader refuses an answer that carries a configured
# key's tail: the scripted batches' ids have runs of zeros).
_KEYS = {
    "azure": ("3f9c2a7e81d04b6c95e1a0d7c4b8f263", "8e1b5d0a3c7f49e2b6d1f0a9c3e7b524"),
    "groq": ("gsk_SimGroqAlpha7Qx9Zr2Lm5Np8Vt4Wb6Yc1Hd3Jf", "gsk_SimGroqBravo2Kd8Pw3Xn6Rt1Zq9Ly4Mv7Hc5Gb"),
    "openai-compatible": ("gw-test-alpha-7Qx9Zr2Lm5Np8Vt4", "gw-test-bravo-2Kd8Pw3Xn6Rt1Zq9"),
    "together": ("tgt-sim-alpha-7Qx9Zr2Lm5Np8Vt4Wb6Yc1Hd3Jf", "tgt-sim-bravo-2Kd8Pw3Xn6Rt1Zq9Ly4Mv7Hc5Gb"),
    "mistral": ("MistralSimAlpha7Qx9Zr2Lm5Np8Vt4Wb6", "MistralSimBravo2Kd8Pw3Xn6Rt1Zq9Ly4"),
    "openrouter": ("sk-or-v1-simalpha7Qx9Zr2Lm5Np8Vt4Wb6Yc1Hd3Jf", "sk-or-v1-simbravo2Kd8Pw3Xn6Rt1Zq9Ly4Mv7Hc5Gb"),
}
# Statuses of an ended batch, in any provider's words (lower-cased): Mistral's SUCCESS and TIMEOUT_EXCEEDED too.
_ENDED = frozenset({"completed", "failed", "expired", "cancelled", "success", "timeout_exceeded"})
# Why a test of the single-key environment (World.env) does not run over an OpenAI-compatible endpoint.
NO_ENVIRONMENT_FORM = "an OpenAI-compatible endpoint has no single-key environment form: a named project in .dlt only"
# Azure's quirks the worlds show (all of them: simulator/flavors.py).
AZURE_QUIRKS = frozenset({"capitalised", "iso-times", "uuid-ids"})

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
    list_path: str  # the list endpoint's path on the simulator: where a test aims faults at paging
    root: str = "http://simulator"  # the API root the truth's URLs are on (the last server configured)
    server: SimulatorServer | None = None  # the last simulator configured (its id maps: Azure's, Together's, ...)
    _org_ids: dict[str, str] = field(default_factory=dict)  # an id the provider shows -> the organisation's

    @property
    def anthropic(self) -> bool:
        return self.provider == "anthropic"

    @property
    def new(self) -> bool:
        """One of issue 19's providers (NEW_PROVIDERS): smaller histories keep the hardening tests' cost low."""
        return self.provider in NEW_PROVIDERS

    @property
    def compatible(self) -> bool:
        """OpenAI's objects and columns (Azure's quirks aside), in a table of the provider's own."""
        return self.provider in ("azure", "groq", "openai-compatible")

    @property
    def other(self) -> bool:
        """An object of the provider's own (Together, Mistral, OpenRouter): tables/others.py's columns."""
        return self.provider in ("together", "mistral", "openrouter")

    @property
    def api_prefix(self) -> str:
        """The paths of the provider's API on the simulator start with this: where a test aims any fault."""
        return _ROOTS.get(self.provider, "/v1") + "/"

    @property
    def scripted_list_path(self) -> str:
        """The list's path on a scripted API (fake_api.ScriptedApi, whose base URL ends in /v1)."""
        return "/v1" + _LISTS.get(self.provider, "/batches") if self.new else self.list_path

    @property
    def id_prefix(self) -> str:
        if self.provider in ("together", "mistral"):
            return ""  # UUIDs
        return "msgbatch_" if self.anthropic else "batch_"

    @property
    def cursor(self) -> str | None:
        """The list's cursor parameter (`after` / `after_id`, Mistral's `page`; None: Together's list has none)."""
        return "after_id" if self.anthropic else _CURSORS.get(self.provider, "after")

    @property
    def page_size(self) -> int:
        """Batches per list page as the loader asks for them."""
        return 1000 if self.anthropic else _PAGES.get(self.provider, 100)

    def pages(self, batches: int) -> int:
        """List requests a backfill of `batches` makes (Groq's: one more, the page that brings nothing new)."""
        return max(1, -(-batches // self.page_size)) + (1 if self.provider == "groq" else 0)

    @property
    def status(self) -> str:
        """The status field (and column) of a batch object."""
        return "processing_status" if self.anthropic else "status"

    @property
    def ended(self) -> str:
        """The status value of a batch that finished normally."""
        return {"anthropic": "ended", "together": "COMPLETED", "mistral": "SUCCESS"}.get(self.provider, "completed")

    def opened(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A scripted `batch` (make_batch's) made still open: in progress, no end."""
        if self.anthropic:
            counts = dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
            batch.update(processing_status="in_progress", ended_at=None, results_url=None)
            batch["request_counts"] = {"processing": 10, **counts}
        elif self.provider == "together":
            batch.update(status="IN_PROGRESS", completed_at=None, progress=40.0)
        elif self.provider == "mistral":
            batch.update(status="RUNNING", completed_at=None)
        elif self.provider == "openrouter":
            batch.update(status="in_progress", finalized_at=None)
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
        elif self.provider == "together":
            created = datetime.fromisoformat(batch["created_at"].replace("Z", "+00:00")).timestamp()
            batch.update(status="COMPLETED", completed_at=rfc3339(created + after), progress=100.0)
        elif self.provider == "mistral":
            batch.update(status="SUCCESS", completed_at=batch["created_at"] + after)
        elif self.provider == "openrouter":
            batch.update(status="completed", finalized_at=batch["created_at"] + after)
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
        """The base URL as the provider's SDK takes it (Anthropic's: the root without `/v1`; Groq's, Azure's,
        ...: the simulator's path of that provider). The server is remembered: the truth's `results_url`s are on
        it, and its id maps (Azure's, Together's, Mistral's) say which ids it answers with. A simulator serving
        Azure shows every quirk of Azure's (AZURE_QUIRKS)."""
        self.root = server.base_url.removesuffix("/v1")
        if isinstance(server, SimulatorServer):
            self.server = server
            if self.provider == "azure":
                server.azure_quirks = AZURE_QUIRKS
        if self.anthropic:
            return self.root
        if self.new and isinstance(server, SimulatorServer):
            return self.root + _ROOTS[self.provider]
        return server.base_url

    # ------------------------------------------------------------------ configuration
    def env(self, server: SimulatorServer | fake_api.ScriptedApi) -> dict[str, str]:
        """The single-key environment of project A (cron's `OPENAI_API_KEY`/`ANTHROPIC_API_KEY`/`GROQ_API_KEY`/...
        and base URL, by the names of the provider's SDK); the project is named after its id, as the `project`
        column then says. An OpenAI-compatible endpoint has none (NO_ENVIRONMENT_FORM)."""
        base = self.base_url(server)
        if self.anthropic:
            return {
                "ANTHROPIC_API_KEY": self.key_a,
                "ANTHROPIC_BASE_URL": base,
                "SOURCES__OPENAI_BATCHES__ANTHROPIC_PROJECT_NAME": self.a,
            }
        if self.provider == "openai":
            return {"OPENAI_API_KEY": self.key_a, "OPENAI_BASE_URL": base}
        # A test over the environment skips this provider with that reason (over_worlds' skip).
        assert self.provider != "openai-compatible", NO_ENVIRONMENT_FORM
        name = {f"SOURCES__OPENAI_BATCHES__{self.provider.upper()}_PROJECT_NAME": self.a}
        if self.provider == "azure":  # the resource's root; the loader adds /openai/v1
            return {"AZURE_OPENAI_API_KEY": self.key_a, "AZURE_OPENAI_ENDPOINT": self.root, **name}
        if self.provider == "groq":  # the groq SDK's root; the loader adds /openai/v1
            return {"GROQ_API_KEY": self.key_a, "GROQ_BASE_URL": self.root, **name}
        env = self.provider.upper()
        return {f"{env}_API_KEY": self.key_a, f"{env}_BASE_URL": base, **name}

    def secrets_toml(self, server: SimulatorServer, *projects: str) -> str:
        """`.dlt/secrets.toml` naming `projects` (default both), each under its own id."""
        text = ""
        for project in projects or (self.a, self.b):
            text += f'[sources.openai_batches.projects.{project}]\napi_key = "{self.key(project)}"\n'
            text += f'base_url = "{self.base_url(server)}"\n'
            if self.provider != "openai":
                text += f'provider = "{self.provider}"\n'
        return text

    def _provider_field(self) -> dict[str, str]:
        # OpenAI is ProjectConfig's default provider: not named, as a configuration written before
        # providers existed does not name it.
        return {"provider": self.provider} if self.provider != "openai" else {}

    def config(self, server: SimulatorServer, *projects: str, **kw: Any) -> RunConfig:
        """A RunConfig reading `projects` (default A), named after their ids."""
        configured = tuple(
            ProjectConfig(name=p, api_key=self.key(p), base_url=self.base_url(server), **self._provider_field())
            for p in projects or (self.a,)
        )
        return RunConfig(projects=configured, **kw)

    def source(self, server: SimulatorServer) -> Any:
        """The dlt source of project A, as `load` makes it from `env` (for a test that drives dlt's steps)."""
        base = self.base_url(server)
        if self.anthropic:
            from openai_batches.sources.anthropic.source import anthropic_batches

            return anthropic_batches(api_key=self.key_a, base_url=base, project_name=self.a)
        if self.compatible:
            from openai_batches.sources.compatible.source import compatible_batches

            return compatible_batches(self.provider, api_key=self.key_a, base_url=base, project_name=self.a)
        if self.other:
            from openai_batches.sources.others.source import other_batches

            return other_batches(self.provider, api_key=self.key_a, base_url=base, project_name=self.a)
        from openai_batches import openai_batches

        return openai_batches(api_key=self.key_a, base_url=base)

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
        """A new batch; its id as the provider's API shows it (once a simulator is configured)."""
        if self.anthropic:
            return self.org.anthropic.create_batch(workspace=project, created_at=created_at)
        return self._shown_id(self.org.create_batch(project=project, created_at=created_at))

    def _shown_id(self, org_id: str) -> str:
        """The id the provider's API shows for the organisation's batch `org_id` (Azure's and Together's and
        Mistral's maps are derived from the id: the same before a simulator is configured as on it)."""
        from openai_batches.simulator import flavors
        from openai_batches.simulator import others as sim

        if self.provider == "azure":
            shown = (self.server._azure_ids if self.server else flavors.IdMap()).azure(org_id)
        elif self.provider in ("together", "mistral"):
            shown = (self.server._other_ids if self.server else sim.UuidMap()).out(org_id)
        else:
            return org_id
        self._org_ids[shown] = org_id
        return shown

    def _org_id(self, shown: str) -> str:
        return self._org_ids.get(shown, shown)

    def cancel(self, batch_id: str) -> None:
        if self.anthropic:
            self.org.anthropic.cancel(batch_id)
        else:
            self.org.cancel(self._org_id(batch_id))

    def delete(self, batch_id: str) -> bool:
        """Delete an ended batch on the provider's side (Anthropic's DELETE); False when it cannot be (OpenAI,
        Azure, Groq and Together have no DELETE; the simulator deletes no Mistral or OpenRouter batch)."""
        return self.anthropic and self.org.anthropic.delete(batch_id) is None

    def advance(self, seconds: float) -> None:
        self.org.advance(seconds)

    def truth(self, project: str) -> dict[str, dict[str, Any]]:
        """The project's batch objects as the API shows them now, by id."""
        if self.anthropic:
            return {b["id"]: b for b in self.org.anthropic.batches(project, self.root)}
        batches = self.org.batches(project)
        if not self.new or self.provider in ("groq", "openai-compatible"):
            return {b["id"]: b for b in batches}
        assert self.server is not None, "the provider's objects are a simulator's: configure one first (base_url)"
        from openai_batches.simulator import flavors
        from openai_batches.simulator import others as sim

        shown: list[dict[str, Any]]
        if self.provider == "azure":
            rendered = flavors.render(
                flavors.AZURE, json_response(200, {"object": "list", "data": batches}), AZURE_QUIRKS,
                self.server._azure_ids, None,
            )  # fmt: skip
            shown = json.loads(rendered.body)["data"]
        elif self.provider == "together":
            shown = [sim.together_batch(b, self.server._other_ids) for b in batches]
        elif self.provider == "mistral":
            shown = [sim.mistral_job(b, self.server._other_ids) for b in batches]
        else:
            shown = [sim.openrouter_batch(b) for b in batches]
        self._org_ids.update((b["id"], original["id"]) for b, original in zip(shown, batches, strict=True))
        return {b["id"]: b for b in shown}

    def count(self) -> int:
        return sum(len(self.truth(p)) for p in (self.a, self.b))

    def is_open(self, batch: dict[str, Any]) -> bool:
        if self.anthropic:
            return bool(batch["processing_status"] != "ended")
        return str(batch["status"]).lower() not in _ENDED

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
        if self.provider == "openai":
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

        if self.anthropic:
            want = expected_anthropic_row(batch)
        elif self.other:
            want = expected_other_row(self.provider, batch)
        else:  # OpenAI's object; Azure's ISO times are the same instants as epoch seconds
            want = expected_row({k: _epoch(v) if k.endswith("_at") else v for k, v in batch.items()})
        for name, value in want.items():
            got = row.get(name)
            if name in ("metadata", *_json_columns(self.provider)) and got is not None:
                got = json.loads(got)
            if got != value:
                return f"{name}: {got!r} != {value!r}"
        return None

    # ------------------------------------------------------------------ a scripted API (fake_api.ScriptedApi)
    def make_batch(self, n: int, **fields: Any) -> dict[str, Any]:
        """A complete, finished batch object as the provider sends it; newer for larger `n`."""
        if self.anthropic:
            return make_anthropic_batch(n, **fields)
        if self.other:
            return make_other_batch(self.provider, n, **fields)
        return fake_api.make_batch(n, **fields)

    def newest_first(self, count: int, **fields: Any) -> list[dict[str, Any]]:
        return [self.make_batch(n, **fields) for n in range(count, 0, -1)]

    def envelope(self, data: list[dict[str, Any]], has_more: bool, total: int | None = None) -> Any:
        """A list answer holding `data` in the provider's shape (Groq's without has_more, Together's a bare array,
        Mistral's with the `total` of the listing)."""
        if self.provider == "together":
            return data
        if self.provider == "groq":
            return {"object": "list", "data": data}
        if self.provider == "mistral":
            return {"data": data, "object": "list", "total": len(data) if total is None else total}
        page = fake_api.envelope(data, has_more)
        if self.anthropic:
            del page["object"]  # Anthropic's list has none
        return page

    def paged(self, pages: list[tuple[list[dict[str, Any]], bool]]) -> Route:
        """`pages` (items, has_more) served by the provider's cursor, as fake_api.paged: page i+1 answers the
        cursor of page i's last item; retrieve answers from every item served; an unknown cursor gets an
        empty last page. Anthropic's results answer with one succeeded line per succeeded request. Together's
        list is every page's items in one array; Mistral's pages (oldest first, as the loader asks) by number."""
        by_cursor: dict[str | None, int] = {None: 0}
        for i, (items, _) in enumerate(pages[:-1]):
            if items:
                by_cursor.setdefault(items[-1]["id"], i + 1)
        by_id = {b["id"]: b for items, _ in pages for b in items if isinstance(b.get("id"), str)}
        every = [b for items, _ in pages for b in items]
        list_path = self.scripted_list_path
        prefix = list_path + "/"

        def route(path: str, query: dict[str, str], number: int) -> Reply:
            if path.startswith(prefix):
                batch_id, _, rest = path.removeprefix(prefix).partition("/")
                found = by_id.get(batch_id)
                if found is None:
                    return json_reply(self.not_found(batch_id), 404)
                if rest == "results":
                    return Reply(200, anthropic_results(found), "application/binary")
                return json_reply(found)
            if self.provider == "together":
                return json_reply(every)
            if self.provider == "mistral":
                return json_reply(mistral_page(pages, query))
            index = by_cursor.get(query.get(self.cursor or ""))
            if index is None:
                return json_reply(self.envelope([], False))
            items, has_more = pages[index]
            return json_reply(self.envelope(items, has_more))

        return route

    def serve_all(self, batches: list[dict[str, Any]], page_size: int | None = None) -> Route:
        """`batches` (newest first) paged like the API, `page_size` (default the loader's) a page."""
        size = page_size or self.page_size
        if self.provider == "mistral":  # the loader asks for Mistral's list oldest first
            batches = batches[::-1]
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
        if self.provider in ("together", "mistral"):
            # Their ledger is on by default, and a scripted list serves no files: each batch's files were asked for
            # through the whole retry budget (~4 min for the odd-values test alone). The lists are what is tested.
            kw.setdefault("requests", False)
        return RunConfig(projects=(project,), **kw)

    def count_requests(self, api: fake_api.ScriptedApi) -> int:
        """Requests the scripted API saw for the list and its batches (results downloads not counted)."""
        path = self.scripted_list_path
        return sum(1 for p, _ in api.requests if p.startswith(path) and not p.endswith("/results"))


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


def _epoch(value: Any) -> Any:
    """An ISO 8601 time (Azure's older documentation) as the epoch seconds it stands for; anything else as is."""
    if isinstance(value, str):
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    return value


def _json_columns(provider: str) -> tuple[str, ...]:
    if provider not in ("together", "mistral", "openrouter"):
        return ()
    from openai_batches.tables.others import TABLES

    return tuple(c.name for c in TABLES[provider].columns if c.dlt_type == "json")


def expected_other_row(provider: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What each declared column of Together's, Mistral's or OpenRouter's table (tables/others.py) holds for `obj`
    as the API sent it, written independently of the conversion: RFC 3339 text and epoch seconds as aware times."""
    from openai_batches.tables.others import TABLES

    row: dict[str, Any] = {}
    for column in TABLES[provider].columns:
        value: Any = obj
        for key in column.path:
            value = value.get(key) if isinstance(value, dict) else None
        if column.dlt_type == "timestamp" and value is not None:
            if isinstance(value, str):
                value = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
            else:
                value = datetime.fromtimestamp(value, UTC)
        row[column.name] = value
    return row


def make_other_batch(provider: str, n: int, *, created: int = 1_790_000_000, **fields: Any) -> dict[str, Any]:
    """A finished Together, Mistral or OpenRouter batch as the provider sends it (10 requests, 9 succeeded);
    newer for larger `n`."""
    created_at = created + n * 60
    common = {"endpoint": "/v1/chat/completions", "created_at": created_at}
    batch: dict[str, Any]
    if provider == "together":
        batch = {
            "id": f"{n:08x}-0000-4000-8000-{created_at:012x}",
            "user_id": "user_1",
            "input_file_id": f"file-in{n:06d}",
            "file_size_bytes": 2170,
            "endpoint": common["endpoint"],
            "model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "status": "COMPLETED",
            "progress": 100.0,
            "created_at": rfc3339(created_at),
            "completed_at": rfc3339(created_at + 120),
            "job_deadline": rfc3339(created_at + 86_400),
            "output_file_id": f"file-out{n:06d}",
            "error_file_id": None,
            "error": None,
        }
    elif provider == "mistral":
        batch = {
            "id": f"{n:08x}-0000-4000-9000-{created_at:012x}",
            "object": "batch",
            "input_files": [f"file-in{n:06d}"],
            **common,
            "model": "mistral-small-latest",
            "agent_id": None,
            "metadata": None,
            "output_file": f"file-out{n:06d}",
            "error_file": None,
            "errors": [],
            "outputs": None,
            "status": "SUCCESS",
            "started_at": created_at + 5,
            "completed_at": created_at + 120,
            "total_requests": 10,
            "completed_requests": 10,
            "succeeded_requests": 9,
            "failed_requests": 1,
        }
    else:
        usage: dict[str, Any] = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500, "cost": 2.25e-4}
        usage |= {"cost_details": {"upstream_inference_cost": 0.0002}, "is_byok": False, "service_tier": "batch"}
        batch = {
            "id": f"batch_{created_at:08x}0000819{n:017x}",
            "object": "batch",
            **common,
            "model": "openai/gpt-4o-mini",
            "provider": "OpenAI",
            "status": "completed",
            "completion_window": "24h",
            "finalized_at": created_at + 120,
            "expires_at": created_at + 86_400,
            "request_counts": {"total": 10, "completed": 9, "failed": 1},
            "error": None,
            "usage": usage,
            "results": None,
        }
    batch.update(fields)
    return batch


def mistral_page(pages: list[tuple[list[dict[str, Any]], bool]], query: dict[str, str]) -> dict[str, Any]:
    """Mistral's answer to `page`/`page_size`/`created_after` over `pages` (oldest first): the jobs created after
    the bound (strictly), sliced by page number, with their `total`. The server filters by when a job was really
    created (make_other_batch's id says it), whatever odd `created_at` the job shows; a job whose id does not
    say is listed."""
    jobs = [b for items, _ in pages for b in items]
    if after := query.get("created_after"):
        bound = datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp()
        jobs = [b for b in jobs if (created := _created_by_id(b)) is None or created > bound]
    size = int(query.get("page_size", "100"))
    number = int(query.get("page", "0"))
    return {"data": jobs[number * size : (number + 1) * size], "object": "list", "total": len(jobs)}


def _created_by_id(job: dict[str, Any]) -> int | None:
    """The creation time make_other_batch wrote into a Mistral job's id (its last 12 hex digits), else None."""
    tail = str(job.get("id"))[-12:]
    try:
        return int(tail, 16) if len(tail) == 12 else None
    except ValueError:
        return None


def make_world(provider: str, org: SimulatedOrg) -> World:
    """The provider's world over `org`; issue 19's providers' two projects are added to it (their keys of the
    provider's kind), once."""
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
    if provider in NEW_PROVIDERS:
        from openai_batches.settings import BATCH_TABLES

        slug = provider.replace("-", "_")
        key_a, key_b = _KEYS[provider]
        a, b = f"proj_{slug}_alpha", f"proj_{slug}_bravo"
        for project, key in ((a, key_a), (b, key_b)):
            if project not in org.projects:
                org.add_project(project, name=f"{provider} {project}", api_key=key)
        list_path = _ROOTS[provider] + _LISTS.get(provider, "/batches")
        return World(provider, org, a, b, key_a, key_b, BATCH_TABLES[provider], list_path)
    return World(provider, org, PROJECT_A, PROJECT_B, KEY_A, KEY_B, "batches", "/v1/batches")


def _param(provider: str, skip: dict[str, str]) -> Any:
    marks = [pytest.mark.skip(reason=f"{provider}: {skip[provider]}")] if provider in skip else []
    return pytest.param(provider, id=provider, marks=marks)


def provider_params(providers: tuple[str, ...] = ALL_PROVIDERS, *, skip: dict[str, str] | None = None) -> list[Any]:
    """`providers` as parameters of a test, each of `skip` skipped with its reason (why the premise of the test does
    not hold for it: said, never a silent pass)."""
    skip = skip or {}
    unknown = set(skip) - set(providers)
    assert not unknown, f"skip names providers the test does not run over: {unknown}"
    return [_param(p, skip) for p in providers]


def over_worlds(providers: tuple[str, ...] = ALL_PROVIDERS, *, skip: dict[str, str] | None = None) -> Any:
    """The `world` fixture over `providers` (default every provider) rather than PROVIDERS, as provider_params."""
    return pytest.mark.parametrize("world", provider_params(providers, skip=skip), indirect=True)


@pytest.fixture(params=PROVIDERS)
def world(request: pytest.FixtureRequest, org: SimulatedOrg) -> World:
    """The test's provider (one run per provider) over the shared organisation."""
    return make_world(request.param, org)
