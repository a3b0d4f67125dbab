"""A hostile tester's holes in the analysis side, each kept closed: values the API can send (loaded by the
real loader from a scripted loopback API), or that the Admin API and the request ledger can hold, that
once crashed a report, showed an impossible number, or reached a terminal, a page or a notebook as markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.openai_batches import cli

from .support_analysis import dlt_dirs, load_batches, usage
from .support_reliability import make_batch

# Markup a metadata value or model name can carry into a rendered report: raw HTML (runs in a notebook's
# trusted output or any Markdown renderer that passes HTML through), and a `javascript:` link.
# Bidirectional controls reorder what a terminal or a page shows after them ("Trojan Source"): a name
# `usd\u202e1.0$` displays as something else than it is.
BIDI_METADATA = {"bidi": "proj\u202eevil\u2066x\u200f"}
HTML_METADATA = {"img": "<img src=x onerror=alert(1)>", "link": "[click](javascript:alert(1))", "amp": "a &lt; b"}


@dataclass
class Hostile:
    db: str
    ids: dict[str, str]  # label -> batch id


def hostile_batches() -> dict[str, dict[str, Any]]:
    made: dict[str, dict[str, Any]] = {}
    for n, (label, fields) in enumerate(
        (
            ("clean", {}),
            ("html_metadata", {"metadata": HTML_METADATA}),
            ("bidi_metadata", {"metadata": BIDI_METADATA}),
        ),
        1,
    ):
        made[label] = make_batch(n, **fields)
    return made


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile")
    batches = hostile_batches()
    db = str(root / "hostile.duckdb")
    with dlt_dirs(root):
        load_batches(db, list(batches.values()))
        yield Hostile(db, {label: str(b["id"]) for label, b in batches.items()})


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def report_json(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> dict[str, list[dict[str, Any]]]:
    code, out, err = report(capsys, "--db", db, "--format", "json", *args)
    assert code == 0, err
    doc: dict[str, list[dict[str, Any]]] = json.loads(out)
    return doc


# --- Markdown is rendered (the notebook shows it as HTML): a value from the API is text, never markup -----
def test_markdown_cells_are_text_never_html_or_links(hostile: Hostile, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, "--db", hostile.db, "--only", "cost_by_metadata", "--format", "markdown")
    assert code == 0, err
    assert "<img" not in out and "](javascript:" not in out, out
    # Rendered, each value reads as sent: the entities stand for the characters themselves.
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "&#91;click&#93;(javascript:alert(1))" in out
    assert "a &amp;lt; b" in out
    # JSON keeps the values exactly as sent.
    values = {
        r["metadata_value"] for r in report_json(capsys, hostile.db, "--only", "cost_by_metadata")["cost_by_metadata"]
    }
    assert set(HTML_METADATA.values()) <= values


def test_bidirectional_controls_are_shown_escaped_never_raw(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = ("\u202e", "\u2066", "\u200f")
    for fmt in ("table", "markdown"):
        code, out, err = report(capsys, "--db", hostile.db, "--only", "cost_by_metadata", "--format", fmt)
        assert code == 0, err
        assert not [c for c in raw if c in out], fmt
        assert "proj\\u202eevil\\u2066x\\u200f" in out, fmt
    page = tmp_path / "bidi.html"
    code, _, err = report(capsys, "--db", hostile.db, "--only", "cost_by_metadata", "--html", str(page))
    assert code == 0, err
    assert not [c for c in raw if c in page.read_text()]
    values = {
        r["metadata_value"] for r in report_json(capsys, hostile.db, "--only", "cost_by_metadata")["cost_by_metadata"]
    }
    assert BIDI_METADATA["bidi"] in values  # JSON as sent
