"""Run the seven-model study over models x tasks with papermill, one run folder per notebook run.

    python -m helpers.sweep --models llama-3.1-8b,qwen-2-7b --tasks math,bio
    python -m helpers.sweep --models smollm2-135m --preset demo --dry-run
    python -m helpers.sweep --executor ray                      # one run per GPU of this host
    python -m helpers.sweep --executor ray --address auto       # the Ray cluster started with `ray start`

For each model and task: train_<task> (epoch 1, then to epoch 3), then benchmark on that run;
at the end the summary table, then compile_ratings. A run whose folder already holds metrics.json is
skipped, so a sweep that was killed (or a Colab that disconnected) is simply started again: finished
runs are kept, an interrupted training continues from its last checkpoint, the rest runs. A failing
run is recorded with the cell that failed (and its benchmark skipped); the sweep goes on. Every result
(and, on Ray, every start) is appended to <output_root>/sweep_log.jsonl. The serial executor runs one notebook
after another here; the Ray one (helpers.sweep_ray, docs/scale-out.md) runs one per GPU of a host
or a cluster, each training before its own benchmark.

A failed run is started again on the next sweep (a failure may be transient). With --skip-failed a
run whose last result in sweep_log.jsonl is a failure with the same settings (the same run folder)
is not started: it is listed as "failed earlier (skipped)" with the error logged then (a lost Ray
worker is always retried). To retry it, run the sweep without --skip-failed (e.g. with --models and
--tasks naming only that run).

Exit codes: 0 every run finished (now or before) and the ratings were compiled; 1 a run failed (now,
or earlier and skipped with --skip-failed) or compile_ratings failed; 2 bad input: flags or
parameters that were refused before any run started (nothing ran).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
import time
from pathlib import Path

from helpers.config import REPO_ROOT, ConfigError, output_path
from helpers.registry import load_registry
from helpers.run_notebook import execute, resolve
from helpers.tasks.instruct import TASKS

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one sweep there is one writer anyway
    fcntl = None

STUDY_MODELS = ["llama-2-7b", "llama-3-8b", "llama-3.1-8b", "gemma-7b", "gemma-2-9b", "mistral-7b-v3", "qwen-2-7b"]
EXECUTORS = ("serial", "ray")
SWEEP_LOG = "sweep_log.jsonl"
FAILED_EARLIER = "failed earlier (skipped)"


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


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="milliseconds")


def append_log(path: Path, record: dict) -> None:
    """Append `record` as one JSON line. Several workers (processes, hosts on shared storage) append to
    one sweep log: the whole line goes in one write to an O_APPEND descriptor while holding an
    exclusive flock, so lines never interleave or tear (O_APPEND alone is not atomic on NFS)."""
    line = (json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in record.items()}) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl:
            fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        while view:  # a regular file takes it in one write; the loop only guards a short write
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)  # releases the lock


def earlier_failures(log_path: Path) -> dict[str, str]:
    """{run folder: its error} for each run whose last result in the sweep log (a "done" or "failed"
    line; Ray's "running" lines and skips are no result) is a failure. A run folder is named by the
    hash of the run's settings, so the same folder is the same settings. A lost Ray worker is no
    failure of the run (it is retried), and a line that does not parse (a hand edit) is passed over."""
    last: dict[str, dict] = {}
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("status") in ("done", "failed") and entry.get("run_dir"):
                last[str(entry["run_dir"])] = entry
    return {run_dir: entry.get("failed_earlier") or entry.get("note") or "" for run_dir, entry in last.items()
            if entry["status"] == "failed" and not str(entry.get("note", "")).startswith("worker lost")}


def mark_failed_earlier(runs: list[dict], log_path: Path) -> None:
    """--skip-failed: runs not finished whose last result in the log is a failure get "failed_earlier"
    (that error); run_one then records them as failed without starting them."""
    failures = earlier_failures(log_path)
    for run in runs:
        if str(run["run_dir"]) in failures and not (Path(run["run_dir"]) / "metrics.json").exists():
            run["failed_earlier"] = failures[str(run["run_dir"])]


def run_one(run: dict, preset: str | None, log_path: Path, training: dict | None = None, *,
            announce: bool = False) -> dict:
    """Execute one planned run here, unless it is finished already or its training failed; returns
    {status, note, seconds, started, ended, host, pid}. The same for both executors: the Ray task is
    this function on a worker. With `announce` (the Ray executor, where runs go on elsewhere and at
    once) a "running" line goes to the sweep log first, naming the host and process that runs it (the
    one to look at, or to stop); the serial sweep's log keeps one line per run."""
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    started = _now()
    start = time.time()
    if (Path(run["run_dir"]) / "metrics.json").exists():
        status, note = "skipped", "finished before"
    elif training is not None and training["status"] == "failed":
        status, note = "skipped", "its training run failed"
    elif run.get("failed_earlier") is not None:  # --skip-failed: not started again
        status, note = "failed", f"{FAILED_EARLIER}: {run['failed_earlier']}"
    else:
        if announce:
            append_log(log_path, {"time": started, **_loggable(run), "status": "running", "started": started,
                                  **where})
        try:
            execute(run["study"], preset, run["params"], log_output=False)
            status, note = "done", ""
        except (ConfigError, RuntimeError) as err:
            status, note = "failed", str(err)
    ran = status != "skipped" and run.get("failed_earlier") is None
    seconds = round(time.time() - start, 1) if ran else 0.0
    return {"status": status, "note": note, "seconds": seconds, "started": started, "ended": _now(), **where}


def _loggable(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in ("params", "status", "note", "seconds", "started", "ended",
                                                       "host", "pid")}


def eta_seconds(finished: list[dict], pending: list[str], parallel: int = 1) -> float | None:
    """Seconds until the `pending` runs (their study names) are done, estimated from the `finished`
    runs ({"study", "status", "seconds"}): each pending run takes the mean time of the runs of its study
    that ran to the end ("done"; skipped and failed runs say nothing about it), or of all such runs
    while its study has none; the sum is shared among `parallel` workers, never more workers than
    runs. None while nothing has run to the end yet; 0.0 when nothing is pending.

        >>> eta_seconds([{"study": "train_math", "status": "done", "seconds": 60}], ["train_math"] * 4, 2)
        120.0
    """
    if not pending:
        return 0.0
    times: dict[str, list[float]] = {}
    for run in finished:
        if run["status"] == "done":
            times.setdefault(run["study"], []).append(run["seconds"])
    if not times:
        return None
    overall = sum(sum(t) for t in times.values()) / sum(len(t) for t in times.values())
    total = sum(sum(times[s]) / len(times[s]) if s in times else overall for s in pending)
    return total / max(1, min(parallel, len(pending)))


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "time left unknown"
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min left"
    return f"about {seconds / 3600:.1f} h left"


class Progress:
    """The line per finished run ("[3/8] benchmark smollm2-135m done 41.2 s  about 2 min left  note")
    and the sweep log's result line. `parallel`: how many runs go at once."""

    def __init__(self, runs: list[dict], log_path: Path, log, parallel: int = 1):
        self.runs, self.log_path, self.log, self.parallel = runs, log_path, log, parallel
        self.finished: list[dict] = []
        # known now to be skipped: they add nothing to the time left
        self.skips = {id(r) for r in runs if (Path(r["run_dir"]) / "metrics.json").exists()
                      or r.get("failed_earlier") is not None}
        failed = {r["run_dir"] for r in runs if r.get("failed_earlier") is not None}
        self.skips |= {id(r) for r in runs if r.get("after") in failed}

    def record(self, run: dict, result: dict) -> None:
        run.update(result)
        self.finished.append(run)
        if run["status"] == "failed":  # its benchmark will be skipped
            self.skips |= {id(r) for r in self.runs if r.get("after") == run["run_dir"]}
        done = {id(r) for r in self.finished}
        pending = [r["study"] for r in self.runs if id(r) not in done and id(r) not in self.skips]
        eta = format_eta(eta_seconds(self.finished, pending, self.parallel)) if pending else ""
        label = f"[{len(self.finished)}/{len(self.runs)}] {run['study']:<11} {run['model']:<16}"
        self.log(f"{label} {run['status']:<7} {run['seconds']:>7.1f} s  {eta:<20} {run['note']}".rstrip())
        append_log(self.log_path, {"time": _now(), **_loggable(run), "status": run["status"], "note": run["note"],
                                   "seconds": run["seconds"], "started": run["started"], "ended": run["ended"],
                                   "host": run["host"], "pid": run["pid"]})


def run_sweep(models, tasks, *, preset=None, output_root="benchmarks", workbook_dir="benchmark_data",
              dry_run=False, compile_ratings=True, log=print, executor="serial", address=None, gpus=None,
              gpus_per_run=1, skip_failed=False) -> list[dict]:
    """The sweep; returns the planned runs, each with its status, note and seconds. executor="ray" runs
    them as Ray tasks holding `gpus_per_run` GPUs each, on the cluster at `address` or on a local one
    started with `gpus` GPUs (None: the ones Ray finds); see helpers.sweep_ray. `skip_failed`: a run
    whose last result in the sweep log is a failure is not started (see the module's docstring). The
    summary table is printed before compile_ratings runs; a failure of compile_ratings is one line
    (compile_summary). Raises ConfigError only for bad arguments, before any run starts."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor '{executor}' is not one of: {', '.join(EXECUTORS)}")
    common = {"output_root": output_root}
    runs = plan(models, tasks, preset, common, workbook_dir)
    root = output_path(output_root)
    if skip_failed:
        mark_failed_earlier(runs, root / SWEEP_LOG)
    if dry_run:
        for i, run in enumerate(runs, 1):
            state = "finished, skip" if (run["run_dir"] / "metrics.json").exists() else \
                f"{FAILED_EARLIER}: {run['failed_earlier']}" if run.get("failed_earlier") is not None else "to run"
            log(f"[{i}/{len(runs)}] {run['study']:<11} {run['model']:<16} -> {_rel(run['run_dir'])} ({state})")
        return runs
    root.mkdir(parents=True, exist_ok=True)
    if executor == "ray":
        from helpers.sweep_ray import run_on_ray  # only here: `import helpers.sweep` never loads Ray

        run_on_ray(runs, preset, root / SWEEP_LOG, log=log, address=address, gpus=gpus, gpus_per_run=gpus_per_run)
    else:
        progress = Progress(runs, root / SWEEP_LOG, log)
        results = {}
        for run in runs:
            results[run["run_dir"]] = run_one(run, preset, root / SWEEP_LOG, results.get(run.get("after")))
            progress.record(run, results[run["run_dir"]])
    log(summary_table(runs))
    if compile_ratings:
        compile_summary(workbook_dir, log)
    return runs


def compile_summary(workbook_dir, log=print) -> str | None:
    """compile_ratings over `workbook_dir`; logs one line either way. Returns None, or why it failed (a
    missing workbook_dir after every benchmark failed, a failing cell, anything that notebook's run raised):
    the sweep's table is printed already and its runs are kept, so this is reported, not raised."""
    try:
        compiled = execute("compile_ratings", None, {"workbook_dir": workbook_dir,
                                                     "output_dir": str(Path(workbook_dir) / "summary")},
                           log_output=False)
    except Exception as err:  # noqa: BLE001 - any failure of this last notebook is one line and exit code 1
        why = " ".join((str(err) if isinstance(err, (ConfigError, RuntimeError)) else
                        f"{type(err).__name__}: {err}").split())
        log(f"ratings summary not compiled: {why}")
        return why
    log(f"ratings summary: {_rel(compiled)}")
    return None


def summary_table(runs) -> str:
    lines = [f"{'study':<11} {'model':<16} {'status':<7} {'seconds':>8}  note"]
    lines += [f"{r['study']:<11} {r['model']:<16} {r['status']:<7} {r['seconds']:>8.1f}  {r['note']}".rstrip()
              for r in runs]
    counts = {s: sum(r["status"] == s for r in runs) for s in ("done", "skipped", "failed")}
    earlier = sum(r.get("failed_earlier") is not None and r["status"] == "failed" for r in runs)
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + (f" ({earlier} failed earlier, skipped)"
                                                                      if earlier else ""))
    return "\n".join(lines)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="exit codes: 0 all finished and compiled; 1 a run (or compile_ratings) "
                                            "failed; 2 bad flags or parameters, nothing ran")
    parser.add_argument("--models", default=",".join(STUDY_MODELS), help="comma-separated registry names/hub ids")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of: {', '.join(TASKS)}")
    parser.add_argument("--preset", help="configs/presets/<preset>/<study>.yaml for every run (e.g. demo)")
    parser.add_argument("--output-root", default="benchmarks")
    parser.add_argument("--workbook-dir", default="benchmark_data")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--executor", default="serial", help="serial (one run after another, here) or ray "
                                                             "(one run per GPU; docs/scale-out.md)")
    parser.add_argument("--address", help="ray: join this running cluster ('auto', or host:port of `ray start "
                                          "--head`); without it a local Ray is started for this sweep")
    parser.add_argument("--gpus", type=int, help="ray, local: GPUs to offer (default: the ones Ray finds)")
    parser.add_argument("--gpus-per-run", type=float, default=1, help="ray: GPUs each notebook run holds")
    parser.add_argument("--skip-failed", action="store_true",
                        help="do not start a run whose last result in <output_root>/sweep_log.jsonl is a failure "
                             "with the same settings (e.g. out of memory); it is listed as 'failed earlier (skipped)' "
                             "with that error. To retry it, run without --skip-failed (default: failed runs are "
                             "retried)")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    tasks = [t for t in args.tasks.split(",") if t]
    try:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ConfigError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
        if not models or not tasks:
            raise ConfigError("--models and --tasks need at least one name each")
        if args.executor not in EXECUTORS:
            raise ConfigError(f"--executor '{args.executor}' is not one of: {', '.join(EXECUTORS)}")
        if args.executor == "serial" and (args.address or args.gpus is not None or args.gpus_per_run != 1):
            raise ConfigError("--address, --gpus and --gpus-per-run are for --executor ray")
        if args.gpus is not None and args.gpus < 0 or args.gpus_per_run < 0:
            raise ConfigError("--gpus and --gpus-per-run cannot be negative")
        if args.address and args.gpus is not None:
            raise ConfigError("--gpus is for a local Ray; a cluster joined with --address offers the GPUs its "
                              "nodes were started with (`ray start --num-gpus N`)")
        registry = load_registry()
        for model in models:
            if model not in registry and "/" not in model and not Path(model).is_dir():
                raise ConfigError(f"unknown model '{model}'; known: {', '.join(registry)}")
        runs = run_sweep(models, tasks, preset=args.preset, output_root=args.output_root,
                         workbook_dir=args.workbook_dir, dry_run=args.dry_run, executor=args.executor,
                         address=args.address, gpus=args.gpus, gpus_per_run=args.gpus_per_run,
                         skip_failed=args.skip_failed, compile_ratings=False)
    except ConfigError as err:  # raised before any run started: the flags or parameters given
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = any(r.get("status") == "failed" for r in runs)
    if not args.dry_run and compile_summary(args.workbook_dir) is not None:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
