"""The one column list of the `batches` and `batches__errors__data` tables, and the conversion of
API objects into arrow tables that follow it.

Names are dlt's default flattening (nested keys joined by `__`) so the tables read as if dlt had
normalized the JSON, but the columns are declared up front: every column exists from the first
load with a stable type, even when the API has not sent a value for it yet (`usage` before
September 2025, `model`, all the `*_at` timestamps of a young batch).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..settings import BATCHES_TABLE, ERRORS_TABLE

log = logging.getLogger(__name__)

TIMESTAMP = pa.timestamp("us", tz="UTC")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Column:
    name: str
    path: tuple[str, ...]  # where the value sits in the batch object
    arrow_type: pa.DataType
    dlt_type: str  # dlt data_type; "json" for free-form maps
    description: str
    blank_is_null: bool = False  # "" means "none" (Azure sends "" for file ids not produced yet)


def _col(name: str, arrow_type: pa.DataType, dlt_type: str, description: str, blank_is_null: bool = False) -> Column:
    return Column(name, tuple(name.split("__")), arrow_type, dlt_type, description, blank_is_null)


def _text(name: str, description: str) -> Column:
    return _col(name, pa.string(), "text", description)


def _int(name: str, description: str) -> Column:
    return _col(name, pa.int64(), "bigint", description)


def _ts(name: str, description: str) -> Column:
    return _col(name, TIMESTAMP, "timestamp", description)


BATCH_COLUMNS: tuple[Column, ...] = (
    _text("id", "Batch id (`batch_...`); the merge key."),
    _text("object", "Always `batch`."),
    _text("endpoint", "API endpoint the requests went to, e.g. `/v1/chat/completions`."),
    _text("model", "Model of the batch; NULL for batches created before September 2025."),
    _text("errors__object", "`list` when the batch has validation errors, else NULL."),
    _col("input_file_id", pa.string(), "text", "Uploaded JSONL file with the requests.", blank_is_null=True),
    _text("completion_window", "Requested completion window, e.g. `24h`."),
    _text("status", "validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled."),
    _col(
        "output_file_id",
        pa.string(),
        "text",
        "File with successful responses; NULL until produced or when all failed.",
        blank_is_null=True,
    ),
    _col("error_file_id", pa.string(), "text", "File with failed requests; NULL when none failed.", blank_is_null=True),
    _ts("created_at", "When the batch was created."),
    _ts("in_progress_at", "When validation passed and processing started."),
    _ts("expires_at", "Deadline: created_at plus the completion window."),
    _ts("finalizing_at", "When processing ended and results were being written."),
    _ts("completed_at", "When the batch completed."),
    _ts("failed_at", "When validation failed."),
    _ts("expired_at", "When the batch expired unfinished."),
    _ts("cancelling_at", "When cancellation was requested."),
    _ts("cancelled_at", "When cancellation finished."),
    _int("request_counts__total", "Requests in the input file."),
    _int("request_counts__completed", "Requests that succeeded."),
    _int("request_counts__failed", "Requests that failed."),
    _int("usage__input_tokens", "Input tokens, cached included; NULL before September 2025."),
    _int("usage__input_tokens_details__cached_tokens", "Input tokens served from the prompt cache."),
    _int("usage__output_tokens", "Output tokens, reasoning included."),
    _int("usage__output_tokens_details__reasoning_tokens", "Reasoning tokens within output tokens."),
    _int("usage__total_tokens", "Input plus output tokens."),
    _col("metadata", pa.string(), "json", "Free-form metadata map (at most 16 keys) as JSON."),
)

# Added by the pipeline, not by the API: which configured project the batch came from.
PROJECT_COLUMN = _text("project", "Configured project name, else the `openai-project` response header.")
PROJECT_ID_COLUMN = _text(
    "project_id",
    "Project id (`proj_...`) from the `openai-project` response header, else the configured `project_id`; "
    "NULL when neither is known.",
)

# Where nothing the API sends is lost: fields this version does not declare, and values that do not fit
# their declared column's type exactly, as the API sent them. A new field, or one that changes type
# between batches (1, then "gold"), can neither stop a load (a typed column would refuse the second
# type) nor be truncated (1, then 0.5, stored as 0).
EXTRA_COLUMN = _col(
    "extra_fields",
    pa.string(),
    "json",
    "Fields this version does not declare, and values that did not fit their column's type, exactly as the "
    "API sent them (a JSON object at their original nesting); NULL when there are none.",
)
# A configured API key a server echoed back is masked (***) wherever it was (see echoed.py); which fields
# that altered is recorded, so no one takes a masked value for the one the API sent.
REDACTED_COLUMN = _col(
    "redacted_fields",
    pa.string(),
    "json",
    "Fields of the batch in which a configured API key the server sent back was masked (***), as a JSON list "
    "of paths (`metadata.note`, `errors.data[0].message`); their stored values are not the ones the API sent. "
    "NULL when none.",
)
ADDED_COLUMNS = (PROJECT_COLUMN, PROJECT_ID_COLUMN, EXTRA_COLUMN, REDACTED_COLUMN)

ERROR_COLUMNS: tuple[Column, ...] = (
    _text("batch_id", "The batch (`batches.id`) these validation errors belong to."),
    _int("error_index", "Position in `errors.data`."),
    _text("code", "Error code, e.g. `invalid_json_line`."),
    _int("line", "Line of the input file, when known."),
    _text("message", "Human-readable error message."),
    _text("param", "Parameter at fault, when known."),
    _col(
        "extra_fields",
        pa.string(),
        "json",
        "Fields of the error this version does not declare, and values that did not fit their column, as sent.",
    ),
)
_ERROR_KEYS = frozenset({"code", "line", "message", "param"})

# Hard-delete flag of the errors table: a row carrying it removes the batch's stored errors and is
# itself never stored. One is sent for each batch that has no errors now, so stale rows disappear.
STALE_MARKER = "_stale"

GONE_COLUMNS: tuple[Column, ...] = (
    _text("id", "The batch (`batches.id`, `anthropic_batches.id`) the API stopped returning."),
    _text("project", "Configured project name, as in `batches.project`."),
    _ts("confirmed_at", "When the run that confirmed it gone ran."),
    _text(
        "reason",
        "`paged past` (the list went past where it must be) or `missing N runs in a row` (404), for a batch that "
        "was open; `not listed by a full refresh` (an ended Anthropic batch deleted).",
    ),
)
# Hard-delete flag of `batches_gone`: set on the row of a batch the API returns again.
BACK_MARKER = "_back"


def _tree(columns: Sequence[Column]) -> dict[str, Any]:
    """The declared fields as a tree: key -> subtree, or None for a field held by one column."""
    tree: dict[str, Any] = {}
    for c in columns:
        node = tree
        for key in c.path[:-1]:
            node = node.setdefault(key, {})
        node[c.path[-1]] = None
    return tree


# Every field of the batch object a declared column (or the errors table) holds.
_KNOWN = _tree(BATCH_COLUMNS)
_KNOWN["errors"]["data"] = None  # the errors table holds errors.data
_KNOWN.setdefault("request_counts", {})
_KNOWN.setdefault("usage", {})
BATCH_FIELDS = frozenset(_KNOWN)
_NESTED_KNOWN = {key: tree for key, tree in _KNOWN.items() if isinstance(tree, dict)}


def batches_arrow_schema() -> pa.Schema:
    fields = [pa.field(c.name, c.arrow_type, nullable=c.name != "id") for c in BATCH_COLUMNS]
    fields.extend(pa.field(c.name, c.arrow_type) for c in ADDED_COLUMNS)
    return pa.schema(fields)


def errors_arrow_schema() -> pa.Schema:
    fields = [pa.field(c.name, c.arrow_type, nullable=c.name != "batch_id") for c in ERROR_COLUMNS]
    fields.append(pa.field(STALE_MARKER, pa.bool_()))
    return pa.schema(fields)


def gone_arrow_schema() -> pa.Schema:
    fields = [pa.field(c.name, c.arrow_type, nullable=c.name != "id") for c in GONE_COLUMNS]
    fields.append(pa.field(BACK_MARKER, pa.bool_()))
    return pa.schema(fields)


def _hints(columns: Sequence[Column], key: str) -> dict[str, dict[str, Any]]:
    hints: dict[str, dict[str, Any]] = {}
    for c in columns:
        hint: dict[str, Any] = {"data_type": c.dlt_type, "nullable": c.name != key, "description": c.description}
        if c.dlt_type == "timestamp":
            hint["timezone"] = True
            hint["precision"] = 6
        hints[c.name] = hint
    return hints


def batches_column_hints() -> dict[str, dict[str, Any]]:
    """dlt column hints for `batches`: declared types, descriptions, timestamps with time zone."""
    hints = _hints((*BATCH_COLUMNS, *ADDED_COLUMNS), "id")
    hints["id"]["primary_key"] = True
    return hints


def errors_column_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(ERROR_COLUMNS, "batch_id")
    hints["batch_id"]["merge_key"] = True
    hints[STALE_MARKER] = {"data_type": "bool", "hard_delete": True, "nullable": True}
    return hints


def gone_column_hints() -> dict[str, dict[str, Any]]:
    hints = _hints(GONE_COLUMNS, "id")
    hints["id"]["primary_key"] = True
    hints[BACK_MARKER] = {"data_type": "bool", "hard_delete": True, "nullable": True}
    return hints


def _dig(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def exact_int(value: Any) -> int | None:
    """`value` as an int64 when it is exactly one (12, 12.0, "12"), else None (0.5, "n/a", True, 2**70)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        try:
            as_float = float(value) if not isinstance(value, str) else float(value.strip())
        except (TypeError, ValueError, OverflowError):
            return None
        if not as_float.is_integer():
            return None  # a fraction, nan, inf
        number = int(value.strip()) if isinstance(value, str) and value.strip().lstrip("-").isdigit() else int(as_float)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


class _Unfit:
    """Values that no declared column holds exactly, by row, at their path: they go to `extra_fields`."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}

    def keep(self, row: int, path: Sequence[str], value: Any) -> None:
        node = self.rows.setdefault(row, {})
        for key in path[:-1]:
            inner = node.get(key)
            if not isinstance(inner, dict):
                inner = node[key] = {}
            node = inner
        node[path[-1]] = value


def _column_values(batches: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...], list[Any]]:
    """What `_dig` finds at every column's path, one list per path, for all batches at once.

    Built level by level with comprehensions, each parent list shared by its children (`usage` feeds five
    columns): ~5x faster than `_dig` per cell, and this conversion is the pipeline's main local cost."""
    found: dict[tuple[str, ...], list[Any]] = {}

    def values(path: tuple[str, ...]) -> list[Any]:
        if path not in found:
            key = path[-1]
            if len(path) == 1:
                found[path] = [b.get(key) for b in batches]
            else:
                # Plain dicts (what JSON gives) take the fast branch; anything else goes through `_dig`.
                found[path] = [
                    v.get(key) if type(v) is dict else (None if v is None else _dig(v, (key,)))
                    for v in values(path[:-1])
                ]
        return found[path]

    for column in BATCH_COLUMNS:
        values(column.path)
    return found


# `json.dumps(v, ensure_ascii=False)` builds a new encoder per call; the same encoder, built once.
_json_text = json.JSONEncoder(ensure_ascii=False).encode


def _column_array(column: Column, batches: Sequence[Mapping[str, Any]], values: list[Any], unfit: _Unfit) -> pa.Array:
    if column.dlt_type == "json":
        return pa.array([None if v is None else _json_text(v) for v in values], pa.string())
    is_time = column.arrow_type == TIMESTAMP
    array_type = pa.int64() if is_time else column.arrow_type  # timestamps arrive as epoch seconds
    try:
        if array_type == pa.int64():
            # Inferred, then checked: converting to int64 directly would silently truncate 2.5 to 2.
            array = pa.array(values)
            if pa.types.is_null(array.type):
                array = array.cast(pa.int64())
            elif not pa.types.is_int64(array.type):
                raise pa.ArrowInvalid(f"{array.type} values")
        else:
            array = pa.array(values, array_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        # Slow path for the rare page with an odd value: one by one, nothing truncated.
        if array_type == pa.string():
            array = pa.array([_to_text(v) for v in values], pa.string())
        else:
            kept: list[int | None] = []
            for row, (value, batch) in enumerate(zip(values, batches, strict=True)):
                number = exact_int(value)
                if number is None and value is not None:
                    log.warning(
                        "batch %s: %s=%s is not an integer; the column is NULL and the value is kept in extra_fields",
                        batch.get("id"),
                        column.name,
                        _shown(value),
                    )
                    unfit.keep(row, column.path, value)
                kept.append(number)
            array = pa.array(kept, pa.int64()).cast(array_type)
    if is_time:
        array = _epoch_to_timestamp(array, column, batches, unfit)
    if column.blank_is_null:
        array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
    return array


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _epoch_to_timestamp(
    seconds: pa.Array, column: Column, batches: Sequence[Mapping[str, Any]], unfit: _Unfit
) -> pa.Array:
    """Epoch seconds as microsecond timestamps, vectorised; a value too large for that is NULL (and kept)."""
    try:
        return pc.multiply_checked(seconds, 1_000_000).cast(TIMESTAMP)
    except pa.ArrowInvalid:
        limit = _INT64_MAX // 1_000_000
        kept = []
        for row, (value, batch) in enumerate(zip(seconds.to_pylist(), batches, strict=True)):
            if value is not None and abs(value) > limit:
                log.warning(
                    "batch %s: %s=%r is out of range; the column is NULL and the value is kept in extra_fields",
                    batch.get("id"),
                    column.name,
                    value,
                )
                unfit.keep(row, column.path, value)
                value = None
            kept.append(value)
        return pc.multiply_checked(pa.array(kept, pa.int64()), 1_000_000).cast(TIMESTAMP)


def _only_known(value: dict[str, Any], tree: dict[str, Any]) -> bool:
    """True when every key of `value`, at every level, is a declared field."""
    for key, inner in value.items():
        if key not in tree:
            return False
        sub = tree[key]
        if sub is None or inner is None:
            continue  # a column holds it (a value of the wrong type is found by the column's conversion)
        if type(inner) is not dict or not _only_known(inner, sub):
            return False
    return True


def _has_unknown_fields(batch: Mapping[str, Any]) -> bool:
    """Cheap test that lets almost every batch skip `_unknown_part` (same answer when False)."""
    if type(batch) is not dict or not batch.keys() <= BATCH_FIELDS:
        return True
    for key, tree in _NESTED_KNOWN.items():
        nested = batch.get(key)
        if nested is None:
            continue
        if type(nested) is not dict or not _only_known(nested, tree):
            return True
    return False


def _unknown_part(value: Any, tree: dict[str, Any]) -> Any:
    """The part of `value` that no declared field holds (None when there is none): unknown keys, and a
    container that is not an object at all (`usage: "n/a"`)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, inner in value.items():
        if key not in tree:
            out[key] = inner
        elif isinstance(tree[key], dict):
            part = _unknown_part(inner, tree[key])
            if part is not None:
                out[key] = part
    return out or None


# Unknown fields announced once per process (per table): a new field arrives on every batch from then on.
_ANNOUNCED: set[tuple[str, str]] = set()


def announce_unknown(
    batch_id: Any, unknown: dict[str, Any], nested: Collection[str], *, what: str = "batch", sender: str = "the API"
) -> None:
    """Warn once per field about fields no column declares (kept in `extra_fields`), and about a nested field
    (`nested`) that is not an object. `what` names the object in the line, `sender` who sends it."""
    for key, value in unknown.items():
        if key in nested and not isinstance(value, Mapping):
            log.warning(
                "%s %s: %s=%s is not an object; its columns are NULL and the value is kept in extra_fields",
                what,
                batch_id,
                key,
                _shown(value),
            )
            continue
        for path in [f"{key}.{inner}" for inner in value] if key in nested else [key]:
            if (what, path) not in _ANNOUNCED:
                _ANNOUNCED.add((what, path))
                log.warning("%s sends a field this version does not declare: %s (kept in extra_fields)", sender, path)


def _merge(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    for key, value in other.items():
        if isinstance(into.get(key), dict) and isinstance(value, dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _extra_fields(batches: Sequence[Mapping[str, Any]], unfit: _Unfit) -> pa.Array:
    texts: list[str | None] = []
    for row, batch in enumerate(batches):
        extra: dict[str, Any] | None = None
        if _has_unknown_fields(batch):
            extra = _unknown_part(batch, _KNOWN)
            if extra:
                announce_unknown(batch.get("id"), extra, _NESTED_KNOWN)
        if row in unfit.rows:
            extra = _merge(extra or {}, unfit.rows[row])
        texts.append(_json_text(extra) if extra else None)
    return pa.array(texts, pa.string())


def batches_to_arrow(
    batches: Sequence[Mapping[str, Any]],
    projects: Sequence[str],
    project_ids: Sequence[str | None] | None = None,
    redacted: Sequence[str | None] | None = None,
) -> pa.Table:
    """One arrow table for `batches`, in the declared column order; whatever no column holds exactly is
    in `extra_fields`; `redacted` is each batch's `redacted_fields` (see echoed.py)."""
    values = _column_values(batches)
    unfit = _Unfit()
    arrays = [_column_array(c, batches, values[c.path], unfit) for c in BATCH_COLUMNS]
    arrays.append(pa.array(list(projects), pa.string()))
    arrays.append(pa.array(list(project_ids) if project_ids is not None else [None] * len(batches), pa.string()))
    arrays.append(_extra_fields(batches, unfit))
    arrays.append(pa.array(list(redacted) if redacted is not None else [None] * len(batches), pa.string()))
    return pa.Table.from_arrays(arrays, schema=batches_arrow_schema())


def errors_to_arrow(batches: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows of `batches__errors__data`: one per validation error, plus one stale marker per batch
    without errors so that errors stored by an earlier load of that batch are deleted."""
    cols: dict[str, list[Any]] = {name: [] for name in errors_arrow_schema().names}
    for batch in batches:
        errors = batch.get("errors")
        # `errors` is null on almost every batch; skipping the Mapping check for it is measurably faster.
        data = errors.get("data") if errors is not None and isinstance(errors, Mapping) else None
        if data and not isinstance(data, list):
            data = [data]  # one odd error object or string, not a list of them: still one error row
        if not data:
            row: dict[str, Any] = {"batch_id": batch["id"], STALE_MARKER: True}
            for name, values in cols.items():
                values.append(row.get(name))
            continue
        for index, error in enumerate(data):
            extra: dict[str, Any] = {}
            if not isinstance(error, Mapping):
                extra["error"] = error
                error = {"message": _to_text(error)}
            line = error.get("line")
            line_number = exact_int(line)
            if line is not None and line_number is None:
                log.warning(
                    "batch %s: errors.data[%d].line=%s is not an integer; kept in extra_fields",
                    batch["id"],
                    index,
                    _shown(line),
                )
                extra["line"] = line
            extra.update({k: v for k, v in error.items() if k not in _ERROR_KEYS})
            row = {
                "batch_id": batch["id"],
                "error_index": index,
                "code": _to_text(error.get("code")),
                "line": line_number,
                "message": _to_text(error.get("message")),
                "param": _to_text(error.get("param")),
                "extra_fields": _json_text(extra) if extra else None,
                STALE_MARKER: None,
            }
            for name, values in cols.items():
                values.append(row.get(name))
    return pa.table(cols, schema=errors_arrow_schema())


def gone_to_arrow(gone: Sequence[tuple[str, str]], back: Sequence[str], project: str, at: float) -> pa.Table:
    """Rows of `batches_gone`: (id, reason) confirmed gone now, and a delete marker for each id in `back`
    (confirmed gone earlier, returned by the API again)."""
    ids = [g[0] for g in gone] + list(back)
    seconds = int(at)
    return pa.table(
        {
            "id": ids,
            "project": [project] * len(ids),
            "confirmed_at": pa.array([seconds * 1_000_000] * len(ids), pa.int64()).cast(TIMESTAMP),
            "reason": [g[1] for g in gone] + [None] * len(back),
            BACK_MARKER: [None] * len(gone) + [True] * len(back),
        },
        schema=gone_arrow_schema(),
    )


__all__ = [
    "ADDED_COLUMNS",
    "BATCHES_TABLE",
    "BATCH_COLUMNS",
    "ERRORS_TABLE",
    "ERROR_COLUMNS",
    "EXTRA_COLUMN",
    "GONE_COLUMNS",
    "PROJECT_COLUMN",
    "PROJECT_ID_COLUMN",
    "REDACTED_COLUMN",
    "STALE_MARKER",
    "batches_column_hints",
    "batches_to_arrow",
    "errors_column_hints",
    "errors_to_arrow",
    "exact_int",
    "gone_column_hints",
    "gone_to_arrow",
]
