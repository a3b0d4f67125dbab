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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from .. import settings

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be taken; `exit_code` is what a command exits with (one mapping for all)."""

    exit_code = settings.EXIT_FAILED


class DatabaseBusy(DatabaseUnavailable):
    """Another process holds the database: a temporary condition, the next attempt may succeed."""

    exit_code = settings.EXIT_BUSY


class DatabaseUnusable(DatabaseUnavailable):
    """The database path cannot be used at all (missing directory, not writable, not a file)."""

    exit_code = settings.EXIT_CONFIG


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
    if Path(db_path).exists() and not Path(db_path).is_file():
        # A named pipe blocks whoever opens it (the load hung for good, holding this lock); a device
        # or a socket fails only after the run started.
        raise DatabaseUnusable(f"database path {db_path} is not a regular file (a named pipe, device or socket)")
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
    acquired = False
    try:
        deadline = time.monotonic() + wait
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                acquired = True
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
        if acquired and not shared:  # a run that gave up must not erase the holder's name for the next one
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock


def wait_for_duckdb(db_path: str, *, wait: float, read_only: bool) -> None:
    """Wait until DuckDB's own file lock lets us in, e.g. while someone has the file open in the
    DuckDB shell; then DatabaseBusy with DuckDB's message, which names the holding process.

    Errors other than a lock conflict (a corrupted file, say) are left to the caller's own open,
    which reports them in context."""
    if not Path(db_path).is_file():  # nothing to wait for (and DuckDB not imported: a backfill's first request waits)
        return
    import duckdb

    from .duckdb_file import connect

    try:
        open_when_free(db_path, lambda: connect(db_path, read_only=read_only), wait=wait).close()
    except DatabaseBusy:
        raise
    except duckdb.Error:
        return


def open_when_free(db_path: str, opener: Callable[[], T], *, wait: float) -> T:
    """`opener()`, retried while DuckDB's file lock is held by another process (a DuckDB shell reading
    the file, say), up to `wait` seconds; then DatabaseBusy naming the holder. Other errors are raised."""
    import duckdb

    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            return opener()
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                message = str(e).split(". See also")[0]
                raise DatabaseBusy(
                    f"database {db_path} is open in another program; gave up after waiting {max(0.0, wait):.3g}s "
                    f"({message})"
                ) from None
            time.sleep(min(settings.LOCK_POLL_S, remaining))


@contextlib.contextmanager
def locked_database(db_path: str, *, wait: float, shared: bool = False) -> Iterator[None]:
    """Our lock, then DuckDB's own file lock, within one `wait` budget: what every command that opens
    the database does first (load and report exclusively, status shared)."""
    deadline = time.monotonic() + wait
    with database_lock(db_path, wait=wait, shared=shared):
        wait_for_duckdb(db_path, wait=deadline - time.monotonic(), read_only=shared)
        yield


@contextlib.contextmanager
def postgres_lock(dsn: str, *, key: int, wait: float, shown: str) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock for the duration of the block: the load lock of a DuckLake whose
    catalog is in PostgreSQL, so loads on different machines exclude each other where the data lives.

    A connection of its own, held for the whole run: PostgreSQL releases a session lock when the
    session ends, a crashed or killed loader included. (Not through DuckDB's postgres extension, which
    pools its connections: a lock taken on one of them was seen taken by another loader.) The
    connection's application_name names the holder (`postgres_holder_name`) and the session's start is
    the load's, for the message of whoever has to wait."""
    import socket

    import psycopg2

    try:
        con = psycopg2.connect(
            dsn, connect_timeout=10, application_name=postgres_holder_name(os.getpid(), socket.gethostname())
        )
    except psycopg2.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DatabaseUnavailable(f"cannot reach the catalog of {shown}: {first}") from None
    try:
        con.autocommit = True
        deadline = time.monotonic() + max(0.0, wait)
        with con.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                row = cur.fetchone()
                if row and row[0]:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    holder = _postgres_holder(cur, key)
                    raise DatabaseBusy(f"another load is using {shown} ({holder}); gave up after waiting {wait:.3g}s")
                time.sleep(min(settings.LOCK_POLL_S, remaining))
        yield
    finally:
        con.close()  # ends the session: the lock goes with it


# PostgreSQL keeps NAMEDATALEN - 1 bytes of an application_name and shows any byte outside printable
# ASCII as "?": a holder's name is built to fit, so a long host name cannot push anything out.
_PG_NAME_BYTES = 63


def postgres_holder_name(pid: int, host: str) -> str:
    """The application_name of a load's lock session: `openai-batches load, pid N on HOST`, the host cut
    (with "...") to fit PostgreSQL's limit. The start time is not in it: it is the session's own
    `backend_start`, which no name length can cut (see `_postgres_holder`)."""
    prefix = f"openai-batches load, pid {pid} on "
    shown = "".join(ch if " " <= ch <= "~" else "?" for ch in host) or "?"
    room = _PG_NAME_BYTES - len(prefix)
    if len(shown) > room:
        shown = shown[: room - 3] + "..."
    return prefix + shown


def _postgres_holder(cur: object, key: int) -> str:
    """Who holds advisory lock `key`: its session's application_name and when that session (the load)
    started, best effort."""
    try:
        cur.execute(  # type: ignore[attr-defined]
            """SELECT a.application_name,
                      to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                 AND l.classid::text::bigint = %s AND l.objid::text::bigint = %s""",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        )
        row = cur.fetchone()  # type: ignore[attr-defined]
    except Exception:
        return "another process"
    if not row or not row[0]:
        return "another process"
    return f"{row[0]}, started {row[1]}" if row[1] else str(row[0])
