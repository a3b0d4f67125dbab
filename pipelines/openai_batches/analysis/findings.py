"""What the reconciliation views find, as `status` and the load summary say it: the projects with
batch usage whose batches are not loaded (`project_coverage`), and the months whose batch tokens
differ from the Usage API's (`usage_reconciliation`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import duckdb

from ..tables.admin import ORGANIZATION_TABLES, PROJECTS_TABLE
from . import settings
from .cells import printable
from .reconciliation import RECENT_DAYS, usage_days

if TYPE_CHECKING:
    from ..storage.store import Store

S = settings.SCHEMA


@dataclass(frozen=True)
class Findings:
    """What `status` and the load summary name: projects with batch usage whose batches are not
    loaded, and months whose batch tokens differ from the Usage API's."""

    missing: tuple[tuple[str, str | None], ...]  # (project id, name)
    differing: tuple[tuple[str, str, tuple[str, ...]], ...]  # (YYYY-MM, project id, models)
    projects: int  # in the organisation
    usage_through: date | None  # the last day the Usage API data has

    def summary(self) -> str:
        """The load summary's one line."""
        parts = []
        if self.missing:
            parts.append("missing project(s) " + ", ".join(_project(p, n) for p, n in self.missing))
        if self.differing:
            parts.append(
                "usage differs in "
                + ", ".join(f"{month} ({_project(project, None)})" for month, project, _ in self.differing)
            )
        if not parts:
            return f"reconciliation: all {self.projects} projects covered or idle, every finished month matches"
        return "reconciliation: " + "; ".join(parts)

    def lines(self) -> list[str]:
        """What `status` prints: one line per missing project and per month that differs."""
        through = self.usage_through.isoformat() if self.usage_through else "no usage yet"
        lines = [f"reconciliation with the Admin API ({self.projects} projects, usage through {through}):"]
        for project, name in self.missing:
            lines.append(
                f"  missing: project {_project(project, name)} has batch usage in the last {RECENT_DAYS} days but "
                "no batches loaded: configure a key for it"
            )
        for month, project, models in self.differing:
            shown = ", ".join(printable(m) for m in models[:3]) + (
                f" and {len(models) - 3} more" if len(models) > 3 else ""
            )
            lines.append(
                f"  differs: {month} {_project(project, None)}: the Usage API counts other batch tokens than the "
                "loaded batches "
                f"({shown}; see usage_reconciliation)"
            )
        if not self.missing and not self.differing:
            lines.append("  every project with batch usage is loaded; every finished month matches")
        return lines


def _project(project_id: str, name: str | None) -> str:
    """A project as a terminal shows it: its id and name come from the Admin API, so escape sequences
    and bidirectional controls in them are shown escaped, never sent to the terminal (see cells.py)."""
    shown = f"{project_id} ({name})" if name and name != project_id else project_id
    return printable(shown)


def findings(con: duckdb.DuckDBPyConnection) -> Findings:
    """The findings of a session whose views are built (`session.build_in_memory`), `since` unset."""
    missing = con.execute(
        f"SELECT project_id, name FROM {S}.project_coverage WHERE verdict = 'missing' ORDER BY project_id"
    ).fetchall()
    differing = con.execute(
        f"""SELECT strftime(month, '%Y-%m'), project_id, list(model ORDER BY model)
            FROM {S}.usage_reconciliation WHERE verdict = 'differs' GROUP BY ALL ORDER BY 1, 2"""
    ).fetchall()
    from ..storage.duckdb_file import tables_in

    # In the session, the file's tables are views of the same names (session.build_in_memory).
    days = usage_days(frozenset(ORGANIZATION_TABLES) & frozenset(tables_in(con, S)))
    projects, through = con.execute(
        f"SELECT (SELECT count(*) FROM {S}.project_coverage), (SELECT max(day) FROM {days})"
    ).fetchone() or (0, None)
    return Findings(
        missing=tuple((str(p), n) for p, n in missing),
        differing=tuple((str(m), str(p), tuple(models)) for m, p, models in differing),
        projects=int(projects or 0),
        usage_through=through,
    )


def read_findings(db_path: Store | str, *, in_load: bool = False) -> Findings | None:
    """The findings for ``db_path`` (read-only), or None when no admin key ever loaded its tables.
    `in_load`: read by a step of this process's load, through its instance (see `Store.connect`).

    The verdicts do not depend on prices; the session still builds them, from the bundled data only
    (no price file), so that a bad price file cannot hide a finding."""
    from ..storage.duckdb_file import CATALOG, tables_in
    from ..storage.store import as_store, connected
    from .prices import NO_OVERRIDES
    from .session import build_in_memory

    with connected(as_store(db_path), read_only=True, in_load=in_load) as con:
        if PROJECTS_TABLE not in tables_in(con, S, CATALOG):
            return None
        build_in_memory(con, NO_OVERRIDES)
        return findings(con)


__all__ = ["Findings", "findings", "read_findings"]
