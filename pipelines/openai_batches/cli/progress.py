"""Progress while paging and while the request ledger downloads files: a rich bar on a terminal, a log
line every few pages or files otherwise (cron)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from .. import ProgressSink

# Cron logs want a heartbeat, not a line per page: one line every this many pages.
LOG_EVERY_PAGES = 20
# Ledger downloads: one line every this many files (a backfill reads thousands, each in about a second).
LOG_EVERY_FILES = 20


class _Files:
    """Files and bytes planned and done, per project (downloads finish on several threads)."""

    def __init__(self) -> None:
        self.planned: dict[str, list[int]] = {}  # project -> [files, bytes]
        self.done: dict[str, list[int]] = {}

    def plan(self, project: str, files: int, size: int) -> None:
        planned = self.planned.setdefault(project, [0, 0])
        planned[0] += files
        planned[1] += size

    def read(self, project: str, size: int) -> tuple[list[int], list[int]]:
        done = self.done.setdefault(project, [0, 0])
        done[0] += 1
        done[1] += size
        return done, self.planned.setdefault(project, [0, 0])


def files_line(project: str, done: list[int], planned: list[int]) -> str:
    """`done` of `planned` files and MB; a size not known before the download (Anthropic's results have none)
    is not counted as 0 MB planned: then only what was read is shown."""
    read_mb = f"{done[1] / 1e6:,.1f}"
    of_mb = f"{read_mb} of {planned[1] / 1e6:,.1f} MB" if planned[1] >= done[1] else f"{read_mb} MB read"
    return f"[{project}] ledger: {done[0]} of {planned[0]} files, {of_mb}"


class LogProgress(ProgressSink):
    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.pages: dict[str, int] = {}
        self.items: dict[str, int] = {}
        self.files = _Files()
        self._lock = threading.Lock()

    def page(self, project: str, items: int) -> None:
        self.pages[project] = pages = self.pages.get(project, 0) + 1
        self.items[project] = listed = self.items.get(project, 0) + items
        if pages % LOG_EVERY_PAGES == 0:
            print(f"[{project}] {pages} pages, {listed} batches listed", file=self.stream, flush=True)

    def fetched(self, project: str, batch_id: str) -> None:
        pass

    def files_planned(self, project: str, files: int, size: int) -> None:
        with self._lock:
            self.files.plan(project, files, size)

    def file_read(self, project: str, size: int) -> None:
        with self._lock:
            done, planned = self.files.read(project, size)
            if done[0] % LOG_EVERY_FILES == 0 or done[0] == planned[0]:
                print(files_line(project, done, planned), file=self.stream, flush=True)


class BarProgress(ProgressSink):
    """An indeterminate rich bar: the list API does not say how many batches there are."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            transient=True,
        )
        self._tasks: dict[str, Any] = {}
        self._file_tasks: dict[str, Any] = {}
        self._files = _Files()
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def _task(self, project: str) -> Any:
        if project not in self._tasks:
            if not self._tasks:
                self._progress.start()
            self._tasks[project] = self._progress.add_task(
                project or "batches", total=None, pages=0, counts="0 pages, 0 batches"
            )
        return self._tasks[project]

    def page(self, project: str, items: int) -> None:
        task = self._task(project)
        pages = self._progress.tasks[task].fields["pages"] + 1
        self._progress.update(task, advance=items, pages=pages)
        self._count_batches(task)

    def fetched(self, project: str, batch_id: str) -> None:
        task = self._task(project)
        self._progress.update(task, advance=1)
        self._count_batches(task)

    def _count_batches(self, task: Any) -> None:
        shown = self._progress.tasks[task]
        self._progress.update(task, counts=f"{shown.fields['pages']} pages, {shown.completed:.0f} batches")

    def files_planned(self, project: str, files: int, size: int) -> None:
        with self._lock:
            self._files.plan(project, files, size)
            planned = self._files.planned[project]
            done = self._files.done.get(project, [0, 0])
            if project not in self._file_tasks:
                if not self._tasks and not self._file_tasks:
                    self._progress.start()
                self._file_tasks[project] = self._progress.add_task(f"{project or 'batches'} files", counts="")
            self._update_files(project, done, planned)

    def file_read(self, project: str, size: int) -> None:
        with self._lock:
            done, planned = self._files.read(project, size)
            if project in self._file_tasks:
                self._update_files(project, done, planned)

    def _update_files(self, project: str, done: list[int], planned: list[int]) -> None:
        counts = files_line(project, done, planned).split("ledger: ", 1)[1]
        self._progress.update(self._file_tasks[project], total=max(planned[1], 1), completed=done[1], counts=counts)

    def close(self) -> None:
        if self._tasks or self._file_tasks:
            self._progress.stop()


def make_progress() -> LogProgress | BarProgress:
    return BarProgress() if sys.stderr.isatty() else LogProgress()
