"""Run the seven-model study over models x tasks with papermill, one run folder per notebook run.

    python -m helpers.sweep --models llama-3.1-8b,qwen-2-7b --tasks math,bio
    python -m helpers.sweep --models smollm2-135m --preset demo --dry-run

For each model and task: train_<task> (epoch 1, then to epoch 3), then benchmark on that run;
at the end compile_ratings. A run whose folder already holds metrics.json is skipped, so a sweep
that was killed (or a Colab that disconnected) is simply started again: finished runs are kept,
an interrupted training continues from its last checkpoint, the rest runs. A failing run is
recorded with the cell that failed (and its benchmark skipped); the sweep goes on. Every result
is appended to <output_root>/sweep_log.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from helpers.config import REPO_ROOT, ConfigError, output_path
from helpers.registry import load_registry
from helpers.run_notebook import execute, resolve
from helpers.tasks.instruct import TASKS

STUDY_MODELS = ["llama-2-7b", "llama-3-8b", "llama-3.1-8b", "gemma-7b", "gemma-2-9b", "mistral-7b-v3", "qwen-2-7b"]


def plan(models, tasks, preset, common: dict, workbook_dir: str = "benchmark_data") -> list[dict]:
    """The runs in order; benchmark runs name the training run they depend on. Each run's folder is
    computed by helpers.run_notebook.resolve from exactly the parameters it will be executed with
    (workbook_dir included: it is part of the benchmark's config hash), so the folder planned, skipped
    and logged is the folder the notebook writes."""
    runs = []
    for model in models:
        # a relative local folder means the one here, not one under notebooks/ (the kernel's cwd)
        param = model if model in load_registry() or not Path(model).expanduser().is_dir() else \
            str(Path(model).expanduser().resolve())
        for task in tasks:
            train = {"study": f"train_{task}", "model": model, "task": task,
                     "params": {"model": param, **common}}
            _, _, _, train["run_dir"] = resolve(train["study"], preset, train["params"])
            bench = {"study": "benchmark", "model": model, "task": task, "after": train["run_dir"],
                     "params": {"model": param, "task": task, "train_run": str(train["run_dir"]),
                                "workbook_dir": workbook_dir, **common}}
            _, _, _, bench["run_dir"] = resolve("benchmark", preset, bench["params"])
            runs += [train, bench]
    return runs


def run_sweep(models, tasks, *, preset=None, output_root="benchmarks", workbook_dir="benchmark_data",
              dry_run=False, compile_ratings=True, log=print) -> list[dict]:
    common = {"output_root": output_root}
    runs = plan(models, tasks, preset, common, workbook_dir)
    if dry_run:
        for i, run in enumerate(runs, 1):
            state = "finished, skip" if (run["run_dir"] / "metrics.json").exists() else "to run"
            log(f"[{i}/{len(runs)}] {run['study']:<11} {run['model']:<16} -> {_rel(run['run_dir'])} ({state})")
        return runs
    root = output_path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    failed_dirs = set()
    for i, run in enumerate(runs, 1):
        label = f"[{i}/{len(runs)}] {run['study']:<11} {run['model']:<16}"
        start = time.time()
        if (run["run_dir"] / "metrics.json").exists():
            run.update(status="skipped", seconds=0.0, note="finished before")
        elif run.get("after") in failed_dirs:
            run.update(status="skipped", seconds=0.0, note="its training run failed")
        else:
            try:
                execute(run["study"], preset, run["params"], log_output=False)
                run.update(status="done", note="")
            except (ConfigError, RuntimeError) as err:
                run.update(status="failed", note=str(err))
                failed_dirs.add(run["run_dir"])
            run["seconds"] = round(time.time() - start, 1)
        log(f"{label} {run['status']:<7} {run['seconds']:>7.1f} s  {run['note']}".rstrip())
        with (root / "sweep_log.jsonl").open("a") as f:
            f.write(json.dumps({"time": datetime.datetime.now().isoformat(timespec="seconds"),
                                **{k: str(v) if isinstance(v, Path) else v for k, v in run.items()
                                   if k != "params"}}) + "\n")
    if compile_ratings:
        compiled = execute("compile_ratings", None, {"workbook_dir": workbook_dir,
                                                     "output_dir": str(Path(workbook_dir) / "summary")},
                           log_output=False)
        log(f"ratings summary: {_rel(compiled)}")
    log(summary_table(runs))
    return runs


def summary_table(runs) -> str:
    lines = [f"{'study':<11} {'model':<16} {'status':<7} {'seconds':>8}"]
    lines += [f"{r['study']:<11} {r['model']:<16} {r['status']:<7} {r['seconds']:>8.1f}" for r in runs]
    counts = {s: sum(r["status"] == s for r in runs) for s in ("done", "skipped", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(STUDY_MODELS), help="comma-separated registry names/hub ids")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of: {', '.join(TASKS)}")
    parser.add_argument("--preset", help="configs/presets/<preset>/<study>.yaml for every run (e.g. demo)")
    parser.add_argument("--output-root", default="benchmarks")
    parser.add_argument("--workbook-dir", default="benchmark_data")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    tasks = [t for t in args.tasks.split(",") if t]
    try:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ConfigError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
        if not models or not tasks:
            raise ConfigError("--models and --tasks need at least one name each")
        registry = load_registry()
        for model in models:
            if model not in registry and "/" not in model and not Path(model).is_dir():
                raise ConfigError(f"unknown model '{model}'; known: {', '.join(registry)}")
        runs = run_sweep(models, tasks, preset=args.preset, output_root=args.output_root,
                         workbook_dir=args.workbook_dir, dry_run=args.dry_run)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if any(r.get("status") == "failed" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
