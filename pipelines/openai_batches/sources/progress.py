"""What the source tells about its progress; the CLI shows a bar or log lines, tests and other
pipelines ignore it."""

from __future__ import annotations


class ProgressSink:
    """Told about every page and batch read."""

    def page(self, project: str, items: int) -> None:  # pragma: no cover - interface
        pass

    def fetched(self, project: str, batch_id: str) -> None:  # pragma: no cover - interface
        pass
