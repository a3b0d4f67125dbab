"""A finished batch whose files the request ledger must read: what its batch object says (files, counts,
when it ended), what `GET /files/{id}` said of them, and how it is kept in the ledger's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...tables.batches import exact_int

# Statuses whose batches have files: a batch that failed validation ran no request.
_WITH_FILES = {"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}


_KINDS = ("output", "error", "input")


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

    @classmethod
    def of(cls, batch: Mapping[str, Any]) -> Candidate | None:
        """The candidate of a batch object, None when it has nothing to read (open, failed validation, or
        no file that could name a request)."""
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
        kinds = tuple(k for k in ("output", "error") if k in self.files)
        return kinds or ("input",)

    def undescribed(self) -> list[str]:
        return [k for k in self.first_kinds() if k not in self.sizes and k not in self.gone]

    def size(self) -> int:
        return sum(self.sizes.get(k) or 0 for k in self.first_kinds() if k not in self.gone)

    def expiry(self) -> float:
        """When its first file to expire expires (never: infinity)."""
        known = [self.expiries.get(k) for k in self.first_kinds() if k not in self.gone]
        return min((float(e) for e in known if e is not None), default=float("inf"))
