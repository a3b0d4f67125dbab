"""The one column list of `anthropic_batches` (one row per Anthropic message batch) and the conversion of
the API's batch objects into arrow tables that follow it.

Every field the API sends is kept: the declared columns (dlt's flattening, `request_counts__succeeded`),
and in `extra_fields` whatever no column holds exactly (a field this version does not declare, a count
that is not an integer, a timestamp that is not RFC 3339), as sent, as `batches` does. Timestamps are
RFC 3339 text (`2026-10-14T09:30:00.123456Z`), stored as TIMESTAMPTZ; one without a UTC offset is not
RFC 3339 and is not guessed at: its column is NULL, with a warning, and the text is in `extra_fields`.
A configured key the server sent back is masked before anything is kept (sources/batches/echoed.py),
the fields it altered named in `redacted_fields`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..settings import ANTHROPIC_BATCHES_TABLE
from .batches import (
    EXTRA_COLUMN,
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

ANTHROPIC_COLUMNS: tuple[Column, ...] = (
    _text("id", "Message batch id (`msgbatch_...`); the merge key."),
    _text("type", "Always `message_batch`."),
    _text("processing_status", "in_progress, canceling or ended (`ended` never changes again)."),
    _int("request_counts__processing", "Requests still processing (the only count that moves before the end)."),
    _int("request_counts__succeeded", "Requests that succeeded; 0 until the batch ended."),
    _int("request_counts__errored", "Requests that failed; 0 until the batch ended."),
    _int("request_counts__canceled", "Requests canceled before they ran; 0 until the batch ended."),
    _int("request_counts__expired", "Requests not run within the 24 h; 0 until the batch ended."),
    _ts("created_at", "When the batch was created."),
    _ts("ended_at", "When processing ended (all requests done, cancelled or expired); NULL while open."),
    _ts("expires_at", "Deadline: created_at plus 24 hours."),
    _ts("archived_at", "When the results became unavailable (29 days after creation); NULL before."),
    _ts("cancel_initiated_at", "When a cancel was asked for; NULL when never."),
    _text("results_url", "Where the results (JSONL) are downloaded from; NULL until the batch ended."),
)
# Added by the pipeline, not by the API: which configured project (Anthropic workspace) the batch came from.
PROJECT_COLUMN = _text("project", "Configured project name (the workspace of the key that read the batch).")
REDACTED_COLUMN = _col(
    "redacted_fields",
    pa.string(),
    "json",
    "Fields of the batch in which a configured API key the server sent back was masked (***), as a JSON list "
    "of paths (`results_url`); their stored values are not the ones the API sent. NULL when none.",
)
ADDED_COLUMNS = (PROJECT_COLUMN, EXTRA_COLUMN, REDACTED_COLUMN)

# Every field of the batch object a declared column holds.
_KNOWN = _tree(ANTHROPIC_COLUMNS)
_NESTED = frozenset(k for k, v in _KNOWN.items() if isinstance(v, dict))

# RFC 3339's date-time (section 5.6): a full date, `T` (or a space, as the RFC allows), a time with optional
# fraction, and a UTC offset (`Z` or +hh:mm). Checked before `fromisoformat`, which also takes ISO 8601 forms
# that are not RFC 3339 (week dates, no separators, no offset).
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z")
# The same, anchored for Arrow's RE2 (pyarrow.compute): which values the vectorised parse may see.
_RFC3339_ANCHORED = "^" + _RFC3339.pattern.removesuffix(r"\Z") + "$"


def parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (microseconds; finer digits dropped), else None."""
    if not isinstance(value, str):
        return None
    found = _RFC3339.match(value.strip())
    if found is None:
        return None
    day, time, fraction, offset = found.groups()
    text = f"{day}T{time}" + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")
    text += "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # a month 13, a second 60
        return None


def epoch_seconds(value: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds, else None (what the incremental plan reads of `created_at`)."""
    parsed = parse_rfc3339(value)
    return None if parsed is None else parsed.timestamp()


def anthropic_arrow_schema() -> pa.Schema:
    fields = [pa.field(c.name, c.arrow_type, nullable=c.name != "id") for c in ANTHROPIC_COLUMNS]
    fields.extend(pa.field(c.name, c.arrow_type) for c in ADDED_COLUMNS)
    return pa.schema(fields)


def anthropic_column_hints() -> dict[str, dict[str, Any]]:
    """dlt column hints for `anthropic_batches`: declared types, descriptions, timestamps with time zone."""
    hints = _hints((*ANTHROPIC_COLUMNS, *ADDED_COLUMNS), "id")
    hints["id"]["primary_key"] = True
    return hints


def _timestamps(column: Column, batches: Sequence[Mapping[str, Any]], values: list[Any], unfit: _Unfit) -> pa.Array:
    """RFC 3339 text as timestamps: vectorised (Arrow's parser), one by one for a page with an odd value.

    Arrow's parser is used only on text that `parse_rfc3339` takes alike: it also takes ISO 8601 forms that are
    not RFC 3339 (`+0530`, `+05`, no seconds) and the year 0000, which Python has no date for (DuckDB stores it
    as 1 BC and hands it back as text), so such a value was parsed on a page of its own and kept aside on a page
    with another odd value."""
    try:
        strings = pa.array(values, pa.string())
        if pc.all(pc.match_substring_regex(strings, _RFC3339_ANCHORED)).as_py() is not False and not (
            pc.any(pc.starts_with(strings, "0000")).as_py()
        ):
            return strings.cast(TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    kept: list[datetime | None] = []
    for row, (value, batch) in enumerate(zip(values, batches, strict=True)):
        parsed = parse_rfc3339(value)
        if parsed is None and value is not None:
            log.warning(
                "message batch %s: %s=%s is not an RFC 3339 timestamp; the column is NULL and the value is kept "
                "in extra_fields",
                batch.get("id"),
                column.name,
                _shown(value),
            )
            unfit.keep(row, column.path, value)
        kept.append(parsed)
    return pa.array(kept, TIMESTAMP)


def _extra_fields(batches: Sequence[Mapping[str, Any]], unfit: _Unfit) -> pa.Array:
    texts: list[str | None] = []
    for row, batch in enumerate(batches):
        extra = _unknown_part(batch, _KNOWN) if _has_unknown(batch) else None
        if extra:
            announce_unknown(batch.get("id"), extra, _NESTED, what="message batch", sender="Anthropic")
        if row in unfit.rows:
            extra = _merge(extra or {}, unfit.rows[row])
        texts.append(_json_text(extra) if extra else None)
    return pa.array(texts, pa.string())


def _has_unknown(batch: Mapping[str, Any]) -> bool:
    if not batch.keys() <= _KNOWN.keys():
        return True
    return any(
        (nested := batch.get(key)) is not None and (type(nested) is not dict or not nested.keys() <= _KNOWN[key].keys())
        for key in _NESTED
    )


def anthropic_to_arrow(
    batches: Sequence[Mapping[str, Any]], project: str, redacted: Sequence[str | None] | None = None
) -> pa.Table:
    """One arrow table for `anthropic_batches`, in the declared column order; whatever no column holds exactly
    is in `extra_fields`; `redacted` is each batch's `redacted_fields` (see sources/batches/echoed.py)."""
    unfit = _Unfit()
    arrays = []
    for column in ANTHROPIC_COLUMNS:
        values = [_dig(b, column.path) for b in batches]
        if column.arrow_type == TIMESTAMP:
            arrays.append(_timestamps(column, batches, values, unfit))
        else:
            arrays.append(_column_array(column, batches, values, unfit))
    arrays.append(pa.array([project] * len(batches), pa.string()))
    arrays.append(_extra_fields(batches, unfit))
    arrays.append(pa.array(list(redacted) if redacted is not None else [None] * len(batches), pa.string()))
    return pa.Table.from_arrays(arrays, schema=anthropic_arrow_schema())


__all__ = [
    "ADDED_COLUMNS",
    "ANTHROPIC_BATCHES_TABLE",
    "ANTHROPIC_COLUMNS",
    "PROJECT_COLUMN",
    "REDACTED_COLUMN",
    "anthropic_arrow_schema",
    "anthropic_column_hints",
    "anthropic_to_arrow",
    "epoch_seconds",
    "parse_rfc3339",
]
