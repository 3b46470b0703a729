"""Execute every notebook in notebooks/ headless, top to bottom, with its small settings.

A notebook that raises fails the test. Each must also produce at least one figure (an image/png
output) from its own run. The kernel starts in a temporary directory (runs write there, never into
the repository) and finds the package through PYTHONPATH. Marked ``notebooks``: about 1-2 minutes
per notebook on 2 CPU cores; deselect with ``-m "not notebooks"``.
"""
import os
import pathlib
import time

import pytest

pytestmark = pytest.mark.integration

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = [REPO_ROOT / "notebooks" / name for name in
             ("01_planar_flows_2d.ipynb", "02_mnist_planar_vae.ipynb", "03_face_latent_arithmetic.ipynb")]
CELL_TIMEOUT_SECONDS = 600


def _image_outputs(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{path.name} stores outputs"
    assert any("FULL = False" in cell.source for cell in code[:2]), f"{path.name} lacks the FULL switch at its top"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_headless(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    before = {p.relative_to(REPO_ROOT) for folder in (REPO_ROOT, REPO_ROOT / "notebooks") for p in folder.iterdir()}
    started = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - started
    print(f"{path.name}: executed in {seconds:.0f} s")
    assert _image_outputs(notebook) >= 1, f"{path.name} produced no figure"
    after = {p.relative_to(REPO_ROOT) for folder in (REPO_ROOT, REPO_ROOT / "notebooks") for p in folder.iterdir()}
    assert after <= before, f"{path.name} wrote into the repository: {sorted(map(str, after - before))}"
