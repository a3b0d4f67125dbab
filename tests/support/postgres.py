"""A throwaway PostgreSQL server for tests: Debian's binaries, a fresh cluster in a temporary folder, reachable
only through a Unix socket in that folder, removed at the end.

    with throwaway_postgres() as pg:          # outside pytest (spikes, benchmarks)
        dsn = pg.create_database("lake")      # postgresql://postgres:postgres@%2Ftmp%2Fopenai-batches-pg-...:5432/lake

In tests: the session-scoped fixture `postgres_server` (one cluster for the whole run, ~0.6 s to start) and
the function-scoped `postgres_dsn` (a new database per test, so tests never see each other's tables). Both
skip, with the reason, on a machine without PostgreSQL's server binaries.

Why it is built this way:
- `initdb` and `postgres` refuse to run as root, and CI runs as root: the cluster's processes run as an
  unprivileged user (`nobody`), who owns the folder. The client side (dlt, DuckDB, psql) may stay root.
- A Unix socket in a private folder (`listen_addresses = ''`): no TCP port, so nothing else on the machine
  or the network can connect, and no two test runs ever fight over a port.
- `trust` authentication: only whoever can enter the folder can reach the socket. The DSN still carries a
  password, because some clients insist on one; PostgreSQL never asks for it.
- Durability is switched off (fsync, synchronous commit, full-page writes): the data is thrown away.
- The server is the direct child of this process, with a parent-death signal: if the test process is
  killed outright, the server shuts itself down instead of lingering. Ctrl-C and failures stop it in
  `finally`, and the folder is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

SUPERUSER = "postgres"
# PostgreSQL never asks for it (trust authentication); it is there for clients that require a password.
PASSWORD = "postgres"
# The unprivileged account the cluster runs as when the tests run as root.
UNPRIVILEGED_USER = "nobody"
# Part of the socket's file name only (`.s.PGSQL.<port>`); no TCP port is opened.
PORT = 5432
START_TIMEOUT_S = 30.0
# Cluster folders are named so that a later run can remove those a killed run left behind.
FOLDER_PREFIX = "openai-batches-pg-"
STALE_AFTER_S = 600.0
# Debian keeps each major version's server binaries here, off PATH.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
SERVER_SETTINGS = {
    "listen_addresses": "",  # no TCP at all: the Unix socket only
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "50",
    # DuckLake readers and dlt loaders hold connections open; a lock wait should fail a test, not hang it.
    "lock_timeout": "60s",
}


NOT_FOUND = (
    f"PostgreSQL's server binaries (initdb, postgres) were not found in $PG_BINDIR, `pg_config --bindir` or "
    f"{DEBIAN_BINDIRS}: install them with `apt-get install postgresql` (.ci/run does, as root)"
)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are missing, or the cluster could not be started."""


def find_bindir() -> Path | None:
    """The folder of `initdb`, `postgres` and `createdb`: `$PG_BINDIR`, else `pg_config --bindir`, else the
    newest of Debian's /usr/lib/postgresql/*/bin (Debian keeps them off PATH)."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
    debian = glob.glob(DEBIAN_BINDIRS)
    candidates += sorted((Path(p) for p in debian), key=lambda p: _version_key(p.parent.name), reverse=True)
    return next((c for c in candidates if all((c / b).is_file() for b in ("initdb", "postgres", "createdb"))), None)


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclass
class PostgresServer:
    """A running throwaway cluster. `dsn()` connects as the superuser over the socket."""

    bindir: Path
    root: Path  # the folder that holds the cluster, its socket and its log; removed at the end

    @property
    def socket_dir(self) -> str:
        return str(self.root)

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL (dlt's postgres destination, DuckDB's postgres extension, DuckLake catalogs, psycopg2).

        The host is the socket folder, percent-encoded (libpq reads a host starting with `/` as a socket
        folder). Not `postgresql://u@/db?host=/folder`: dlt's postgres credentials require a host."""
        return f"postgresql://{SUPERUSER}:{PASSWORD}@{quote(self.socket_dir, safe='')}:{PORT}/{database}"

    def libpq_params(self, database: str = "postgres") -> str:
        """The same connection as key=value pairs (for `ATTACH 'dbname=... host=...' (TYPE postgres)`)."""
        return f"dbname={database} host={self.socket_dir} user={SUPERUSER} password={PASSWORD}"

    def create_database(self, name: str) -> str:
        """Creates an empty database and returns its DSN."""
        self._client("createdb", name)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drops a database, disconnecting whoever is still connected to it (a test that failed mid-way)."""
        self._client("dropdb", "--force", "--if-exists", name)

    def _client(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), "-h", self.socket_dir, "-p", str(PORT), "-U", SUPERUSER, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{program} {' '.join(args)} failed: {done.stderr.strip()}")


@contextlib.contextmanager
def throwaway_postgres(bindir: Path | None = None) -> Iterator[PostgresServer]:
    """Starts a fresh cluster, yields it, and stops and removes it whatever happens.

    Raises PostgresUnavailable when the binaries are missing or the server does not start (with its log)."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise PostgresUnavailable(NOT_FOUND)
    owner = _unprivileged_owner()
    _remove_stale_folders()
    # Not pytest's tmp_path: it lives under a 0700 folder of the current user that `nobody` cannot enter.
    root = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    server: subprocess.Popen[bytes] | None = None
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        data = root / "data"
        log_path = root / "server.log"
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-sync"]
        initdb += ["--no-instructions", "--encoding=UTF8", "--locale=C.UTF-8"]
        done = subprocess.run(initdb, capture_output=True, text=True, timeout=120, **_as_user(owner))
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        settings = [arg for name, value in SERVER_SETTINGS.items() for arg in ("-c", f"{name}={value}")]
        command = [str(bindir / "postgres"), "-D", str(data), "-k", str(root), "-p", str(PORT), *settings]
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
                **_as_user(owner),
            )
        _wait_until_ready(server, data, log_path)
        yield PostgresServer(bindir=bindir, root=root)
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(root, ignore_errors=True)


def _remove_stale_folders() -> None:
    """Removes cluster folders of runs that were killed (no `finally` ran; the server itself went with its
    parent), once they are old enough that no other run can be creating them right now."""
    for folder in Path(tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
        with contextlib.suppress(OSError, ValueError):
            if time.time() - folder.stat().st_mtime < STALE_AFTER_S:
                continue
            pid_file = folder / "data" / "postmaster.pid"
            if pid_file.exists() and _alive(int(pid_file.read_text().split()[0])):
                continue
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unprivileged_owner() -> pwd.struct_passwd | None:
    """The account to run the cluster as: None (ourselves) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as e:
        raise PostgresUnavailable(
            f"running as root and there is no {UNPRIVILEGED_USER!r} user to run PostgreSQL as"
        ) from e


def _as_user(owner: pwd.struct_passwd | None) -> dict[str, object]:
    if owner is None:
        return {}
    # HOME of `nobody` does not exist; PostgreSQL needs none, but keep libraries from looking in root's.
    env = {**os.environ, "HOME": str(tempfile.gettempdir()), "USER": owner.pw_name, "LOGNAME": owner.pw_name}
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": [], "env": env}


# Looked up here, not in the forked child: between fork and exec the child should only make the one call.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the server's process after the user switch (a parent-death signal set before it would be
    cleared by it): SIGQUIT, PostgreSQL's immediate shutdown, when the thread that started the server dies
    without stopping it (SIGKILL, a crashed interpreter). So start the server from a long-lived thread."""
    assert _PRCTL is not None
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGQUIT), 0, 0, 0)


def _wait_until_ready(server: subprocess.Popen[bytes], data: Path, log_path: Path) -> None:
    """Waits for `postmaster.pid` to say "ready" (its 8th line), the signal `pg_ctl -w` waits for."""
    deadline = time.monotonic() + START_TIMEOUT_S
    pid_file = data / "postmaster.pid"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise PostgresUnavailable(f"PostgreSQL exited with {server.returncode}: {_tail(log_path)}")
        with contextlib.suppress(OSError):
            lines = pid_file.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        time.sleep(0.01)
    raise PostgresUnavailable(f"PostgreSQL did not start within {START_TIMEOUT_S:.0f} s: {_tail(log_path)}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Immediate shutdown (the data is thrown away): SIGQUIT, then SIGKILL if it does not go."""
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGQUIT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _tail(log_path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    return "(no server log)"


# --- pytest fixtures (import them into a test module or conftest.py) ---


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway cluster for the whole test session; skips where PostgreSQL is not installed."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(NOT_FOUND)
    with throwaway_postgres(bindir) as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database in the session's cluster for one test; dropped afterwards."""
    name = "t_" + format(abs(hash((request.node.nodeid, time.monotonic_ns()))), "x")[:16]
    dsn = postgres_server.create_database(name)
    try:
        yield dsn
    finally:
        postgres_server.drop_database(name)
