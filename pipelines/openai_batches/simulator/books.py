"""OpenAI's books of a simulated organisation: the tokens and costs its Admin API reports.

Everything is derived from the same compact batch rows the batch endpoints render, with the same
arithmetic, so the two sides agree to the token. A batch's tokens are counted as they are processed:
the batch object's `usage` at instant ``t`` is a step function ``F(t)`` that grows from its
`in_progress_at` to the end of its work (finalizing, cancel or deadline), and the tokens of a bucket
``[a, b)`` are ``F(b) - F(a)`` (both capped at the clock's now). The sums telescope, so:

* a batch whose processing lies within a month contributes exactly its final `usage` to that month,
  whatever the bucket width, while a day boundary inside its processing splits it over two days;
* the buckets up to now add up to exactly what the batch objects report now;
* batches created before 2025-09-07 carry no `usage` on the object, but their tokens are counted here.

Non-batch traffic (``batch: false``) is seeded per project, model and UTC day and spread evenly over
the day, the same way. A discrepancy (:meth:`Books.set_usage_discrepancy`) scales one project's batch
tokens inside one month, applied to the cumulative counts so that every bucket width still agrees.

Only the window asked for is computed (rows created in it and the day before), vectorised with numpy:
a 31-day page of daily buckets over a year of a million batches takes tens of milliseconds.
"""

from __future__ import annotations

import calendar
import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .workload import EXPIRY_S, KIND_CHAT, MODELS

if TYPE_CHECKING:
    from .org import SimulatedOrg

I64 = npt.NDArray[np.int64]

DAY = 86_400

# The endpoints the Usage API's completions endpoint counts; embeddings and moderations batches have
# their own usage endpoints (which cannot split batch from non-batch traffic).
COMPLETIONS_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses"})
KIND_NAMES = ("completions", "embeddings", "moderations", "other")
_COMPLETIONS, _EMBEDDINGS, _MODERATIONS, _OTHER = range(4)

# Standard list prices in USD per 1M tokens: (input, cached input, output). Fixed on purpose: the
# simulated books must not move when a price list is updated. Batch traffic is billed at 50%.
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4o-mini-2024-07-18": (0.15, 0.075, 0.60),
    "gpt-4o-2024-08-06": (2.50, 1.25, 10.00),
    "gpt-4.1-mini-2025-04-14": (0.40, 0.10, 1.60),
    "gpt-4.1-2025-04-14": (2.00, 0.50, 8.00),
    "gpt-5-mini-2025-08-07": (0.25, 0.025, 2.00),
    "o4-mini-2025-04-16": (1.10, 0.275, 4.40),
    "text-embedding-3-small": (0.02, 0.02, 0.0),
    "omni-moderation-latest": (0.0, 0.0, 0.0),  # free: no line item
}
# A model a test invents is billed like the cheapest model of its kind.
_FALLBACK_PRICE = {
    _COMPLETIONS: PRICES["gpt-4o-mini-2024-07-18"],
    _EMBEDDINGS: PRICES["text-embedding-3-small"],
    _MODERATIONS: PRICES["omni-moderation-latest"],
    _OTHER: PRICES["gpt-4o-mini-2024-07-18"],
}
BATCH_PRICE_FACTOR = 0.5


@dataclass(frozen=True)
class UsageRow:
    """Tokens of one (bucket, project, model, batch or not) in one usage category (``kind``)."""

    start_time: int
    project_id: str
    model: str
    batch: bool
    kind: str  # completions, embeddings, moderations, other
    input_tokens: int  # cached included, like the API
    input_cached_tokens: int
    output_tokens: int
    num_model_requests: int


@dataclass(frozen=True)
class CostLine:
    """One line item of one project on one day."""

    start_time: int
    project_id: str
    line_item: str
    quantity: int  # tokens
    amount_usd: float


def line_item_names(model: str, batch: bool) -> tuple[str, str, str]:
    """Line items for (uncached input, cached input, output) tokens of ``model``.

    The documented form is "<model>, input_tokens"; how batch traffic is named is not documented, so
    the simulator bills it as separate "<model>, batch_input_tokens" (cached/output alike) items.
    """
    prefix = "batch_" if batch else ""
    return (
        f"{model}, {prefix}input_tokens",
        f"{model}, {prefix}cached_input_tokens",
        f"{model}, {prefix}output_tokens",
    )


def price_of(model: str, kind: str) -> tuple[float, float, float]:
    return PRICES.get(model) or _FALLBACK_PRICE[KIND_NAMES.index(kind)]


def cost_lines(rows: list[UsageRow]) -> list[CostLine]:
    """The Costs API's line items for daily usage rows: every category but the free ones."""
    out: list[CostLine] = []
    for r in rows:
        prices = price_of(r.model, r.kind)
        factor = BATCH_PRICE_FACTOR if r.batch else 1.0
        quantities = (r.input_tokens - r.input_cached_tokens, r.input_cached_tokens, r.output_tokens)
        for name, qty, price in zip(line_item_names(r.model, r.batch), quantities, prices, strict=True):
            if qty > 0 and price > 0:
                out.append(CostLine(r.start_time, r.project_id, name, qty, qty * price / 1e6 * factor))
    return out


def month_bounds(month: str) -> tuple[int, int]:
    """ "YYYY-MM" -> [first second, first second of the next month) in UTC."""
    try:
        year_s, mon_s = month.split("-")
        year, mon = int(year_s), int(mon_s)
        if len(year_s) != 4 or not 1 <= mon <= 12:
            raise ValueError
    except ValueError:
        raise ValueError(f"month must be 'YYYY-MM', not {month!r}") from None
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    nxt = calendar.timegm((year + (mon == 12), mon % 12 + 1, 1, 0, 0, 0))
    return start, nxt


@dataclass(frozen=True)
class _Discrepancy:
    project: str
    start: int
    end: int
    factor: float
    model: str | None


class Books:
    """Usage and cost of an organisation as its Admin API reports them; owned by a SimulatedOrg."""

    def __init__(self, org: SimulatedOrg) -> None:
        self._org = org
        self._lock = threading.Lock()
        self._discrepancies: dict[tuple[str, int], _Discrepancy] = {}
        self._non_batch_scale: dict[str | None, float] = {None: 1.0}
        # How the Admin API misbehaves (admin_api.py reads these): see the setters below.
        self.repeated_usage_buckets = 0
        self.empty_usage = False
        self._extra_costs: list[tuple[int, dict[str, Any]]] = []

    # ------------------------------------------------------------------ configuration
    def set_usage_discrepancy(self, project: str, month: str, factor: float, *, model: str | None = None) -> None:
        """Count ``factor`` times the batch tokens of ``project`` processed in UTC ``month``.

        Input (cached and uncached alike) and output tokens are scaled, requests are not; non-batch
        traffic is not. ``factor=1`` removes the discrepancy; a second call for the same project and
        month replaces the first.
        """
        if not factor >= 0:
            raise ValueError("factor must be >= 0")
        start, end = month_bounds(month)
        with self._lock:
            if factor == 1:
                self._discrepancies.pop((project, start), None)
            else:
                self._discrepancies[(project, start)] = _Discrepancy(project, start, end, float(factor), model)

    def set_non_batch_scale(self, scale: float, project: str | None = None) -> None:
        """Multiply the seeded non-batch traffic (of one project, or the default for all); 0 turns it off."""
        if not scale >= 0:
            raise ValueError("scale must be >= 0")
        with self._lock:
            self._non_batch_scale[project] = float(scale)

    def repeat_usage_buckets(self, count: int = 1) -> None:
        """Serve every usage page but the first with the last ``count`` buckets of the page before it
        again at its start (the same `start_time`, the same results), as a server whose pages overlap
        does; 0 turns it off."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self.repeated_usage_buckets = count

    def serve_empty_usage(self, empty: bool = True) -> None:
        """Serve every usage bucket with no results (OpenAI counting no tokens), costs unchanged."""
        self.empty_usage = empty

    def add_cost_result(
        self, day: int, *, project_id: str | None, line_item: str | None, value: Any, currency: str = "usd"
    ) -> None:
        """Add a result to the cost bucket of the UTC ``day`` (its start, epoch seconds) as given: a
        line item of no project (``project_id=None``), in another currency, an amount as a numeric
        string (`"2.25"`) or not a number at all (`"n/a"`). Served with every grouping; filtered by
        `project_ids` like the others."""
        if day % DAY:
            raise ValueError("day must be the start of a UTC day")
        result = {
            "object": "organization.costs.result",
            "amount": {"value": value, "currency": currency},
            "line_item": line_item,
            "project_id": project_id,
        }
        with self._lock:
            self._extra_costs.append((day, result))

    def extra_costs(self, day: int) -> list[dict[str, Any]]:
        """The results added to the cost bucket of ``day`` (`add_cost_result`), in order."""
        with self._lock:
            return [dict(r) for d, r in self._extra_costs if d == day]

    # ------------------------------------------------------------------ reading
    def usage(self, width: int, first: int, last: int, now: int) -> list[UsageRow]:
        """Token sums per bucket of ``width`` seconds starting at ``first`` .. ``last`` (inclusive,
        multiples of ``width``), per project, model, batch flag and category, counting work up to
        ``now``. Rows with no tokens and no requests are left out."""
        if width <= 0 or first % width or last % width:
            raise ValueError("buckets must start at multiples of their width")
        k0, k1 = first // width, last // width
        if k1 < k0:
            return []
        with self._lock:
            discrepancies = list(self._discrepancies.values())
            scales = dict(self._non_batch_scale)
        records = {r["id"]: r for r in self._org.project_records()}
        tables, models, endpoints = self._org.rows_created_between(first - EXPIRY_S - 1, (k1 + 1) * width)
        model_index = {m: i for i, m in enumerate(models)}
        parts: list[tuple[I64, ...]] = []
        for p_idx, (project, cols) in enumerate(tables):
            part = _batch_part(cols, p_idx, project, width, k0, k1, now, endpoints, models, discrepancies)
            if part is not None:
                parts.append(part)
        for p_idx, (project, _cols) in enumerate(tables):
            rec = records.get(project)
            if rec is None:  # added between the two reads: it has no traffic yet
                continue
            scale = scales.get(project, scales[None])
            part = self._non_batch_part(rec, p_idx, scale, width, k0, k1, now, model_index, models)
            if part is not None:
                parts.append(part)
        return _aggregate(parts, width, [p for p, _ in tables], models)

    def costs(self, first_day: int, last_day: int, now: int) -> list[CostLine]:
        return cost_lines(self.usage(DAY, first_day, last_day, now))

    # ------------------------------------------------------------------ non-batch traffic
    def _non_batch_part(
        self,
        rec: dict[str, Any],
        p_idx: int,
        scale: float,
        width: int,
        k0: int,
        k1: int,
        now: int,
        model_index: dict[str, int],
        models: list[str],
    ) -> tuple[I64, ...] | None:
        if scale <= 0:
            return None
        # Traffic runs from the first full day of the project until it is archived.
        first_day = max(k0 * width // DAY, rec["created_at"] // DAY + 1)
        last_day = min(((k1 + 1) * width - 1) // DAY, now // DAY)
        if rec["archived_at"] is not None:
            last_day = min(last_day, (rec["archived_at"] - 1) // DAY)
        if last_day < first_day:
            return None
        stop_at = rec["archived_at"] if rec["archived_at"] is not None else now
        stop_at = min(stop_at, now)
        days = np.arange(first_day, last_day + 1, dtype=np.int64)
        out: list[tuple[I64, ...]] = []
        for spec in _non_batch_models(self._org.seed, rec["id"]):
            live = days[days * DAY >= spec.released]
            if not len(live):
                continue
            totals = _daily_traffic(self._org.seed, rec["id"], spec.name, live, scale)
            ds = live * DAY
            act_hi = np.minimum(ds + DAY, stop_at)
            item, j = _expand(ds, act_hi, k0, k1, width)
            if not len(item):
                continue
            t_lo = np.minimum(j * width, now)
            t_hi = np.minimum((j + 1) * width, now)
            lo_share = _day_share(ds[item], act_hi[item], t_lo)
            hi_share = _day_share(ds[item], act_hi[item], t_hi)
            amounts = [
                np.floor(total[item] * hi_share).astype(np.int64) - np.floor(total[item] * lo_share).astype(np.int64)
                for total in totals
            ]
            if spec.name not in model_index:
                model_index[spec.name] = len(models)
                models.append(spec.name)
            n = len(item)
            out.append(
                (
                    j,
                    np.full(n, p_idx, dtype=np.int64),
                    np.full(n, model_index[spec.name], dtype=np.int64),
                    np.zeros(n, dtype=np.int64),  # batch: false
                    np.full(n, _COMPLETIONS, dtype=np.int64),
                    *amounts,
                )
            )
        if not out:
            return None
        return tuple(np.concatenate(cols) for cols in zip(*out, strict=True))


# ---------------------------------------------------------------------- batch tokens
def _batch_cumulative(c: dict[str, Any], t: I64) -> tuple[I64, I64, I64, I64]:
    """(uncached input, cached input, output, completed requests) of each row at instant ``t``.

    The same float64 arithmetic, in the same order, as ``BatchRenderer.batch_object`` (render.py) renders `usage`
    and `request_counts` with, so the Usage API and the batch objects agree exactly.
    """
    ip = c["ip"]
    stop = np.minimum(np.minimum(t, c["cing"]), c["created"] + EXPIRY_S)
    span = c["nend"] - ip
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (stop - ip).astype(np.float64) / span.astype(np.float64)
    progress = np.where(span <= 0, 1.0, np.minimum(1.0, np.maximum(0.0, frac)))
    done = np.floor(c["total"] * progress).astype(np.int64)
    failed = np.floor(done.astype(np.float64) * c["ffrac"]).astype(np.int64)
    completed = np.where(ip <= t, done - failed, 0)
    inp = np.floor(completed.astype(np.float64) * c["tin"]).astype(np.int64)
    out = np.floor(completed.astype(np.float64) * c["tout"]).astype(np.int64)
    cached = np.floor(inp.astype(np.float64) * c["cfrac"]).astype(np.int64)
    return inp - cached, cached, out, completed


def _batch_part(
    cols: dict[str, npt.NDArray[Any]],
    p_idx: int,
    project: str,
    width: int,
    k0: int,
    k1: int,
    now: int,
    endpoints: list[str],
    models: list[str],
    discrepancies: list[_Discrepancy],
) -> tuple[I64, ...] | None:
    if not len(cols["created"]):
        return None
    ip = cols["ip"].astype(np.int64)
    # F is 0 before in_progress_at and constant once work stops (done, cancelled or the deadline).
    end = np.minimum(np.minimum(cols["nend"], cols["cing"]), cols["created"] + EXPIRY_S)
    item, j = _expand(ip - 1, np.minimum(end, now), k0, k1, width)
    if not len(item):
        return None
    c: dict[str, Any] = {
        "ip": ip[item],
        "created": cols["created"][item].astype(np.int64),
        "cing": cols["cing"][item].astype(np.int64),
        "nend": cols["nend"][item].astype(np.int64),
        # float32 -> float64 exactly, as `.tolist()` does before the renderer's arithmetic
        "total": cols["total"][item].astype(np.float64),
        "ffrac": cols["ffrac"][item].astype(np.float64),
        "tin": cols["tin"][item].astype(np.float64),
        "tout": cols["tout"][item].astype(np.float64),
        "cfrac": cols["cfrac"][item].astype(np.float64),
    }
    t_lo = np.minimum(j * width, now)
    t_hi = np.minimum((j + 1) * width, now)
    lo = _batch_cumulative(c, t_lo)
    hi = _batch_cumulative(c, t_hi)
    uncached, cached, output, requests = (h - x for h, x in zip(hi, lo, strict=True))
    model = cols["model"][item].astype(np.int64)
    for d in discrepancies:
        if d.project != project:
            continue
        mask = (t_lo < d.end) & (t_hi > d.start)
        if d.model is not None:
            mask &= model == (models.index(d.model) if d.model in models else -1)
        if not mask.any():
            continue
        sub = {k: v[mask] for k, v in c.items()}
        base = _batch_cumulative(sub, np.full(int(mask.sum()), min(d.start, now), dtype=np.int64))
        at_lo = _batch_cumulative(sub, np.minimum(np.clip(t_lo[mask], d.start, d.end), now))
        at_hi = _batch_cumulative(sub, np.minimum(np.clip(t_hi[mask], d.start, d.end), now))
        extra = d.factor - 1.0
        # G(t) = F(t) + floor((F(clip(t, month)) - F(month start)) * (factor - 1)): telescopes like F.
        for comp, b, x_lo, x_hi in zip((uncached, cached, output), base, at_lo, at_hi, strict=False):
            comp[mask] += np.floor((x_hi - b) * extra).astype(np.int64) - np.floor((x_lo - b) * extra).astype(np.int64)
    kinds = np.array([_kind(e) for e in endpoints], dtype=np.int64)
    n = len(item)
    return (
        j,
        np.full(n, p_idx, dtype=np.int64),
        model,
        np.ones(n, dtype=np.int64),
        kinds[cols["endpoint"][item].astype(np.int64)],
        uncached,
        cached,
        output,
        requests,
    )


def _kind(endpoint: str) -> int:
    if endpoint in COMPLETIONS_ENDPOINTS:
        return _COMPLETIONS
    if endpoint.endswith("/embeddings"):
        return _EMBEDDINGS
    if endpoint.endswith("/moderations"):
        return _MODERATIONS
    return _OTHER


# ---------------------------------------------------------------------- shared machinery
def _expand(act_lo: I64, act_hi: I64, k0: int, k1: int, width: int) -> tuple[I64, I64]:
    """(item, bucket index) for every bucket in k0..k1 that the change interval (act_lo, act_hi] of an
    item touches: the only buckets where its cumulative count can differ between the two ends."""
    first = np.maximum(np.floor_divide(act_lo, width), k0)
    last = np.minimum(-np.floor_divide(-act_hi, width) - 1, k1)  # ceil(act_hi / width) - 1
    counts = np.where(act_hi > act_lo, np.maximum(last - first + 1, 0), 0)
    total = int(counts.sum())
    if total == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    item = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    j = first[item] + (np.arange(total, dtype=np.int64) - starts[item])
    return item, j


def _aggregate(parts: list[tuple[I64, ...]], width: int, projects: list[str], models: list[str]) -> list[UsageRow]:
    if not parts:
        return []
    j, p, m, b, k, *values = (np.concatenate(col) for col in zip(*parts, strict=True))
    order = np.lexsort((k, b, m, p, j))
    j, p, m, b, k = j[order], p[order], m[order], b[order], k[order]
    values = [v[order] for v in values]
    change = np.ones(len(j), dtype=bool)
    change[1:] = (j[1:] != j[:-1]) | (p[1:] != p[:-1]) | (m[1:] != m[:-1]) | (b[1:] != b[:-1]) | (k[1:] != k[:-1])
    starts = np.flatnonzero(change)
    uncached, cached, output, requests = (np.add.reduceat(v, starts) for v in values)
    rows: list[UsageRow] = []
    for i, s in enumerate(starts.tolist()):
        u, c, o, r = int(uncached[i]), int(cached[i]), int(output[i]), int(requests[i])
        if u == c == o == r == 0:
            continue
        key = (int(j[s]) * width, projects[int(p[s])], models[int(m[s])], bool(b[s]), KIND_NAMES[int(k[s])])
        rows.append(UsageRow(*key, u + c, c, o, r))
    return rows


def _day_share(ds: I64, act_hi: I64, t: I64) -> npt.NDArray[np.float64]:
    """Share of a day's traffic done by ``t``: even over the day, stopped at ``act_hi``."""
    return (np.clip(t, ds, act_hi) - ds).astype(np.float64) / DAY


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64: a counter-based hash, so any day's traffic is drawn without drawing the others."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _uniforms(key: int, days: I64, stream: int) -> npt.NDArray[np.float64]:
    x = days.astype(np.uint64) * np.uint64(0x100000001B3) ^ np.uint64((key + stream * 0x632BE59BD9B4E019) % 2**64)
    return (_mix(x) >> np.uint64(11)).astype(np.float64) / float(2**53)


def _key(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def _normal(u: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    # Irwin-Hall: four uniforms make a near-normal variate, plenty for traffic noise.
    return np.asarray((u[0] + u[1] + u[2] + u[3] - 2.0) * np.sqrt(3.0))


def _non_batch_models(seed: int, project: str) -> list[Any]:
    """The chat models a project calls synchronously: two to four, fixed per project and seed."""
    chat = [m for m in MODELS if m.kind == KIND_CHAT]
    rnd = np.random.default_rng([seed, _key("non-batch models", project) % 2**32])
    count = int(rnd.integers(2, 5))
    weights = np.array([m.weight for m in chat])
    picked = rnd.choice(len(chat), size=min(count, len(chat)), replace=False, p=weights / weights.sum())
    return [chat[i] for i in sorted(picked.tolist())]


def _daily_traffic(seed: int, project: str, model: str, days: I64, scale: float) -> tuple[npt.NDArray[np.float64], ...]:
    """(uncached input, cached input, output, requests) per day of ``days``, seeded per project and model."""
    key = _key(seed, project, model)
    base = np.random.default_rng([seed, key % 2**32])
    per_day = 400.0 * float(np.exp(base.normal(0.0, 0.8)))
    in_per_req = 700.0 * float(np.exp(base.normal(0.0, 0.4)))
    out_per_req = 200.0 * float(np.exp(base.normal(0.0, 0.4)))
    cached_share = float(base.uniform(0.1, 0.5))
    u = [_uniforms(key, days, s) for s in range(8)]
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    busy = np.where(weekday >= 5, 0.55, 1.0)
    requests = np.floor(per_day * scale * busy * np.exp(0.3 * _normal(u[:4])))
    inp = np.floor(requests * in_per_req * np.exp(0.15 * _normal(u[4:])))
    cached = np.floor(inp * cached_share)
    out = np.floor(requests * out_per_req * (0.8 + 0.4 * u[0]))
    return inp - cached, cached, out, requests
