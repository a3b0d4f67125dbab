"""What the reconciliation views find, as `status` and the load summary say it: the projects with
batch usage whose batches are not loaded (`project_coverage`), and the months whose batch tokens
differ from the Usage API's (`usage_reconciliation`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import duckdb

from ..tables.admin import ORGANIZATION_TABLES, PROJECTS_TABLE
from ..tables.anthropic_admin import USAGE_TABLE as ANTHROPIC_USAGE_TABLE
from ..tables.anthropic_admin import WORKSPACES_TABLE
from . import settings
from .cells import printable
from .reconciliation import RECENT_DAYS, usage_days
from .reconciliation_anthropic import KEY_NOT_FOUND

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
    # Anthropic's books (an Anthropic Admin API key): the same findings with workspaces for projects, and
    # the configured projects whose key's workspace the Admin API does not tell.
    anthropic: AnthropicFindings | None = None

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
        if self.anthropic is not None:
            parts.extend(self.anthropic.parts())
        if not parts:
            covered = f"all {self.projects} projects" if self.projects or self.anthropic is None else ""
            if self.anthropic is not None:
                workspaces = f"all {self.anthropic.workspaces} Anthropic workspaces"
                covered = f"{covered} and {workspaces}" if covered else workspaces
            return f"reconciliation: {covered} covered or idle, every finished month matches"
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
        if self.anthropic is not None:
            lines.extend(self.anthropic.lines())
        if not self.missing and not self.differing and not (self.anthropic and self.anthropic.parts()):
            lines.append("  every project with batch usage is loaded; every finished month matches")
        return lines


@dataclass(frozen=True)
class AnthropicFindings:
    """What Anthropic's rows of the reconciliation views say (`provider = 'anthropic'`)."""

    missing: tuple[tuple[str, str | None], ...]  # (workspace id, name)
    differing: tuple[tuple[str, str, tuple[str, ...]], ...]  # (YYYY-MM, workspace id, models)
    unmatched: tuple[str, ...]  # configured projects whose key matches no key of the Admin API's list
    workspaces: int
    usage_through: date | None

    def parts(self) -> list[str]:
        parts = []
        if self.missing:
            parts.append("missing Anthropic workspace(s) " + ", ".join(_project(w, n) for w, n in self.missing))
        if self.differing:
            shown = ", ".join(f"{month} ({_project(w, None)})" for month, w, _ in self.differing)
            parts.append(f"Anthropic usage differs in {shown}")
        if self.unmatched:
            parts.append("no workspace found for Anthropic project(s) " + ", ".join(map(printable, self.unmatched)))
        return parts

    def lines(self) -> list[str]:
        through = self.usage_through.isoformat() if self.usage_through else "no usage yet"
        lines = [f"reconciliation with Anthropic's Admin API ({self.workspaces} workspaces, usage through {through}):"]
        for workspace, name in self.missing:
            lines.append(
                f"  missing: workspace {_project(workspace, name)} has batch usage in the last {RECENT_DAYS} days but "
                "no project's key belongs to it: configure a key of it"
            )
        for month, workspace, models in self.differing:
            lines.append(
                f"  differs: {month} {_project(workspace, None)}: the usage report counts other batch tokens than "
                f"the loaded batches ({', '.join(printable(m) for m in models[:3])}; see usage_reconciliation)"
            )
        for project in self.unmatched:
            lines.append(
                f"  no workspace: project {printable(project)}: its key matches no key of the Admin API's list "
                "(another organisation's key?)"
            )
        if not self.parts():
            lines.append("  every workspace with batch usage is loaded; every finished month matches")
        return lines


def _project(project_id: str, name: str | None) -> str:
    """A project as a terminal shows it: its id and name come from the Admin API, so escape sequences
    and bidirectional controls in them are shown escaped, never sent to the terminal (see cells.py)."""
    shown = f"{project_id} ({name})" if name and name != project_id else project_id
    return printable(shown)


def findings(con: duckdb.DuckDBPyConnection) -> Findings:
    """The findings of a session whose views are built (`session.build_in_memory`), `since` unset."""
    from ..storage.duckdb_file import tables_in

    missing, differing = _verdicts(con, "openai")
    # In the session, the file's tables are views of the same names (session.build_in_memory).
    present = frozenset(tables_in(con, S))
    days = usage_days(frozenset(ORGANIZATION_TABLES) & present)
    projects, through = con.execute(
        f"""SELECT (SELECT count(*) FROM {S}.project_coverage WHERE provider = 'openai'),
            (SELECT max(day) FROM {days})"""
    ).fetchone() or (0, None)
    anthropic = None
    if WORKSPACES_TABLE in present:
        a_missing, a_differing = _verdicts(con, "anthropic")
        unmatched = con.execute(
            f"""SELECT name FROM {S}.project_coverage
                WHERE provider = 'anthropic' AND verdict = '{KEY_NOT_FOUND}' ORDER BY name"""
        ).fetchall()
        workspaces, a_through = con.execute(
            f"""SELECT
                (SELECT count(*) FROM {S}.project_coverage WHERE provider = 'anthropic' AND project_id IS NOT NULL),
                (SELECT max(day) FROM {S}.{ANTHROPIC_USAGE_TABLE})"""
        ).fetchone() or (0, None)
        anthropic = AnthropicFindings(
            missing=a_missing,
            differing=a_differing,
            unmatched=tuple(str(n) for (n,) in unmatched),
            workspaces=int(workspaces or 0),
            usage_through=a_through,
        )
    return Findings(
        missing=missing, differing=differing, projects=int(projects or 0), usage_through=through, anthropic=anthropic
    )


def _verdicts(
    con: duckdb.DuckDBPyConnection, provider: str
) -> tuple[tuple[tuple[str, str | None], ...], tuple[tuple[str, str, tuple[str, ...]], ...]]:
    """A provider's missing projects (workspaces) and the months that differ."""
    missing = con.execute(
        f"""SELECT project_id, name FROM {S}.project_coverage
            WHERE verdict = 'missing' AND provider = ? ORDER BY project_id""",
        [provider],
    ).fetchall()
    differing = con.execute(
        f"""SELECT strftime(month, '%Y-%m'), project_id, list(model ORDER BY model)
            FROM {S}.usage_reconciliation WHERE verdict = 'differs' AND provider = ? GROUP BY ALL ORDER BY 1, 2""",
        [provider],
    ).fetchall()
    return (
        tuple((str(p), n) for p, n in missing),
        tuple((str(m), str(p), tuple(models)) for m, p, models in differing),
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
        tables = tables_in(con, S, CATALOG)
        if PROJECTS_TABLE not in tables and WORKSPACES_TABLE not in tables:
            return None
        build_in_memory(con, NO_OVERRIDES)
        return findings(con)


__all__ = ["AnthropicFindings", "Findings", "findings", "read_findings"]
