"""Stopping promptly on Ctrl-C and SIGTERM, at any point of a run.

dlt's own handlers only note a signal and act on it at a few points (the loader not at all: a
SIGTERM during a load was ignored and the run exited 0), and dlt wraps a KeyboardInterrupt raised while
extracting in its step exception, so the runner took it for one failed project and went on to the
next. Here SIGTERM raises `Terminated` in the main thread like SIGINT raises KeyboardInterrupt, dlt's
interception is turned off for our pipelines, and the runner unwraps either from dlt's exceptions.
A run stopped anywhere commits nothing it has not finished: the next one converges (state commits
only with the data, see sync_plan.py).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

# Exit codes of a run stopped by a signal: 128 + the signal number, as shells report it.
EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class Terminated(BaseException):
    """SIGTERM arrived (systemd stopping the unit, a timeout, `kill`)."""

    exit_code = EXIT_SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def install_sigterm_handler() -> None:
    """Make SIGTERM raise `Terminated` in the main thread (no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def interruption(error: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or Terminated behind `error` (dlt wraps them), or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "SignalReceivedException":  # dlt's (a KeyboardInterrupt), if it intercepts
            return Terminated() if getattr(current, "signal_code", None) == signal.SIGTERM else KeyboardInterrupt()
        if isinstance(current, KeyboardInterrupt | Terminated):
            return current
        current = current.__cause__ or current.__context__
    return None


__all__ = ["EXIT_SIGINT", "EXIT_SIGTERM", "Terminated", "install_sigterm_handler", "interruption"]
