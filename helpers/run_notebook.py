"""Run a study notebook with papermill into its run folder, then print where everything is.

    python -m helpers.run_notebook addition --preset demo
    python -m helpers.run_notebook addition -p model llama-3.1-8b -p max_steps 200

Parameters are layered: the notebook's `parameters` cell (the study's defaults) -> the preset
(configs/presets/<preset>/<study>.yaml) -> each `-p NAME VALUE` (VALUE is read as YAML, so
`-p lora_r 16` is an int and `-p lora_targets "[q_proj, v_proj]"` a list). An unknown name, a bad
value or a failing cell ends with one line saying what to change, and exit code 2 (bad input) or 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import yaml

from helpers.config import REPO_ROOT, ConfigError, load_preset
from helpers.registry import resolve_model
from helpers.runs import run_folder
from helpers.studies import STUDIES, get_study, study_config

NOTEBOOKS = REPO_ROOT / "notebooks"


def notebook_defaults(notebook: Path) -> dict:
    """The values of the notebook's `parameters` cell."""
    import papermill

    found = papermill.inspect_notebook(str(notebook))
    return {name: ast.literal_eval(p["default"]) for name, p in found.items()}


def resolve(study: str, preset: str | None, overrides: dict):
    """(notebook, parameters to inject, typed config, run folder) for one run."""
    get_study(study)  # an unknown study fails here, before the notebook is read
    notebook = NOTEBOOKS / f"{study}.ipynb"
    defaults = notebook_defaults(notebook)
    params = {**(load_preset(study, preset) if preset else {}), **overrides}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"{notebook.name} has no parameter {', '.join(unknown)}; it has: {', '.join(defaults)}")
    cfg = study_config(study, {**defaults, **params})
    if hasattr(cfg, "model"):
        resolve_model(cfg.model)  # fail before starting a kernel
    return notebook, params, cfg, run_folder(study, cfg)


def execute(study: str, preset: str | None = None, overrides: dict | None = None, *, log_output: bool = True) -> Path:
    """Execute the notebook into its run folder; returns the run folder. Raises ConfigError for
    bad parameters and RuntimeError (one line: the failing cell's error) for a failed run."""
    import papermill

    notebook, params, cfg, run_dir = resolve(study, preset, overrides or {})
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(run_dir / notebook.name), parameters=params,
                                   cwd=str(NOTEBOOKS), kernel_name="python3", log_output=log_output,
                                   progress_bar=False)
    except papermill.PapermillExecutionError as err:
        cls = ConfigError if err.ename == "ConfigError" else RuntimeError
        raise cls(f"{err.ename}: {err.evalue} (cell {err.exec_count}; see {run_dir / notebook.name})") from None
    return run_dir


def _parse_overrides(pairs) -> dict:
    return {name: yaml.safe_load(value) for name, value in pairs or []}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help=f"one of: {', '.join(STUDIES)}")
    parser.add_argument("--preset", help="configs/presets/<preset>/<study>.yaml, e.g. demo")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
    parser.add_argument("--quiet", action="store_true", help="do not stream the notebook's output")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        run_dir = execute(args.study, args.preset, _parse_overrides(args.parameter), log_output=not args.quiet)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(f"\nfinished in {time.time() - start:.0f} s")
    for name, path in {"notebook": run_dir / f"{args.study}.ipynb", **metrics.get("files", {}),
                       "metrics": run_dir / "metrics.json"}.items():
        print(f"  {name:<12} {Path(path).relative_to(REPO_ROOT) if Path(path).is_relative_to(REPO_ROOT) else path}")
    report = STUDIES[args.study].report
    if report:
        print()
        print(report(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
