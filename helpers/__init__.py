"""Shared library of the notebooks: registry, 4-bit loading, SFT, generation, metrics, run records,
rating workbooks.

`import helpers` stays light (no torch), so `sweep --dry-run`, `compile_ratings` and the config
checks never pay for the model stack. The exception is a machine where Unsloth can run: Unsloth
patches transformers, trl and peft when it is imported and must come before them, so there the
package imports helpers.modeling (which imports Unsloth first) right away, as lm-eval imports a
backend only once a model is asked for.
"""

import importlib.util
import os

__version__ = "0.1.0"


def _unsloth_may_run() -> bool:
    # Cheap signs of an NVIDIA GPU and Unsloth, checked without importing torch
    return (os.environ.get("QLORA_BACKEND", "auto") != "transformers"
            and importlib.util.find_spec("unsloth") is not None
            and (os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")))


if _unsloth_may_run():
    from helpers.modeling import UNSLOTH  # noqa: F401  (imports unsloth before transformers)
