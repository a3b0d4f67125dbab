"""One value of a report, as each output shows it: for people (terminal, Markdown, HTML) or machines.

Machine formats (csv, json) keep NULL costs as empty/null and full precision; the human formats print
NULL costs as "unpriced", so no reader mistakes a batch without a price for a free one, and show
amounts with enough digits that a small cost never reads as zero.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

UNPRICED = "unpriced"

# C0 and C1 control characters (escape sequences, carriage returns, ...) in a value from the API: shown
# as `\x1b`, never sent to a terminal or a page, where they could recolour or overwrite what is shown.
# Bidirectional controls likewise (as `\u202e`): they reorder the text after them, so a name would
# display as another ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# A spreadsheet runs a cell that starts with one of these as a formula (`=HYPERLINK(...)`, `@SUM(...)`,
# DDE payloads after a tab or carriage return): CSV cells starting so get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# A NULL cost is "unpriced" (we could not price it), except where it is another fact: a month for which the
# Costs API reported nothing.
_NULL_COST_TEXT = {"costs_usd": "no costs reported"}


def is_usd(column: str) -> bool:
    return column.endswith("_usd")


def null_text(column: str) -> str:
    """What an absent value of ``column`` is shown as to people."""
    return _NULL_COST_TEXT.get(column, UNPRICED) if is_usd(column) else ""


def jsonable(value: Any) -> Any:
    """A value as JSON carries it: ISO times, floats for decimals, null for what is not a finite number."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def csv_cell(value: Any) -> Any:
    """`jsonable`, with text that a spreadsheet would run as a formula neutralised by a leading `'`."""
    value = jsonable(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    return _CONTROL.sub(_escaped, text)


def usd(value: float | Decimal | int) -> str:
    """Dollars with cents from $1 on, and at least two significant digits below: $0.00011 is not $0.00."""
    amount = float(value)
    if amount == 0 or not math.isfinite(amount):
        return "0.00" if amount == 0 else ""
    if abs(amount) >= 1:
        return f"{amount:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(abs(amount))))
    return f"{amount:.{decimals}f}"


def display(value: Any, column: str) -> str:
    """A cell for people: UTC times without seconds noise, thousands separators, NULL costs as `null_text`."""
    if value is None:
        return null_text(column)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            return ""
        return usd(value) if is_usd(column) else format(value, ",")
    return printable(str(value))


def is_numeric(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
