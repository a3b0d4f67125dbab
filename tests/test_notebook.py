"""`notebooks/explore.ipynb` runs top to bottom, headless, on a demo database."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pipelines.openai_batches.demo import run_demo

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


def test_notebook_executes_on_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "demo.duckdb"
    assert run_demo(db_path=str(db), batches=150, seed=3) == 0
    # The first cell reads this; the kernel inherits the environment.
    monkeypatch.setenv("OPENAI_BATCHES_NOTEBOOK_DB", str(db))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert "OPENAI_BATCHES_NOTEBOOK_DB" in notebook.cells[0].source and "DB_PATH" in notebook.cells[0].source
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # cost, throughput, turnaround, failure rates
    tables = "".join(o["data"].get("text/markdown", "") for o in outputs if "data" in o)
    assert "## cost_summary" in tables and "## turnaround_percentiles" in tables
    # Prose between the code: the notebook explains what it shows.
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 5
