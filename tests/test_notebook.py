"""docs/tutorial.ipynb runs, headless, as a reader would run it: any error in any cell fails.

It is committed without outputs (what it shows is what the installed circuitql does, not what
it did once), so this also checks that no output or execution count was saved in it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def test_the_tutorial_is_committed_without_outputs() -> None:
    notebook = nbformat.read(TUTORIAL, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_tutorial_runs_from_top_to_bottom(tmp_path: Path) -> None:
    notebook = nbformat.read(TUTORIAL, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    shown = {
        mime
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        for mime in output.get("data", {})
    }
    assert {"text/html", "image/svg+xml"} <= shown  # tables and pictures, as Jupyter shows them
    last_found = [c for c in notebook.cells if c.cell_type == "code"][-2].outputs
    assert "['abs']" in last_found[0]["data"]["text/plain"]  # the exported circuit, found again
