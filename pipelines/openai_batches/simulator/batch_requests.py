"""What happened to each request of a simulated batch: the plan its files and the truth API share.

A batch is a compact row of numbers (see workload.py); its requests are never stored. Everything about
them (custom ids, which file each one lands in and where, status codes, token counts) is drawn here
from the row, the batch object as rendered, and rngs seeded by the batch's random bits, so the same
batch always yields the same requests, and the file renderer (jsonl.py) and ``request_truth`` read the
same plan. Per-request state is a few numpy arrays of ``total`` entries (at most 50,000 a batch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from .workload import EMBEDDINGS, MODERATIONS, usage_totals

# Every prompt and every successful response body the simulator generates contains this text, so a
# test can prove that no content is stored: grep everything the pipeline writes for it.
CONTENT_MARKER = "SIMULATED-CONTENT-7F3A"
# Bodies made only of numbers (embedding vectors, moderation scores) carry this number instead:
# it is the first component of every embedding vector and a score of every moderation result.
CONTENT_MARKER_NUMBER = 0.0731942853
CONTENT_MARKER_NUMBER_TEXT = "0.0731942853"

# Output and error files are kept 30 days after they are written unless the batch asked otherwise.
DEFAULT_RETENTION_S = 30 * 86_400
# Files uploaded with purpose "batch" expire 30 days after the upload by default (files API docs).
INPUT_RETENTION_S = 30 * 86_400
OUTPUT_EXPIRES_MIN_S, OUTPUT_EXPIRES_MAX_S = 3_600, 2_592_000

# Where a request ends up. UNRUN: never ran (batch expired or cancelled first).
OK, MISSING, ZERO_STATUS, OUTPUT_ERROR, FAILED, UNRUN = 0, 1, 2, 3, 4, 5

TERMINAL_WITH_FILES = frozenset({"completed", "expired", "cancelled"})

# rng streams: one per purpose, so adding draws to one never shifts another.
_S_IDS, _S_ROLES, _S_SIZES, _S_QUIRKS, _S_FILES = 1, 2, 3, 4, 5

_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# The batch object names what the user asked for; response bodies name the snapshot that answered.
_SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "o3": "o3-2025-04-16",
    "o4-mini": "o4-mini-2025-04-16",
    "omni-moderation-latest": "omni-moderation-2024-09-26",
    "text-moderation-latest": "text-moderation-007",
}


@dataclass(frozen=True)
class FileOptions:
    """Per-batch settings of its files, from ``create_batch`` overrides (None: the natural draw)."""

    output_expires_after: int | None = None  # seconds after the file is written
    output_bytes: int | None = None  # make the output file about this big
    missing_requests: int | None = None  # completed per the counts, in neither file
    zero_status_requests: int | None = None  # output lines with status_code 0
    output_error_requests: int | None = None  # non-2xx lines in the output file


FILE_OVERRIDES = frozenset(
    {"output_expires_after", "output_bytes", "missing_requests", "zero_status_requests", "output_error_requests"}
)


def file_options(overrides: dict[str, Any]) -> FileOptions | None:
    """The FileOptions among ``create_batch`` overrides (validated), or None when there are none."""
    given = {k: v for k, v in overrides.items() if k in FILE_OVERRIDES and v is not None}
    if not given:
        return None
    if "output_expires_after" in given:
        given["output_expires_after"] = output_expires_seconds(given["output_expires_after"])
    for name in FILE_OVERRIDES - {"output_expires_after"}:
        if name in given:
            value = given[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0")
    return FileOptions(**given)


def requests_for_output_bytes(output_bytes: int, endpoint: str | None, model: str | None) -> int:
    """How many requests a batch asked to have an output file of ``output_bytes`` gets by default:
    lines of ~20 KB (one ~32 KB vector for embeddings), within the API's 50,000 a batch."""
    embeddings = (endpoint or "").endswith("/embeddings") or "embedding" in (model or "")
    per_line = embedding_dims(model or "") * 21 + 600 if embeddings else 20_000
    return min(50_000, max(1, output_bytes // per_line))


def output_expires_seconds(value: Any) -> int:
    """Seconds of an ``output_expires_after`` parameter; ValueError with the API's wording when invalid."""
    if not isinstance(value, dict):
        raise ValueError("Invalid type for 'output_expires_after': expected an object.")
    if value.get("anchor") != "created_at":
        raise ValueError(
            f"Invalid value for 'output_expires_after.anchor': {value.get('anchor')!r}. "
            "Supported values are: 'created_at'."
        )
    seconds = value.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ValueError("Invalid type for 'output_expires_after.seconds': expected an integer.")
    if not OUTPUT_EXPIRES_MIN_S <= seconds <= OUTPUT_EXPIRES_MAX_S:
        raise ValueError(
            f"Invalid 'output_expires_after.seconds': expected a value between {OUTPUT_EXPIRES_MIN_S} and "
            f"{OUTPUT_EXPIRES_MAX_S}, but got {seconds} instead."
        )
    return seconds


@dataclass(frozen=True)
class BatchSource:
    """Everything a batch's files derive from, read from the org in one go under its lock."""

    batch: dict[str, Any]  # the batch object as the API renders it now
    project: str
    idb: int  # the row's random bits: seeds every draw
    salt: int  # the org's seed salt, so two orgs' files differ
    total: int  # requests in the input file (the object shows 0 while validating)
    model: str  # the row's model, even before the object carried `model`
    endpoint: str
    tin: float
    tout: float
    cfrac: float
    rfrac: float
    reasoning: bool
    options: FileOptions

    @property
    def batch_id(self) -> str:
        return str(self.batch["id"])

    @property
    def status(self) -> str:
        return str(self.batch["status"])

    def rng(self, stream: int, *more: int) -> np.random.Generator:
        return np.random.default_rng([self.salt, self.idb, stream, *more])


def snapshot_model(model: str) -> str:
    return _SNAPSHOTS.get(model, model)


def requested_model(model: str) -> str:
    """The name a user writes in the input file: the alias without the snapshot date."""
    return _DATE_SUFFIX.sub("", model)


def embedding_dims(model: str) -> int:
    return 3072 if "3-large" in model else 1536


class CustomIds:
    """The batch's custom ids by input line: one realistic naming scheme per batch, unique per line.

    The schemes encode a job in the part before the last ``-``, ``_`` or ``:`` where users do
    (``job-17-req-00042``, ``ticket:123``, ``acme:doc-4411-3``), and not at all for uuids.
    """

    _DATASETS = ("reviews", "tickets", "invoices", "catalog", "eval_set", "docs")
    _TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")

    def __init__(self, src: BatchSource) -> None:
        rng = src.rng(_S_IDS)
        draws = rng.integers(0, 2**62, 6)
        self.style = int(draws[0] % 6)
        self.a = int(draws[1])
        self.b = int(draws[2])
        self.chunks = 1 + int(draws[3] % 8)
        created = int(src.batch["created_at"])
        day = np.datetime64(created, "s").astype("datetime64[D]").astype(str).replace("-", "")
        self.dataset = f"{self._DATASETS[int(draws[4] % 6)]}_{day}"
        self.tenant = self._TENANTS[int(draws[5] % 5)]

    def __call__(self, r: int) -> str:
        s = self.style
        if s == 0:
            return f"job-{1 + self.a % 999}-req-{r:05d}"
        if s == 1:
            return f"ticket:{10_000 + self.a % 900_000 + r}"
        if s == 2:
            hi, lo = _mix64(self.a ^ r), _mix64(self.b + r)  # lo is a bijection of r: ids are unique
            h = f"{hi:016x}{lo:016x}"
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"
        if s == 3:
            return f"{self.dataset}_{r}"
        if s == 4:
            return f"request-{r + 1}"
        return f"{self.tenant}:doc-{1000 + self.a % 9000 + r // self.chunks}-{r % self.chunks}"


_M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit ints that looks random."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class RequestPlan:
    """The requests of one batch: in input order ``r = 0..total-1``; file order via ``output_order``/``error_order``."""

    def __init__(self, src: BatchSource) -> None:
        self.src = src
        self.n = src.total
        self.custom_id = CustomIds(src)
        self.has_files = src.status in TERMINAL_WITH_FILES
        self.kind = _endpoint_family(src.endpoint)

    # ------------------------------------------------------------------ sizes (all requests)
    @cached_property
    def weights(self) -> npt.NDArray[np.float64]:
        """Relative size of each request (prompt and answer), mean about 1."""
        rng = self.src.rng(_S_SIZES)
        return np.asarray(np.exp(0.55 * rng.standard_normal(self.n) - 0.15), dtype=np.float64)

    @cached_property
    def prompt_chars(self) -> npt.NDArray[np.int64]:
        """Characters of each prompt (~4 per input token), the marker prefix not included."""
        return np.maximum(8, np.rint(4.0 * self.src.tin * self.weights)).astype(np.int64)

    # ------------------------------------------------------------------ outcomes (terminal batches)
    @cached_property
    def counts(self) -> tuple[int, int]:
        """(completed, failed) of the batch object; (0, 0) until it is terminal."""
        if not self.has_files:
            return 0, 0
        rc = self.src.batch["request_counts"]
        return int(rc["completed"]), int(rc["failed"])

    @cached_property
    def quirks(self) -> tuple[int, int, int]:
        """(missing, zero status, non-2xx output) among the completed requests, at least one left 2xx."""
        completed = self.counts[0]
        opts = self.src.options
        rng = self.src.rng(_S_QUIRKS)
        u = rng.random(3)
        sizes = rng.integers(1, [4, 4, 6])
        natural = (
            int(sizes[0]) if completed >= 20 and u[0] < 0.006 else 0,
            int(sizes[1]) if completed >= 20 and u[1] < 0.006 else 0,
            int(sizes[2]) if completed >= 10 and u[2] < 0.012 else 0,
        )
        wanted = [
            natural[i] if given is None else given
            for i, given in enumerate((opts.missing_requests, opts.zero_status_requests, opts.output_error_requests))
        ]
        room = max(0, completed - 1)  # the batch's usage needs one 2xx line to land on
        out = []
        for w in wanted:
            take = min(w, room)
            out.append(take)
            room -= take
        return out[0], out[1], out[2]

    @cached_property
    def roles(self) -> npt.NDArray[np.int8]:
        completed, failed = self.counts
        roles = np.full(self.n, UNRUN, dtype=np.int8)
        if not self.has_files:
            return roles
        perm = self.src.rng(_S_ROLES).permutation(self.n)
        done = perm[:completed]
        roles[done] = OK
        roles[perm[completed : completed + failed]] = FAILED
        m, z, x = self.quirks
        roles[done[:m]] = MISSING
        roles[done[m : m + z]] = ZERO_STATUS
        roles[done[m + z : m + z + x]] = OUTPUT_ERROR
        return roles

    @property
    def unrun_in_error_file(self) -> bool:
        """Requests that never ran are listed in the error file when the batch has one (see org.py)."""
        return self.src.status in ("expired", "cancelled") and bool(self.src.batch.get("error_file_id"))

    @cached_property
    def output_order(self) -> npt.NDArray[np.int64]:
        """Input indices of the output file's lines: roughly completion order, not input order."""
        idx = np.flatnonzero(np.isin(self.roles, (OK, ZERO_STATUS, OUTPUT_ERROR)))
        return self._near_order(idx, 1)

    @cached_property
    def error_order(self) -> npt.NDArray[np.int64]:
        """Input indices of the error file's lines: failures as they happened, then the requests never run."""
        failed = self._near_order(np.flatnonzero(self.roles == FAILED), 2)
        if not self.unrun_in_error_file:
            return failed
        return np.concatenate([failed, np.flatnonzero(self.roles == UNRUN)])

    @cached_property
    def missing(self) -> npt.NDArray[np.int64]:
        """Input indices of requests in neither file."""
        in_files = np.zeros(self.n, dtype=bool)
        in_files[self.output_order] = True
        in_files[self.error_order] = True
        return np.flatnonzero(~in_files)

    def _near_order(self, idx: npt.NDArray[np.int64], salt: int) -> npt.NDArray[np.int64]:
        # Requests run concurrently: a line lands within a few hundred positions of its input order.
        if len(idx) < 2:
            return idx.astype(np.int64)
        noise = self.src.rng(_S_ROLES, salt).normal(0.0, 40.0 + len(idx) * 0.02, len(idx))
        return idx[np.argsort(np.arange(len(idx)) + noise, kind="stable")].astype(np.int64)

    @cached_property
    def kinds(self) -> npt.NDArray[np.int64]:
        """Per request, which error (index into the renderer's tables) a non-2xx line carries."""
        return self.src.rng(_S_QUIRKS, 1).integers(0, 1 << 30, self.n)

    # ------------------------------------------------------------------ tokens of the 2xx lines
    @cached_property
    def tokens(self) -> tuple[npt.NDArray[np.int64], ...]:
        """(input, cached, output, reasoning) per request: zero except on 2xx output lines, whose
        sums are exactly the batch's usage (its formula, also for batches that do not show it)."""
        completed = self.counts[0]
        inp_t, cached_t, out_t, reas_t = usage_totals(
            completed, self.src.tin, self.src.tout, self.src.cfrac, self.src.rfrac
        )
        zeros = [np.zeros(self.n, dtype=np.int64) for _ in range(4)]
        ok = np.flatnonzero(self.roles == OK)
        if len(ok) == 0:
            return tuple(zeros)
        w = self.weights[ok]
        inp = _split(inp_t, w, 1)
        out = _split(out_t, w * self.src.rng(_S_SIZES, 1).uniform(0.5, 1.5, len(ok)), 1)
        cached = _split_capped(cached_t, inp)
        reas = _split_capped(reas_t, out)
        for arr, vals in zip(zeros, (inp, cached, out, reas), strict=True):
            arr[ok] = vals
        return tuple(zeros)

    @cached_property
    def embedding_inputs(self) -> int:
        """Texts per embeddings request (each answered by one vector): 1, or more for ``output_bytes``."""
        target = self.src.options.output_bytes
        if target is None or self.kind != "embeddings" or self.n == 0:
            return 1
        # Sized on every request succeeding (the input file cannot depend on the outcome): ~21 bytes a
        # float as the API prints them, plus the line's own ~600 bytes.
        per_vector = embedding_dims(self.src.model) * 21 + 60
        return max(1, round((target / self.n - 600) / per_vector))

    # ------------------------------------------------------------------ file dates
    @cached_property
    def retention_s(self) -> int:
        """Seconds the output and error files are kept: the batch's setting, or the natural draw."""
        if self.src.options.output_expires_after is not None:
            return self.src.options.output_expires_after
        rng = self.src.rng(_S_FILES)
        u, pick = rng.random(), int(rng.integers(0, 4))
        # A few users ask for short retention (compliance); most keep the 30-day default.
        return (3_600, 86_400, 7 * 86_400, 14 * 86_400)[pick] if u < 0.04 else DEFAULT_RETENTION_S

    @cached_property
    def input_uploaded_at(self) -> int:
        """The input file is uploaded shortly before the batch is created."""
        lag = int(self.src.rng(_S_FILES, 1).integers(2, 600))
        return int(self.src.batch["created_at"]) - lag

    @property
    def written_at(self) -> int:
        """When the output and error files were written: the batch's terminal instant."""
        b = self.src.batch
        return int(b["completed_at"] or b["expired_at"] or b["cancelled_at"] or b["created_at"])

    def processing_span(self) -> tuple[int, int]:
        """(start, end) of the batch's processing, for the `created` times of the response bodies."""
        b = self.src.batch
        start = int(b["in_progress_at"] or b["created_at"])
        end = b["finalizing_at"] or b["cancelling_at"] or b["expired_at"] or b["completed_at"] or start
        return start, max(start, int(end))


def _endpoint_family(endpoint: str) -> str:
    if endpoint.endswith(EMBEDDINGS.removeprefix("/v1")):
        return "embeddings"
    if endpoint.endswith(MODERATIONS.removeprefix("/v1")):
        return "moderations"
    if endpoint.endswith("/chat/completions"):
        return "chat"
    if endpoint.endswith("/completions"):
        return "completions"
    # /v1/responses, and any endpoint without a dedicated body, answer with a response object.
    return "responses"


def _split(total: int, weights: npt.NDArray[np.float64], floor: int) -> npt.NDArray[np.int64]:
    """``total`` split over the entries in proportion to ``weights``, each >= ``floor`` when possible; exact."""
    k = len(weights)
    base = floor if total >= floor * k else 0
    rest = total - base * k
    raw = rest * weights / weights.sum()
    share = np.floor(raw).astype(np.int64)
    left = rest - int(share.sum())
    if left > 0:
        share[np.argsort(share - raw, kind="stable")[:left]] += 1  # largest fractional parts first
    return share + base


def _split_capped(total: int, caps: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``total`` split in proportion to ``caps`` and never above them (``total <= caps.sum()``); exact."""
    capsum = int(caps.sum())
    if total >= capsum:
        return caps.copy()
    if total <= 0:
        return np.zeros(len(caps), dtype=np.int64)
    raw = total * caps / capsum
    share = np.minimum(np.floor(raw).astype(np.int64), caps)
    left = total - int(share.sum())
    if left > 0:
        order = np.argsort(share - raw, kind="stable")
        spare = (caps - share)[order]
        before = np.cumsum(spare) - spare
        share[order] += np.clip(left - before, 0, spare)
    return share
