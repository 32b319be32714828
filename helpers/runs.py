"""Run folders and what goes in them.

Naming rule: <output_root>/<study>/<model>-<hash>, where <hash> is 8 hex digits of the resolved
config minus the run-control keys (output_root, run_name, resume); `run_name` replaces
<model>-<hash> when set and must be a single folder name (no '/' or '\\', not '.' or '..'), so a
run never writes outside <output_root>/<study>. The same settings therefore land in the same
folder, which is what lets a disconnected run continue where it stopped (resume=True).

    >>> run_dir = run_folder("addition", cfg)
    >>> write_run_record(run_dir, cfg, model_info=info)
    >>> write_metrics(run_dir, {"finetuned": {...}})
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path

from helpers.config import REPO_ROOT, ConfigError, config_hash, output_path

PACKAGES = ["torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets", "unsloth",
            "unsloth_zoo", "gguf", "papermill", "openpyxl", "rapidfuzz"]


def run_folder(study: str, cfg) -> Path:
    if not hasattr(cfg, "output_root"):  # a study without models (compile_ratings): its output_dir
        return output_path(cfg.output_dir)
    root = output_path(cfg.output_root)
    model = str(cfg.model).rstrip("/")
    # a local folder is named by its last part; a hub id keeps its org ('org--name')
    model = Path(model).name if Path(model).expanduser().is_dir() else model.replace("/", "--")
    if cfg.run_name:
        _check_run_name(cfg.run_name)
    name = cfg.run_name or f"{model}-{config_hash(cfg)}"
    return root / study / name


def _check_run_name(name: str) -> None:
    # '../x', '/tmp/x' or 'a/../../b' would put the run (and whatever it overwrites) outside output_root;
    # a backslash is a separator on Windows, where a copied run folder may be opened.
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"run_name '{name}' must be a single folder name (no '/' or '\\', not '.' or '..'), "
                          "e.g. 'llama-lr2e-4'")


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": dirty}


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(path: Path, data) -> Path:
    """Write `data` whole or not at all: metrics.json is the marker the sweep reads as "finished", so it
    must never exist half-written. The temporary file is this process's own (two writers, say a sweep
    worker and the kernel of one that was killed, never write into one temporary file) and reaches the
    disk before the rename, so a crash after it leaves the whole file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(_jsonable(data), indent=2, sort_keys=False))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_run_record(run_dir: Path, cfg, *, study: str, model_info=None, extra: dict | None = None) -> Path:
    """run.json: resolved config, package versions, git state, device, model source and backend."""
    import torch

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    record = {
        "study": study,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg,
        "config_hash": config_hash(cfg),
        "git": git_state(),
        "versions": package_versions(),
        "device": device,
        "model": model_info,
        **(extra or {}),
    }
    return write_json(run_dir / "run.json", record)


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    return write_json(Path(run_dir) / "metrics.json", metrics)


class Timer:
    """Wall-clock seconds of named steps, for the run's metrics.

        >>> timer = Timer()
        >>> with timer("load"):
        ...     model = load_model(...)
        >>> timer.seconds
        {'load': 3.2}
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 2)
