"""Shared library of the notebooks: registry, 4-bit loading, SFT, generation, metrics, run records,
rating workbooks. Import it before transformers so that Unsloth (GPU path) can patch it first."""

from helpers.modeling import UNSLOTH  # noqa: F401  (imports unsloth first when it can run)

__version__ = "0.1.0"
