"""One load per database file at a time, and a clear answer for whoever has to wait.

Cron starts a load every tick whether or not the previous one finished. dlt opens and closes its
DuckDB connections step by step, so DuckDB's own file lock does not keep a second load out between
steps; two loads interleaving their extract/load steps could each commit state the other did not
see. `load` therefore holds an exclusive lock on `<database>.lock` for the whole run, and `status`
a shared one while it reads.

The lock is `flock(2)`: the kernel drops it when the holding process ends in any way, SIGKILL and
power loss included, so a crashed run never leaves a stale lock behind. The file itself stays (it is
empty or names the last holder); deleting it while nobody holds it is harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from . import settings


class DatabaseUnavailable(Exception):
    """The database cannot be taken; `exit_code` is what a command exits with (one mapping for all)."""

    exit_code = 1


class DatabaseBusy(DatabaseUnavailable):
    """Another process holds the database: a temporary condition, the next attempt may succeed."""

    exit_code = 75  # sysexits EX_TEMPFAIL: cron and systemd treat it as "try again later"


class DatabaseUnusable(DatabaseUnavailable):
    """The database path cannot be used at all (missing directory, not writable, not a file)."""

    exit_code = 2  # a configuration problem: retrying will not help


def lock_path(db_path: str) -> Path:
    # Resolved, so that a symlink or a relative path to the same file takes the same lock.
    resolved = Path(db_path).resolve()
    return resolved.with_name(resolved.name + settings.LOCK_SUFFIX)


def _holder(path: Path) -> str:
    """Who holds the lock, as the holder wrote it; best effort, for the message only."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def _open_lock_file(db_path: str, shared: bool) -> int | None:
    path = lock_path(db_path)
    if Path(db_path).is_dir():
        raise DatabaseUnusable(f"database path {db_path} is a directory, not a file")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # this user's alone, like the database
    except OSError as e:
        if shared:
            # A reader in a read-only location: an existing lock file still works read-only, and
            # without one nobody can be loading there either.
            with contextlib.suppress(OSError):
                return os.open(path, os.O_RDONLY)
            return None
        raise DatabaseUnusable(
            f"cannot create the lock file {path}: {e.strerror or e} (the database's directory must exist and be "
            "writable)"
        ) from None


@contextlib.contextmanager
def database_lock(db_path: str, *, wait: float, shared: bool = False) -> Iterator[None]:
    """Hold `<db_path>.lock` exclusively (a load) or shared (a reader) for the duration of the block.

    Waits up to `wait` seconds for the current holder, then raises DatabaseBusy naming it. Readers
    share the lock with each other; a load waits for readers, and readers for a load."""
    wait = max(0.0, wait)
    fd = _open_lock_file(db_path, shared)
    if fd is None:
        yield
        return
    try:
        deadline = time.monotonic() + wait
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DatabaseBusy(
                        f"another load is using {db_path} ({_holder(lock_path(db_path))}); "
                        f"gave up after waiting {wait:.3g}s"
                    ) from None
                time.sleep(min(settings.LOCK_POLL_S, remaining))
        if not shared:
            started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            holder = f"pid {os.getpid()}, load started {started}\n".encode()
            # Written, then cut to length: a waiting process reading the file in between sees the new holder
            # or the old one, never an empty file (truncating first made it say "another process").
            os.pwrite(fd, holder, 0)
            os.ftruncate(fd, len(holder))
        yield
    finally:
        if not shared:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock


def wait_for_duckdb(db_path: str, *, wait: float, read_only: bool) -> None:
    """Wait until DuckDB's own file lock lets us in, e.g. while someone has the file open in the
    DuckDB shell; then DatabaseBusy with DuckDB's message, which names the holding process.

    Errors other than a lock conflict (a corrupted file, say) are left to the caller's own open,
    which reports them in context."""
    import duckdb

    from .db import connect

    if not Path(db_path).is_file():
        return
    wait = max(0.0, wait)
    deadline = time.monotonic() + wait
    while True:
        try:
            connect(db_path, read_only=read_only).close()
            return
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                message = str(e).split(". See also")[0]
                raise DatabaseBusy(
                    f"database {db_path} is open in another program; gave up after waiting {wait:.3g}s ({message})"
                ) from None
            time.sleep(min(settings.LOCK_POLL_S, remaining))
        except duckdb.Error:
            return


@contextlib.contextmanager
def holding_database(db_path: str, *, wait: float, shared: bool = False) -> Iterator[None]:
    """Our lock, then DuckDB's own file lock, within one `wait` budget: what every command that opens
    the database does first (load and report exclusively, status shared)."""
    deadline = time.monotonic() + wait
    with database_lock(db_path, wait=wait, shared=shared):
        wait_for_duckdb(db_path, wait=deadline - time.monotonic(), read_only=shared)
        yield
