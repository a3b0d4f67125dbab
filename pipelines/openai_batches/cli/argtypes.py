"""Number arguments of the command lines (`openai-batches` and `openai-batches simulate`): one parser,
so a bad number gets the same usage line wherever it is typed."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _shown(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


def number_in(convert: Callable[[str], N], low: N, high: N | None = None, unit: str = "") -> Callable[[str], N]:
    """An argparse type: ``convert(text)`` from ``low`` to ``high`` (no upper bound when None)."""
    of_unit = f" of {unit}" if unit else ""
    in_unit = f" {unit}" if unit else ""

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number{of_unit} {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {_shown(low)} to {_shown(high)}" if high is not None else f"{_shown(low)} or more{in_unit}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


__all__ = ["number_in"]
