"""What the incremental plan (sources/batches/plan.py) reads of an Anthropic message batch.

`created_at` is RFC 3339 text (`2026-10-14T09:30:00.123456Z`), taken to the second (floored: the plan's
window is seconds wide, and the same text always gives the same second) and believed by the same rule as
OpenAI's epoch seconds (after 2023, not ahead of the API's own clock). Open is any `processing_status`
but `ended` (in_progress, canceling, an unknown value, none): re-read until the API says it ended. Pages
hold 1,000 batches, the API's maximum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ... import settings
from ...client.anthropic import PAGE_LIMIT
from ...tables.anthropic import epoch_seconds
from ..batches.plan import Shape, believable


def created(item: Mapping[str, Any], latest: float) -> int | None:
    """`created_at` as epoch seconds when it is RFC 3339 and a believable creation time, else None."""
    seconds = epoch_seconds(item.get("created_at"))
    return None if seconds is None else believable(math.floor(seconds), latest)


def is_open(item: Mapping[str, Any]) -> bool:
    return settings.is_open(item.get("processing_status"), settings.ANTHROPIC_TERMINAL_STATUSES)


ANTHROPIC_SHAPE = Shape(created=created, is_open=is_open, page_limit=PAGE_LIMIT)

__all__ = ["ANTHROPIC_SHAPE", "created", "is_open"]
