"""What a realistic organisation's batches look like, drawn vectorised so a million of them take seconds.

Each batch is reduced to a handful of numbers (a row of :class:`Columns`): its creation time, the
random bits its ids derive from, the instants its lifecycle events are *scheduled* for, its size and
its per-request token averages. Everything a client sees (status, counts, usage, file ids, metadata,
errors) is computed from that row and the clock when a page is rendered, so the lifecycle moves as the
clock moves without any bookkeeping, and a million batches stay around a hundred bytes each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# Batches created from this instant on carry `usage` and `model`; before it the keys are absent,
# exactly as real responses recorded before the API change (2025-09-07T00:00:00Z).
USAGE_CUTOFF = 1_757_203_200

# `expires_at = created_at + 86400`: the only completion window OpenAI offers is "24h".
EXPIRY_S = 86_400

# "Not scheduled / never happens". Far enough in the future to compare as "not reached yet"
# and small enough that sums with a few days of seconds cannot overflow int64.
NEVER = 2**62

# Outcome codes: what the batch will end as if nobody interferes (cancel() can still change it).
COMPLETED, ALL_FAILED, FAILED, EXPIRED, CANCELLED = 0, 1, 2, 3, 4
OUTCOME_CODES = {
    "completed": COMPLETED,
    "all_failed": ALL_FAILED,
    "failed": FAILED,
    "expired": EXPIRED,
    "cancelled": CANCELLED,
}
# ~5% fail validation, ~2% expire, ~2% are cancelled, ~1% "complete" with every request failed.
OUTCOME_P = np.array([0.90, 0.01, 0.05, 0.02, 0.02])

# Endpoint kinds drive tokens (embeddings and moderations produce no output tokens) and speed.
KIND_CHAT, KIND_EMBED, KIND_MODERATION = 0, 1, 2

CHAT, RESPONSES, EMBEDDINGS, MODERATIONS = (
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/moderations",
)
# Batches could target /v1/responses only from mid-2025; earlier history is chat only.
RESPONSES_SINCE = 1_748_736_000  # 2025-06-01


@dataclass(frozen=True)
class ModelSpec:
    name: str
    released: int  # no batch uses a model before it existed
    kind: int
    reasoning: bool  # only reasoning models report reasoning tokens
    weight: float  # relative popularity among models of its kind, once released


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gpt-4o-mini-2024-07-18", 1_721_260_800, KIND_CHAT, False, 30.0),
    ModelSpec("gpt-4o-2024-08-06", 1_722_902_400, KIND_CHAT, False, 12.0),
    ModelSpec("gpt-4.1-mini-2025-04-14", 1_744_588_800, KIND_CHAT, False, 20.0),
    ModelSpec("gpt-4.1-2025-04-14", 1_744_588_800, KIND_CHAT, False, 8.0),
    ModelSpec("gpt-5-mini-2025-08-07", 1_754_524_800, KIND_CHAT, True, 22.0),
    ModelSpec("o4-mini-2025-04-16", 1_744_761_600, KIND_CHAT, True, 6.0),
    ModelSpec("text-embedding-3-small", 0, KIND_EMBED, False, 1.0),
    ModelSpec("omni-moderation-latest", 0, KIND_MODERATION, False, 1.0),
)


def usage_totals(completed: int, tin: float, tout: float, cfrac: float, rfrac: float) -> tuple[int, int, int, int]:
    """(input incl. cached, cached, output, reasoning) tokens billed for ``completed`` requests of a row.

    The batch object's `usage` and the per-request usage of its output file both come from here, so
    the file's lines always sum to the object's figures.
    """
    inp = int(completed * tin)
    out = int(completed * tout)
    return inp, int(inp * cfrac), out, int(out * rfrac)


def endpoint_kind(endpoint: str) -> int:
    if endpoint.endswith("/embeddings"):
        return KIND_EMBED
    if endpoint.endswith("/moderations"):
        return KIND_MODERATION
    return KIND_CHAT


def guess_model_kind(model: str) -> tuple[int, bool]:
    """Kind and reasoning flag of a model name the catalogue does not know (test overrides)."""
    low = model.lower()
    if "embedding" in low:
        return KIND_EMBED, False
    if "moderation" in low:
        return KIND_MODERATION, False
    reasoning = low.startswith(("o1", "o3", "o4", "gpt-5"))
    return KIND_CHAT, reasoning


@dataclass
class Catalog:
    """Interned model and endpoint strings, so a row stores a small index instead of a str."""

    models: list[str] = field(default_factory=lambda: [m.name for m in MODELS])
    model_kind: list[int] = field(default_factory=lambda: [m.kind for m in MODELS])
    model_reasoning: list[bool] = field(default_factory=lambda: [m.reasoning for m in MODELS])
    endpoints: list[str] = field(default_factory=lambda: [CHAT, RESPONSES, EMBEDDINGS, MODERATIONS])

    def model_index(self, name: str) -> int:
        if name in self.models:
            return self.models.index(name)
        kind, reasoning = guess_model_kind(name)
        self.models.append(name)
        self.model_kind.append(kind)
        self.model_reasoning.append(reasoning)
        return len(self.models) - 1

    def endpoint_index(self, endpoint: str) -> int:
        if endpoint not in self.endpoints:
            self.endpoints.append(endpoint)
        return self.endpoints.index(endpoint)


# Column name -> dtype of the compact per-batch record. ~100 bytes a batch.
COLUMN_DTYPES: dict[str, type[np.generic]] = {
    "created": np.int64,
    "ida": np.uint16,  # id hex 9-12 (after the 8 hex of created_at)
    "idb": np.uint64,  # id hex 17-32; also seeds everything rendered lazily (files, metadata, errors)
    "ip": np.int64,  # in_progress_at (scheduled)
    "fin": np.int64,  # finalizing_at
    "comp": np.int64,  # completed_at
    "fail": np.int64,  # failed_at
    "exp": np.int64,  # expired_at
    "cing": np.int64,  # cancelling_at
    "cled": np.int64,  # cancelled_at
    "nend": np.int64,  # when processing would be done if never interrupted: counts grow linearly to it
    "total": np.int32,
    "ffrac": np.float32,  # fraction of processed requests that fail
    "model": np.uint16,
    "endpoint": np.uint8,
    "meta": np.uint8,  # 0: metadata null, 1: generated from idb, 2: explicit (side table)
    "tin": np.float32,  # mean input tokens per completed request
    "tout": np.float32,  # mean output tokens per completed request
    "cfrac": np.float32,  # cached share of input tokens
    "rfrac": np.float32,  # reasoning share of output tokens
}

Columns = dict[str, npt.NDArray[np.generic]]

TIME_COLUMNS = ("ip", "fin", "comp", "fail", "exp", "cing", "cled", "nend")


def _lognormal(
    rng: np.random.Generator, median: float | npt.NDArray[np.float64], sigma: float, n: int
) -> npt.NDArray[np.float64]:
    return np.asarray(np.exp(np.log(median) + sigma * rng.standard_normal(n)), dtype=np.float64)


def draw_created(rng: np.random.Generator, n: int, start: int, end: int) -> npt.NDArray[np.int64]:
    """``n`` creation instants in [start, end]: busier on weekday working hours, partly in bursts.

    Bursts matter: a job that submits several batches within a second produces equal `created_at`
    values, the case where the id is the tie-breaker of the list order.
    """
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    span = max(end - start, 1)
    # Cluster sizes: most submissions are single batches, a quarter are bursts of a few.
    sizes_list: list[npt.NDArray[np.int64]] = []
    total = 0
    while total < n:
        m = max(16, n - total)
        sizes = np.where(rng.random(m) < 0.75, 1, rng.geometric(0.25, m)).astype(np.int64)
        sizes_list.append(sizes)
        total += int(sizes.sum())
    sizes = np.concatenate(sizes_list)
    cut = int(np.searchsorted(np.cumsum(sizes), n))
    sizes = sizes[: cut + 1].copy()
    sizes[-1] -= int(sizes.sum()) - n
    sizes = sizes[sizes > 0]
    m = len(sizes)
    # Cluster starts by rejection sampling against a day/week activity profile (UTC).
    starts_parts: list[npt.NDArray[np.int64]] = []
    got = 0
    while got < m:
        cand = start + (rng.random(2 * (m - got) + 16) * span).astype(np.int64)
        hour = (cand // 3600) % 24
        weekday = ((cand // 86_400) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
        weight = np.where((hour >= 7) & (hour <= 20), 1.0, 0.45) * np.where(weekday >= 5, 0.55, 1.0)
        keep = cand[rng.random(len(cand)) < weight]
        starts_parts.append(keep[: m - got])
        got += len(starts_parts[-1])
    starts = np.concatenate(starts_parts)
    cluster = np.repeat(np.arange(m), sizes)
    # Gaps inside a burst: 0 s (same second) a third of the time, else a few seconds.
    gaps = np.where(rng.random(n) < 0.35, 0, rng.integers(1, 6, n)).astype(np.int64)
    first = np.cumsum(sizes) - sizes
    gaps[first] = 0
    csum = np.cumsum(gaps)
    offsets = csum - np.repeat(csum[first], sizes)
    created = starts[cluster] + offsets
    return np.minimum(created, end).astype(np.int64)


def draw_batches(  # noqa: PLR0912, PLR0915 -- every column drawn in one pass; the order of the draws is the seed's contract
    rng: np.random.Generator,
    created: npt.NDArray[np.int64],
    catalog: Catalog,
    *,
    outcome: int | None = None,
    model: str | None = None,
    endpoint: str | None = None,
    total: int | None = None,
    validating_s: float | None = None,
    processing_s: float | None = None,
    finalizing_s: float | None = None,
    failed_fraction: float | None = None,
    has_metadata: bool | None = None,
) -> Columns:
    """One compact row per entry of ``created``; keyword arguments force a value on every row."""
    n = len(created)
    created = created.astype(np.int64)
    out: Columns = {"created": created}
    out["ida"] = rng.integers(0, 2**16, n, dtype=np.uint16)
    out["idb"] = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)

    # --- endpoint and model -------------------------------------------------------------------
    if model is not None:
        midx = np.full(n, catalog.model_index(model), dtype=np.int64)
        kind = np.full(n, catalog.model_kind[int(midx[0])] if n else KIND_CHAT, dtype=np.int64)
        if endpoint is not None:
            eidx = np.full(n, catalog.endpoint_index(endpoint), dtype=np.int64)
        else:
            eidx = _endpoints_for(rng, kind, created, catalog)
    else:
        if endpoint is not None:
            eidx = np.full(n, catalog.endpoint_index(endpoint), dtype=np.int64)
            kind = np.full(n, endpoint_kind(endpoint), dtype=np.int64)
        else:
            u = rng.random(n)
            kind = np.where(u < 0.86, KIND_CHAT, np.where(u < 0.97, KIND_EMBED, KIND_MODERATION)).astype(np.int64)
            eidx = _endpoints_for(rng, kind, created, catalog)
        midx = np.empty(n, dtype=np.int64)
        midx[kind == KIND_EMBED] = catalog.model_index("text-embedding-3-small")
        midx[kind == KIND_MODERATION] = catalog.model_index("omni-moderation-latest")
        chat = np.flatnonzero(kind == KIND_CHAT)
        if len(chat):
            chat_models = [i for i, m in enumerate(MODELS) if m.kind == KIND_CHAT]
            released = np.array([MODELS[i].released for i in chat_models], dtype=np.int64)
            weights = np.array([MODELS[i].weight for i in chat_models])
            # Only models released by the batch's creation are eligible; the oldest always is.
            avail = created[chat, None] >= released[None, :]
            avail[:, 0] = True
            w = avail * weights[None, :]
            cum = np.cumsum(w, axis=1)
            pick = (cum < rng.random(len(chat))[:, None] * cum[:, -1:]).sum(axis=1)
            midx[chat] = np.array(chat_models, dtype=np.int64)[pick]
    reasoning = np.array(catalog.model_reasoning, dtype=bool)[midx]
    out["model"] = midx.astype(np.uint16)
    out["endpoint"] = eidx.astype(np.uint8)

    # --- size: heavy tailed, a few to 50,000 requests (the per-batch maximum) -------------------
    if total is not None:
        tot = np.full(n, total, dtype=np.int64)
    else:
        small = _lognormal(rng, 30.0, 1.5, n)
        large = _lognormal(rng, 2500.0, 1.4, n)
        tot = np.clip(np.rint(np.where(rng.random(n) < 0.85, small, large)), 1, 50_000).astype(np.int64)
    out["total"] = tot.astype(np.int32)

    # --- tokens per completed request -----------------------------------------------------------
    tin = np.where(
        kind == KIND_CHAT,
        np.clip(_lognormal(rng, 900.0, 0.9, n), 20, 60_000),
        np.where(
            kind == KIND_EMBED,
            np.clip(_lognormal(rng, 350.0, 1.0, n), 1, 8191),
            np.clip(_lognormal(rng, 150.0, 0.8, n), 1, 8000),
        ),
    )
    tout = np.where(kind == KIND_CHAT, np.clip(_lognormal(rng, 220.0, 0.9, n), 1, 16_000), 0.0)
    tout = np.where(reasoning, tout * 3.0, tout)
    out["tin"] = tin.astype(np.float32)
    out["tout"] = tout.astype(np.float32)
    # Prompt caching only applies to chat-like requests, and many batches share no prefix at all.
    cfrac = np.where((kind == KIND_CHAT) & (rng.random(n) < 0.6), rng.beta(2.0, 3.0, n) * 0.9, 0.0)
    out["cfrac"] = cfrac.astype(np.float32)
    out["rfrac"] = np.where(reasoning, rng.uniform(0.4, 0.85, n), 0.0).astype(np.float32)

    # --- outcome and schedule -------------------------------------------------------------------
    oc = np.full(n, outcome, dtype=np.int64) if outcome is not None else rng.choice(5, n, p=OUTCOME_P).astype(np.int64)
    if validating_s is not None:
        v = np.full(n, int(round(validating_s)), dtype=np.int64)
    else:
        # Usually a second or two, sometimes minutes when the queue is busy.
        v = np.rint(np.clip(_lognormal(rng, 1.5, 0.9, n), 0, 120)).astype(np.int64)
        slow = rng.random(n) < 0.04
        v[slow] = rng.integers(20, 600, int(slow.sum()))
    if finalizing_s is not None:
        f = np.full(n, int(round(finalizing_s)), dtype=np.int64)
    else:
        f = np.rint(np.clip(_lognormal(rng, 1.5, 0.9, n) * (1 + tot / 300.0), 0, 3600)).astype(np.int64)
    if processing_s is not None:
        d = np.full(n, max(1, int(round(processing_s))), dtype=np.int64)
    else:
        # Minutes for small batches, hours for large ones, with a long queueing tail (the recorded
        # page has a 2-request batch that took 9.5 h).
        speed = np.where(kind == KIND_CHAT, 1.0, np.where(kind == KIND_EMBED, 0.35, 0.25)) * np.where(
            reasoning, 1.6, 1.0
        )
        d = np.ceil(_lognormal(rng, 45.0, 1.4, n) * (1.0 + tot / 100.0) ** 0.8 * speed).astype(np.int64)
        d = np.maximum(d, 1)
        # A batch that completes did so inside its 24 h window.
        room = EXPIRY_S - v - f - 30
        late = (d > room) & ((oc == COMPLETED) | (oc == ALL_FAILED))
        d[late] = np.maximum(1, (room[late] * rng.uniform(0.6, 0.98, int(late.sum()))).astype(np.int64))

    never = np.full(n, NEVER, dtype=np.int64)
    ip = created + v
    fin, comp, fail, exp, cing, cled, nend = (never.copy() for _ in range(7))

    done_ok = (oc == COMPLETED) | (oc == ALL_FAILED)
    nend[done_ok] = ip[done_ok] + d[done_ok]
    fin[done_ok] = nend[done_ok]
    comp[done_ok] = fin[done_ok] + f[done_ok]

    is_failed = oc == FAILED
    fail[is_failed] = created[is_failed] + v[is_failed]
    ip[is_failed] = NEVER

    is_exp = oc == EXPIRED
    ne = int(is_exp.sum())
    if ne:
        # Partial progress at the deadline; some never got capacity at all.
        frac = np.where(rng.random(ne) < 0.15, 0.0, rng.uniform(0.05, 0.95, ne))
        window = created[is_exp] + EXPIRY_S - ip[is_exp]
        with np.errstate(divide="ignore"):
            need = np.where(frac > 0, np.ceil(window / np.where(frac > 0, frac, 1.0)), NEVER - ip[is_exp])
        nend[is_exp] = ip[is_exp] + need.astype(np.int64)
        # Expiry is noticed some minutes after the deadline.
        exp[is_exp] = created[is_exp] + EXPIRY_S + rng.integers(60, 1800, ne)

    is_can = oc == CANCELLED
    nc = int(is_can.sum())
    if nc:
        nend[is_can] = ip[is_can] + d[is_can]
        during_validation = rng.random(nc) < 0.1
        at = np.where(
            during_validation,
            created[is_can] + (v[is_can] * rng.random(nc)).astype(np.int64),
            ip[is_can] + (d[is_can] * rng.uniform(0.05, 0.95, nc)).astype(np.int64),
        )
        at = np.minimum(at, created[is_can] + EXPIRY_S - 60)
        cing[is_can] = at
        # "cancelling for up to 10 minutes"
        cled[is_can] = at + np.clip(np.rint(_lognormal(rng, 40.0, 1.0, nc)), 1, 600).astype(np.int64)
        ipc = ip[is_can]
        ipc[at < ipc] = NEVER
        ip[is_can] = ipc

    out.update({"ip": ip, "fin": fin, "comp": comp, "fail": fail, "exp": exp, "cing": cing, "cled": cled, "nend": nend})

    if failed_fraction is not None:
        ff = np.full(n, failed_fraction, dtype=np.float64)
    else:
        some = rng.random(n) < 0.12
        ff = np.where(some, np.exp(rng.uniform(np.log(5e-4), np.log(0.2), n)), 0.0)
    ff = np.where(oc == ALL_FAILED, 1.0, ff)
    out["ffrac"] = ff.astype(np.float32)

    if has_metadata is not None:
        out["meta"] = np.full(n, 1 if has_metadata else 0, dtype=np.uint8)
    else:
        out["meta"] = (rng.random(n) < 0.5).astype(np.uint8)
    return {k: np.asarray(out[k], dtype=COLUMN_DTYPES[k]) for k in COLUMN_DTYPES}


def _endpoints_for(
    rng: np.random.Generator, kind: npt.NDArray[np.int64], created: npt.NDArray[np.int64], catalog: Catalog
) -> npt.NDArray[np.int64]:
    n = len(kind)
    responses = (created >= RESPONSES_SINCE) & (rng.random(n) < 0.45)
    chat_e = np.where(responses, catalog.endpoint_index(RESPONSES), catalog.endpoint_index(CHAT))
    return np.where(
        kind == KIND_EMBED,
        catalog.endpoint_index(EMBEDDINGS),
        np.where(kind == KIND_MODERATION, catalog.endpoint_index(MODERATIONS), chat_e),
    ).astype(np.int64)


def terminal_at(cols: Columns) -> npt.NDArray[np.int64]:
    """When each row reaches its terminal status as scheduled (NEVER if it would not)."""
    t = np.full(len(cols["created"]), NEVER, dtype=np.int64)
    for name in ("comp", "fail", "exp", "cled"):
        t = np.minimum(t, cols[name].astype(np.int64))
    return t


def make_open(rng: np.random.Generator, cols: Columns, now: int, fraction: float) -> None:
    """Shift a random ``fraction`` of the rows so that ``now`` falls inside their lifetime."""
    n = len(cols["created"])
    k = int(round(n * fraction))
    if k <= 0:
        return
    idx = rng.choice(n, size=min(k, n), replace=False)
    created = cols["created"][idx].astype(np.int64)
    life = terminal_at(cols)[idx] - created
    ok = (life >= 1) & (life < NEVER // 2)
    idx, created, life = idx[ok], created[ok], life[ok]
    new_created = now - (rng.random(len(idx)) * life).astype(np.int64)
    shift = new_created - created
    cols["created"][idx] = new_created
    for name in TIME_COLUMNS:
        col = cols[name]
        vals = col[idx].astype(np.int64)
        col[idx] = np.where(vals >= NEVER, vals, vals + shift)
