"""Making text from a server safe to show: no part of the key, no control characters, bounded length.

Everything the pipeline prints or stores that came from an HTTP response (error messages, body
excerpts, header values such as `x-request-id`) goes through `Redactor.clean`: a hostile or buggy server
can echo the key back (whole, or less a character), forge log lines with `\\r`, `\\n` and ANSI codes,
or send megabytes of error text. Data stored as sent (batch metadata, fields this version does not
declare, validation errors) goes through `Redactor.mask` instead (see echoed.py): only the key is taken
out of it.

The one rule, everywhere: a text "contains a key" when it shares a run of MIN_SECRET_RUN or more
consecutive characters with any configured key (every project's key and the admin key: a server of one
project may echo another's). Such a run is replaced by MASK, and the value stored is marked as altered.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

# Any run of this many characters of the key is masked: enough to never show a usable part of it,
# short enough that a key echoed with a character or two missing is still caught.
MIN_SECRET_RUN = 8

# Longest server text shown in one message: enough for any real API error message.
MAX_SHOWN_CHARS = 300

MASK = "***"

# ANSI/VT escape sequences (CSI ... final byte, OSC ... BEL/ST, and lone two-byte escapes).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# C0 and C1 control characters, DEL, and Unicode line/paragraph separators and bidi overrides,
# all of which can make one message look like several or hide part of it.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def mask_runs(text: str, secret: str, min_run: int = MIN_SECRET_RUN) -> str:
    """`text` with every run of `min_run` or more characters that also occurs in `secret` replaced.

    Every such run is covered by windows of exactly `min_run` characters that occur in the secret, so
    marking every position under a matching window masks exactly the runs (and nothing shorter)."""
    return _mask_windows(text, _windows((secret,), min_run), min_run)


def _windows(secrets: tuple[str, ...], min_run: int) -> frozenset[str]:
    return frozenset(s[i : i + min_run] for s in secrets if len(s) >= min_run for i in range(len(s) - min_run + 1))


def _mask_windows(text: str, windows: frozenset[str], min_run: int) -> str:
    """`text` with every position under a window of `min_run` characters in `windows` masked, adjacent
    positions under one MASK (two keys sharing a prefix, `sk-proj-`, give one `***`, not two)."""
    if not windows or len(text) < min_run:
        return text
    covered = [False] * len(text)
    for i in range(len(text) - min_run + 1):
        if text[i : i + min_run] in windows:
            for j in range(i, i + min_run):
                covered[j] = True
    if not any(covered):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class Redacted(str):
    """A text `Redactor.clean` or `Redactor.mask` altered because it contained a key: the same string,
    marked, so whoever stores it can record that it is not the value the server sent."""

    __slots__ = ()


class Redactor:
    """Cleans server text for display and storage; knows every configured key (its client's and the others)."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._windows = _windows(self._secrets, MIN_SECRET_RUN)

    def clean(self, text: object, limit: int = MAX_SHOWN_CHARS) -> str:
        """One printable line: secrets masked, escape sequences and control characters gone, at most
        `limit` characters (a longer text ends with an ellipsis)."""
        raw = text if isinstance(text, str) else str(text)
        # Masked before cutting (a cut could split a secret into pieces too short to recognise) and
        # before removing control characters (which could otherwise join two halves of a secret).
        raw = raw[: limit * 8]  # bounded work on megabytes of error text
        masked = self.mask(raw)
        line = _CONTROL.sub(" ", _ANSI.sub("", masked))
        line = " ".join(line.split())
        again = self.mask(line)
        line = again if len(again) <= limit else again[: limit - 1].rstrip() + "…"
        return Redacted(line) if isinstance(masked, Redacted) or isinstance(again, Redacted) else line

    def mask(self, text: str) -> str:
        """`text` with every run of a key masked and nothing else changed; a `Redacted` when it changed."""
        out = _mask_windows(text, self._windows, MIN_SECRET_RUN)
        return Redacted(out) if out != text else text

    def key_regex(self) -> str | None:
        """An RE2 regex matching any text `mask` would change (None with no key long enough): for checking
        many values at once and masking only those that match."""
        runs = {
            s[i : i + MIN_SECRET_RUN] for s in self._secrets if len(s) >= MIN_SECRET_RUN
            for i in range(len(s) - MIN_SECRET_RUN + 1)
        }  # fmt: skip
        escaped = ["".join(ch if ch.isalnum() else "\\" + ch for ch in run) for run in sorted(runs)]
        return "|".join(escaped) or None

    def suspicious_regex(self) -> str:
        """An RE2 regex (arrow compute's) matching any text `clean` would change other than by its length or
        its spacing: a run of MIN_SECRET_RUN characters of a secret, or a control character. For checking
        many values at once and cleaning only those that match."""
        control = r"[\x{00}-\x{1f}\x{7f}-\x{9f}\x{2028}\x{2029}\x{202a}-\x{202e}\x{2066}-\x{2069}]"
        runs = {
            s[i : i + MIN_SECRET_RUN] for s in self._secrets if len(s) >= MIN_SECRET_RUN
            for i in range(len(s) - MIN_SECRET_RUN + 1)
        }  # fmt: skip
        escaped = ("".join(ch if ch.isalnum() else "\\" + ch for ch in run) for run in sorted(runs))
        return "|".join([control, *escaped])

    def contains_secret(self, text: str, min_run: int = MIN_SECRET_RUN) -> bool:
        """Whether `text` shares a run of `min_run` characters (or a whole shorter secret) with a secret."""
        return any(mask_runs(text, s, min(min_run, len(s))) != text for s in self._secrets if len(s) >= MIN_SECRET_RUN)


class _MaskingFilter(logging.Filter):
    """Masks a redactor's keys in every record of the loggers it is attached to."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor.mask(message)
        if isinstance(masked, Redacted):
            record.msg, record.args = str(masked), None
        return True


@contextlib.contextmanager
def masked_logs(redactor: Redactor, package: str = "openai_batches") -> Iterator[None]:
    """Within the block, every record of `package`'s loggers has `redactor`'s keys masked.

    Warnings name what a server sent that did not fit (an odd value, a field this version does not declare, a
    batch id) before anything is masked for storage: a server that echoed a key there made the warning print
    it. A logger's filter sees only its own records, so the filter goes on each logger of the package."""
    names = [package, *(n for n in logging.root.manager.loggerDict if n.startswith(package + "."))]
    loggers = [logging.getLogger(name) for name in names]
    masking = _MaskingFilter(redactor)
    for logger in loggers:
        logger.addFilter(masking)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(masking)


__all__ = ["MASK", "MAX_SHOWN_CHARS", "MIN_SECRET_RUN", "Redacted", "Redactor", "mask_runs", "masked_logs"]
