"""How a stored batch reads at a given instant: its id, status, counts, usage, file ids, metadata and
errors, all derived from the row and the clock (nothing rendered is stored).
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from .table import Table
from .workload import (
    COLUMN_DTYPES,
    EXPIRY_S,
    USAGE_CUTOFF,
    usage_totals,
)

# Real ids: 8 hex of created_at, 4 random hex, a constant "8190", 16 random hex (all 20 recorded ids
# have it). Exact created_at in the first 8 hex lets `after=` find its position by binary search.
_ID_RE = re.compile(r"^batch_([0-9a-f]{8})([0-9a-f]{4})8190([0-9a-f]{16})$")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Byte -> base62 char in one C call (bytes.translate); a slight bias towards low chars is irrelevant here.
_BYTE_TO_B62 = bytes(ord(_BASE62[i % 62]) for i in range(256))


def batch_id(created: int, ida: int, idb: int) -> str:
    return f"batch_{created:08x}{ida:04x}8190{idb:016x}"


def parse_batch_id(bid: str) -> tuple[int, int, int] | None:
    m = _ID_RE.match(bid)
    if m is None:
        return None
    return int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)


# The order the columns are zipped in when a page is rendered (see BatchRenderer.rows).
_ROW = tuple(COLUMN_DTYPES)


class BatchRenderer:
    """Renders an org's rows as API batch objects. Everything rendered lazily (file ids, metadata, errors)
    is a hash of the row's random bits salted with the org's seed, so two orgs with different seeds do not
    share file ids. `metadata`, `input_files` and `files_late` are the org's own dicts (shared, not copied):
    what `create_batch` and `files_appear_at` set shows at the next read."""

    def __init__(
        self,
        *,
        salt: bytes,
        organization: str,
        metadata: dict[str, dict[str, str]],
        input_files: dict[str, str],
        files_late: dict[str, float],
    ) -> None:
        self._salt = salt
        self._salt_int = int.from_bytes(salt[:8], "little")
        self._organization = organization
        self._metadata = metadata
        self._input_files = input_files
        self._files_late = files_late

    def rows(
        self, t: Table, lo: int, hi: int, now: int, models: list[str], endpoints: list[str]
    ) -> list[dict[str, Any]]:
        """Rows lo..hi-1 as API objects, newest (hi-1) first."""
        if hi <= lo:
            return []
        columns = [t.cols[k][lo:hi].tolist() for k in _ROW]
        rows = list(zip(*columns, strict=True))
        rows.reverse()
        return [self.batch_object(r, now, models, endpoints) for r in rows]

    def batch_object(self, r: tuple[Any, ...], now: int, models: list[str], endpoints: list[str]) -> dict[str, Any]:  # noqa: C901, PLR0912, PLR0915 -- one flat pass over a row's 20 columns: the renderer's hot path (100 per page)
        (
            created,
            ida,
            idb,
            ip,
            fin,
            comp,
            fail,
            exp,
            cing,
            cled,
            nend,
            total,
            ffrac,
            model,
            endpoint,
            meta,
            tin,
            tout,
            cfrac,
            rfrac,
        ) = r
        bid = f"batch_{created:08x}{ida:04x}8190{idb:016x}"
        if cled <= now:
            status = "cancelled"
        elif cing <= now:
            status = "cancelling"
        elif fail <= now:
            status = "failed"
        elif exp <= now:
            status = "expired"
        elif comp <= now:
            status = "completed"
        elif fin <= now:
            status = "finalizing"
        elif ip <= now:
            status = "in_progress"
        else:
            status = "validating"
        expires = created + EXPIRY_S

        if ip <= now:
            # Work stops at a cancel or at the deadline; until then counts grow linearly to nend.
            stop = min(now, cing, expires)
            progress = 1.0 if nend <= ip else min(1.0, max(0.0, (stop - ip) / (nend - ip)))
            done = int(total * progress)
            failed = int(done * ffrac)
            completed = done - failed
            shown_total = total
        else:
            done = failed = completed = shown_total = 0

        output_file_id: str | None = None
        error_file_id: str | None = None
        if status in ("completed", "expired", "cancelled"):
            if completed > 0:
                output_file_id = self.file_id(idb, 2)
            # Requests an expired batch never ran are reported in the error file (code batch_expired).
            if failed > 0 or (status == "expired" and done < total):
                error_file_id = self.file_id(idb, 3)

        if self._files_late and now < self._files_late.get(bid, now):
            output_file_id = error_file_id = None
        obj: dict[str, Any] = {"id": bid, "object": "batch", "endpoint": endpoints[endpoint]}
        post_cutoff = created >= USAGE_CUTOFF
        if post_cutoff:
            obj["model"] = models[model]
        obj["errors"] = self._errors(idb, models[model]) if status == "failed" else None
        obj["input_file_id"] = self._input_files.get(bid) or self.file_id(idb, 1)
        obj["completion_window"] = "24h"
        obj["status"] = status
        obj["output_file_id"] = output_file_id
        obj["error_file_id"] = error_file_id
        obj["created_at"] = created
        obj["in_progress_at"] = ip if ip <= now else None
        obj["expires_at"] = expires
        obj["finalizing_at"] = fin if fin <= now else None
        obj["completed_at"] = comp if comp <= now else None
        obj["failed_at"] = fail if fail <= now else None
        obj["expired_at"] = exp if exp <= now else None
        obj["cancelling_at"] = cing if cing <= now else None
        obj["cancelled_at"] = cled if cled <= now else None
        obj["request_counts"] = {"total": shown_total, "completed": completed, "failed": failed}
        if post_cutoff:
            # Only completed requests are billed; token counts are integers that grow with progress.
            inp, cached, out, reasoning = usage_totals(completed, tin, tout, cfrac, rfrac)
            obj["usage"] = {
                "input_tokens": inp,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": out,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": inp + out,
            }
        if meta == 0:
            obj["metadata"] = None
        elif meta == 2:
            obj["metadata"] = dict(self._metadata.get(bid, {}))
        else:
            obj["metadata"] = _metadata(idb ^ self._salt_int)
        return obj

    def file_id(self, idb: int, tag: int) -> str:
        h = hashlib.blake2b(idb.to_bytes(8, "little") + bytes([tag]), key=self._salt, digest_size=22).digest()
        return "file-" + h.translate(_BYTE_TO_B62).decode()

    def _errors(self, idb: int, model: str) -> dict[str, Any]:
        return {"object": "list", "data": _validation_errors(idb ^ self._salt_int, model, self._organization)}


def base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, r = divmod(value, 62)
        chars.append(_BASE62[r])
    return "".join(chars)


# ---------------------------------------------------------------------- lazily rendered content
_JOBS = (
    "nightly-summaries",
    "ticket-triage",
    "embed-docs",
    "eval-run",
    "backfill",
    "classify-reviews",
    "extract-invoices",
    "translate-catalog",
    "moderation-sweep",
    "weekly-report",
)
_TEAMS = ("search", "growth", "support", "ml-platform", "data", "risk", "content", "research")
_ENVS = ("prod", "staging", "dev")
_DESCRIPTIONS = (
    "Nightly summarisation of support tickets",
    "Re-embed the knowledge base after the schema change",
    "Offline eval of the new ranking prompt",
    "Backfill product descriptions (FR, DE, ES)",
    "Classify app store reviews by topic and sentiment",
    "Résumé des appels clients — lot du jour",
    "日本語カタログの翻訳バッチ",
    'Extract line items from invoices; see "runbook v2"',
)
_OTHER_KEYS = (
    "run_id",
    "owner",
    "pipeline",
    "dataset",
    "customer_id",
    "priority",
    "git_sha",
    "experiment",
    "version",
    "source",
    "region",
    "ticket",
    "prompt_version",
    "cost_center",
)


def _metadata(seed: int) -> dict[str, str]:
    rnd = random.Random(seed)
    keys: list[str] = []
    for k, p in (("job", 0.7), ("team", 0.5), ("env", 0.45), ("description", 0.3)):
        if rnd.random() < p:
            keys.append(k)
    extra = rnd.choice((0, 0, 0, 1, 1, 2, 3)) if rnd.random() < 0.98 else 16
    keys.extend(rnd.sample(_OTHER_KEYS, min(extra, len(_OTHER_KEYS))))
    if not keys:
        keys.append("job")
    keys = keys[:16]
    while len(keys) < 16 and extra == 16:
        keys.append(f"tag_{len(keys):02d}")
    md: dict[str, str] = {}
    for k in keys:
        if k == "job":
            md[k] = f"{rnd.choice(_JOBS)}-{rnd.randrange(1, 500)}"
        elif k == "team":
            md[k] = rnd.choice(_TEAMS)
        elif k == "env":
            md[k] = rnd.choice(_ENVS)
        elif k == "description":
            # Now and then a maximal 512-char value, the documented limit.
            md[k] = rnd.choice(_DESCRIPTIONS) if rnd.random() < 0.97 else ("x" * 512)
        elif k in ("run_id", "git_sha"):
            md[k] = f"{rnd.getrandbits(64):016x}"
        elif k == "owner":
            md[k] = f"{rnd.choice(('alice', 'bob', 'chen', 'dana', 'eve'))}@example.com"
        elif k == "priority":
            md[k] = rnd.choice(("low", "normal", "high"))
        else:
            md[k] = f"{k.replace('_', '-')}-{rnd.randrange(1, 10_000)}"
    return md


def _validation_errors(seed: int, model: str, org: str) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    u = rnd.random()
    if u < 0.35:
        return [
            {
                "code": "token_limit_exceeded",
                "line": None,
                "message": f"Enqueued token limit reached for {model} in organization {org}. "
                "Limit: 2,000,000 enqueued tokens. Please try again once some in_progress batches have been completed.",
                "param": None,
            }
        ]
    if u < 0.40:
        return [
            {
                "code": "empty_file",
                "line": None,
                "message": "The batch input file is empty. Please ensure that the batch contains at least one request.",
                "param": None,
            }
        ]
    lines = sorted(rnd.sample(range(1, 2000), rnd.choice((1, 1, 1, 2, 3, 5))))
    out: list[dict[str, Any]] = []
    for line in lines:
        v = rnd.random()
        if u < 0.60 or v < 0.2:
            out.append(
                {
                    "code": "invalid_json_line",
                    "line": line,
                    "message": "This line is not parseable as valid JSON.",
                    "param": None,
                }
            )
        elif u < 0.80:
            param = rnd.choice(("custom_id", "method", "url", "body"))
            out.append(
                {
                    "code": "missing_required_parameter",
                    "line": line,
                    "message": f"Missing required parameter: '{param}'.",
                    "param": param,
                }
            )
        else:
            bad = rnd.choice(("gpt-4o-mini-2024-0718", "gpt4o", "gpt-4.1-nano-preview", "o3-mini-high"))
            out.append(
                {
                    "code": "model_not_found",
                    "line": line,
                    "message": f"The provided model '{bad}' is not supported by the Batch API.",
                    "param": "body.model",
                }
            )
    return out
