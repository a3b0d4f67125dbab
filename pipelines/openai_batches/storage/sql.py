"""The one way text goes into DuckDB SQL where a parameter cannot (ATTACH and LOAD paths, DDL names)."""

from __future__ import annotations


def quote_literal(text: str) -> str:
    """A string literal: single quotes, doubled inside."""
    return "'" + text.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """An identifier (table, view, column or catalog name): double quotes, doubled inside."""
    return '"' + name.replace('"', '""') + '"'
