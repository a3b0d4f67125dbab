"""A finished batch whose files the request ledger must read: what its batch object says (files, counts,
when it ended), what `GET /files/{id}` said of them, and how it is kept in the ledger's state.

An Anthropic message batch has one "file", its results (`results_url`, kind RESULTS): no `GET /files`
describes it (its size is known once read), and it is kept for RESULTS_KEPT_S after the batch was created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...tables.anthropic import epoch_seconds
from ...tables.batches import exact_int
from .parse import RESULTS

# Statuses whose batches have files: a batch that failed validation ran no request.
_WITH_FILES = {"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}


_KINDS = ("output", "error", "input")
# Anthropic keeps a batch's results for 29 days after the batch was created (then `archived_at` is set and
# `results_url` answers 404): the Message Batches guide.
RESULTS_KEPT_S = 29 * 86_400
# Anthropic's request counts: their sum is the batch's requests (`processing` is 0 once it ended).
MESSAGE_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


def epoch(value: Any) -> int | None:
    """Epoch seconds of an RFC 3339 timestamp (Anthropic's `created_at`, `ended_at`), read as `anthropic_batches`
    reads it (tables/anthropic.py); None when it is not one."""
    seconds = epoch_seconds(value)
    return None if seconds is None else int(seconds)


@dataclass
class Candidate:
    """A finished batch whose files the ledger must read."""

    batch_id: str
    total: int
    ended: int | None  # when the batch ended (its files are written then), epoch seconds
    files: dict[str, str]  # kind -> file id
    sizes: dict[str, int | None] = field(default_factory=dict)  # kind -> bytes, as `GET /files/{id}` says
    expiries: dict[str, int | None] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)  # kinds taken as gone (see Ledger._missed)
    announced: bool = False  # its `pending` rows are written
    misses: dict[str, int] = field(default_factory=dict)  # kind -> runs in a row the API answered 404 for it
    awaits: list[str] = field(default_factory=list)  # kinds its counts call for that the batch does not name
    missed_now: set[str] = field(default_factory=set)  # kinds answered 404 in this run (not kept)
    archived: bool = False  # Anthropic: the batch says its results are gone (`archived_at`; not kept)

    @classmethod
    def of(cls, batch: Mapping[str, Any]) -> Candidate | None:
        """The candidate of a batch object (OpenAI's, or an Anthropic message batch), None when it has
        nothing to read (open, failed validation, or no file that could name a request)."""
        if batch.get("type") == "message_batch":
            return cls._of_message_batch(batch)
        status = batch.get("status")
        ended_field = _WITH_FILES.get(status) if isinstance(status, str) else None
        if ended_field is None:
            return None
        files = {kind: fid for kind in _KINDS if isinstance(fid := batch.get(f"{kind}_file_id"), str) and fid}
        counts = batch.get("request_counts")
        total = exact_int(counts.get("total")) if isinstance(counts, Mapping) else None
        if not files:
            return None
        awaits = []
        if isinstance(counts, Mapping):
            # Completed requests are in an output file, failed ones in an error file: a batch that names
            # none yet has its ledger written short, and is asked for again (Ledger.rechecks).
            for kind, count in (("output", "completed"), ("error", "failed")):
                if kind not in files and (exact_int(counts.get(count)) or 0) > 0:
                    awaits.append(kind)
        return cls(str(batch["id"]), max(0, total or 0), exact_int(batch.get(ended_field)), files, awaits=awaits)

    @classmethod
    def _of_message_batch(cls, batch: Mapping[str, Any]) -> Candidate | None:
        """An Anthropic batch that ended: its results, kept until RESULTS_KEPT_S after its creation (an
        unknown creation time: kept as long as the API serves them)."""
        url = batch.get("results_url")
        if batch.get("processing_status") != "ended" or not isinstance(url, str) or not url:
            return None
        counts = batch.get("request_counts")
        found = [exact_int(counts.get(k)) for k in MESSAGE_COUNTS] if isinstance(counts, Mapping) else []
        total = sum(n for n in found if n is not None and n > 0)
        created = epoch(batch.get("created_at"))
        return cls(
            str(batch["id"]),
            total,
            epoch(batch.get("ended_at")),
            {RESULTS: url},
            sizes={RESULTS: None},  # no `GET /files`: nothing to describe, the size is known once read
            expiries={RESULTS: created + RESULTS_KEPT_S if created is not None else None},
            archived=batch.get("archived_at") is not None,
        )

    @classmethod
    def load(cls, batch_id: str, raw: Mapping[str, Any]) -> Candidate:
        return cls(
            batch_id,
            int(raw["total"]),
            raw.get("ended"),
            dict(raw["files"]),
            dict(raw.get("sizes") or {}),
            dict(raw.get("expiries") or {}),
            set(raw.get("gone") or ()),
            bool(raw.get("announced")),
            {str(k): int(v) for k, v in (raw.get("misses") or {}).items()},
            list(raw.get("awaits") or ()),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "ended": self.ended,
            "files": self.files,
            "sizes": self.sizes,
            "expiries": self.expiries,
            "gone": sorted(self.gone),
            "announced": self.announced,
            "misses": dict(sorted(self.misses.items())),
            "awaits": self.awaits,
        }

    def first_kinds(self) -> tuple[str, ...]:
        """The files read first: output and error; the input only when there is neither (a batch cancelled
        or expired before it ran anything: every request is missing); else the input is read when their
        lines do not account for every request."""
        if RESULTS in self.files:
            return (RESULTS,)
        kinds = tuple(k for k in ("output", "error") if k in self.files)
        return kinds or ("input",)

    def unsized(self) -> bool:
        """Whether its size is known only once read (Anthropic results): the run's budget counts the bytes
        its download reads (Ledger.read)."""
        return RESULTS in self.files

    def results_gone(self, now: float) -> bool:
        """Anthropic: whether its results are gone by now (archived, or past RESULTS_KEPT_S): never asked for."""
        expiry = self.expiries.get(RESULTS)
        return RESULTS in self.files and (self.archived or (expiry is not None and expiry <= now))

    def undescribed(self) -> list[str]:
        return [k for k in self.first_kinds() if k not in self.sizes and k not in self.gone]

    def size(self) -> int:
        return sum(self.sizes.get(k) or 0 for k in self.first_kinds() if k not in self.gone)

    def expiry(self) -> float:
        """When its first file to expire expires (never: infinity)."""
        known = [self.expiries.get(k) for k in self.first_kinds() if k not in self.gone]
        return min((float(e) for e in known if e is not None), default=float("inf"))
