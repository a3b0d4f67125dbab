"""What the source tells about its progress; the CLI shows a bar or log lines, tests and other
pipelines ignore it."""

from __future__ import annotations


class ProgressSink:
    """Told about every page and batch read, and the request ledger's file downloads."""

    def page(self, project: str, items: int) -> None:  # pragma: no cover - interface
        pass

    def fetched(self, project: str, batch_id: str) -> None:  # pragma: no cover - interface
        pass

    def files_planned(self, project: str, files: int, size: int) -> None:  # pragma: no cover - interface
        """The ledger plans `files` more downloads of `size` bytes in all (decoded)."""

    def file_read(self, project: str, size: int) -> None:  # pragma: no cover - interface
        """One planned download is done: `size` bytes read."""
