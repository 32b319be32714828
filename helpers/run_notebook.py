"""Run a study notebook with papermill into its run folder, then print where everything is.

    python -m helpers.run_notebook addition --preset demo
    python -m helpers.run_notebook addition -p model llama-3.1-8b -p max_steps 200

Parameters are layered: the notebook's `parameters` cell (the study's defaults) -> the preset
(configs/presets/<preset>/<study>.yaml) -> each `-p NAME VALUE` (VALUE is read as YAML, so
`-p lora_r 16` is an int and `-p lora_targets "[q_proj, v_proj]"` a list). An unknown name, a bad
value or a failing cell ends with one line saying what to change, and exit code 2 (bad input) or 1.
A relative path given with -p (output_root, dataset_source, a question file, a model folder, ...)
means one under the folder the command was typed in, wherever the notebook runs.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import yaml

from helpers.config import REPO_ROOT, ConfigError, is_secret_env_param, load_preset, similar_names
from helpers.registry import load_registry, require_model
from helpers.runs import run_folder
from helpers.studies import STUDIES, get_study, study_config

NOTEBOOKS = REPO_ROOT / "notebooks"

# The parameters that hold a path, from the study configs. Papermill runs the kernel in notebooks/,
# and the helpers read some of these against the repository root: a relative path typed on the
# command line means neither, so `resolve(..., cwd=)` rewrites it.
REPO_PATHS = {"output_root", "output_dir", "workbook_dir", "train_run", "teacher_cache_dir"}  # read from REPO_ROOT
DATA_PATHS = {"dataset_source", "data_source"}  # 'hub', 'local' or a path the kernel opens
# A registry name, a hub id or a local folder. The value names the parameter that says whether the
# model is local (a chat endpoint's model name is no path); None: always.
MODEL_PARAMS = {"model": None, "teacher_model": "teacher_backend", "large_model": "large_backend"}
ENCODER_PARAMS = {"retriever", "bertscore_model"}  # a sentence-transformers name, a hub id or a folder


def notebook_defaults(notebook: Path) -> dict:
    """The values of the notebook's `parameters` cell."""
    import papermill

    found = papermill.inspect_notebook(str(notebook))
    return {name: ast.literal_eval(p["default"]) for name, p in found.items()}


def _local_model(name: str, params: dict) -> bool:
    switch = MODEL_PARAMS[name]
    return switch is None or params.get(switch) == "local"


def absolute_paths(overrides: dict, params: dict, cwd: Path) -> dict:
    """The path-valued `overrides`, as meant from `cwd`: absolute, or relative to the repository for
    the parameters the helpers read from there (so a run folder's name and hash are those of the
    same path typed from the repository root). `params`: all the run's values."""
    out = {}
    for name, value in overrides.items():
        if not isinstance(value, str) or not value:
            continue
        path = Path(os.path.abspath(Path(cwd) / Path(value).expanduser()))
        if name in REPO_PATHS:
            out[name] = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
        elif name in DATA_PATHS and value not in ("hub", "local"):
            if not path.exists():
                raise ConfigError(f"{name} '{value}' is neither 'hub', 'local' nor an existing file or folder "
                                  f"(looked for {path})")
            out[name] = str(path)
        elif name == "question_set" and value.endswith(".yaml"):  # else the name of a set in questions/
            if not path.is_file():
                raise ConfigError(f"question_set '{value}' is not a file (looked for {path}); give a .yaml file "
                                  "or the name of a set in questions/")
            out[name] = str(path)
        elif ((name in MODEL_PARAMS and _local_model(name, params) and value not in load_registry()
               or name in ENCODER_PARAMS) and path.is_dir()):
            out[name] = str(path)
    return out


def resolve(study: str, preset: str | None, overrides: dict, *, cwd: str | Path | None = None):
    """(notebook, parameters to inject, typed config, run folder) for one run. With `cwd`, relative
    paths among `overrides` are taken from there (the command line); without, as the helpers read them."""
    get_study(study)  # an unknown study fails here, before the notebook is read
    notebook = NOTEBOOKS / f"{study}.ipynb"
    defaults = notebook_defaults(notebook)
    params = {**(load_preset(study, preset) if preset else {}), **overrides}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        named = ", ".join(f"'{name}'{similar_names(name, defaults)}" for name in unknown)
        raise ConfigError(f"{notebook.name} has no parameter {named}; it has: {', '.join(defaults)}")
    if cwd is not None:
        params |= absolute_paths(overrides, {**defaults, **params}, Path(cwd))
    cfg = study_config(study, {**defaults, **params})  # secrets' parameters are checked here, before any write
    # inject the typed values: `-p learning_rate 1e-4` arrives as text and goes on as 0.0001
    typed = dataclasses.asdict(cfg)
    params = {name: typed.get(name, value) for name, value in params.items()}
    for name in MODEL_PARAMS:  # fail before starting a kernel
        if getattr(cfg, name, "") and _local_model(name, typed):
            require_model(getattr(cfg, name))
    return notebook, params, cfg, run_folder(study, cfg)


def execute(study: str, preset: str | None = None, overrides: dict | None = None, *, log_output: bool = True,
            cwd: str | Path | None = None) -> Path:
    """Execute the notebook into its run folder; returns the run folder. Raises ConfigError for
    bad parameters and RuntimeError (one line: the failing cell's error) for a failed run."""
    import papermill

    notebook, params, cfg, run_dir = resolve(study, preset, overrides or {}, cwd=cwd)
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
    params = {}
    for name, value in pairs or []:
        try:
            params[name] = yaml.safe_load(value)
        except yaml.YAMLError:  # the value is not shown: it may be a secret typed in the wrong place
            shown = "" if is_secret_env_param(name) else f" {value!r}"
            raise ConfigError(f"-p {name}: the value{shown} is not valid YAML; quote it: -p {name} \"'...'\"") from None
    return params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help=f"one of: {', '.join(STUDIES)}")
    parser.add_argument("--preset", help="configs/presets/<preset>/<study>.yaml, e.g. demo")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
    parser.add_argument("--quiet", action="store_true", help="do not stream the notebook's output")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        run_dir = execute(args.study, args.preset, _parse_overrides(args.parameter), log_output=not args.quiet,
                          cwd=Path.cwd())
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
