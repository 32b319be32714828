"""How long a training run will take and how much memory it needs, said before the user waits for it.

`WallTimeEstimate` is a TrainerCallback: it skips the first steps (compiles, cache warm-up), times
the next few, and prints one line with the whole run's expected wall time (remaining steps x the
median measured step) and, on a GPU, the peak memory so far against the card's size:

    estimate: 1,250 steps x 0.84 s/step = 17.5 min on Tesla T4; peak 6.1 of 14.7 GiB (41%)

The same numbers go to `<run_dir>/estimate.json`, so a run folder says what was expected of it.
`CheckpointSpace` adds what the run's checkpoints take there after the first is written, and says it in one line
where that costs space the user does not see: on Google Drive each checkpoint the trainer replaces goes to Drive's
trash, which counts against the account's storage until it is emptied.
The peak after a few steps is the training peak: every step has the same shapes up to the batch's
length, and length-grouped batches come in random order (helpers/sft.py).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from transformers import TrainerCallback

DRIVE_MOUNT = Path("/content/drive")  # where the notebooks' setup cell mounts Google Drive on Colab


def record(run_dir, values: dict) -> None:
    """Set `values`' keys in run_dir/estimate.json, keeping what the other callback wrote there."""
    from helpers.runs import write_json

    path = Path(run_dir, "estimate.json")
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = {}
    write_json(path, {**(found if isinstance(found, dict) else {}), **values})  # whole or not at all


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def device_memory() -> dict | None:
    """Name, peak reserved and total memory (GiB) of the current CUDA device; None on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return {"device": props.name, "peak_gib": torch.cuda.max_memory_reserved(index) / 2**30,
            "total_gib": props.total_memory / 2**30}


def estimate_line(steps: int, step_s: float, memory: dict | None, device: str = "this CPU", total: int = 0) -> str:
    of = f" (of {total:,}; resumed)" if total > steps else ""
    line = f"estimate: {steps:,} steps{of} x {step_s:.2f} s/step = {format_duration(steps * step_s)}"
    if memory is None:
        return f"{line} on {device}"
    share = memory["peak_gib"] / memory["total_gib"]
    return (f"{line} on {memory['device']}; peak {memory['peak_gib']:.1f} of {memory['total_gib']:.1f} GiB "
            f"({share:.0%})" + ("  <- close to the card's memory: lower batch_size or max_seq_length"
                                if share > 0.9 else ""))


class WallTimeEstimate(TrainerCallback):
    """Prints the run's expected wall time once `measure` steps after `skip` warm-up steps are timed."""

    def __init__(self, run_dir=None, *, skip: int = 2, measure: int = 5, clock=time.perf_counter,
                 memory=device_memory, echo=print):
        self.run_dir, self.skip, self.measure = run_dir, skip, measure
        self.clock, self.memory, self.echo = clock, memory, echo
        self.times: list[float] = []
        self.start = None
        self.result: dict | None = None

    def on_step_begin(self, args, state, control, **kw):
        self.start = self.clock()

    def on_step_end(self, args, state, control, **kw):
        if self.result is not None or self.start is None:
            return
        self.times.append(self.clock() - self.start)
        done = len(self.times)
        total = state.max_steps
        if done < self.skip + self.measure and state.global_step < total:
            return
        timed = self.times[self.skip:] or self.times  # a run shorter than the warm-up: time what there is
        step_s = statistics.median(timed)
        left = max(total - state.global_step, 0)
        memory = self.memory()
        self.result = {"steps": total, "steps_this_run": left + done, "step_s": step_s,
                       "expected_s": (left + done) * step_s, "measured_steps": len(timed), "memory": memory}
        self.echo(estimate_line(left + done, step_s, memory, total=total))
        if self.run_dir is not None:
            record(self.run_dir, self.result)


def checkpoint_line(space: dict) -> str:
    mb, trash = space["checkpoint_mb"], space["trash_mb"]
    return (f"checkpoints: {mb:,.0f} MB each, {space['saves']} to write, {space['kept']} kept; on Google Drive each "
            f"one replaced goes to Drive's trash, which counts against your storage until emptied: about "
            f"{trash / 1024:,.1f} GB (empty it at https://drive.google.com/drive/trash, or raise save_steps)")


class CheckpointSpace(TrainerCallback):
    """After the first checkpoint of a schedule is written (train_sft's stage_schedule "restart" trains several, each
    in its own folder): its size, how many the schedule writes (one every save_steps and one at the end) and keeps
    (save_total_limit), and what the replaced ones leave in Drive's trash when the checkpoints are on Google Drive
    (one line then; `estimate.json`'s "checkpoints" always, the latest schedule's)."""

    def __init__(self, run_dir=None, *, echo=print):
        self.run_dir, self.echo, self.result, self.seen = run_dir, echo, None, set()

    def on_save(self, args, state, control, **kw):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if args.output_dir in self.seen or not folder.is_dir():
            return
        self.seen.add(args.output_dir)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
        saves = -(-state.max_steps // args.save_steps)
        kept = min(saves, args.save_total_limit or saves)
        on_drive = Path(args.output_dir).resolve().is_relative_to(DRIVE_MOUNT.resolve())
        self.result = {"checkpoint_mb": round(size, 1), "saves": saves, "kept": kept, "on_drive": on_drive,
                       "trash_mb": round(size * (saves - kept), 1) if on_drive else 0.0}
        if on_drive and saves > kept:
            self.echo(checkpoint_line(self.result))
        if self.run_dir is not None:
            record(self.run_dir, {"checkpoints": self.result})
