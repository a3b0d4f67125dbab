"""Progress while paging: a rich bar on a terminal, a log line every few pages otherwise (cron)."""

from __future__ import annotations

import sys
import time
from typing import Any

from .. import ProgressSink

# Cron logs want a heartbeat, not a line per page: one line every this many pages.
LOG_EVERY_PAGES = 20


class LogProgress(ProgressSink):
    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.pages: dict[str, int] = {}
        self.items: dict[str, int] = {}

    def page(self, project: str, items: int) -> None:
        self.pages[project] = pages = self.pages.get(project, 0) + 1
        self.items[project] = listed = self.items.get(project, 0) + items
        if pages % LOG_EVERY_PAGES == 0:
            print(f"[{project}] {pages} pages, {listed} batches listed", file=self.stream, flush=True)

    def fetched(self, project: str, batch_id: str) -> None:
        pass


class BarProgress(ProgressSink):
    """An indeterminate rich bar: the list API does not say how many batches there are."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[pages]} pages, {task.completed:.0f} batches"),
            TimeElapsedColumn(),
            transient=True,
        )
        self._tasks: dict[str, Any] = {}
        self._started = time.monotonic()

    def _task(self, project: str) -> Any:
        if project not in self._tasks:
            if not self._tasks:
                self._progress.start()
            self._tasks[project] = self._progress.add_task(project or "batches", total=None, pages=0)
        return self._tasks[project]

    def page(self, project: str, items: int) -> None:
        task = self._task(project)
        pages = self._progress.tasks[task].fields["pages"] + 1
        self._progress.update(task, advance=items, pages=pages)

    def fetched(self, project: str, batch_id: str) -> None:
        self._progress.update(self._task(project), advance=1)

    def close(self) -> None:
        if self._tasks:
            self._progress.stop()


def make_progress() -> LogProgress | BarProgress:
    return BarProgress() if sys.stderr.isatty() else LogProgress()
