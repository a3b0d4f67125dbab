"""Charts of the reports, as matplotlib Figures: inline SVG in the HTML page, inline images in the notebook.

Each chart takes the Result of one query in `queries/`, so a chart shows exactly the numbers the
report prints. Figures are built without pyplot: no global state, no GUI backend, safe in any process.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from matplotlib import colormaps, rc_context
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from . import settings
from .queries import Result

# Text stays text in the SVG (smaller, selectable; the browser's sans-serif draws it), and ids are
# stable so the same data gives the same page.
_SVG_RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "openai-batches"}
_STYLE: dict[Any, Any] = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
}


def chart_label(text: object) -> str:
    """A name from the API as a chart label, drawn as it is: cut to `CHART_LABEL_MAX` characters (one
    300-character model name would squeeze the axes to nothing), `$` escaped (matplotlib reads `$...$`
    as mathematics), and not starting with `_` (matplotlib leaves such labels out of a legend)."""
    text = str(text)
    if len(text) > settings.CHART_LABEL_MAX:
        text = text[: settings.CHART_LABEL_MAX - 1] + "\N{HORIZONTAL ELLIPSIS}"
    text = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def model_colors(models: Iterable[str]) -> dict[str, Any]:
    """One colour per model, the same in every chart of a page (sorted, so stable across runs)."""
    tab20 = colormaps["tab20"]
    palette = [tab20(i) for i in range(tab20.N)]
    return {m: palette[i % len(palette)] for i, m in enumerate(sorted(set(models)))}


def _figure(width: float, height: float, rows: int = 1) -> tuple[Figure, Any]:
    with rc_context(_STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(rows, 1, sharex=rows > 1)
    return fig, axes


def _date_axis(ax: Any) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _number(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _dense_days(days: Iterable[date]) -> list[date]:
    seen = set(days)
    if not seen:
        return []
    first, last = min(seen), max(seen)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def cost_per_day(result: Result) -> Figure | None:
    """Batch cost per creation day, stacked by model (from `cost_by_day_model`). Unpriced batches add nothing.

    Stacked step areas rather than bars: one path per model whatever the span, so a year of days
    stays a small SVG, and days without batches are visibly zero."""
    # A day the views could not place (no usable creation time) is not a point on a time axis.
    rows = [r for r in result.records() if r["cost_usd"] is not None and isinstance(r["day"], date)]
    if not rows:
        return None
    days = _dense_days(r["day"] for r in rows)
    index = {d: i for i, d in enumerate(days)}
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["model"]] = totals.get(r["model"], 0.0) + _number(r["cost_usd"])
    colors = model_colors(totals)
    fig, ax = _figure(10, 4)
    bottom = [0.0] * len(days)
    # Biggest spender at the bottom, where its band is easiest to read.
    for model in sorted(totals, key=lambda m: -totals[m]):
        values = [0.0] * len(days)
        for r in rows:
            if r["model"] == model:
                values[index[r["day"]]] += _number(r["cost_usd"])
        top = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.fill_between(days, bottom, top, step="mid", color=colors[model], label=chart_label(model), linewidth=0)
        bottom = top
    ax.set_ylim(bottom=0)
    _date_axis(ax)
    ax.set_ylabel("USD per day (batch prices)")
    ax.set_title("Cost per day (UTC, by creation day), stacked by model", loc="left")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _hourly(result: Result, days: int) -> tuple[list[datetime], list[float], list[float]]:
    """Dense hourly series over the last ``days`` days with data (empty hours are zeros, not bridged gaps)."""
    by_hour: dict[datetime, tuple[float, float]] = {}
    for r in result.records():
        if not isinstance(r["hour_utc"], datetime):
            continue  # no hour to place it in (the views leave such batches out; a Result may not)
        tokens = _number(r["input_tokens"]) + _number(r["output_tokens"])
        by_hour[r["hour_utc"]] = (tokens, _number(r["requests_completed"]))
    if not by_hour:
        return [], [], []
    last = max(by_hour)
    hour = max(min(by_hour), last - timedelta(days=days))
    hours: list[datetime] = []
    while hour <= last:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours, [by_hour.get(h, (0.0, 0.0))[0] for h in hours], [by_hour.get(h, (0.0, 0.0))[1] for h in hours]


# Hours are for seeing the daily rhythm and bursts; longer spans are what `throughput_daily` is for.
THROUGHPUT_CHART_DAYS = 14


def throughput_per_hour(result: Result) -> Figure | None:
    """Tokens and requests of the batches that finished in each UTC hour (from `throughput_hourly`)."""
    hours, tokens, requests = _hourly(result, THROUGHPUT_CHART_DAYS)
    if not hours:
        return None
    fig, (top, bottom) = _figure(10, 4.5, rows=2)
    top.fill_between(hours, [t / 1e6 for t in tokens], step="mid", color="#4c72b0", alpha=0.85, linewidth=0)
    top.set_ylabel("M tokens / hour")
    top.set_title(
        f"Throughput per hour (UTC), last {THROUGHPUT_CHART_DAYS} days with data: batches that finished in the hour",
        loc="left",
    )
    bottom.fill_between(hours, requests, step="mid", color="#55a868", alpha=0.85, linewidth=0)
    bottom.set_ylabel("requests / hour")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
    _date_axis(bottom)
    return fig


def _label(record: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """A row's model, prefixed with its provider when the rows are of several providers."""
    providers = {r.get("provider") for r in records}
    return f"{record['provider']}: {record['model']}" if len(providers) > 1 else str(record["model"])


def turnaround_distribution(result: Result) -> Figure | None:
    """Share of each model's completed batches per turnaround bucket (from `turnaround_histogram`)."""
    records = result.records()
    if not records:
        return None
    buckets = [c for c in result.columns if c not in ("provider", "model", "batches")]
    cmap = colormaps["viridis"]
    fig, ax = _figure(10, 0.9 + 0.35 * len(records))
    # Numeric positions, not category names: two long model names cut to the same label stay two bars.
    positions = list(range(len(records)))
    left = [0.0] * len(records)
    for i, bucket in enumerate(buckets):
        values = [_number(r[bucket]) for r in records]
        ax.barh(positions, values, left=left, color=cmap(i / max(1, len(buckets) - 1)), label=bucket, linewidth=0)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(positions, [f"{chart_label(_label(r, records))} (n={r['batches']:,})" for r in records])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_title("Turnaround of completed batches (created -> completed): % of each model's batches", loc="left")
    ax.legend(ncols=len(buckets), fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0.0, -0.12))
    ax.grid(axis="y", visible=False)
    return fig


FAILURE_METRICS = (
    ("validation_failure_pct", "failed validation", "#c44e52"),
    ("expiry_pct", "expired", "#dd8452"),
    ("cancellation_pct", "cancelled", "#8172b3"),
    ("request_failure_pct", "failed requests", "#937860"),
)


def failure_rates(result: Result) -> Figure | None:
    """Validation failure, expiry, cancellation and request failure rates per model (from `failures_expiries`)."""
    records = result.records()
    if not records:
        return None
    fig, ax = _figure(10, 1.0 + 0.5 * len(records))
    height = 0.8 / len(FAILURE_METRICS)
    positions = list(range(len(records)))
    for k, (column, label, color) in enumerate(FAILURE_METRICS):
        ax.barh(
            [p + k * height for p in positions],
            [_number(r[column]) for r in records],
            height=height,
            color=color,
            label=label,
            linewidth=0,
        )
    ax.set_yticks([p + 0.4 - height / 2 for p in positions], [chart_label(r["model"]) for r in records])
    ax.invert_yaxis()
    ax.set_xlabel("% (of finished batches; failed requests: of their requests)")
    ax.set_title("Failure, expiry and cancellation rates, by model", loc="left")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", visible=False)
    return fig


def to_svg(fig: Figure, prefix: str = "chart") -> str:
    """The figure as an `<svg>` element to inline in HTML (no XML prolog, no external DTD reference).

    Every SVG matplotlib writes uses the same ids (`figure_1`, `axes_1`, ...); several on one page would
    share them, so ids and the references to them get ``prefix``."""
    buffer = io.StringIO()
    with rc_context(_SVG_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = re.sub(r"^.*?(?=<svg)", "", buffer.getvalue(), flags=re.DOTALL)
    # The RDF metadata block only names its vocabularies by URL; a page that must work offline drops it.
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    return re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{prefix}-\1"', svg)
