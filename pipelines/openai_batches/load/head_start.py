"""A backfill's first requests, made while the program starts: the first project's list, read while dlt is
imported and the pipeline set up, when the database does not exist yet.

Importing dlt and preparing the pipeline take about a second before any request could leave: a backfill
waited that second plus every page. Here the CLI reads the configuration from the environment before
importing dlt (`config.environment_only`, only when no `.dlt` file exists, so dlt would read the same),
opens the first project's client as the source would, and pages on a thread of its own while the rest
starts. What it fetched is used only if the real configuration, read through dlt, gives that same project,
client settings and database (`HeadStart.matches`); otherwise it is dropped, and the run makes its
requests as if there had been no head start.

Nothing changes in what a run requests: into a database that does not exist yet, the plan wants every page
of the list. Runs into an existing database start the ordinary way: they request nothing before the
database was found usable and theirs (another program's file, one held or corrupt, is refused without a
request), then as little as their plan needs. The pages read ahead are the one paging loop's pages
(`ReadAhead` hands them to `client/paging.py`'s `iter_pages` in order), made by the run's client
with its retry policy and budget; a failed request is handed over as its error, where the loop would have
met it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..client.anthropic import AnthropicClient
from ..client.batches import BatchesClient
from ..client.errors import ApiError
from ..client.paging import EveryPage, Page, Paginator
from ..client.retry import RetryPolicy
from ..config import NotFromEnvironment, ProjectConfig, RunConfig, environment_only

if TYPE_CHECKING:
    from ..storage.store import Store

# Pages read ahead and not yet taken, at most: a backfill's pages arrive while the run starts (about a second:
# some 20 pages of a fast server, fewer at real latency) and are taken as fast as they came from then on.
# 32 of Anthropic's 1000-batch pages are ~50 MB of batch objects; OpenAI's pages hold 100.
READ_AHEAD_PAGES = 32

# How long the CLI waits for the first page before it goes on starting (`HeadStart.first_answered`): a local or
# nearby API answers within it; a slower one finds the program started a little later, while its pages are read.
FIRST_ANSWER_WAIT_S = 0.2

Client = BatchesClient | AnthropicClient
# Whose clients `open_client` opens as their sources do (the others start the ordinary way).
_PROVIDERS = ("openai", "anthropic")


@dataclass
class _Fetched:
    page: Page | None = None
    error: BaseException | None = None


class HeadStart:
    """The first project's list as a thread reads it ahead; see the module docstring."""

    def __init__(self, config: RunConfig, store: Store, lock: contextlib.AbstractContextManager[None]) -> None:
        self._lock: contextlib.AbstractContextManager[None] | None = lock  # held (entered) by the caller
        self.config = config
        self.store = store
        self.project = config.projects[0]
        self.retry = RetryPolicy(max_attempts=config.max_attempts)
        self._client = open_client(self.project, config, self.retry)
        self._fetched: dict[str | None, _Fetched] = {}
        # The cursor of the page being read (or next, once there is room); False: none. The head page first.
        self._in_flight: str | None | bool = None
        self._stop = False
        self._done = False
        self._taken = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="openai-batches-head-start", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # Paged by the one paging rule (client/paging.py's Paginator, with the plan of a backfill, which wants
        # every page): the thread stops where the run's loop stops, never making a request the run would not.
        pager = Paginator(EveryPage(), self._client.list_what)
        try:
            while True:
                with self._changed:
                    while not self._stop and len(self._fetched) >= READ_AHEAD_PAGES:
                        self._changed.wait()
                    if self._stop:
                        return
                cursor = pager.cursor
                fetched = _Fetched()
                try:
                    fetched.page = self._client.list_page(after=cursor)
                except Exception as e:  # handed to whoever asks for this page: the loop meets it there
                    fetched.error = e
                following: str | None = None
                if fetched.page is not None:
                    try:
                        pager.update_state(fetched.page)
                        following = pager.cursor if pager.has_next_page else None
                    except ApiError:  # the loop refuses this page itself, in its own words
                        following = None
                with self._changed:
                    self._fetched[cursor] = fetched
                    # The next page is marked as coming in the same step: whoever asks for it waits for it.
                    self._in_flight = following if following is not None else False
                    self._changed.notify_all()
                if following is None:
                    return
        finally:
            with self._changed:
                self._done = True
                self._in_flight = False
                self._changed.notify_all()

    def first_answered(self, timeout: float) -> None:
        """Wait until the first request is answered (or failed, or `timeout` seconds passed). The CLI waits here
        before it imports dlt: an import holds the interpreter's lock most of the time, and the thread's first
        request (building it, httpx's first connection) left ~0.1 s later while dlt was being imported
        (measured; a backfill's whole head start is that first page's lead). Pages read ahead wait for the
        run anyway: what the program does meanwhile is not on the way of the network's."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._fetched) or self._done, timeout=timeout)

    def matches(self, config: RunConfig, store: Store) -> bool:
        """Whether the real configuration and database are those the head start assumed: the same first
        project, client settings and keys, and database."""
        return bool(
            config.projects
            and config.projects[0] == self.project
            and (config.timeout, config.max_attempts, config.every_key())
            == (self.config.timeout, self.config.max_attempts, self.config.every_key())
            and store.identity() == self.store.identity()
        )

    def client(self) -> Client:
        """The first project's client, whose list the thread reads ahead; its user closes it."""
        self._taken = True
        return self._client

    def pages(self) -> ReadAhead:
        """The client's list pages, those read ahead first (what the source pages through instead of the client)."""
        return ReadAhead(self)

    def take(self, after: str | None) -> _Fetched | None:
        """What was read for the page after `after` (waiting while it is being requested), or None: the
        thread is stopped and the caller requests it (it was not read ahead)."""
        with self._changed:
            while after not in self._fetched and self._in_flight == after and not self._done:
                self._changed.wait(0.5)  # wakes up now and then: a signal is handled at once
            # A page read while the program started is as good as one read now: a backfill's pages are read over
            # its whole run anyway, and the lock has been held since before the first request (nothing waited).
            fetched = self._fetched.pop(after, None)
            if fetched is None:
                self._stop = True
                self._fetched.clear()
                fetched = None
            self._changed.notify_all()
            stopped = self._stop
        if stopped:
            self._thread.join()  # the client is the caller's alone from here on
        return fetched

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The block of the load that holds the database's lock: the head start took it before its first
        request, as a load does (another run waits for it, or exits 75), and it is released when the block ends."""
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    def discard(self) -> None:
        """Stop reading ahead and release the lock; close the client unless a source took it (`client()`)."""
        with self._changed:
            self._stop = True
            self._fetched.clear()
            self._changed.notify_all()
        if not self._taken:
            self._thread.join(timeout=1.0)
            self._client.close()
        self._release()


class ReadAhead:
    """The list as the source pages it (client/paging.py's `Lister`): the pages read ahead, in order, then the
    client's own requests."""

    def __init__(self, head: HeadStart) -> None:
        self._head = head
        self._client = head._client

    def list_page(self, after: str | None = None) -> Page:
        fetched = self._head.take(after)
        if fetched is None:
            return self._client.list_page(after)
        if fetched.error is not None:
            raise fetched.error
        assert fetched.page is not None
        return fetched.page

    def list_what(self, after: str | None) -> str:
        return self._client.list_what(after)


def open_client(project: ProjectConfig, config: RunConfig, retry: RetryPolicy) -> Client:
    """A project's client, as its source opens it (sources/batches/source.py, sources/anthropic/source.py)."""
    if project.provider == "anthropic":
        return AnthropicClient(
            api_key=project.api_key,
            base_url=project.base_url,
            timeout=config.timeout,
            retry=retry,
            other_secrets=config.every_key(),
        )
    return BatchesClient(
        api_key=project.api_key,
        base_url=project.base_url,
        organization=project.organization,
        project=project.project_id,
        timeout=config.timeout,
        retry=retry,
        other_secrets=config.every_key(),
    )


def begin(cli_db: str | None, cli_destination: str | None) -> HeadStart | None:
    """Start reading the first project's list for a backfill: when the environment alone configures the run (no
    `.dlt` file where dlt looks) and the database is a DuckDB file that does not exist yet, in a directory it
    can be created in. None otherwise, or when anything is off: the run then reads the configuration, and meets
    any error in it, the ordinary way, and a database that cannot be used is refused before any request."""
    from ..config import configured_store, run_config
    from ..storage.lock import DatabaseUnavailable
    from ..storage.store import DuckDBFile

    if _dlt_files_exist():
        return None
    try:
        with environment_only():
            store = configured_store(cli_db, cli_destination)
            config = run_config()
        if not config.projects or not isinstance(store, DuckDBFile) or not _new_file(store.path) or store.problem():
            return None
        if config.projects[0].provider not in _PROVIDERS:
            return None
        # The load's lock first, as a load takes it before its first request: a run that holds it reads ahead.
        lock = store.locked(wait=0)
        try:
            lock.__enter__()
        except DatabaseUnavailable:
            return None
        try:
            head = HeadStart(config, store, lock)
            head.first_answered(timeout=FIRST_ANSWER_WAIT_S)
            return head
        except BaseException:
            lock.__exit__(None, None, None)
            raise
    except NotFromEnvironment:
        return None
    except Exception:  # noqa: BLE001 -- a configuration error is met again, and reported, the ordinary way
        return None


def _new_file(path: str) -> bool:
    """Nothing at `path` (nor a WAL of it), and a directory that it can be created in."""
    parent = os.path.dirname(os.path.abspath(path))
    return (
        not any(os.path.lexists(p) for p in (path, f"{path}.wal"))
        and os.path.isdir(parent)
        and os.access(parent, os.W_OK | os.X_OK)
    )


def _dlt_files_exist() -> bool:
    """Whether a `.dlt` toml file exists anywhere dlt reads one (its project and global directories; every
    place its global directory can be, to be sure), so that the environment alone is not the configuration."""
    folder = os.environ.get("DLT_CONFIG_FOLDER", ".dlt")
    project = os.path.join(os.environ.get("DLT_PROJECT_DIR", os.getcwd()), folder)
    # dlt's global directory (dlt/common/runtime/run_context.py `global_dir`): /var/dlt for root, else
    # ~/$DLT_CONFIG_FOLDER (not ~/.dlt: the folder's name applies there too), or the temporary directory's
    # `dlt` ($TMPDIR, not always /tmp) when the home directory cannot be written. Both were missed: a
    # secrets.toml there naming the project's server went unseen, and the key went to OPENAI_BASE_URL.
    places = [
        project,
        os.path.join(os.path.expanduser("~"), folder),
        os.path.expanduser("~/.dlt"),
        "/var/dlt",
        "/tmp/dlt",
        os.path.join(tempfile.gettempdir(), "dlt"),
    ]
    if os.environ.get("XDG_DATA_HOME"):
        places.append(os.path.join(os.environ["XDG_DATA_HOME"], "dlt"))
    return any(
        os.path.exists(os.path.join(place, name)) for place in places for name in ("config.toml", "secrets.toml")
    )


__all__ = ["READ_AHEAD_PAGES", "HeadStart", "ReadAhead", "begin"]
