"""Stopping promptly on Ctrl-C and SIGTERM, at any point of a run.

dlt's own handlers only note a signal and act on it at a few points (the loader not at all: a
SIGTERM during a load was ignored and the run exited 0), and dlt wraps a KeyboardInterrupt raised while
extracting in its step exception, so the runner took it for one failed project and went on to the
next. Here SIGINT and SIGTERM raise `KeyboardInterrupt` / `Terminated` in the main thread, dlt's
interception is turned off for our pipelines, and the runner unwraps either from dlt's exceptions.

Raising is not enough on its own: dlt runs a sequential loader's jobs through an executor that stores
any exception, KeyboardInterrupt included, in a future nobody reads, and then waits for the job
forever (a Ctrl-C during the DuckDB merge hung the run). So a signal also arms a watchdog: if the run
has not ended `GRACE_S` seconds later, it prints the one `error:` line and ends the process as a
SIGKILL would, which a load survives at any point (state commits only with the data; tests/test_kill.py);
the kernel releases the lock. A second signal ends it at once.

Python runs a signal's handler between any two bytecodes, also inside code whose exceptions it ignores
(a weakref callback, `__del__`: importlib's module locks use one). There the raised stop would be printed
as "Exception ignored" with a traceback and lost; a `sys.unraisablehook` recognises it and delivers the
signal again (`_thread.interrupt_main`), so it is raised where the run can act on it.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from .. import settings

# How long an interrupted run may take to wind down by itself (close the paging thread, roll back,
# restore the terminal) before it is ended: long enough for that, short enough for systemd and a user.
GRACE_S = 3.0

_MESSAGES: dict[int, str] = {
    signal.SIGINT: "interrupted (SIGINT); nothing unfinished was committed, the next run continues",
    signal.SIGTERM: "terminated (SIGTERM); nothing unfinished was committed, the next run continues",
}

# The first signal received (None: none). Plain assignments only in the handler: it runs in the main
# thread between any two bytecodes, possibly while that thread holds a lock.
_received: int | None = None
# Taken once and never released: whoever takes it prints the one `error:` line.
_reported = threading.Lock()
# True while a stop raised where Python ignored it is being delivered again (not the user insisting).
_redelivering = False


class Terminated(BaseException):
    """SIGTERM arrived (systemd stopping the unit, a timeout, `kill`)."""

    exit_code = settings.EXIT_SIGTERM


def _stop_exception(signum: int) -> BaseException:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received, _redelivering
    if _redelivering:
        _redelivering = False
        raise _stop_exception(signum)
    if _received is not None:
        _exit_now(_received)  # a second signal: the user insists
    _received = signum
    threading.Thread(target=_exit_after_grace, args=(signum,), name="openai-batches-stop", daemon=True).start()
    raise _stop_exception(signum)


def _unraisable_hook(unraisable: sys.UnraisableHookArgs) -> None:
    """Deliver again a stop that our handler raised where Python ignores exceptions (see the docstring)."""
    global _redelivering
    if _received is not None and isinstance(unraisable.exc_value, KeyboardInterrupt | Terminated):
        _redelivering = True
        threading.Thread(target=_redeliver, args=(_received,), name="openai-batches-stop-again", daemon=True).start()
        return
    _previous_unraisable_hook(unraisable)


_previous_unraisable_hook: Callable[[sys.UnraisableHookArgs], object] = sys.unraisablehook


def _redeliver(signum: int) -> None:
    """Signal the main thread again once it has left the hook (raised inside, the stop would be ignored again)."""
    main = threading.main_thread().ident
    while _inside_the_hook(sys._current_frames().get(main or 0)):
        time.sleep(0.001)
    _thread.interrupt_main(signal.Signals(signum))


def _inside_the_hook(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code is _unraisable_hook.__code__:
            return True
        frame = frame.f_back
    return False


def _exit_after_grace(signum: int) -> None:
    time.sleep(GRACE_S)
    _exit_now(signum)


def _exit_now(signum: int) -> None:
    report_stop(signum)
    if sys.stderr.isatty():
        sys.stderr.write("\x1b[?25h")  # a progress bar may have hidden the cursor
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not keep the process alive
            stream.flush()
    os._exit(128 + signum)


def install_signal_handlers() -> Callable[[], None]:
    """Make SIGINT and SIGTERM stop the run (see the module docstring); no-op outside the main thread.

    Returns what puts the previous handlers back (for callers of `cli.main` inside a longer-lived
    process, such as the tests: the watchdog would end it)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    global _previous_unraisable_hook
    previous_hook = sys.unraisablehook
    if previous_hook is not _unraisable_hook:
        _previous_unraisable_hook = previous_hook
    sys.unraisablehook = _unraisable_hook

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook

    return restore


def stop_requested() -> int | None:
    """The signal that asked the run to stop, or None."""
    return _received


def raise_if_stopping() -> None:
    """Raise the stop again where a signal was swallowed (dlt catches BaseException in places): no new
    project or step starts after a signal."""
    if _received is not None:
        raise _stop_exception(_received)


def report_stop(signum: int) -> None:
    """Print the one `error:` line of a stopped run (the first caller prints, later ones do nothing)."""
    if _reported.acquire(blocking=False):
        print(f"error: {_MESSAGES.get(signum, f'stopped by signal {signum}')}", file=sys.stderr, flush=True)


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


__all__ = [
    "GRACE_S",
    "Terminated",
    "install_signal_handlers",
    "interruption",
    "raise_if_stopping",
    "report_stop",
    "stop_requested",
]
