"""The template notebooks as JupyterLab and papermill read them: the kernel that `sttune` registers,
nbformat 4.5 with cell ids (older files get ids added on load, which marks them changed), no outputs."""

import json

import nbformat
import pytest
from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelspec import get_kernel_dict

from sttune_helpers.rundir import NOTEBOOKS
from sttune_helpers.runner.pipeline import KERNEL_DISPLAY_NAME, KERNEL_NAME, notebooks_dir


@pytest.fixture(params=list(NOTEBOOKS.values()))
def template(request):
    return notebooks_dir() / request.param


def test_a_template_names_the_registered_kernel_as_jupyterlab_records_it(template):
    # JupyterLab rewrites kernelspec to {name, display_name, language} of the kernel it starts.
    metadata = json.loads(template.read_text())["metadata"]
    assert metadata["kernelspec"] == {"name": KERNEL_NAME, "display_name": KERNEL_DISPLAY_NAME,
                                      "language": get_kernel_dict()["language"]}
    assert metadata["language_info"]["name"] == IPythonKernel.language_info["name"]


def test_a_template_is_nbformat_4_5_with_unique_cell_ids_and_no_outputs(template):
    notebook = nbformat.read(template, as_version=nbformat.NO_CONVERT)
    assert (notebook.nbformat, notebook.nbformat_minor) >= (4, 5)
    nbformat.validate(notebook)  # also refuses duplicate or missing ids
    assert all("id" in cell for cell in notebook.cells)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert template.read_text() == nbformat.writes(notebook) + "\n"  # as JupyterLab would save it
