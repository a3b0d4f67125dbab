"""The README's table reference is written from the one column list; keep them in step."""

from __future__ import annotations

from pathlib import Path

from pipelines.openai_batches.columns import ADDED_COLUMNS, BATCH_COLUMNS, ERROR_COLUMNS, GONE_COLUMNS
from pipelines.openai_batches.ledger_columns import FILE_COLUMNS, REQUEST_COLUMNS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_documents_every_column() -> None:
    for column in (*BATCH_COLUMNS, *ADDED_COLUMNS, *ERROR_COLUMNS, *GONE_COLUMNS, *REQUEST_COLUMNS, *FILE_COLUMNS):
        assert f"| `{column.name}` |" in README, f"README lacks column {column.name}"
        assert f"| {column.description} |" in README, f"README describes {column.name} otherwise than the code"


def test_readme_leads_with_the_two_commands() -> None:
    head = README[:600]
    assert "make run" in head and "make test" in head


def test_readme_documents_the_ledger_tables_with_their_columns_in_order() -> None:
    """Each ledger table's section lists exactly its columns, in the declared order."""
    for table, columns in (("batch_requests", REQUEST_COLUMNS), ("batch_files", FILE_COLUMNS)):
        section = README.split(f"### `openai_batches.{table}`", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        names = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
        assert names == [c.name for c in columns], table
