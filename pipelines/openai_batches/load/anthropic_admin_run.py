"""Anthropic's books in a `load`: one dlt run of `anthropic_organization` after the projects' runs (and
OpenAI's organisation), when an Anthropic Admin API key is configured.

Its own dlt run, like run_admin (admin_run.py): a failure here (a refused key, an outage) leaves the batches
just loaded in place and fails the load (exit 1) in one line; a failed batch project does not stop it.
Once per load: the Admin API answers for the whole organisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..analysis.reconciliation_anthropic import ANTHROPIC_BATCHES_TABLE
from ..sources.anthropic_admin.source import AnthropicBooksCounts, anthropic_organization
from .admin_run import findings_after_load, first_batch_day

if TYPE_CHECKING:
    import dlt

    from ..analysis.findings import Findings
    from ..client.retry import RetryPolicy
    from ..config import RunConfig
    from ..storage.store import Store


@dataclass
class AnthropicBooksOutcome:
    stats: AnthropicBooksCounts = field(default_factory=AnthropicBooksCounts)
    error: str | None = None
    findings: Findings | None = None  # what the reconciliation found, once the run succeeded

    @property
    def changed(self) -> bool:
        """The books' tables appeared (or were read again from the start): views must be rebuilt."""
        return self.error is None and self.stats.first_run


def anthropic_project_keys(config: RunConfig) -> dict[str, str]:
    """Each configured Anthropic project's name and key (ProjectConfig.provider, DESIGN18), to find its
    workspace by."""
    return {
        p.name or "anthropic": p.api_key for p in config.projects if getattr(p, "provider", "openai") == "anthropic"
    }


def run_anthropic_admin(
    pipeline: dlt.Pipeline,
    db_path: Store | str,
    config: RunConfig,
    *,
    retry: RetryPolicy,
    full_refresh: bool,
) -> AnthropicBooksOutcome:
    """Load workspaces, the projects' workspaces, usage and costs; then read what the reconciliation
    finds. Raises nothing but interruptions: a failure is the outcome's one-line `error`."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    from .failures import cause, reraise_interruption

    books = config.anthropic_admin
    assert books is not None
    outcome = AnthropicBooksOutcome()
    source = anthropic_organization(
        admin_key=books.admin_key,
        base_url=books.base_url,
        project_keys=anthropic_project_keys(config),
        other_keys=config.every_key(),
        first_day=first_batch_day(pipeline, ANTHROPIC_BATCHES_TABLE),
        full_refresh=full_refresh,
        timeout=config.timeout,
        retry=retry,
        stats=outcome.stats,
    )
    try:
        pipeline.run(source, loader_file_format="parquet")
    except PipelineStepFailed as e:
        reraise_interruption(e)
        outcome.error = cause(e)
        return outcome
    outcome.findings = findings_after_load(db_path)
    return outcome


def summary_lines(outcome: AnthropicBooksOutcome, label: str = "load") -> list[str]:
    """The load summary's lines for Anthropic's books: what was read, each project's workspace, then what
    the reconciliation found (when OpenAI's organisation did not already say it)."""
    stats = outcome.stats
    if outcome.error:
        return [f"{label} [anthropic organization] FAILED after {stats.api_calls} requests: nothing loaded"]
    since = f" from {stats.usage_from.isoformat()}" if stats.usage_from else ""
    lines = [
        f"{label} [anthropic organization] ok: {stats.api_calls} requests, {stats.workspaces} workspaces, "
        f"usage and costs{since}: {stats.usage_rows} usage rows, {stats.cost_rows} cost rows"
    ]
    unmatched = sorted(p for p, w in stats.project_workspaces.items() if w is None)
    if unmatched:
        lines.append(
            f"{label} [anthropic organization] no workspace found for project(s) {', '.join(unmatched)}: their key "
            "matches no key of the Admin API's list (see project_coverage)"
        )
    if outcome.findings is not None:
        lines.append(outcome.findings.summary())
    return lines


__all__ = ["AnthropicBooksOutcome", "anthropic_project_keys", "run_anthropic_admin", "summary_lines"]
