"""Run folders and what goes in them.

Naming rule: <output_root>/<study>/<model>-<hash>, where <hash> is 8 hex digits of the resolved
config minus the run-control keys (output_root, run_name, resume); `run_name` replaces
<model>-<hash> when set and must be a single folder name (no '/' or '\\', not '.' or '..'), so a
run never writes outside <output_root>/<study>. The same settings therefore land in the same
folder, which is what lets a disconnected run continue where it stopped (resume=True). A run_name
folder does not change with the settings: with resume=True, one that holds training (checkpoints/,
adapter/, stages/) under a run.json of other settings is refused with the changed keys
(check_resumable, in run_folder, write_run_record and train_sft) before anything is written.

    >>> run_dir = run_folder("addition", cfg)
    >>> write_run_record(run_dir, cfg, model_info=info)
    >>> write_metrics(run_dir, {"finetuned": {...}})
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path

from helpers.config import REPO_ROOT, ConfigError, config_hash, hashed_settings, output_path

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
    check_resumable(root / study / name, cfg)  # in the config cell: before the model loads, before any write
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


# what a run folder holds once training has started: the trainer's checkpoints, the finished adapter, the stages
# (at the top, or in the per-task/per-variant folders of small_vs_large's adapters/ and mmlu_teacher's ft/)
TRAINING_STATE = ("checkpoints", "adapter", "stages")


def training_state(run_dir, depth: int = 3) -> Path | None:
    """The first folder of TRAINING_STATE within `depth` levels of `run_dir`, or None."""
    run_dir = Path(run_dir)
    for root, dirs, _ in os.walk(run_dir):
        hit = next((d for d in sorted(dirs) if d in TRAINING_STATE), None)
        if hit:
            return Path(root) / hit
        if len(Path(root).relative_to(run_dir).parts) >= depth:
            dirs[:] = []
    return None


UNSET = "(unset)"  # a setting one config has and the other lacks


def _hashed_settings(config: dict) -> dict:
    """The settings of a config dict that config_hash counts, as JSON gives them back (run.json's)."""
    return hashed_settings(json.loads(json.dumps(_jsonable(config))))


def changed_settings(stored: dict, cfg) -> dict:
    """{key: (stored value, new value)} of the settings that change what a run computes; UNSET for a key one
    side lacks. Run-control keys and HASH_NEUTRAL keys at their neutral value do not count (as in config_hash)."""
    old, new = _hashed_settings(stored), _hashed_settings(dataclasses.asdict(cfg))
    return {k: (old.get(k, UNSET), new.get(k, UNSET)) for k in sorted(old.keys() | new.keys())
            if old.get(k, UNSET) != new.get(k, UNSET)}


def check_resumable(run_dir, cfg) -> None:
    """With `resume` on, refuse (before anything is written) to continue in `run_dir` a training that another
    config started: a run_name names the folder whatever the settings, and its checkpoints would go on with the
    old schedule (or fail on other shapes) while run.json says the new settings. Nothing to check where the folder
    holds no training yet, or has no run.json."""
    if not dataclasses.is_dataclass(cfg) or not getattr(cfg, "resume", True):
        return
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):  # unreadable: nothing to compare with (write_json never leaves half a file)
        return
    if not isinstance(stored, dict) or stored.get("config_hash") == config_hash(cfg):
        return
    if not isinstance(stored.get("config"), dict) or training_state(run_dir) is None:
        return
    changed = changed_settings(stored["config"], cfg)
    if not changed:
        return

    def shown(value):
        text = value if value is UNSET else json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."

    changes = ", ".join(f"{k} {shown(a)} -> {shown(b)}" for k, (a, b) in changed.items())
    raise ConfigError(f"run folder {run_dir} holds a training of other settings ({changes}): set resume = False "
                      "to start over in this folder, or choose another run_name")


# what run.json keeps of each earlier "Run all" in the same folder (under "earlier", oldest first, at most
# EARLIER_KEPT): the adapter and results there may come from an earlier session's packages, code or GPU
SESSION_KEYS = ("started", "config_hash", "git", "versions", "device")
EARLIER_KEPT = 50


def _earlier_sessions(path: Path) -> list[dict]:
    """The sessions an existing run.json records: its own earlier ones and itself (SESSION_KEYS)."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable (write_json never leaves half a file)
        return []
    if not isinstance(stored, dict):
        return []
    earlier = [s for s in stored.get("earlier", []) if isinstance(s, dict)]
    return (earlier + [{k: stored.get(k) for k in SESSION_KEYS}])[-EARLIER_KEPT:]


def write_run_record(run_dir: Path, cfg, *, study: str, model_info=None, extra: dict | None = None) -> Path:
    """run.json: resolved config, package versions, git state, device, model source and backend; a later "Run
    all" in the same folder rewrites it and keeps each earlier one's start, versions, git state and device under
    "earlier" (a resumed training's first epochs, or kept results, came from those). With cfg.resume, a folder
    whose training another config started is refused first (check_resumable)."""
    import torch

    run_dir = Path(run_dir)
    check_resumable(run_dir, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    earlier = _earlier_sessions(run_dir / "run.json")
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
        **({"earlier": earlier} if earlier else {}),
    }
    return write_json(run_dir / "run.json", record)


def recorded_model(run_dir: Path) -> dict | None:
    """run_dir/run.json's "model" (the ModelInfo an earlier "Run all" loaded, as JSON), else None: the record of
    a re-run that finds every result kept and loads no model."""
    try:
        model = json.loads((Path(run_dir) / "run.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return model if isinstance(model, dict) else None


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


def json_digest(value) -> str:
    """16 hex of a sha256 over `value` as JSON (the training pairs or prompts a kept result stands for)."""
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def files_digest(folder, pattern: str = "*") -> str | None:
    """16 hex of a sha256 over the names and bytes of the files of `folder` matching `pattern`, None if there are
    none: what a result computed from them (an adapter's) is keyed by."""
    files = sorted(f for f in Path(folder).glob(pattern) if f.is_file())
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as data:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def kept_result(path, identity: dict, compute):
    """compute()'s result, computed once per `identity` and kept at `path` (JSON, written whole or not at
    all): a "Run all" after a disconnect reuses an evaluation that took an hour instead of running it again.
    A file of another identity, or one that does not parse, is computed again and replaced. Both ways the
    result comes back as JSON gives it (tuples as lists), so a first run and a reuse return equal values.

        >>> base, items = kept_result(run_dir / "eval_base.json", {"stage": "base", "settings": config_hash(cfg)},
        ...                           lambda: forgetting.evaluate(llm, tokenizer, info, data, cfg, desc="base"))
    """
    path = Path(path)
    found = kept(path, identity)
    if found is not None:
        print(f"{path.name}: kept from an earlier run of these settings, not computed again (delete it to redo)")
        return found
    result = json.loads(json.dumps(_jsonable(compute())))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"identity": _jsonable(identity), "result": result})
    return result


def kept(path, identity: dict):
    """The result kept_result keeps at `path` for `identity`, else None (no file, another identity, or a
    file that does not parse): for a caller that must know before it prepares compute (loads a model)."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(saved, dict) and saved.get("identity") == _jsonable(identity) and "result" in saved:
        return saved["result"]
    return None
