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
