"""`notebooks/explore.ipynb` runs top to bottom, headless: on a demo database, on one seeded with every
odd value the API can send, and on one whose only project has no batch yet."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from openai_batches.cli.demo import run_demo

from .support.analysis import load_batches, odd_batches

pytestmark = pytest.mark.slow  # runs the notebook in a kernel

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


def execute(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[nbformat.NotebookNode, list[Any]]:
    # The first cell reads this; the kernel inherits the environment.
    monkeypatch.setenv("OPENAI_BATCHES_NOTEBOOK_DB", str(db))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert "OPENAI_BATCHES_NOTEBOOK_DB" in notebook.cells[0].source and "STORE" in notebook.cells[0].source
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, [(e.ename, e.evalue) for e in errors]
    warnings = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not warnings, warnings
    return notebook, outputs


def markdown_of(outputs: list[Any]) -> str:
    return "".join(o["data"].get("text/markdown", "") for o in outputs if "data" in o)


def images(outputs: list[Any]) -> int:
    return len([o for o in outputs if "image/png" in o.get("data", {})])


def test_notebook_executes_on_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "demo.duckdb"
    assert run_demo(db_path=str(db), batches=150, seed=3) == 0
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    notebook, outputs = execute(db, tmp_path, monkeypatch)
    assert images(outputs) == 4  # cost, throughput, turnaround, failure rates
    tables = markdown_of(outputs)
    assert "## cost_summary" in tables and "## turnaround_percentiles" in tables and "## caveats" in tables
    assert "cost_usd" in tables.split("## sql")[-1]  # the user's own question ran
    # The demo has an admin key: the reconciliation section shows the project nobody configured.
    coverage = tables.split("## project_coverage")[1].split("## ")[0]
    assert "| proj_batch_lab | Batch lab | active | missing |" in coverage
    assert "| differs |" in tables.split("## usage_reconciliation")[1].split("## ")[0]
    # Prose between the code: the notebook explains what it shows.
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 5
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # it only reads


def test_notebook_executes_over_every_odd_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "odd.duckdb"
    load_batches(str(db), list(odd_batches().values()))
    _, outputs = execute(db, tmp_path, monkeypatch)
    assert images(outputs) == 4
    caveats = markdown_of(outputs).split("## caveats")[1]
    assert "inconsistent usage" in caveats and "finished without a usable end time" in caveats


def test_notebook_executes_when_no_batch_was_loaded_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "empty.duckdb"
    load_batches(str(db), [])  # a project with no batches: the load succeeds and creates no `batches` table
    _, outputs = execute(db, tmp_path, monkeypatch)
    assert images(outputs) == 0
    assert markdown_of(outputs).count("Nothing to draw") == 4
