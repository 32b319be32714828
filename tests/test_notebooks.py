"""Static checks of every notebook: valid, one `parameters` cell, code that parses, no outputs,
and parameters that match the study's config exactly."""

import ast
import dataclasses
from pathlib import Path

import nbformat
import pytest

from helpers.run_notebook import notebook_defaults
from helpers.studies import STUDIES

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, "commit notebooks without outputs"
        ast.parse("\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("!", "%"))))
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_every_notebook_is_a_registered_study():
    assert {p.stem for p in NOTEBOOKS} == set(STUDIES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_matches_the_study_config(path):
    defaults, study = notebook_defaults(path), STUDIES[path.stem]
    # every config field is a parameter, except the values the notebook fixes (train_math: task)
    assert set(defaults) == {f.name for f in dataclasses.fields(study.config)} - set(study.fixed)
    # the notebook's values are the study's defaults
    expected = dataclasses.asdict(study.config())
    assert defaults == {k: v for k, v in expected.items() if k not in study.fixed}
