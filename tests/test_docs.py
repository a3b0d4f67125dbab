"""The README's table reference is written from the one column list; keep them in step."""

from __future__ import annotations

from pathlib import Path

from pipelines.openai_batches.columns import ADDED_COLUMNS, BATCH_COLUMNS, ERROR_COLUMNS, GONE_COLUMNS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_documents_every_column() -> None:
    for column in (*BATCH_COLUMNS, *ADDED_COLUMNS, *ERROR_COLUMNS, *GONE_COLUMNS):
        assert f"| `{column.name}` |" in README, f"README lacks column {column.name}"
        assert f"| {column.description} |" in README, f"README describes {column.name} otherwise than the code"


def test_readme_leads_with_the_two_commands() -> None:
    head = README[:600]
    assert "make run" in head and "make test" in head
