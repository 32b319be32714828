"""Re-running cells in Jupyter: a real kernel (nbclient, which papermill drives) runs a notebook's setup,
imports, parameters and config cells; the config cell runs again (same config); then, with one parameter
edited, the imports cell runs again before the config cell (the edit is kept). Only the config's field
names are read from the notebook's globals, so `cfg`, `run_dir` or `train_dir` are never parameters."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.config import OUTPUT_ROOT_ENV

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
# notebook -> (a line of its parameters cell, the edited line); both notebooks import no model stack but
# benchmark's helpers; benchmark's config cell also defines names close to fields (train_dir ~ train_run)
EDITS = {
    "compile_ratings": ('output_dir = "benchmark_data/summary"', 'output_dir = "benchmark_data/summary-2"'),
    "benchmark": ("max_questions = 0 ", "max_questions = 3 "),
}
# as a user would set them before a first run: benchmark without a training run answers with the base model only
BEFORE = {"benchmark": ('stages = ["base", "epoch1", "epoch3"]', 'stages = ["base"]')}
PRINT_CFG = 'print(__import__("json").dumps(__import__("dataclasses").asdict(cfg), default=str))'


def cells(nb):
    """The setup, imports, parameters and config cells (the parameters cell sits between the last two)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    at = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    return code[0], code[at - 1], code[at], code[at + 1]


@pytest.mark.parametrize("study", sorted(EDITS))
def test_config_cell_runs_again_and_keeps_an_edited_parameter(study, tmp_path, monkeypatch):
    # relative output paths (benchmarks/, benchmark_data/) land in tmp_path, whatever the config holds
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(tmp_path / "benchmarks"))
    (tmp_path / "benchmark_data").mkdir()  # compile_ratings reads its workbooks there (none: an empty summary)
    nb = nbformat.read(NOTEBOOKS / f"{study}.ipynb", as_version=4)
    setup, imports, parameters, config = cells(nb)
    before, (old, new) = BEFORE.get(study, ("", "")), EDITS[study]
    assert before[0] in parameters.source and old in parameters.source
    parameters.source = parameters.source.replace(*before)
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}})

    def run(cell):
        client.execute_cell(cell, nb.cells.index(cell) if cell in nb.cells else 0)

    def current_config() -> dict:
        probe = nbformat.v4.new_code_cell(PRINT_CFG)
        run(probe)
        return json.loads("".join(o.get("text", "") for o in probe.outputs if o.output_type == "stream"))

    with client.setup_kernel():
        for cell in (setup, imports, parameters, config):
            run(cell)
        first = current_config()
        run(config)  # once more, after it defined cfg, run_dir, ...
        assert current_config() == first
        parameters.source = parameters.source.replace(old, new)
        run(parameters)
        run(imports)  # its record of the names before the parameters now holds every parameter
        run(config)
        edited = current_config()
    field = new.split("=")[0].strip()
    assert edited[field] == json.loads(re.sub(r"\s*#.*", "", new.split("=", 1)[1]).strip())
    assert edited == {**first, field: edited[field]} and edited != first
    if study == "compile_ratings":  # written where the edited parameter says
        assert (tmp_path / "benchmark_data" / "summary-2").is_dir()
