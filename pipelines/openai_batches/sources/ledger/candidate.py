"""A finished batch whose files the request ledger must read: what its batch object says (files, counts,
when it ended), what `GET /files/{id}` said of them, and how it is kept in the ledger's state.

An Anthropic message batch has one "file", its results (`results_url`, kind RESULTS): no `GET /files`
describes it (its size is known once read), and it is kept for RESULTS_KEPT_S after the batch was created.

The other providers' batch objects (`Candidate.of(batch, provider)`, sections 7, 9 and 11 of the provider facts):
- Together: OpenAI's file fields (`output_file_id`, `error_file_id`, `input_file_id`), its upper-case statuses,
  RFC 3339 times, and no request counts (`total` 0: its requests are what its files hold).
- Mistral: `output_file`, `error_file`, `input_files` (a list: the input is read for missing requests only when
  it is one file), its statuses, counts on the job (`total_requests`, `succeeded_requests`, `failed_requests`).
- OpenRouter: no files; its results come from `GET /batches/{id}/results` (kind RESULTS, the batch id as the
  reference), kept OPENROUTER_RESULTS_KEPT_S after the batch ended.
Their files are kept as long as the provider keeps them (undocumented): no age stops a read, the API's 404
decides (`Ledger(files_kept_s=None)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...settings import openai_status
from ...tables.anthropic import epoch_seconds
from ...tables.batches import exact_int
from .parse import RESULTS

# Statuses whose batches have files: a batch that failed validation ran no request.
_WITH_FILES = {"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}


_KINDS = ("output", "error", "input")
# Anthropic keeps a batch's results for 29 days after the batch was created (then `archived_at` is set and
# `results_url` answers 404): the Message Batches guide.
RESULTS_KEPT_S = 29 * 86_400
# OpenRouter keeps a batch's results ("artifacts") for 30 days: its batch API guide.
OPENROUTER_RESULTS_KEPT_S = 30 * 86_400
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
    # No request counts (Together): the input file names the requests when some may be in no other file (a batch
    # that expired or was cancelled), so it is read whatever the other files hold.
    uncounted: bool = False

    @classmethod
    def of(cls, batch: Mapping[str, Any], provider: str | None = None) -> Candidate | None:
        """The candidate of a batch object (OpenAI's, an Anthropic message batch, or `provider`'s: together,
        mistral, openrouter), None when it has nothing to read (open, failed validation, or no file that could
        name a request)."""
        if batch.get("type") == "message_batch":
            return cls._of_message_batch(batch)
        if provider in _OTHERS:
            return _OTHERS[provider](batch)
        # Azure's documentation shows `Completed` and ISO 8601 times as well as OpenAI's forms: both are read.
        status = openai_status(batch.get("status"))
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
        ended = batch.get(ended_field)
        ended_s = epoch(ended) if isinstance(ended, str) and "T" in ended else exact_int(ended)
        return cls(str(batch["id"]), max(0, total or 0), ended_s, files, awaits=awaits)

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
    def _of_files(
        cls, batch: Mapping[str, Any], files: dict[str, Any], ended: Any, counts: tuple[Any, Any, Any] | None
    ) -> Candidate | None:
        """A Together or Mistral batch that ended (any status of OpenAI's words but `failed`: a job that failed
        validation ran nothing, as OpenAI's) with the files it names (`files`: kind -> id, as sent); `counts`:
        (total, succeeded, failed) where the job has them."""
        status = openai_status(batch.get("status"))
        named = {kind: fid for kind, fid in files.items() if isinstance(fid, str) and fid}
        if status not in _WITH_FILES or not named:
            return None
        total = exact_int(counts[0]) if counts is not None else None
        awaits = []
        if counts is not None:  # as OpenAI's: counted requests in a file the job does not name yet
            for kind, count in (("output", counts[1]), ("error", counts[2])):
                if kind not in named and (exact_int(count) or 0) > 0:
                    awaits.append(kind)
        uncounted = counts is None and status != "completed"
        return cls(str(batch["id"]), max(0, total or 0), _ended(ended), named, awaits=awaits, uncounted=uncounted)

    @classmethod
    def _of_together(cls, batch: Mapping[str, Any]) -> Candidate | None:
        files = {kind: batch.get(f"{kind}_file_id") for kind in _KINDS}
        return cls._of_files(batch, files, batch.get("completed_at"), None)

    @classmethod
    def _of_mistral(cls, batch: Mapping[str, Any]) -> Candidate | None:
        inputs = batch.get("input_files")
        files = {
            "output": batch.get("output_file"),
            "error": batch.get("error_file"),
            "input": inputs[0] if isinstance(inputs, list) and len(inputs) == 1 else None,
        }
        counts = (batch.get("total_requests"), batch.get("succeeded_requests"), batch.get("failed_requests"))
        return cls._of_files(batch, files, batch.get("completed_at"), counts)

    @classmethod
    def _of_openrouter(cls, batch: Mapping[str, Any]) -> Candidate | None:
        """An OpenRouter batch that ended: its results, by the batch id (`GET /batches/{id}/results`)."""
        if openai_status(batch.get("status")) not in _WITH_FILES:
            return None
        counts = batch.get("request_counts")
        total = exact_int(counts.get("total")) if isinstance(counts, Mapping) else None
        ended = _ended(batch.get("finalized_at"))
        return cls(
            str(batch["id"]),
            max(0, total or 0),
            ended,
            {RESULTS: str(batch["id"])},
            sizes={RESULTS: None},  # no `GET /files`: the size is known once read
            expiries={RESULTS: ended + OPENROUTER_RESULTS_KEPT_S if ended is not None else None},
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
            uncounted=bool(raw.get("uncounted")),
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
            **({"uncounted": True} if self.uncounted else {}),
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


def _ended(value: Any) -> int | None:
    """An end time as the providers send it: epoch seconds (Mistral, OpenRouter) or RFC 3339 (Together)."""
    if isinstance(value, str):
        return epoch(value)
    return exact_int(value)


_OTHERS = {
    "together": Candidate._of_together,
    "mistral": Candidate._of_mistral,
    "openrouter": Candidate._of_openrouter,
}
