"""What the incremental plan (sources/batches/plan.py) reads of a batch object of an OpenAI-shaped provider, and
the one normalisation their objects get before the tables.

Azure's documentation shows both epoch seconds and ISO 8601 text (`2024-07-19T10:45:17Z`) for the `*_at` fields,
and `Validating`/`Completed` as well as `validating`/`completed`; which the live API sends is unconfirmed, so both
are taken from every OpenAI-shaped provider. Nothing reads the order of ids (Azure's are `batch_<uuid>`, random):
the plan goes by creation times and by ids seen, never by comparing ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ... import settings
from ...tables.anthropic import epoch_seconds
from ..batches.plan import Shape, believable, sane_created

# The timestamp fields of OpenAI's batch object (the `*_at` columns of tables/batches.py).
TIME_FIELDS = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def created(item: Mapping[str, Any], latest: float) -> int | None:
    """`created_at` as epoch seconds (a number, or ISO 8601 text with an offset), when believable, else None."""
    value = item.get("created_at")
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
        seconds = epoch_seconds(value)
        return None if seconds is None else believable(math.floor(seconds), latest)
    return sane_created(item, latest)


def status_of(item: Mapping[str, Any]) -> Any:
    """The status in OpenAI's words (any casing; `settings.STATUS_SYNONYMS`), as `batch_jobs` shows it; the
    provider's own value stays in its table."""
    return settings.openai_status(item.get("status"))


def is_open(item: Mapping[str, Any]) -> bool:
    return settings.is_open(status_of(item))


# Pages of OpenAI's maximum: Azure's too; Groq's list may ignore it (the plan's estimate only, never its decisions).
COMPATIBLE_SHAPE = Shape(created=created, is_open=is_open, page_limit=settings.PAGE_LIMIT)


def normalised(batches: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`batches` with ISO 8601 times as epoch seconds (whole seconds, floored: the column is OpenAI's), so they
    land in the timestamp columns instead of NULL; a batch with none is passed on as it is. Text that is no
    time with an offset is left as sent (NULL with the one warning of odd values)."""
    out: list[Mapping[str, Any]] = []
    for batch in batches:
        iso = {
            name: seconds
            for name in TIME_FIELDS
            # RFC 3339 text, `T` or a space between date and time (the plan reads both: `created`)
            if isinstance(value := batch.get(name), str) and (seconds := epoch_seconds(value)) is not None
        }
        out.append({**batch, **{k: math.floor(v) for k, v in iso.items()}} if iso else batch)
    return out


__all__ = ["COMPATIBLE_SHAPE", "TIME_FIELDS", "created", "is_open", "normalised", "status_of"]
