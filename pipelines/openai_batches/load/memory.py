"""Giving freed memory back to the operating system (glibc keeps it in its heap otherwise)."""

from __future__ import annotations

import contextlib
import ctypes
import sys


def release_free_memory() -> None:
    """Return the heap's free pages to the OS: after a phase that allocated and freed a lot (generating a
    simulated history, extracting a backfill), before one that needs room of its own. Best effort, glibc
    only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


__all__ = ["release_free_memory"]
