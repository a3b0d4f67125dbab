"""The README's table reference is written from the one column list; keep them in step."""

from __future__ import annotations

from pathlib import Path

from pipelines.openai_batches.columns import BATCH_COLUMNS, ERROR_COLUMNS, PROJECT_COLUMN

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_documents_every_column() -> None:
    for column in (*BATCH_COLUMNS, PROJECT_COLUMN, *ERROR_COLUMNS):
        assert f"| `{column.name}` |" in README, f"README lacks column {column.name}"


def test_readme_leads_with_the_two_commands() -> None:
    head = README[:600]
    assert "make run" in head and "make test" in head
