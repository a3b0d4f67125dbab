"""The files in `queries/`, each one report: read, run against a database, results as plain rows.

The report command, the HTML page and the notebook all run these files, so each question's SQL
exists once and is exactly what a user runs in the DuckDB CLI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from . import settings

_PREFIX = re.compile(r"^\d+_")


@dataclass(frozen=True)
class Query:
    name: str  # the file name without its ordering prefix and suffix: the report's key
    title: str  # the file's one-line header comment: the question it answers
    sql: str
    path: Path


@dataclass(frozen=True)
class Result:
    query: Query
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @property
    def name(self) -> str:
        return self.query.name

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def read_query(path: Path) -> Query:
    sql = path.read_text()
    first = sql.lstrip().splitlines()[0] if sql.strip() else ""
    if not first.startswith("--"):
        raise ValueError(f"{path} must start with a `-- question it answers` comment line")
    return Query(name=_PREFIX.sub("", path.stem), title=first[2:].strip(), sql=sql, path=path)


def load_queries(directory: Path = settings.QUERIES_DIR, only: Sequence[str] | None = None) -> list[Query]:
    """The queries in file-name order (the numeric prefixes order the report); ``only`` picks by name."""
    queries = [read_query(p) for p in sorted(directory.glob("*.sql"))]
    if not queries:
        # An installation without its SQL files would otherwise print no report at all, and exit 0.
        raise FileNotFoundError(f"no report queries (*.sql) in {directory}: the installation is incomplete")
    if only:
        known = {q.name for q in queries}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise KeyError(f"unknown report(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        queries = [q for q in queries if q.name in only]
    return queries


def parse_since(value: str | None) -> str | None:
    """`--since` as the UTC timestamp text the `since` variable holds, with the meaning the SQL gives
    the variable (see `views.SINCE_MACRO`): a date is its UTC midnight, a timestamp without an offset
    is UTC, one with an offset is that instant."""
    if value is None or value == "":
        return None
    problem = (
        f"--since must be a date like 2025-10-01 or an ISO timestamp like 2025-10-01T12:00:00+02:00, got {value!r}"
    )
    try:
        if len(value) == 10:
            return date.fromisoformat(value).isoformat() + " 00:00:00"
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except ValueError:
        raise ValueError(problem) from None
    except OverflowError:  # an offset that moves the instant past year 9999 or before year 1
        raise ValueError(f"{problem}: out of range in UTC") from None
    return parsed.isoformat(sep=" ")


def set_since(con: duckdb.DuckDBPyConnection, since: str | None) -> None:
    """Scope every view to batches created at or after ``since`` (None: all batches)."""
    if since is None:
        con.execute(f"RESET VARIABLE {settings.SINCE_VARIABLE}")
    else:
        con.execute(f"SET VARIABLE {settings.SINCE_VARIABLE} = ?", [parse_since(since)])


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, name: str = "sql") -> Result:
    """Any SQL as a Result (for the notebook's own questions), displayed like a report."""
    return run_query(con, Query(name=name, title=name, sql=sql, path=Path()))


def run_query(con: duckdb.DuckDBPyConnection, query: Query) -> Result:
    cursor = con.execute(query.sql)
    columns = tuple(d[0] for d in cursor.description or ())
    return Result(query, columns, tuple(tuple(row) for row in cursor.fetchall()))


def run_queries(
    con: duckdb.DuckDBPyConnection, queries: Sequence[Query] | None = None, since: str | None = None
) -> list[Result]:
    set_since(con, since)
    # Timestamps come back in UTC whatever the machine's zone; the views already bucket days and hours in UTC.
    con.execute("SET TimeZone = 'UTC'")
    return [run_query(con, q) for q in (load_queries() if queries is None else queries)]
