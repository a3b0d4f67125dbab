"""The one retry policy: capped exponential backoff with jitter, the server's Retry-After hints, and
one budget for a whole run.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from tenacity import RetryCallState

from .. import settings

log = logging.getLogger(__name__)


@dataclass
class RetryPolicy:
    """Capped exponential backoff with jitter, server hints honoured, and a budget for the whole run.

    One instance is shared by every request of a run, so a flapping API exhausts the budget once
    instead of once per page."""

    max_attempts: int = settings.RETRY_MAX_ATTEMPTS
    initial_backoff: float = settings.RETRY_INITIAL_S
    max_backoff: float = settings.RETRY_MAX_BACKOFF_S
    max_hint: float = settings.RETRY_MAX_HINT_S
    budget_retries: int = settings.RETRY_BUDGET_RETRIES
    budget_sleep: float = settings.RETRY_BUDGET_SLEEP_S
    sleep: Callable[[float], None] = time.sleep
    retries_used: int = 0
    slept: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hint = getattr(error, "retry_after", None)
        if hint is not None and 0 <= hint <= self.max_hint:
            return float(hint)
        backoff = min(self.initial_backoff * 2 ** (state.attempt_number - 1), self.max_backoff)
        # Jitter keeps many cron jobs that failed together from retrying in lockstep.
        return backoff * (1 - 0.25 * random.random())

    def stop(self, state: RetryCallState) -> bool:
        with self._lock:
            return (
                state.attempt_number >= self.max_attempts
                or self.retries_used >= self.budget_retries
                or self.slept >= self.budget_sleep
            )

    def before_sleep(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries_used += 1
            self.slept += state.upcoming_sleep
        error = state.outcome.exception() if state.outcome else None
        log.warning("retrying in %.1fs (attempt %d): %s", state.upcoming_sleep, state.attempt_number + 1, error)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """`retry-after-ms` (OpenAI's) wins over `retry-after` (seconds or an HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # a garbled hint is no hint: the client's own backoff applies
    return max(0.0, parsed.timestamp() - time.time())
