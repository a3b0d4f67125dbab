"""`report --html FILE`: one self-contained page (inline CSS and SVG, no scripts, no CDN) that works offline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import charts
from .cells import display, is_numeric, is_usd
from .queries import Result
from .reconciliation import COSTS_CAVEAT
from .settings import LEDGER_OFF_NOTE, LEDGER_REPORTS

# Rows per table on the page; the terminal/CSV reports carry the rest. Keeps the page light with years of hours.
HTML_ROW_LIMIT = 50

# Which chart draws which report (by query name).
CHARTS: tuple[tuple[str, Callable[[Result], Figure | None]], ...] = (
    ("cost_by_day_model", charts.cost_per_day),
    ("throughput_hourly", charts.throughput_per_hour),
    ("turnaround_histogram", charts.turnaround_distribution),
    ("failures_expiries", charts.failure_rates),
)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } .meta { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: .6rem 1rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
.unpriced { border-left: 5px solid #d97706; background: #fffbeb; padding: .8rem 1rem; margin: 1rem 0; }
.ok { border-left: 5px solid #16a34a; background: #f0fdf4; padding: .8rem 1rem; margin: 1rem 0; }
.caveats { border-left: 5px solid #64748b; background: #f8fafc; padding: .8rem 1rem; margin: 1rem 0; }
figure { margin: 1.5rem 0; } figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: 12px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.unpriced-cell { color: #b45309; font-style: italic; }
.more { color: #666; font-size: 12px; }
code { background: #f4f4f4; padding: 0 .2rem; }
h2.group { border-top: 2px solid #ddd; padding-top: 1rem; margin-top: 2.5rem; }
"""


def _by_name(results: Sequence[Result]) -> dict[str, Result]:
    return {r.name: r for r in results}


def _summary(results: dict[str, Result]) -> dict[str, Any] | None:
    summary = results.get("cost_summary")
    return summary.records()[0] if summary is not None and summary.rows else None


def _cards(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return ""
    items = (
        ("cost (batch)", "cost_usd", "$"),
        ("same tokens synchronously", "sync_cost_usd", "$"),
        ("saved by batching", "batch_savings_usd", "$"),
        ("saved by caching", "cache_savings_usd", "$"),
        ("batches", "batches", ""),
        ("unpriced batches", "unpriced_batches", ""),
    )
    cells = []
    for label, key, unit in items:
        value = summary.get(key)
        shown = "unpriced" if value is None and unit else f"{unit}{display(value, key)}"
        cells.append(f'<div class="card">{escape(label)}<b>{escape(shown)}</b></div>')
    return '<div class="cards">' + "".join(cells) + "</div>"


def _provider_cards(by_provider: Result | None) -> str:
    """The cost of each provider's batches, when there are several (one provider: the cards above say it)."""
    records = by_provider.records() if by_provider is not None else []
    if len(records) < 2:
        return ""
    cells = []
    for r in records:
        value = r.get("cost_usd")
        shown = "unpriced" if value is None else f"${display(value, 'cost_usd')}"
        label = f"{display(r['provider'], 'provider')} ({display(r['batches'], 'batches')} batches)"
        cells.append(f'<div class="card">{escape(label)}<b>{escape(shown)}</b></div>')
    return '<div class="cards">' + "".join(cells) + "</div>"


def _tokens(value: Any, what: str) -> str | None:
    return None if value is None else f"{display(value, 'n')} {what}"


def _unpriced_callout(summary: dict[str, Any] | None, unpriced: Result | None) -> str:
    if summary is None:
        return ""
    if not summary.get("batches"):
        return '<div class="ok">No batches in scope: nothing was spent.</div>'
    count = summary.get("unpriced_batches")
    if not count:
        return '<div class="ok">Every batch in scope has a price.</div>'
    # Tokens of batches without (usable) usage are unknown: the sum covers the others, and says so.
    known = [
        t
        for t in (
            _tokens(summary.get("unpriced_input_tokens"), "input"),
            _tokens(summary.get("unpriced_output_tokens"), "output"),
        )
        if t
    ]
    reasons = {r["reason"]: r["batches"] for r in unpriced.records()} if unpriced is not None else {}
    unknown = sum(n for reason, n in reasons.items() if reason in ("no usage reported", "inconsistent usage"))
    if known and unknown:
        tokens = f" ({' and '.join(known)} tokens known; {unknown:,} of them report no usable usage)"
    elif known:
        tokens = f" ({' and '.join(known)} tokens)"
    else:
        tokens = " (their tokens are unknown: no usable usage reported)"
    text = (
        f"<b>{count:,} batch{'' if count == 1 else 'es'} could not be priced</b> and {'is' if count == 1 else 'are'} "
        "in no cost figure on this page"
        f"{escape(tokens)}. "
        "Batches created before September 2025 report no usage; for a model without a price, add one to "
        "<code>.dlt/prices.toml</code> (see <code>.dlt/prices.toml.example</code>)."
    )
    table = _table(unpriced) if unpriced is not None else ""
    return f'<div class="unpriced">{text}{table}</div>'


def _caveats_callout(caveats: Result | None) -> str:
    if caveats is None or not caveats.rows:
        return ""

    def counted(r: dict[str, Any]) -> str:
        # The Costs API's line items are counted in the same column as batches (reconciliation.py).
        if str(r["caveat"]).startswith(COSTS_CAVEAT):
            return f"line item{'' if r['batches'] == 1 else 's'}"
        return f"batch{'' if r['batches'] == 1 else 'es'}"

    items = "".join(
        f"<li>{escape(display(r['batches'], 'batches'))} {counted(r)}: "
        f"{escape(display(r['caveat'], 'caveat'))} "
        f"(<i>{escape(display(r['figures'], 'figures'))}</i>)</li>"
        for r in caveats.records()
    )
    return (
        '<div class="caveats"><b>Some figures leave batches out or only approximate them</b>, '
        f'because of values the API sent (details in <a href="#caveats">caveats</a>):<ul>{items}</ul></div>'
    )


def _reconciliation_callout(coverage: Result | None, usage: Result | None) -> str:
    """Missing projects and months that differ from OpenAI's Usage API, when an admin key loaded its data."""
    projects = coverage.records() if coverage is not None else []
    months = usage.records() if usage is not None else []
    if not projects and not months:
        return ""
    missing = [r for r in projects if r["verdict"] == "missing"]
    differing = sorted({(r["month"], r["project_id"]) for r in months if r["verdict"] == "differs"})
    if not missing and not differing:
        return (
            '<div class="ok">Reconciliation with OpenAI\'s Admin API: every project with batch usage is loaded, '
            'and every finished month matches the Usage API (<a href="#usage_reconciliation">details</a>).</div>'
        )
    items = [
        f"<li>project <b>{escape(display(r['project_id'], 'project_id'))}</b> "
        f"({escape(display(r['name'], 'name'))}) has batch usage in the last 30 days but no batches loaded: "
        "configure a key for it</li>"
        for r in missing
    ]
    items += [
        f"<li>{escape(display(month, 'month'))}, project <b>{escape(display(project, 'project_id'))}</b>: the Usage "
        "API counts other batch tokens than the loaded batches</li>"
        for month, project in differing
    ]
    return (
        '<div class="unpriced"><b>Reconciliation with OpenAI\'s Admin API</b> (details in '
        '<a href="#project_coverage">project_coverage</a> and <a href="#usage_reconciliation">'
        f"usage_reconciliation</a>):<ul>{''.join(items)}</ul></div>"
    )


def _table(result: Result) -> str:
    if not result.rows:
        return '<p class="more">No rows.</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in result.columns)
    body = []
    for row in result.rows[:HTML_ROW_LIMIT]:
        cells = []
        for value, column in zip(row, result.columns, strict=True):
            cls = ""
            if value is None and is_usd(column):
                cls = ' class="unpriced-cell"'
            elif is_numeric(value):
                cls = ' class="num"'
            cells.append(f"<td{cls}>{escape(display(value, column))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = len(result.rows) - HTML_ROW_LIMIT
    note = (
        f'<p class="more">First {HTML_ROW_LIMIT} of {len(result.rows):,} rows; all of them: '
        f"<code>openai-batches report --only {escape(result.name)} --format csv</code></p>"
        if more > 0
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"


def _ledger_heading(read: bool) -> str:
    """Where the request ledger's reports start; when nothing was read, the note says how to read it."""
    text = (
        "What happened to every request of each finished batch, read from its output, error and input files "
        "(never their content): outcomes, requests missing from both files, failure reasons, cost per job."
    )
    note = "" if read else f'<p class="more">{escape(LEDGER_OFF_NOTE)}</p>'
    return f'<h2 id="requests" class="group">Requests (the ledger)</h2><p>{escape(text)}</p>{note}'


def _chart(result: Result | None, draw: Callable[[Result], Figure | None]) -> str:
    fig = draw(result) if result is not None else None
    if result is None or fig is None:
        return ""
    svg = charts.to_svg(fig, prefix=result.name)
    return f'<figure role="img" aria-label="{escape(result.query.title)}">{svg}</figure>'


def render_html(
    results: Sequence[Result], *, db_path: str, since: str | None = None, only: Sequence[str] | None = None
) -> str:
    """The page: cards and callouts from the header reports, then the charts and tables of ``only``
    (every report in ``results`` when None)."""
    by_name = _by_name(results)
    summary = _summary(by_name)
    shown = [r for r in results if not only or r.name in only]
    shown_names = {r.name for r in shown}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    scope = f"batches created since {since} UTC" if since else "all batches"
    parts: list[Any] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>OpenAI batches: cost and throughput</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>OpenAI batches: cost and throughput</h1>",
        f'<p class="meta">{escape(Path(db_path).name)} · {escape(scope)} · generated {generated} · '
        "batch prices are 50% of the standard per-token price</p>",
        _cards(summary),
        _provider_cards(by_name.get("cost_by_provider")),
        _unpriced_callout(summary, by_name.get("unpriced_usage")),
        _caveats_callout(by_name.get("caveats")),
        _reconciliation_callout(by_name.get("project_coverage"), by_name.get("usage_reconciliation")),
    ]
    parts.extend(_chart(by_name.get(name), draw) for name, draw in CHARTS if name in shown_names)
    ledger = [r for r in shown if r.name in LEDGER_REPORTS]
    ledger_read = any(r.rows for r in ledger)
    for result in shown:
        if ledger and result is ledger[0]:
            parts.append(_ledger_heading(ledger_read))
        if result in ledger and not ledger_read:
            continue
        parts.append(f'<h2 id="{escape(result.name)}">{escape(result.name)}</h2>')
        parts.append(f"<p>{escape(result.query.title)}</p>")
        parts.append(_table(result))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_html(
    path: str,
    results: Sequence[Result],
    *,
    db_path: str,
    since: str | None = None,
    only: Sequence[str] | None = None,
) -> None:
    Path(path).write_text(render_html(results, db_path=db_path, since=since, only=only), encoding="utf-8")
