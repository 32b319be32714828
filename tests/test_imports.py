"""`import helpers` and the modules that need no model leave the model stack unimported."""

import subprocess
import sys

LIGHT = ["helpers", "helpers.config", "helpers.registry", "helpers.run_notebook", "helpers.sweep",
         "helpers.ratings", "helpers.workbook", "helpers.textsafe", "helpers.runs", "helpers.studies"]


def test_light_modules_do_not_import_torch_or_transformers():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LIGHT)
            + "print(sorted(m for m in ('torch', 'transformers', 'unsloth', 'trl', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"QLORA_BACKEND": "transformers", "PATH": ""})
    assert out.stdout.strip() == "[]", out.stdout


def test_plots_leave_pyplots_backend_alone(tmp_path):
    code = ("import matplotlib\nmatplotlib.use('svg')\nfrom helpers.plots import plot_by_k\n"
            "table = {'base': {1: {'exact_match': 0.5}}}\n"
            f"plot_by_k(table, ['exact_match'], shade=None, path=r'{tmp_path}/f.png')\n"
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"  # helpers/plots used to force Agg on import
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
