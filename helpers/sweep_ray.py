"""The sweep's Ray executor (`python -m helpers.sweep --executor ray`; docs/scale-out.md).

Each notebook run is one Ray task holding `gpus_per_run` GPUs (Ray sets CUDA_VISIBLE_DEVICES for it,
and the notebook's kernel inherits it), so a host or cluster with N GPUs runs N at a time. A
benchmark task takes its training task's result as an argument: Ray starts it only once that
training has ended, and it skips itself if the training failed. Everything a run does is
helpers.sweep.run_one, as in the serial executor; this module only schedules. Imported only when
the Ray executor is asked for: `import helpers.sweep` does not load Ray.

A worker that dies (killed, its node lost) fails its run with "worker lost": tasks are not retried
here, because the dead worker's notebook kernel may still be writing its run folder for a moment
(ipykernel notices its parent is gone within a second). Running the same sweep again resumes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray

from helpers.config import ConfigError
from helpers.sweep import Progress, _now, run_one


def _run_task(run: dict, preset, log_path: Path, training: dict | None = None) -> dict:
    return run_one(run, preset, log_path, training, announce=True)


def start_ray(address: str | None = None, gpus: int | None = None) -> bool:
    """Connect to the cluster at `address`, or start a local Ray on this host's CPUs with `gpus` GPUs
    (None: the ones Ray finds). Returns whether this call started it (then the caller shuts it down)."""
    if ray.is_initialized():  # a caller (a test, a notebook) set it up: use it as it is
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, num_gpus=gpus)
    return True


def run_on_ray(runs: list[dict], preset, log_path: Path, *, log=print, address=None, gpus=None,
               gpus_per_run=1) -> list[dict]:
    """Run the planned `runs` (helpers.sweep.plan) as Ray tasks; fills in each run's result as the
    serial executor does and prints the progress line as each ends (in the order they end)."""
    started_here = start_ray(address, gpus)
    refs = {}
    try:
        offered = ray.cluster_resources()
        if gpus_per_run > offered.get("GPU", 0):
            raise ConfigError(f"each run asks for {gpus_per_run:g} GPU(s) and the Ray cluster offers "
                              f"{offered.get('GPU', 0):g}: give --gpus N (logical GPUs, also on a CPU machine) or "
                              "--gpus-per-run 0, or start the cluster's nodes with `ray start --num-gpus N`")
        slots = int(offered["GPU"] // gpus_per_run) if gpus_per_run else int(offered.get("CPU", 1))
        progress = Progress(runs, log_path, log, parallel=max(1, slots))
        task = ray.remote(_run_task).options(num_gpus=gpus_per_run, num_cpus=1, max_retries=0)
        by_dir, run_of = {}, {}
        for run in runs:
            after = run.get("after")
            training = refs[after] if after in refs else by_dir.get(after)  # a ref: Ray waits for it
            # no task, no GPU held, to say "skipped" or (--skip-failed) "failed earlier", or skip its benchmark
            if ((Path(run["run_dir"]) / "metrics.json").exists() or run.get("failed_earlier") is not None
                    or isinstance(training, dict) and training["status"] == "failed"):
                ended = training if isinstance(training, dict) else None  # never a ref here: nothing waits
                by_dir[run["run_dir"]] = run_one(run, preset, log_path, ended)
                progress.record(run, by_dir[run["run_dir"]])
            else:
                refs[run["run_dir"]] = task.remote(run, preset, log_path, training)
                run_of[refs[run["run_dir"]]] = run
        order = {ref: i for i, ref in enumerate(refs.values())}
        waiting = list(refs.values())
        while waiting:
            ray.wait(waiting, num_returns=1)
            ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            for ref in sorted(ready, key=order.get):  # a training before its benchmark
                run = run_of[ref]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker died; or the training's did, before it
                    training = by_dir.get(run.get("after"))
                    if training is not None and training["status"] == "failed":
                        result = {"status": "skipped", "note": "its training run failed"}
                    else:
                        result = {"status": "failed", "note": f"worker lost ({type(err).__name__}); run the "
                                  "same sweep again to resume this run"}
                    result |= {"seconds": 0.0, "started": None, "ended": _now(), "host": None, "pid": None}
                by_dir[run["run_dir"]] = result
                progress.record(run, result)
                waiting.remove(ref)
    except BaseException:
        for ref in refs.values():  # Ctrl-C or an error here: stop the runs still going (their kernels end too)
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - ended already, or Ray is going down: nothing left to stop
                pass
        raise
    finally:
        if started_here:
            ray.shutdown()
    return runs


