"""Anthropic's books of a simulated organisation: its workspaces, API keys, usage report and cost report,
as the Admin API (anthropic_admin.py) serves them.

Derived from the one truth of every request (`AnthropicBatches.results`: the results lines a batch serves),
so the books and the batches agree to the token: a batch's requests are counted, at `service_tier`
`batch`, in the bucket holding the instant the batch ended (the simulator's choice: the real API counts a
request when it is processed, which it does not say; a batch ending past midnight counts on the later
day). Deleted batches stay counted (their usage was billed). Each workspace also has standard-tier
traffic, seeded per workspace and day, counted at noon UTC, so that only the `batch` tier matches the
batches. Costs are the usage priced at fixed list prices (`PRICES`, batch tier at 50%), exactly in
decimal cents, as the cost report's `amount` is a decimal string in cents.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .anthropic import MODELS, rfc3339

if TYPE_CHECKING:
    from .anthropic import AnthropicBatches

DAY = 86_400
# The usage report's token counts, in the order `UsageLine.tokens` holds them; also the cost report's
# `token_type` names.
TOKEN_TYPES = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation.ephemeral_5m_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
    "output_tokens",
)
# Standard list prices in USD per 1M (input, output) tokens. Fixed on purpose: the simulated books must
# not move when a price list is updated. Cache reads cost 0.1x input, 5-minute writes 1.25x, 1-hour writes
# 2x (Anthropic's documented multipliers); the batch tier half of everything.
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "claude-sonnet-4-5-20250929": (Decimal(3), Decimal(15)),
    "claude-haiku-4-5-20251001": (Decimal(1), Decimal(5)),
    "claude-opus-4-1-20250805": (Decimal(15), Decimal(75)),
    "claude-sonnet-4-20250514": (Decimal(3), Decimal(15)),
    "claude-3-5-haiku-20241022": (Decimal("0.80"), Decimal(4)),
}
_INPUT_MULTIPLIERS = (Decimal(1), Decimal("0.1"), Decimal("1.25"), Decimal(2))
BATCH_FACTOR = Decimal("0.5")
_LABELS = ("Input Tokens", "Cache Read", "Cache Write (5m)", "Cache Write (1h)", "Output Tokens")
# The simulator's Anthropic Admin API key: reads /v1/organizations/... and nothing else.
DEFAULT_ADMIN_KEYS = ("sk-ant-admin01-sim",)
# Standard-tier traffic runs on this model (the most used one).
STANDARD_MODEL = MODELS[0][1]


@dataclass(frozen=True)
class UsageLine:
    """Tokens of one (instant, workspace, model, service tier): a batch at its end, or a day's standard traffic."""

    at: int  # epoch seconds
    workspace_id: str
    model: str
    service_tier: str  # batch | standard
    tokens: tuple[int, int, int, int, int]  # per TOKEN_TYPES


@dataclass(frozen=True)
class CostLine:
    at: int
    workspace_id: str
    model: str
    service_tier: str
    token_type: str
    cents: Decimal  # exact

    @property
    def description(self) -> str:
        tier = "Batch " if self.service_tier == "batch" else ""
        return f"{self.model} {tier}Usage - {_LABELS[TOKEN_TYPES.index(self.token_type)]}"


def request_tokens(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """A results line's `usage` as the usage report counts it (TOKEN_TYPES): `input_tokens` is the uncached
    part; `cache_creation_input_tokens` is split into its 5-minute and 1-hour parts."""
    split = usage.get("cache_creation") or {}
    one_hour = int(split.get("ephemeral_1h_input_tokens") or 0)
    five = split.get("ephemeral_5m_input_tokens")
    five_min = int(five) if five is not None else int(usage.get("cache_creation_input_tokens") or 0) - one_hour
    return (
        int(usage.get("input_tokens") or 0),
        int(usage.get("cache_read_input_tokens") or 0),
        five_min,
        one_hour,
        int(usage.get("output_tokens") or 0),
    )


def cents(model: str, service_tier: str, tokens: tuple[int, ...]) -> list[Decimal]:
    """The exact cost in cents of each token type (TOKEN_TYPES) of ``tokens``."""
    input_price, output_price = PRICES.get(model, PRICES[STANDARD_MODEL])
    factor = BATCH_FACTOR if service_tier == "batch" else Decimal(1)
    prices = [input_price * m for m in _INPUT_MULTIPLIERS] + [output_price]
    # USD per 1M tokens -> cents per token: x 100 / 1e6
    return [Decimal(n) * p * factor / Decimal(10_000) for n, p in zip(tokens, prices, strict=True)]


def key_hint(key: str) -> str:
    """The API keys list's `partial_key_hint` of a key: its first 16 and last 4 characters
    (`sk-ant-api03-R2D...igAA`)."""
    return f"{key[:16]}...{key[-4:]}"


class AnthropicBooks:
    """The Admin API's view of an organisation's Anthropic workspaces; owned by a SimulatedOrg."""

    def __init__(self, batches: AnthropicBatches, seed: int, admin_keys: tuple[str, ...] = DEFAULT_ADMIN_KEYS) -> None:
        self._batches = batches
        self._seed = seed
        self._lock = threading.Lock()
        self.admin_keys = frozenset(admin_keys)
        self._born = int(batches.clock.now()) // DAY * DAY - 400 * DAY
        self._names: dict[str, str] = {}
        self._sums: dict[tuple[str, float], tuple[str, tuple[int, int, int, int, int]]] = {}
        self._extra_keys: list[dict[str, Any]] = []
        self._extra_costs: list[tuple[int, dict[str, Any]]] = []
        # How the Admin API misbehaves or what it holds (anthropic_admin.py reads these): see the setters.
        self.standard_traffic = True
        self.empty_usage = False
        self.repeated_buckets = 0

    # ------------------------------------------------------------------ configuration
    def name_workspace(self, workspace_id: str, name: str) -> None:
        self._names[workspace_id] = name

    def add_api_key(self, hint: str, workspace_id: str, *, status: str = "active") -> None:
        """List one more API key (as a hint only) in ``workspace_id``: a key nobody configured, or one whose
        hint collides with a configured key's."""
        with self._lock:
            n = len(self._extra_keys)
            self._extra_keys.append(self._key_record(f"extra-{n}", hint, workspace_id, status))

    def add_cost_result(self, day: int, result: dict[str, Any]) -> None:
        """Add ``result`` as given to the cost bucket of the UTC ``day`` (its start, epoch seconds): an amount
        that is no number, another currency, no workspace."""
        if day % DAY:
            raise ValueError("day must be the start of a UTC day")
        with self._lock:
            self._extra_costs.append((day, dict(result)))

    def extra_costs(self, start: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for d, r in self._extra_costs if d == start]

    def repeat_buckets(self, count: int = 1) -> None:
        """Start every report page but the first with the previous page's last ``count`` buckets again."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self.repeated_buckets = count

    # ------------------------------------------------------------------ records
    def workspaces(self) -> list[dict[str, Any]]:
        """Every workspace, oldest first (the order the list pages in)."""
        ids = list(dict.fromkeys(self._batches.workspaces.values()))
        return [self._workspace(w, i) for i, w in enumerate(ids)]

    def _workspace(self, workspace_id: str, i: int) -> dict[str, Any]:
        name = self._names.get(workspace_id) or workspace_id.removeprefix("wrkspc_").replace("_", " ").title()
        return {
            "id": workspace_id,
            "type": "workspace",
            "name": name,
            "created_at": rfc3339(self._born + i * 3600),
            "archived_at": None,
            "display_color": "#6C5BB9",
            # What recent SDKs' Workspace type requires too.
            "compartment_id": "cmpt_" + _digest(self._seed, workspace_id)[:24],
            "data_residency": {
                "allowed_inference_geos": "unrestricted",
                "default_inference_geo": "global",
                "workspace_geo": "us",
            },
            "tags": {},
            "external_key_id": None,
            "user_profile_id": None,
        }

    def api_keys(self) -> list[dict[str, Any]]:
        """Every API key (as a hint: the list never shows a key), oldest first."""
        keys = [
            self._key_record(key, key_hint(key), workspace, "active")
            for key, workspace in self._batches.workspaces.items()
        ]
        with self._lock:
            return keys + [dict(k) for k in self._extra_keys]

    def _key_record(self, seed_text: str, hint: str, workspace_id: str, status: str) -> dict[str, Any]:
        return {
            "id": "apikey_01" + _digest(self._seed, "key", seed_text)[:22],
            "type": "api_key",
            "name": f"key for {workspace_id}",
            "workspace_id": workspace_id,
            "created_at": rfc3339(self._born + DAY),
            "created_by": {"id": "user_01" + _digest(self._seed, "user")[:22], "type": "user"},
            "partial_key_hint": hint,
            "status": status,
            "expires_at": None,
            "principal": None,
            "scope": {"type": "workspace", "workspace_id": workspace_id},
        }

    # ------------------------------------------------------------------ usage and costs
    def usage(self, first: int, end: int, now: float) -> list[UsageLine]:
        """The usage counted from ``first`` to before ``end`` (epoch seconds), up to ``now``."""
        lines: list[UsageLine] = []
        for workspace in dict.fromkeys(self._batches.workspaces.values()):
            for b, ended in self._batches.ended(workspace, now):
                if first <= ended < end:
                    model, tokens = self._batch_sums(b, ended)
                    if any(tokens):
                        lines.append(UsageLine(int(ended), workspace, model, "batch", tokens))
            if self.standard_traffic:
                lines.extend(self._standard(workspace, first, end, now))
        return lines

    def costs(self, first: int, end: int, now: float) -> list[CostLine]:
        out: list[CostLine] = []
        for u in self.usage(first, end, now):
            for token_type, amount in zip(TOKEN_TYPES, cents(u.model, u.service_tier, u.tokens), strict=True):
                if amount:
                    out.append(CostLine(u.at, u.workspace_id, u.model, u.service_tier, token_type, amount))
        return out

    def _batch_sums(self, b: Any, ended: float) -> tuple[str, tuple[int, int, int, int, int]]:
        """The model and summed tokens of a batch's succeeded requests, read from its results (cached: an
        ended batch's results do not change)."""
        cache_key = (b.id, ended)
        with self._lock:
            found = self._sums.get(cache_key)
        if found is not None:
            return found
        total = [0] * len(TOKEN_TYPES)
        model = MODELS[b.model][1]
        for _, result in self._batches.results(b):
            if result["type"] != "succeeded":
                continue
            model = result["message"]["model"]
            for i, n in enumerate(request_tokens(result["message"]["usage"])):
                total[i] += n
        sums = (model, (total[0], total[1], total[2], total[3], total[4]))
        with self._lock:
            self._sums[cache_key] = sums
        return sums

    def _standard(self, workspace: str, first: int, end: int, now: float) -> Iterable[UsageLine]:
        day = max(first // DAY, self._born // DAY)
        while day * DAY + DAY // 2 < min(end, now + 1):
            at = day * DAY + DAY // 2
            if at >= first:
                h = int(_digest(self._seed, "standard", workspace, day)[:12], 16)
                tokens = (20_000 + h % 80_000, (h >> 17) % 30_000, 0, 0, 5_000 + (h >> 34) % 20_000)
                yield UsageLine(at, workspace, STANDARD_MODEL, "standard", tokens)
            day += 1


def _digest(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


__all__ = ["DEFAULT_ADMIN_KEYS", "PRICES", "TOKEN_TYPES", "AnthropicBooks", "cents", "key_hint", "request_tokens"]
