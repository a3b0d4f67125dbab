"""Keys a server echoed back in the batches it returns: masked before anything is stored, and recorded.

The batch objects are stored as sent (metadata, fields this version does not declare, validation
errors): the one thing taken out is a configured key (`redact.py` says what "contains a key" means).
A value altered for that reason is named in the batch's `redacted_fields` (a JSON list of paths such
as `metadata.note` or `errors.data[0].message`), which the `caveats` view lists, so a masked value is
never mistaken for the one the server sent. Checked vectorised on the arrow tables: a page without a
key costs one regex scan per text column, and only batches that match are walked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...client.redact import Redacted, Redactor

# Columns the loader fills itself (the configured project name, the project id already checked as a header):
# not text the server sent in the batch, so never a place a key was echoed into.
OWN_COLUMNS = frozenset({"project", "project_id"})


def flagged_ids(tables: Sequence[pa.Table], key_regex: str | None) -> set[str]:
    """Ids of the batches some text of which, in `tables` (`batches` by `id`, its errors by `batch_id`),
    matches `key_regex` (the columns in OWN_COLUMNS aside)."""
    found: set[str] = set()
    if not key_regex:
        return found
    for table in tables:
        id_column = "id" if "id" in table.column_names else "batch_id"
        hit = None
        for name in table.column_names:
            column = table.column(name)
            if name in OWN_COLUMNS or not pa.types.is_string(column.type):
                continue
            match = pc.fill_null(pc.match_substring_regex(column, key_regex), False)
            hit = match if hit is None else pc.or_(hit, match)
        if hit is not None and pc.any(hit).as_py():
            found.update(str(v) for v in table.column(id_column).filter(hit).to_pylist())
    return found


def masked_batch(batch: Mapping[str, Any], redactor: Redactor) -> tuple[dict[str, Any], list[str]]:
    """`batch` with every key masked, and the paths of the fields that were altered (in the order met)."""
    fields: list[str] = []
    return _walk(batch, "", redactor, fields), fields


def _walk(value: Any, path: str, redactor: Redactor, fields: list[str]) -> Any:
    if isinstance(value, str):
        masked = redactor.mask(value)
        if isinstance(masked, Redacted):
            fields.append(path)
        return str(masked)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, inner in value.items():
            name = redactor.mask(key) if isinstance(key, str) else key
            where = f"{path}.{name}" if path else str(name)
            if isinstance(name, Redacted):
                fields.append(where + " (its name)")
            out[str(name) if isinstance(name, str) else name] = _walk(inner, where, redactor, fields)
        return out
    if isinstance(value, list):
        return [_walk(inner, f"{path}[{i}]", redactor, fields) for i, inner in enumerate(value)]
    return value


def mask_batches(
    batches: Sequence[Mapping[str, Any]], ids: set[str], redactor: Redactor
) -> tuple[list[Mapping[str, Any]], list[str | None]]:
    """`batches` with those in `ids` masked, and each batch's `redacted_fields` (JSON text, or None)."""
    out: list[Mapping[str, Any]] = []
    recorded: list[str | None] = []
    for batch in batches:
        if str(batch.get("id")) not in ids:
            out.append(batch)
            recorded.append(None)
            continue
        masked, fields = masked_batch(batch, redactor)
        out.append(masked)
        recorded.append(json.dumps(fields) if fields else None)
    return out, recorded


__all__ = ["flagged_ids", "mask_batches", "masked_batch"]
