"""The README's table reference is written from the one column list; keep them in step."""

from __future__ import annotations

from pathlib import Path

from openai_batches.tables.admin import (
    COST_COLUMNS,
    DAYS_READ_COLUMNS,
    PROJECT_COLUMNS,
    USAGE_COLUMNS,
)
from openai_batches.tables.anthropic import ADDED_COLUMNS as ANTHROPIC_ADDED
from openai_batches.tables.anthropic import ANTHROPIC_COLUMNS
from openai_batches.tables.batches import ADDED_COLUMNS, BATCH_COLUMNS, ERROR_COLUMNS, GONE_COLUMNS
from openai_batches.tables.ledger import FILE_COLUMNS, REQUEST_COLUMNS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_documents_every_column() -> None:
    for column in (*BATCH_COLUMNS, *ADDED_COLUMNS, *ERROR_COLUMNS, *GONE_COLUMNS, *REQUEST_COLUMNS, *FILE_COLUMNS):
        assert f"| `{column.name}` |" in README, f"README lacks column {column.name}"
        assert f"| {column.description} |" in README, f"README describes {column.name} otherwise than the code"


def test_readme_documents_every_column_of_the_admin_api_tables() -> None:
    section = README.split("### `openai_batches.projects`, `usage_daily`, `costs_daily`")[1].split("\n## ")[0]
    for table, columns in (
        ("projects", PROJECT_COLUMNS),
        ("usage_daily", USAGE_COLUMNS),
        ("costs_daily", COST_COLUMNS),
        ("admin_days_read", DAYS_READ_COLUMNS),
    ):
        # Each table's own column list, in order, with the code's descriptions.
        part = section.split(f"`openai_batches.{table}`")[1].split("`openai_batches.")[0]
        listed = [line.split("`")[1] for line in part.splitlines() if line.startswith("| `")]
        assert listed == [c.name for c in columns], table
        for column in columns:
            assert f"| {column.description} |" in part, (
                f"README describes {table}.{column.name} otherwise than the code"
            )


def test_readme_says_which_batches_are_not_reconciled() -> None:
    assert "embeddings and moderations batches are not\nreconciled" in README


def test_readme_leads_with_the_two_commands() -> None:
    head = README[:600]
    assert "make run" in head and "make test" in head


def test_readme_documents_the_ledger_tables_with_their_columns_in_order() -> None:
    """Each ledger table's section lists exactly its columns, in the declared order."""
    for table, columns in (("batch_requests", REQUEST_COLUMNS), ("batch_files", FILE_COLUMNS)):
        section = README.split(f"### `openai_batches.{table}`", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        names = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
        assert names == [c.name for c in columns], table


def test_readme_documents_every_column_of_anthropic_batches_in_order() -> None:
    section = README.split("### `openai_batches.anthropic_batches`")[1].split("\n## ")[0].split("\n### ")[0]
    columns = (*ANTHROPIC_COLUMNS, *ANTHROPIC_ADDED)
    listed = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    assert listed == [c.name for c in columns]
    for column in columns:
        assert f"| {column.description} |" in section, f"README describes anthropic_batches.{column.name} otherwise"
