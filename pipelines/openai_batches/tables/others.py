"""The column lists of `together_batches`, `mistral_batches` and `openrouter_batches` (one row per batch job of
each provider, every field it sends), and the one conversion of their objects into arrow tables.

As for `batches` and `anthropic_batches`: the declared columns (dlt's flattening, `usage__cost`), and in
`extra_fields` whatever no column holds exactly (a field this version does not declare, a count that is not an
integer, a time that is not one), as sent. Times are the provider's: RFC 3339 text (Together) or epoch seconds
(Mistral, OpenRouter); each time column takes both, so a provider switching encodings loses nothing. Statuses
are stored as the provider sends them (`SUCCESS`, `IN_PROGRESS`); the mapping onto OpenAI's belongs to
`batch_jobs`. Result content is never stored: a field that carries it (Mistral's inline `outputs`,
OpenRouter's `results`) is dropped before the conversion (DROPPED).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from .anthropic import parse_rfc3339
from .batches import (
    EXTRA_COLUMN,
    REDACTED_COLUMN,
    TIMESTAMP,
    Column,
    _col,
    _column_array,
    _dig,
    _hints,
    _int,
    _json_text,
    _merge,
    _shown,
    _text,
    _tree,
    _ts,
    _Unfit,
    _unknown_part,
    announce_unknown,
)

log = logging.getLogger(__name__)


def _float(name: str, description: str) -> Column:
    return _col(name, pa.float64(), "double", description)


def _json(name: str, description: str) -> Column:
    return _col(name, pa.string(), "json", description)


def _bool(name: str, description: str) -> Column:
    return _col(name, pa.bool_(), "bool", description)


TOGETHER_COLUMNS: tuple[Column, ...] = (
    _text("id", "Batch id (a UUID); the merge key."),
    _text("user_id", "The Together user whose key created the batch (a key lists its user's batches)."),
    _text("input_file_id", "The uploaded JSONL of requests."),
    _int("file_size_bytes", "Size of the input file."),
    _text("endpoint", "Endpoint the requests go to, e.g. `/v1/chat/completions`."),
    _text("model_id", "Model of the batch."),
    _text(
        "status", "As Together sends it: VALIDATING, IN_PROGRESS, COMPLETED, FAILED, EXPIRED, CANCELLING, CANCELLED."
    ),
    _float("progress", "Percent of the requests done (0-100); Together sends no request counts."),
    _ts("created_at", "When the batch was created."),
    _ts("completed_at", "When it ended; NULL while open."),
    _ts("job_deadline", "When Together gives up on it (best effort 24 h)."),
    _text("output_file_id", "Results file (JSONL); NULL until there is one."),
    _text("error_file_id", "Errors file (JSONL); NULL when none."),
    _text("error", "Why the batch failed, as sent."),
    _text("completion_window", "The window asked for at creation, when sent."),
    _int("priority", "The priority asked for at creation, when sent."),
)

MISTRAL_COLUMNS: tuple[Column, ...] = (
    _text("id", "Batch job id (a UUID); the merge key."),
    _text("object", "Always `batch`."),
    _json("input_files", "The uploaded files of requests (a JSON list of file ids)."),
    _text("endpoint", "Endpoint the requests go to, e.g. `/v1/chat/completions`."),
    _text("model", "Model of the job (NULL for an agent's)."),
    _text("agent_id", "Agent of the job (NULL for a model's)."),
    _json("metadata", "The caller's metadata map, as sent."),
    _text("output_file", "Results file id; NULL until there is one."),
    _text("error_file", "Errors file id; NULL when none."),
    _json("errors", "Job errors, as sent (`[{message, count}]`)."),
    _text(
        "status",
        "As Mistral sends it: QUEUED, RUNNING, SUCCESS, FAILED, TIMEOUT_EXCEEDED, CANCELLATION_REQUESTED, CANCELLED.",
    ),
    _ts("created_at", "When the job was created."),
    _ts("started_at", "When it started running; NULL before."),
    _ts("completed_at", "When it ended; NULL while open."),
    _int("total_requests", "Requests in the job."),
    _int("completed_requests", "Requests done (succeeded or failed)."),
    _int("succeeded_requests", "Requests that succeeded."),
    _int("failed_requests", "Requests that failed."),
)

OPENROUTER_COLUMNS: tuple[Column, ...] = (
    _text("id", "Batch id (`batch_...`); the merge key."),
    _text("object", "Always `batch`."),
    _text("endpoint", "Endpoint the requests go to (`/v1/chat/completions`, `/v1/responses`, ...)."),
    _text("model", "Model of the batch."),
    _text("provider", "The upstream provider OpenRouter routed the batch to."),
    _text("status", "OpenAI's values (validating, in_progress, ..., completed), as sent."),
    _text("completion_window", "The window asked for at creation."),
    _ts("created_at", "When the batch was created."),
    _ts("finalized_at", "When it ended; NULL while open."),
    _ts("expires_at", "Deadline (may exceed created_at plus the window: the upstream's)."),
    _int("request_counts__total", "Requests in the batch."),
    _int("request_counts__completed", "Requests that succeeded."),
    _int("request_counts__failed", "Requests that failed."),
    _text("error__message", "Why the batch failed, as sent."),
    _int("usage__prompt_tokens", "Input tokens of the batch, as OpenRouter reports them."),
    _int("usage__completion_tokens", "Output tokens of the batch."),
    _int("usage__total_tokens", "Input plus output tokens."),
    _float("usage__cost", "OpenRouter's reported cost of the batch in USD: kept to compare with the loader's own."),
    _json("usage__cost_details", "The parts of the cost, as sent."),
    _json("usage__prompt_tokens_details", "Input token details (cached, ...), as sent."),
    _json("usage__completion_tokens_details", "Output token details (reasoning, ...), as sent."),
    _json("usage__cache_creation", "Cache writes, as sent."),
    _json("usage__server_tool_use", "Server-side tool use, as sent."),
    _text("usage__service_tier", "Service tier, as sent."),
    _bool("usage__is_byok", "Whether the batch ran on the organisation's own upstream key."),
    _text("usage__speed", "Speed tier, as sent."),
    _text("output", "Where the results went, for a batch submitted from the organisation's own storage (`gs://...`)."),
)
# Added by the pipeline, not by the API: which configured project the batch came from.
PROJECT_COLUMN = _text("project", "Configured project name (the key that read the batch).")
ADDED_COLUMNS = (PROJECT_COLUMN, EXTRA_COLUMN, REDACTED_COLUMN)


@dataclass(frozen=True)
class TableSpec:
    """One provider's table: its columns, what its objects are called in a warning, who sends them, and the
    fields never kept (result content)."""

    columns: tuple[Column, ...]
    what: str
    sender: str
    dropped: frozenset[str] = frozenset()

    @property
    def known(self) -> dict[str, Any]:
        return _tree(self.columns)


# Fields that carry result content (Mistral's inline outputs of an inline job, OpenRouter's results of a batch
# read by id): never stored, as no other table stores content.
TABLES = {
    "together": TableSpec(TOGETHER_COLUMNS, "Together batch", "Together"),
    "mistral": TableSpec(MISTRAL_COLUMNS, "Mistral batch job", "Mistral", frozenset({"outputs"})),
    "openrouter": TableSpec(OPENROUTER_COLUMNS, "OpenRouter batch", "OpenRouter", frozenset({"results"})),
}


def arrow_schema(spec: TableSpec) -> pa.Schema:
    fields = [pa.field(c.name, c.arrow_type, nullable=c.name != "id") for c in spec.columns]
    fields.extend(pa.field(c.name, c.arrow_type) for c in ADDED_COLUMNS)
    return pa.schema(fields)


def column_hints(provider: str) -> dict[str, dict[str, Any]]:
    """dlt column hints of the provider's table: declared types, descriptions, timestamps with time zone."""
    hints = _hints((*TABLES[provider].columns, *ADDED_COLUMNS), "id")
    hints["id"]["primary_key"] = True
    return hints


def without_content(provider: str, batches: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`batches` without the fields that carry result content (TableSpec.dropped)."""
    dropped = TABLES[provider].dropped
    return [{k: v for k, v in b.items() if k not in dropped} if dropped & b.keys() else b for b in batches]


def to_arrow(
    provider: str,
    batches: Sequence[Mapping[str, Any]],
    project: str,
    redacted: Sequence[str | None] | None = None,
) -> pa.Table:
    """One arrow table of the provider's batches, in the declared column order; whatever no column holds exactly
    is in `extra_fields`; `redacted` is each batch's `redacted_fields` (see sources/batches/echoed.py)."""
    spec = TABLES[provider]
    batches = without_content(provider, batches)
    unfit = _Unfit()
    arrays = []
    for column in spec.columns:
        values = [_dig(b, column.path) for b in batches]
        if column.arrow_type == TIMESTAMP:
            arrays.append(_times(spec, column, batches, values, unfit))
        elif column.arrow_type == pa.float64():
            arrays.append(_numbers(spec, column, batches, values, unfit))
        elif column.arrow_type == pa.bool_():
            arrays.append(_flags(spec, column, batches, values, unfit))
        else:
            arrays.append(_column_array(column, batches, values, unfit))
    arrays.append(pa.array([project] * len(batches), pa.string()))
    arrays.append(_extra_fields(spec, batches, unfit))
    arrays.append(pa.array(list(redacted) if redacted is not None else [None] * len(batches), pa.string()))
    return pa.Table.from_arrays(arrays, schema=arrow_schema(spec))


def _odd(spec: TableSpec, column: Column, batch: Mapping[str, Any], value: Any, kind: str) -> None:
    log.warning(
        "%s %s: %s=%s is not %s; the column is NULL and the value is kept in extra_fields",
        spec.what,
        batch.get("id"),
        column.name,
        _shown(value),
        kind,
    )


def time_of(value: Any) -> datetime | None:
    """RFC 3339 text, or epoch seconds (a number, integral or not), as an aware datetime; else None."""
    if isinstance(value, str):
        return parse_rfc3339(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _times(
    spec: TableSpec, column: Column, batches: Sequence[Mapping[str, Any]], values: list[Any], unfit: _Unfit
) -> pa.Array:
    kept: list[datetime | None] = []
    for row, (value, batch) in enumerate(zip(values, batches, strict=True)):
        parsed = time_of(value)
        if parsed is None and value is not None:
            _odd(spec, column, batch, value, "a time (RFC 3339 or epoch seconds)")
            unfit.keep(row, column.path, value)
        kept.append(parsed)
    return pa.array(kept, TIMESTAMP)


def _numbers(
    spec: TableSpec, column: Column, batches: Sequence[Mapping[str, Any]], values: list[Any], unfit: _Unfit
) -> pa.Array:
    kept: list[float | None] = []
    for row, (value, batch) in enumerate(zip(values, batches, strict=True)):
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is not None and not math.isfinite(number):
            number = None
        if number is None and value is not None:
            _odd(spec, column, batch, value, "a number")
            unfit.keep(row, column.path, value)
        kept.append(number)
    return pa.array(kept, pa.float64())


def _flags(
    spec: TableSpec, column: Column, batches: Sequence[Mapping[str, Any]], values: list[Any], unfit: _Unfit
) -> pa.Array:
    kept: list[bool | None] = []
    for row, (value, batch) in enumerate(zip(values, batches, strict=True)):
        flag = value if isinstance(value, bool) else None
        if flag is None and value is not None:
            _odd(spec, column, batch, value, "true or false")
            unfit.keep(row, column.path, value)
        kept.append(flag)
    return pa.array(kept, pa.bool_())


def _extra_fields(spec: TableSpec, batches: Sequence[Mapping[str, Any]], unfit: _Unfit) -> pa.Array:
    known = spec.known
    nested = frozenset(k for k, v in known.items() if isinstance(v, dict))
    texts: list[str | None] = []
    for row, batch in enumerate(batches):
        extra = _unknown_part(batch, known)
        if extra:
            announce_unknown(batch.get("id"), extra, nested, what=spec.what, sender=spec.sender)
        if row in unfit.rows:
            extra = _merge(extra or {}, unfit.rows[row])
        texts.append(_json_text(extra) if extra else None)
    return pa.array(texts, pa.string())


__all__ = [
    "ADDED_COLUMNS",
    "MISTRAL_COLUMNS",
    "OPENROUTER_COLUMNS",
    "TABLES",
    "TOGETHER_COLUMNS",
    "TableSpec",
    "arrow_schema",
    "column_hints",
    "time_of",
    "to_arrow",
    "without_content",
]
