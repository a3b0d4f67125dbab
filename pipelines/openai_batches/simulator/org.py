"""An organisation's batches, per project, rendered as the OpenAI API returns them at the clock's "now"."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from ..load.memory import release_free_memory
from .anthropic import AnthropicBatches
from .anthropic_books import AnthropicBooks
from .batch_requests import FILE_OVERRIDES, BatchSource, FileOptions, file_options, requests_for_output_bytes
from .books import Books
from .clock import SimClock
from .files import FileStore, RequestTruth
from .render import BatchRenderer, base62, batch_id, parse_batch_id
from .table import Arrivals, Table
from .workload import (
    COLUMN_DTYPES,
    NEVER,
    OUTCOME_CODES,
    TIME_COLUMNS,
    Catalog,
    Columns,
    draw_batches,
    draw_created,
    make_open,
)

DEFAULT_PROJECTS = {"sk-sim-default": "proj_default"}
# Every simulated org has an organisation-wide admin key: it reads the Admin API and nothing else.
DEFAULT_ADMIN_KEYS = ("sk-admin-sim",)


_ALLOWED_OVERRIDES = frozenset(
    {
        "outcome",
        "model",
        "endpoint",
        "metadata",
        "total_requests",
        "validating_seconds",
        "processing_seconds",
        "finalizing_seconds",
        "failed_fraction",
        "input_file_id",
    }
)
# ... and those that shape the batch's files (batch_requests.py).
_CREATE_OVERRIDES = _ALLOWED_OVERRIDES | FILE_OVERRIDES

_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class SimulatedOrg:
    """All batches of an organisation, per project, with their lifecycle schedules.

    Each batch is a compact record of *scheduled* lifecycle instants; its status, counts, usage and
    file ids are derived from the clock when it is read, so advancing the clock moves every batch at
    no cost. Thread safe: the server thread reads while a test thread advances the clock or creates.
    """

    def __init__(
        self,
        *,
        projects: dict[str, str] | None = None,
        clock: SimClock | None = None,
        seed: int = 0,
        admin_keys: tuple[str, ...] = DEFAULT_ADMIN_KEYS,
        anthropic_workspaces: dict[str, str] | None = None,
    ) -> None:
        self._keys = dict(projects) if projects else dict(DEFAULT_PROJECTS)
        self.clock = clock or SimClock()
        self.seed = seed
        self._lock = threading.RLock()
        self._projects: list[str] = list(dict.fromkeys(self._keys.values()))
        self._tables: dict[str, Table] = {p: Table() for p in self._projects}
        self._catalog = Catalog()
        self._history_calls = 0
        self._create_rng = np.random.default_rng([seed, 2])
        self._arrivals: dict[str, Arrivals] = {}
        self._arrival_segments = 0
        self._meta: dict[str, dict[str, str]] = {}
        self._input_files: dict[str, str] = {}
        self._files_late: dict[str, float] = {}  # batch id -> when its output and error file ids appear
        # Everything rendered lazily (file ids, metadata, errors) is a hash of the row's random bits
        # salted with the seed, so two orgs with different seeds do not share file ids.
        self._salt = hashlib.blake2b(f"openai-batches-sim:{seed}".encode(), digest_size=16).digest()
        self._salt_int = int.from_bytes(self._salt[:8], "little")
        self.organization = "org-sim" + base62(int.from_bytes(self._salt, "little"), 17)
        self._renderer = BatchRenderer(
            salt=self._salt,
            organization=self.organization,
            metadata=self._meta,
            input_files=self._input_files,
            files_late=self._files_late,
        )
        # Admin API side (see books.py and admin_api.py): admin keys, project records, OpenAI's books.
        self._admin_keys = frozenset(admin_keys)
        overlap = self._admin_keys & set(self._keys)
        if overlap:
            raise ValueError("a key cannot be both an admin key and a project key")
        self._born = self._now()
        self._project_info: dict[str, dict[str, Any]] = {p: {} for p in self._projects}
        self.books = Books(self)
        # Batch files (files.py): per-batch settings from create_batch, and the served files.
        self._file_options: dict[str, FileOptions] = {}
        self.files = FileStore(self)
        # Anthropic's Message Batches (anthropic.py): API key -> workspace id; none unless configured.
        if set(anthropic_workspaces or {}) & (set(self._keys) | self._admin_keys):
            raise ValueError("a key cannot be both an Anthropic key and an OpenAI one")
        self.anthropic = AnthropicBatches(anthropic_workspaces or {}, self.clock, seed)
        # Anthropic's Admin API (anthropic_admin.py): its workspaces, keys, usage and cost reports.
        self.anthropic_books = AnthropicBooks(self.anthropic, seed)

    # ------------------------------------------------------------------ projects and keys
    @property
    def keys(self) -> dict[str, str]:
        """api_key -> project id (a copy)."""
        return dict(self._keys)

    @property
    def projects(self) -> list[str]:
        return list(self._projects)

    def project_of_key(self, api_key: str) -> str | None:
        return self._keys.get(api_key)

    def _openai_projects(self) -> list[str]:
        """The projects OpenAI's Admin API knows: not those served as another provider's (flavors.py: a project
        whose every key is a Groq `gsk_...` or an Azure key, not an OpenAI `sk-...` one). OpenAI's books count
        no Groq or Azure batch: those are billed by Groq and by Azure."""
        keyed: dict[str, list[str]] = {}
        for key, project in self._keys.items():
            keyed.setdefault(project, []).append(key)

        def openai_key(key: str) -> bool:
            return key.startswith("sk-") and not key.startswith("sk-ant-")

        return [p for p in self._projects if not keyed.get(p) or any(openai_key(k) for k in keyed[p])]

    def _project(self, project: str | None) -> str:
        if project is None:
            return self._projects[0]
        if project not in self._tables:
            raise ValueError(f"unknown project {project!r}; known: {', '.join(self._projects)}")
        return project

    # ------------------------------------------------------------------ organisation (Admin API)
    @property
    def admin_keys(self) -> frozenset[str]:
        return self._admin_keys

    def is_admin_key(self, key: str) -> bool:
        return key in self._admin_keys

    def add_project(
        self,
        project_id: str,
        *,
        name: str | None = None,
        api_key: str | None = None,
        created_at: int | None = None,
    ) -> str:
        """Add a project to the organisation (no key: only the Admin API sees it) and return its id.

        A project without a key is what an organisation has when nobody configured it for loading:
        its batches still show in the Usage and Costs APIs.
        """
        if not project_id.startswith("proj_"):
            raise ValueError("project ids start with 'proj_'")
        with self._lock:
            if project_id in self._tables:
                raise ValueError(f"project {project_id!r} exists")
            if api_key is not None and (api_key in self._keys or api_key in self._admin_keys):
                raise ValueError("that key is already in use")
            self._projects.append(project_id)
            self._tables[project_id] = Table()
            self._project_info[project_id] = {"name": name, "created_at": created_at}
            if api_key is not None:
                self._keys[api_key] = project_id
        return project_id

    def archive_project(self, project_id: str, at: int | None = None) -> None:
        """Archive a project (now, or at ``at``): listed only with ``include_archived=true`` from then on."""
        with self._lock:
            p = self._project(project_id)
            self._project_info[p]["archived_at"] = self._now() if at is None else int(at)

    def project_records(self) -> list[dict[str, Any]]:
        """Every project as the Admin API lists it (archived included), oldest first.

        ``created_at`` is explicit or a seeded number of days before the project's first batch (or
        the org's creation), so a project never looks younger than its own batches.
        """
        with self._lock:
            self._sync()
            now = self._now()
            out: list[dict[str, Any]] = []
            for p in self._openai_projects():
                info = self._project_info[p]
                created = info.get("created_at")
                if created is None:
                    t = self._tables[p]
                    first = int(t.cols["created"][0]) if t.n else self._born
                    jitter = int.from_bytes(
                        hashlib.blake2b(p.encode(), key=self._salt, digest_size=4).digest(), "little"
                    )
                    created = min(first, self._born) - 86_400 * (3 + jitter % 60) - jitter % 86_400
                archived = info.get("archived_at")
                if archived is not None and archived > now:
                    archived = None
                name = info.get("name") or ("Default project" if p == "proj_default" else p.removeprefix("proj_"))
                out.append(
                    {
                        "id": p,
                        "object": "organization.project",
                        "name": name,
                        "created_at": int(created),
                        "archived_at": archived,
                        "status": "archived" if archived is not None else "active",
                    }
                )
            out.sort(key=lambda r: (r["created_at"], r["id"]))
            return out

    def set_usage_discrepancy(self, project: str, month: str, factor: float, *, model: str | None = None) -> None:
        """Make the Usage (and so the Costs) API count ``factor`` times the batch tokens ``project``'s
        batches processed in UTC ``month`` ("YYYY-MM"), for every model or only ``model``.

        Other months, projects and non-batch traffic are untouched, and every bucket width agrees.
        ``factor=1`` removes it. See :meth:`Books.set_usage_discrepancy`.
        """
        self.books.set_usage_discrepancy(self._project(project), month, factor, model=model)

    def rows_created_between(self, start: int, end: int) -> tuple[list[tuple[str, Columns]], list[str], list[str]]:
        """A consistent copy of what the Admin API derives from: per project the compact rows of the
        batches created in [start, end), the model names and the endpoint names (by index)."""
        with self._lock:
            self._sync()
            out: list[tuple[str, Columns]] = []
            for p in self._openai_projects():
                t = self._tables[p]
                created = t.col("created")
                lo = int(np.searchsorted(created, start, "left"))
                hi = int(np.searchsorted(created, end, "left"))
                out.append((p, {k: t.cols[k][lo:hi].copy() for k in COLUMN_DTYPES}))
            return out, list(self._catalog.models), list(self._catalog.endpoints)

    # ------------------------------------------------------------------ populating
    def generate_history(
        self, n: int, *, project: str | None = None, days: float = 120.0, open_fraction: float | None = None
    ) -> None:
        """Add ``n`` realistic batches created over the ``days`` before now (deterministic from the seed).

        With ``project=None`` the batches are split evenly over all projects. Batches created in the
        last day or so are naturally still open; ``open_fraction`` forces that share of them to be open
        now (non-terminal) by moving them into the last 24 h. Batches created before 2025-09-07 have no
        `usage`/`model`, so use a clock and ``days`` that straddle it to get both kinds.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if open_fraction is not None and not 0.0 <= open_fraction <= 1.0:
            raise ValueError("open_fraction must be within [0, 1]")
        with self._lock:
            self._sync()
            now = self._now()
            targets = [self._project(project)] if project is not None else self._projects
            share, rest = divmod(n, len(targets))
            self._history_calls += 1
            for i, p in enumerate(targets):
                count = share + (rest if i == 0 else 0)
                if count == 0:
                    continue
                rng = np.random.default_rng([self.seed, self._projects.index(p), 1, self._history_calls])
                created = draw_created(rng, count, now - int(days * 86_400), now)
                cols = draw_batches(rng, created, self._catalog)
                if open_fraction:
                    make_open(rng, cols, now, open_fraction)
                self._tables[p].add(cols)
                del cols, created
        if n >= 100_000:
            release_free_memory()

    def create_batch(self, *, project: str | None = None, created_at: float | None = None, **overrides: Any) -> str:
        """Create one batch (in 'validating' when created now) and return its id.

        Overrides: ``outcome`` ("completed", "failed", "expired", "cancelled", "all_failed"),
        ``model``, ``endpoint``, ``metadata`` (None or dict str -> str), ``total_requests``,
        ``validating_seconds``, ``processing_seconds``, ``finalizing_seconds``,
        ``failed_fraction`` (share of requests that fail), ``input_file_id``.

        Batch files (see files.py): ``output_expires_after`` (``{"anchor": "created_at", "seconds": N}``,
        N in 3600..2592000, as the API takes it), ``output_bytes`` (an output file of about this many
        bytes; unless ``total_requests`` is given, ~20 KB lines, or one vector a line for embeddings,
        at most 50,000), ``missing_requests`` (completed
        per the counts, yet in neither file), ``zero_status_requests`` (output lines with status_code 0),
        ``output_error_requests`` (non-2xx lines in the output file). Each is clamped so that at least
        one completed request keeps a 2xx line (the batch's usage is spread over those).
        """
        unknown = set(overrides) - _CREATE_OVERRIDES
        if unknown:
            raise TypeError(f"unknown override(s): {', '.join(sorted(unknown))}")
        outcome = overrides.get("outcome")
        if outcome is not None and outcome not in OUTCOME_CODES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOME_CODES)}")
        metadata = overrides.get("metadata", ...)
        if metadata is not ... and metadata is not None:
            _check_metadata(metadata)
        options = file_options(overrides)
        total = overrides.get("total_requests")
        if total is None and options is not None and options.output_bytes is not None:
            total = requests_for_output_bytes(options.output_bytes, overrides.get("endpoint"), overrides.get("model"))
        with self._lock:
            self._sync()
            p = self._project(project)
            created = math.floor(self.clock.now() if created_at is None else created_at)
            cols = draw_batches(
                self._create_rng,
                np.array([created], dtype=np.int64),
                self._catalog,
                outcome=OUTCOME_CODES[outcome] if outcome is not None else None,
                model=overrides.get("model"),
                endpoint=overrides.get("endpoint"),
                total=total,
                validating_s=overrides.get("validating_seconds"),
                processing_s=overrides.get("processing_seconds"),
                finalizing_s=overrides.get("finalizing_seconds"),
                failed_fraction=overrides.get("failed_fraction"),
                has_metadata=None if metadata is ... else False,
            )
            if created_at is None and overrides.get("validating_seconds") is None:
                # Created now means the caller just submitted it: the API answers 'validating'.
                for name in TIME_COLUMNS:
                    if int(cols[name][0]) == created:
                        for other in TIME_COLUMNS:
                            if int(cols[other][0]) < NEVER:
                                cols[other][0] += 1
                        break
            bid = batch_id(created, int(cols["ida"][0]), int(cols["idb"][0]))
            if isinstance(metadata, dict):
                cols["meta"][0] = 2
                self._meta[bid] = dict(metadata)
            if overrides.get("input_file_id"):
                self._input_files[bid] = str(overrides["input_file_id"])
            if options is not None:
                self._file_options[bid] = options
            self._tables[p].add(cols)
            return bid

    def cancel(self, batch_id: str) -> None:
        """Cancel a non-terminal batch: 'cancelling' now, 'cancelled' a few minutes later.

        Raises KeyError for an unknown id and ValueError for a terminal batch; cancelling a batch
        that is already cancelling does nothing (like repeating the API call).
        """
        with self._lock:
            self._sync()
            loc = self._locate(batch_id)
            if loc is None:
                raise KeyError(batch_id)
            table, i = loc[1], loc[2]
            now = self._now()
            status = self._render(table, i, now)["status"]
            if status == "cancelling":
                return
            if status in _TERMINAL:
                raise ValueError(f"Cannot cancel a batch with status '{status}'.")
            c = table.cols
            at = max(now, int(c["created"][i]))
            for name in ("ip", "fin", "comp", "fail", "exp"):
                if int(c[name][i]) > at:
                    c[name][i] = NEVER
            c["cing"][i] = at
            # "cancelling for up to 10 minutes": 10 s to ~5 min, fixed per batch.
            c["cled"][i] = at + 10 + (int(c["idb"][i]) >> 7) % 290

    def set_arrival_rate(self, per_hour: float, project: str | None = None) -> None:
        """New batches appear at random (Poisson) as the clock advances; ``project=None``: every project."""
        if per_hour < 0:
            raise ValueError("per_hour must be >= 0")
        with self._lock:
            self._sync()
            now = self.clock.now()
            for p in [self._project(project)] if project is not None else self._projects:
                self._arrivals.pop(p, None)
                if per_hour > 0:
                    self._arrival_segments += 1
                    key = [self.seed, self._projects.index(p), 3, self._arrival_segments]
                    self._arrivals[p] = Arrivals(per_hour, now, key)

    def files_appear_at(self, batch_id: str, at: float) -> None:
        """Until the clock reaches `at`, the batch shows `output_file_id` and `error_file_id` null (its
        files 404): a batch listed finished before its files are named, as users report."""
        with self._lock:
            self._files_late[batch_id] = at

    def advance(self, seconds: float) -> None:
        """Advance the clock; the lifecycle of every batch moves with it, arrivals appear."""
        with self._lock:
            self.clock.advance(seconds)
            self._sync()

    # ------------------------------------------------------------------ reading
    def count(self, project: str | None = None) -> int:
        """Number of batches of a project (all projects when None)."""
        with self._lock:
            self._sync()
            if project is None:
                return sum(t.n for t in self._tables.values())
            return self._tables[self._project(project)].n

    def batches(self, project: str | None = None) -> list[dict[str, Any]]:
        """The API objects as they are now, newest first: what paging the list endpoint returns.

        ``project=None`` merges all projects in the same order (a test convenience: no single key sees
        that). Renders every batch: fine for tests, heavy for a million.
        """
        with self._lock:
            self._sync()
            now = self._now()
            targets = [self._project(project)] if project is not None else self._projects
            out: list[dict[str, Any]] = []
            for p in targets:
                t = self._tables[p]
                out.extend(self._render_rows(t, 0, t.n, now))
            if len(targets) > 1:
                out.sort(key=lambda b: (b["created_at"], b["id"]), reverse=True)
            return out

    def get(self, batch_id: str, project: str | None = None) -> dict[str, Any] | None:
        """One batch as the API returns it now, or None. ``project`` restricts the lookup to it."""
        with self._lock:
            self._sync()
            loc = self._locate(batch_id, project)
            if loc is None:
                return None
            return self._render(loc[1], loc[2], self._now())

    def list_page(self, project: str | None = None, *, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        """One page of ``GET /v1/batches`` for a project, as the JSON envelope (a dict).

        ``after`` that is not the id of one of this project's batches (unknown, malformed, deleted or
        another project's) returns an empty page with ``has_more: false`` and null ``first_id``/
        ``last_id``: the real API leaves this undocumented, and an empty page is the answer that never
        leaks another project's data and that makes a client relying on a stale cursor visibly stop
        rather than loop. An empty ``after`` means no cursor.
        """
        if not 1 <= limit <= 100:
            raise ValueError("limit must be within 1..100")
        with self._lock:
            self._sync()
            p = self._project(project)
            t = self._tables[p]
            now = self._now()
            if after:
                key = parse_batch_id(after)
                pos = t.find(*key) if key is not None else -1
                if pos < 0:
                    return {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
            else:
                pos = t.n
            lo = max(0, pos - limit)
            data = self._render_rows(t, lo, pos, now)
            return {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": lo > 0,
            }

    # ------------------------------------------------------------------ batch files (files.py)
    def request_truth(self, batch_id: str) -> Iterator[RequestTruth]:
        """What happened to each request of a finished batch, as its files tell it (see FileStore)."""
        return self.files.request_truth(batch_id)

    def batch_source(self, batch_id: str, project: str | None = None) -> BatchSource | None:
        """What a batch's files derive from, or None for an unknown id (or one of another project)."""
        with self._lock:
            self._sync()
            loc = self._locate(batch_id, project)
            return None if loc is None else self._source(*loc)

    def batch_source_at(self, project: str, idb: int) -> BatchSource | None:
        """Like batch_source, for the row of ``project`` with these random bits."""
        with self._lock:
            self._sync()
            t = self._tables[self._project(project)]
            hits = np.flatnonzero(t.col("idb") == np.uint64(idb))
            return self._source(project, t, int(hits[0])) if len(hits) else None

    def idb_column(self, project: str) -> npt.NDArray[np.uint64]:
        """The random bits of every batch of a project (a copy), from which its file ids derive."""
        with self._lock:
            self._sync()
            return self._tables[self._project(project)].col("idb").copy()

    def file_id_for(self, idb: int, tag: int) -> str:
        """The file id of a row's input (1), output (2) or error (3) file."""
        return self._file_id(idb, tag)

    def batches_with_input_file(self, file_id: str) -> list[str]:
        """Ids of the batches created with this explicit ``input_file_id``, oldest first."""
        with self._lock:
            return [bid for bid, fid in self._input_files.items() if fid == file_id]

    def now_int(self) -> int:
        return self._now()

    def _source(self, project: str, t: Table, i: int) -> BatchSource:
        obj = self._render(t, i, self._now())
        c = t.cols
        midx = int(c["model"][i])
        return BatchSource(
            batch=obj,
            project=project,
            idb=int(c["idb"][i]),
            salt=self._salt_int,
            total=int(c["total"][i]),
            model=self._catalog.models[midx],
            endpoint=self._catalog.endpoints[int(c["endpoint"][i])],
            tin=float(c["tin"][i]),
            tout=float(c["tout"][i]),
            cfrac=float(c["cfrac"][i]),
            rfrac=float(c["rfrac"][i]),
            reasoning=self._catalog.model_reasoning[midx],
            options=self._file_options.get(str(obj["id"]), FileOptions()),
        )

    # ------------------------------------------------------------------ internals
    def _now(self) -> int:
        return math.floor(self.clock.now())

    def _sync(self) -> None:
        """Materialise the arrivals the clock has reached (called under the lock by every access)."""
        if not self._arrivals:
            return
        now = self._now()
        for p, arr in self._arrivals.items():
            for cols in arr.due(now, self._catalog):
                self._tables[p].add(cols)

    def _locate(self, bid: str, project: str | None = None) -> tuple[str, Table, int] | None:
        key = parse_batch_id(bid)
        if key is None:
            return None
        for p in [self._project(project)] if project is not None else self._projects:
            t = self._tables[p]
            i = t.find(*key)
            if i >= 0:
                return p, t, i
        return None

    def _render(self, t: Table, i: int, now: int) -> dict[str, Any]:
        return self._render_rows(t, i, i + 1, now)[0]

    def _render_rows(self, t: Table, lo: int, hi: int, now: int) -> list[dict[str, Any]]:
        return self._renderer.rows(t, lo, hi, now, self._catalog.models, self._catalog.endpoints)

    def _file_id(self, idb: int, tag: int) -> str:
        return self._renderer.file_id(idb, tag)


_INT_OVERRIDES = frozenset(
    {"total_requests", "output_bytes", "missing_requests", "zero_status_requests", "output_error_requests"}
)
_FLOAT_OVERRIDES = frozenset({"validating_seconds", "processing_seconds", "finalizing_seconds", "failed_fraction"})


def overrides_from_query(query: dict[str, str]) -> dict[str, Any]:
    """``create_batch`` overrides from a control request's query string (every key but count/project).

    Numbers are parsed; ``metadata`` is JSON; ``output_expires_after`` is the seconds (or the JSON object).
    """
    out: dict[str, Any] = {}
    for key, raw in query.items():
        if key in ("count", "project"):
            continue
        if key not in _CREATE_OVERRIDES:
            raise TypeError(f"unknown override: {key}")
        if key in _INT_OVERRIDES:
            out[key] = int(raw)
        elif key in _FLOAT_OVERRIDES:
            out[key] = float(raw)
        elif key == "metadata":
            out[key] = json.loads(raw)
        elif key == "output_expires_after":
            out[key] = {"anchor": "created_at", "seconds": int(raw)} if raw.isdigit() else json.loads(raw)
        else:
            out[key] = raw
    return out


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise TypeError("metadata must be None or a dict of str -> str")
    if len(metadata) > 16:
        raise ValueError("metadata holds at most 16 keys")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("metadata keys and values must be str")
        if len(k) > 64 or len(v) > 512:
            raise ValueError("metadata keys are at most 64 chars, values at most 512")
