"""What the incremental plan (sources/batches/plan.py) reads of a Together, Mistral or OpenRouter batch object.

`created_at` is RFC 3339 text (Together) or epoch seconds (Mistral, OpenRouter); either is taken from each, to the
second (floored), and believed by the one rule (after 2023, not ahead of the API's own clock). Open is any status
but the provider's terminal ones, in any casing (`COMPLETED`, `Success`): an unknown value or none is open and read
again until the API says it ended.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ... import settings
from ...tables.others import time_of
from ..batches.plan import Shape, believable
from ..compatible.shape import COMPATIBLE_SHAPE


def created(item: Mapping[str, Any], latest: float) -> int | None:
    """`created_at` as epoch seconds (RFC 3339 text or a number) when believable, else None."""
    value = item.get("created_at")
    parsed = time_of(value.strip() if isinstance(value, str) else value)
    return None if parsed is None else believable(math.floor(parsed.timestamp()), latest)


def _upper_status(item: Mapping[str, Any]) -> Any:
    status = item.get("status")
    return status.strip().upper() if isinstance(status, str) else status


def together_open(item: Mapping[str, Any]) -> bool:
    return settings.is_open(_upper_status(item), settings.TOGETHER_TERMINAL_STATUSES)


def mistral_open(item: Mapping[str, Any]) -> bool:
    return settings.is_open(_upper_status(item), settings.MISTRAL_TERMINAL_STATUSES)


# Together's list is one page (everything); the size is the plan's estimate only, never reached.
TOGETHER_SHAPE = Shape(created=created, is_open=together_open, page_limit=settings.PAGE_LIMIT)
MISTRAL_SHAPE = Shape(created=created, is_open=mistral_open, page_limit=100)
# OpenRouter's statuses and times are OpenAI's (epoch seconds, lower case): the OpenAI-shaped providers' reading.
OPENROUTER_SHAPE = COMPATIBLE_SHAPE

SHAPES = {"together": TOGETHER_SHAPE, "mistral": MISTRAL_SHAPE, "openrouter": OPENROUTER_SHAPE}

__all__ = ["MISTRAL_SHAPE", "OPENROUTER_SHAPE", "SHAPES", "TOGETHER_SHAPE", "created", "mistral_open", "together_open"]
